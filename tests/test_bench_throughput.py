"""bench/train_throughput.py's two limits: the matmul peak over several sizes, the trainer's convolutions alone
(their FLOPs equal gnet.analysis's count of the network's convs), and the stop when a limit is beaten."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from gnet.analysis import network_report
from gnet.spec import network_preset

BENCH = Path(__file__).resolve().parent.parent / "bench" / "train_throughput.py"
_spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_the_peak_is_the_best_over_every_size_and_goes_up_to_4096():
    assert max(bench.PEAK_SIZES) == 4096 and len(bench.PEAK_SIZES) >= 3
    flops, n = bench.matmul_peak(torch.device("cpu"), sizes=(64, 128), repeats=10)
    assert n in (64, 128) and 1e6 < flops < 1e14


def test_the_convs_alone_are_the_network_s_convs_forward_and_backward():
    spec = network_preset("mini")
    seconds, flops = bench.convs_alone(spec, batch=2, device=torch.device("cpu"), repeats=2)
    convs = [r.cost.multiplications for r in network_report(spec).rows if r.kind.startswith("conv")]
    # forward 2 FLOPs a multiplication; backward twice that, but the first conv has no input gradient
    assert flops == 2 * 2 * (3 * sum(convs) - convs[0]) and seconds > 0


def test_a_fraction_above_100_percent_stops_the_bench_saying_the_peak_is_wrong():
    assert bench.limits_beaten({"trainer / peak": 0.8, "convs / step": 1.0}) is None
    line = bench.limits_beaten({"trainer / peak": 1.25, "convs / step": 0.5})
    assert line.startswith("peak is wrong: ") and "trainer / peak = 125%" in line and "convs / step" not in line
