"""Deliberate bugs: each one, put into a scratch copy of the project, must make its guarding test fail.

    python bench/mutations.py                      # every mutant (resume ones and the issue-18 guards)
    python bench/mutations.py --group resume       # only the resume restores (train.py)
    python bench/mutations.py --only no-optimizer-restore --only no-cpu-rng-restore
    python bench/mutations.py --group resume --kill-loop   # also run the SIGKILL loop on the resume mutants

The working tree (tracked and untracked, not ignored files) is copied to a temporary folder; for each
mutant the snippets are replaced there (a snippet must occur exactly once in the files searched, else the
mutant is reported as "does not apply": the code moved, update the snippet), the guarding tests run, and
the original text is put back. Prints, per mutant, KILLED with the first failure line, or SURVIVED.
Exit status 1 if a mutant survived, did not apply, or the unmutated copy fails its tests.
Train mutants search every gnet/*.py file, so they keep applying after train.py is split into parts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESUME_TEST = "tests/test_resume.py"
KILL_LOOP = "tests/test_faults_training.py::test_random_sigkills_never_corrupt_anything_and_resume_continues"


@dataclass(frozen=True)
class Mutant:
    name: str
    group: str
    files: str  # a glob under the project root: where the snippets are looked for
    edits: tuple[tuple[str, str], ...]  # (snippet, replacement)
    tests: tuple[str, ...]


def train_mutant(name: str, *edits: tuple[str, str]) -> Mutant:
    return Mutant(name, "resume", "gnet/**/*.py", edits, (RESUME_TEST,))


MUTANTS: tuple[Mutant, ...] = (
    # -- resume: every piece of state the checkpoint carries, and the position it resumes from ------
    train_mutant(
        "restart-from-step-0",  # ignores the checkpoint but still truncates and rewrites the records
        ("if resume and reporter.last_path.is_file():", "if False:"),
    ),
    train_mutant("no-cpu-rng-restore", ('torch.set_rng_state(e["rng_cpu"])', "pass")),
    train_mutant("no-augment-rng-restore", ('augment.set_state(e["rng_augment"])', "pass")),
    train_mutant("no-augment-rng-saved", ('extra["rng_augment"] = augment.get_state()', "pass")),
    train_mutant("no-optimizer-restore", ('opt.load_state_dict(ck.extra["optimizer"])', "pass")),
    train_mutant("no-step-restore", ('int(e["global_step"])', "0")),
    train_mutant(
        "lr-schedule-restarts",  # a scheduler counting this process's steps, not the run's
        ('result, message = "finished", ""\n', 'result, message = "finished", ""\n    first = state.global_step\n'),
        (
            "lr = get_lr(state.global_step, job.total_steps, cfg)",
            "lr = get_lr(state.global_step - first, job.total_steps, cfg)",
        ),
    ),
    train_mutant("no-position-restore", ('int(e["step_in_epoch"])', "0")),
    train_mutant("no-epoch-sums-restore", ('list(e["epoch_sums"])', "[0.0, 0.0, 0.0]")),
    train_mutant("no-best-acc-restore", ('float(e["best_acc"])', "-1.0")),
    train_mutant("no-metrics-truncation", ("runs.truncate_metrics(self.run, state.global_step)", "pass")),
    # -- the issue-18 guards ---------------------------------------------------------------------
    Mutant(
        "auto-device-meta",
        "guards",
        "gnet/devices.py",
        (
            (
                '        return torch.device("cpu")\n    if preference == "cuda"',
                '        return torch.device("meta")\n    if preference == "cuda"',
            ),
        ),
        ("tests/test_devices.py",),
    ),
    Mutant(
        "auto-device-ignores-cuda",
        "guards",
        "gnet/devices.py",
        (
            (
                '    if preference == "auto":\n        if torch.cuda.is_available():',
                '    if preference == "auto":\n        if False:',
            ),
        ),
        ("tests/test_devices.py",),
    ),
    Mutant(
        "synthetic-test-is-train-copy",
        "guards",
        "gnet/data.py",
        (
            (
                "x_te, y_te = _synthetic_split(n_test, size, seed * 2 + 2)",
                "x_te, y_te = _synthetic_split(n_test, size, seed * 2 + 1)",
            ),
        ),
        ("tests/test_data.py::test_synthetic_is_deterministic_and_balanced",),
    ),
    Mutant(
        "synthetic-test-copies-train",
        "guards",
        "gnet/data.py",
        (
            (
                "x_te, y_te = _synthetic_split(n_test, size, seed * 2 + 2)",
                "x_te, y_te = x_tr[:n_test].clone(), y_tr[:n_test].clone()",
            ),
        ),
        ("tests/test_data.py::test_synthetic_is_deterministic_and_balanced",),
    ),
    Mutant(
        "app-without-safety-net",
        "guards",
        "app.py",
        (("run_page(page)\n", "page.run()\n"),),
        ("tests/test_security_config.py::test_app_routes_every_page_through_the_safety_net",),
    ),
    Mutant(
        "bomb-warning-not-an-error",
        "guards",
        "gnet/images.py",
        (('warnings.simplefilter("error", Image.DecompressionBombWarning)', "pass"),),
        ("tests/test_images.py::test_decompression_bomb_never_warns_globally",),
    ),
    Mutant(
        "no-normalisation-in-to-model-input",
        "guards",
        "gnet/data.py",
        (("return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)", "return x"),),
        ("tests/test_data.py",),
    ),
    Mutant(
        "no-normalisation-in-training",
        "guards",
        "gnet/**/*.py",
        (
            (
                "return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)",
                "return x.contiguous(memory_format=torch.channels_last)",
            ),
        ),
        ("tests/test_resume.py::test_trainer_normalises_with_the_training_sets_channel_statistics",),
    ),
    Mutant(
        "normalisation-stats-from-test-set",
        "guards",
        "gnet/data.py",
        (
            (
                "x = self.train_x[:10_000].to(torch.float64) / 255.0",
                "x = self.test_x[:10_000].to(torch.float64) / 255.0",
            ),
        ),
        ("tests/test_resume.py::test_trainer_normalises_with_the_training_sets_channel_statistics",),
    ),
    Mutant(
        "upload-cap-50-mb",
        "guards",
        "gnet/images.py",
        (("MAX_BYTES = 25 * 1024 * 1024", "MAX_BYTES = 50 * 1024 * 1024"),),
        ("tests/test_security_config.py::test_upload_limit_is_25_mb_everywhere",),
    ),
    Mutant(
        "upload-cap-config-50",
        "guards",
        ".streamlit/config.toml",
        (("maxUploadSize = 25 ", "maxUploadSize = 50 "),),
        ("tests/test_security_config.py::test_upload_limit_is_25_mb_everywhere",),
    ),
    Mutant(
        "browser-fixture-skips-in-ci",
        "guards",
        "tests/conftest.py",
        (("if required:", "if False:"),),
        ("tests/test_ci.py",),
    ),
    Mutant(
        "ci-run-does-not-require-browsers",
        "guards",
        ".ci/run",
        (("export GNET_REQUIRE_BROWSER=1", ":"),),
        ("tests/test_ci.py",),
    ),
    Mutant(
        "ci-run-goes-on-without-chromium", "guards", ".ci/run", (("  exit 1\n", "  true\n"),), ("tests/test_ci.py",)
    ),
    Mutant(
        "find-checkpoints-oldest-first",
        "guards",
        "gnet/pretrained.py",
        (("found.sort(key=lambda p: (-_mtime(p), str(p)))", "found.sort(key=lambda p: (_mtime(p), str(p)))"),),
        ("tests/test_pretrained.py::test_find_checkpoints",),
    ),
    Mutant(
        "zombie-reads-as-alive",
        "guards",
        "gnet/jobs.py",
        (("if os.waitpid(pid, os.WNOHANG)[0] == pid:", "if False:  # no reaping"), ('in ("Z", "X"))', "in ())")),
        ("tests/test_runs.py::test_unreaped_child_zombie_reads_as_died",),
    ),
)


def copy_tree(dest: Path) -> None:
    """The working tree as git sees it: tracked and untracked files, not the ignored ones."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def apply(copy: Path, m: Mutant) -> dict[Path, str] | str:
    """Edit the copy; returns the original texts to put back, or why the mutant does not apply."""
    files = [p for p in sorted(copy.glob(m.files)) if p.is_file()]
    originals: dict[Path, str] = {}
    for old, new in m.edits:
        count = sum(p.read_text().count(old) for p in files)
        if count != 1:
            for p, text in originals.items():
                p.write_text(text)
            return f"snippet found {count} times in {m.files}: {old[:60]!r}"
        p = next(p for p in files if old in p.read_text())
        originals.setdefault(p, p.read_text())
        p.write_text(p.read_text().replace(old, new))
    return originals


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-x", "-q", "--tb=line", "-p", "no:cacheprovider", "-o", "addopts="],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    return p.returncode, p.stdout + p.stderr, time.perf_counter() - t


