"""Every benchmark with a CUDA path, in one command, within a time budget (default 8 minutes).

Runs each bench script as its own process (so one that fails or hangs costs only its own
slice of the budget) and prints its figures under a header naming the GPU:

    python bench/gpu.py                       # on a CUDA machine: all of them, ≤ 8 min
    python bench/gpu.py --device cpu --quick  # the same scripts on the CPU, small settings (to test this script)
    python bench/gpu.py --log gpu.log         # also write everything printed to a file

A script missing from bench/, or a flag a script does not take (read from its --help),
is reported and skipped, never guessed.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Entry:
    name: str
    script: str
    args: tuple[str, ...]  # on the GPU
    quick: tuple[str, ...]  # with --quick (CPU smoke run of this script)
    share: float  # fraction of the budget this entry may take at most


ENTRIES = (
    Entry("forward pass + feature maps", "feature_maps.py", ("--repeats", "20"), ("--repeats", "2"), 0.10),
    # fp32 and the default (bf16 autocast on CUDA); then the default with torch.compile
    Entry(
        "trainer, fp32 and bf16 autocast",
        "train_throughput.py",
        ("--steps", "50", "--warmup", "10"),
        ("--steps", "2", "--warmup", "1", "--telemetry-steps", "2"),
        0.20,
    ),
    Entry(
        "trainer, bf16 + torch.compile",
        "train_throughput.py",
        ("--steps", "50", "--warmup", "10", "--compile"),
        ("--steps", "2", "--warmup", "1", "--telemetry-steps", "2", "--compile"),
        0.30,
    ),
    Entry(
        "explain (36 Grad-CAMs, 36 ablations, one receptive field)",
        "explain.py",
        ("--repeats", "20"),
        ("--repeats", "1"),
        0.15,
    ),
    Entry("feature visualisation (CPU 128², 256 steps; CUDA 224², 512 steps)", "featurevis.py", (), ("--quick",), 0.25),
)


def accepted(script: Path, flags: list[str]) -> list[str]:
    """The subset of `flags` (with their values) that the script's --help names."""
    try:
        text = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, check=False
        ).stdout
    except subprocess.TimeoutExpired:
        return []
    out: list[str] = []
    i = 0
    while i < len(flags):
        flag = flags[i]
        takes_value = i + 1 < len(flags) and not flags[i + 1].startswith("--")
        if flag in text:
            out += flags[i : i + 1 + takes_value]
        else:
            print(f"  ({script.name} takes no {flag}: left out)")
        i += 1 + takes_value
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--budget-s", type=float, default=480.0, help="time for all entries together")
    p.add_argument("--quick", action="store_true", help="small settings (a CPU smoke run of every script)")
    p.add_argument("--only", default="", help="comma-separated words; run the entries whose name contains one")
    p.add_argument("--log", type=Path, help="also write what is printed to this file")
    args = p.parse_args()

    log = open(args.log, "w") if args.log else None  # closed at the end

    def say(text: str) -> None:
        print(text, flush=True)
        if log:
            log.write(text + "\n")
            log.flush()

    if args.device == "cuda" and not torch.cuda.is_available():
        say("no CUDA device here: run with --device cpu to try the scripts on the CPU")
        return 2
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({platform.processor() or 'unknown'})"
    say(f"# bench/gpu.py on {gpu}; torch {torch.__version__}; budget {args.budget_s:.0f} s")
    start = time.monotonic()
    failed = 0
    for e in ENTRIES:
        if args.only and not any(w and w in e.name for w in args.only.split(",")):
            continue
        script = BENCH / e.script
        say(f"\n## {e.name}  [{e.script}]")
        if not script.exists():
            say("  (script not in bench/: skipped)")
            continue
        left = args.budget_s - (time.monotonic() - start)
        limit = min(left, e.share * args.budget_s) if not args.quick else left
        if limit < 10:
            say("  (no time left in the budget: skipped)")
            continue
        flags = accepted(script, ["--device", args.device, *(e.quick if args.quick else e.args)])
        cmd = [sys.executable, str(script), *flags]
        say("  $ " + " ".join([Path(cmd[0]).name, *cmd[1:]]))
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit, check=False)
            out = (r.stdout + (r.stderr if r.returncode else "")).rstrip()
            status = f"exit {r.returncode}"
            failed += r.returncode != 0
        except subprocess.TimeoutExpired as ex:
            out = (ex.stdout or b"").decode(errors="replace") if isinstance(ex.stdout, bytes) else (ex.stdout or "")
            status = f"stopped at its {limit:.0f} s share of the budget"
            failed += 1
        for line in out.splitlines()[-40:]:
            say("  " + line)
        say(f"  -- {status}, {time.monotonic() - t0:.1f} s")
    say(f"\n# total {time.monotonic() - start:.1f} s, {failed} entr{'y' if failed == 1 else 'ies'} failed")
    if log:
        log.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
