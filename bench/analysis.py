"""Speed of the analytic reports, against measuring the real module in the same run.

Targets: block report ≤ 2 ms; network report (d2l-fashion96, googlenet-imagenet) ≤ 50 ms.
Each figure is the median of repeated runs; the baselines (building the module
and running torchinfo on it) are what the analysis saves the pages from.

    python bench/analysis.py             # default repeats
    python bench/analysis.py --quick     # fewer repeats
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import torch

from gnet.analysis import block_report, network_report
from gnet.blocks import InceptionBlock
from gnet.network import torchinfo_summary
from gnet.spec import SpecError, block_presets, network_preset, with_input


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _too_small() -> None:
    try:
        network_report(with_input(network_preset("googlenet-imagenet"), size=(8, 8)))
    except SpecError:
        return
    raise AssertionError("8×8 should be refused")


def _block_module(design) -> int:
    """The baseline: build the real block and count its parameters and output shape."""
    block = InceptionBlock(design.input_shape[0], design.block).eval()
    with torch.no_grad():
        block(torch.zeros(1, *design.input_shape))
    return sum(p.numel() for p in block.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the baselines")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    n_fast, n_slow = (50, 3) if args.quick else (300, 7)

    rows: list[tuple[str, float, float, str]] = []  # name, ms, target ms, baseline note
    design = block_presets()["Paper 4e"]
    t_block = median_ms(lambda: block_report(design.block, design.input_shape), n_fast)
    t_block_module = median_ms(lambda: _block_module(design), n_slow)
    rows.append(
        (
            "block report (paper 4e at 528×14×14)",
            t_block,
            2.0,
            f"build + forward the real block: {t_block_module:.1f} ms ({t_block_module / t_block:,.0f}× slower)",
        )
    )
    reports: dict[str, float] = {}
    for name in ("d2l-fashion96", "googlenet-imagenet", "googlenet-imagenet-aux"):
        spec = network_preset(name)
        t_report = reports[name] = median_ms(lambda spec=spec: network_report(spec), max(n_fast // 5, 10))
        t_info = median_ms(lambda spec=spec: torchinfo_summary(spec), n_slow, warmup=1)
        rows.append(
            (
                f"network report ({name})",
                t_report,
                50.0,
                f"torchinfo summary of the built module: {t_info:.0f} ms ({t_info / t_report:,.0f}× slower)",
            )
        )
    t_small = median_ms(_too_small, max(n_fast // 5, 10))
    rows.append(
        (
            "refused spec with min-input hint (googlenet-imagenet at 8×8)",
            t_small,
            50.0,
            f"a valid googlenet-imagenet report: {t_small / reports['googlenet-imagenet']:.1f}× its time "
            "(the hint walks the network a few times)",
        )
    )

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); medians of repeats")
    width = max(len(r[0]) for r in rows)
    for name, ms, target, note in rows:
        verdict = "OK" if ms <= target else "OVER TARGET"
        print(f"{name:<{width}}  {ms:9.3f} ms  (target ≤ {target:g} ms)  {verdict}\n{'':<{width}}  baseline: {note}")


if __name__ == "__main__":
    main()