def first_failure(out: str) -> str:
    for line in out.splitlines():
        if line.startswith(("E ", "/")) or "Error" in line or " assert" in line:
            return line.strip()[:220]
    return out.strip().splitlines()[-1][:220] if out.strip() else "(no output)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--group", choices=("resume", "guards", "all"), default="all")
    ap.add_argument("--only", action="append", default=[], help="a mutant's name (repeatable)")
    ap.add_argument("--kill-loop", action="store_true", help="add the SIGKILL loop test to the resume mutants")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if (args.group in ("all", m.group)) and (not args.only or m.name in args.only)]
    if args.kill_loop:
        chosen = [
            Mutant(m.name, m.group, m.files, m.edits, (*m.tests, KILL_LOOP) if m.group == "resume" else m.tests)
            for m in chosen
        ]
    bad = 0
    with tempfile.TemporaryDirectory(prefix="gnet-mutants-") as tmp:
        copy = Path(tmp)
        copy_tree(copy)
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        rc, out, dt = run_tests(copy, tests)
        print(f"unmutated copy: {'passes' if rc == 0 else 'FAILS'} {len(tests)} test selection(s) ({dt:.0f} s)")
        if rc != 0:
            print(out[-3000:])
            return 1
        for m in chosen:
            originals = apply(copy, m)
            if isinstance(originals, str):
                print(f"{m.name:38s} DOES NOT APPLY: {originals}")
                bad += 1
                continue
            try:
                rc, out, dt = run_tests(copy, m.tests)
            finally:
                for p, text in originals.items():
                    p.write_text(text)
            if rc == 0:
                bad += 1
                print(f"{m.name:38s} SURVIVED ({dt:.0f} s): {' '.join(m.tests)}")
            else:
                print(f"{m.name:38s} KILLED ({dt:.0f} s): {first_failure(out)}")
    print(f"{len(chosen) - bad} of {len(chosen)} mutants killed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
