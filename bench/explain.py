"""Explain speed: one 224×224 image through GoogLeNet, everything the page computes:
36 per-branch Grad-CAM maps + grad×act (one forward, one backward), 36 branch ablations
(each block's 4 copies built from the saved block outputs, carried on in one batch) and one receptive
field (the picked unit in all four branches of its block: one forward, four backward passes to the input).
On a CPU the ablated copies and the backward passes are dealt to gnet.devices.cpu_streams threads of
inference_threads() cores each (2 threads of 1 on a 2-core machine).

Targets: ≤ 1.5 s on a 2-core CPU, ≤ 50 ms on a CUDA GPU. With --model inception-v3: one 299×299
image through Inception v3, its 11 Mixed blocks × their branches (42 maps and ablations, a receptive
field in Mixed_6b), target ≤ 3 s on CPU. Baselines measured in the same run:
one plain forward pass (inference mode), and with --naive what one writes by hand: 36 separate
Captum-style forward+backward passes (one per branch, through a forward hook) plus 36 full
forward passes with one branch zeroed.

    python bench/explain.py [--model googlenet|inception-v3] [--device auto|cpu|cuda] [--repeats 7] [--threads N]
        [--naive]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gnet import attribution as A
from gnet.devices import describe, inference_threads, pick_device
from gnet.images import load, preprocess
from gnet.net import as_net
from gnet.pretrained import ModelSource, load_model

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "samples" / "cat.jpg"
# per model: the block whose receptive field is timed, and the targets in ms (CPU, CUDA; None: none set)
MODELS = {"googlenet": ("inception4d", 1500.0, 50.0), "inception-v3": ("Mixed_6b", 3000.0, None)}


def median_ms(fn: Callable[[], Any], repeats: int, device: torch.device) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out


def naive(model: torch.nn.Module, x: torch.Tensor, target: int) -> None:
    """One hooked forward+backward per branch for Grad-CAM, one full forward per ablation."""
    net = as_net(model)
    for block in net.blocks():
        for mod in (net.branch_module(block, b) for b in net.branch_paths(block)):
            saved: list[torch.Tensor] = []
            h = mod.register_forward_hook(lambda m, i, o, saved=saved: saved.append(o))
            try:
                with torch.enable_grad():
                    xi = x.detach().requires_grad_(True)
                    y = model(xi)[0, target]
                    (g,) = torch.autograd.grad(y, saved)
                torch.relu((g.mean((2, 3), keepdim=True) * saved[0]).sum(1))
            finally:
                h.remove()
            h = mod.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
            try:
                with torch.inference_mode():
                    model(x)
            finally:
                h.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=list(MODELS), default="googlenet")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0: what the app uses, gnet.devices.inference_threads())",
    )
    ap.add_argument("--naive", action="store_true", help="also time the hand-written 36 + 36 pass version")
    args = ap.parse_args()
    torch.set_num_threads(args.threads if args.threads > 0 else inference_threads())
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rf_block, cpu_target, gpu_target = MODELS[args.model]
    # the pretrained network's architecture and cost
    lm = load_model(ModelSource("untrained", model=args.model), device)
    _, x = preprocess(load(SAMPLE.read_bytes()).image, lm.preprocess)
    x = x.to(device)
    model = lm.module
    blocks = lm.blocks()
    n = sum(len(lm.branch_paths(b)) for b in blocks)
    square = all(len(lm.branch_paths(b)) == 4 for b in blocks)
    arch = (
        f"GoogLeNet (torchvision architecture, {len(blocks)} blocks × 4 branches)"
        if args.model == "googlenet"
        else f"Inception v3 (torchvision architecture, {len(blocks)} Mixed blocks, {n} branches)"
    )
    print(
        f"input: {tuple(x.shape)} · {arch} · "
        f"device {describe(device)} · load average {os.getloadavg()[0]:.1f} · torch {torch.__version__} · "
        f"median of {args.repeats}"
    )

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    for _ in range(3):  # warm-up: allocator, kernels, cuDNN autotune
        forward()
        ex = A.explain(model, x, None, lm.classes)
        A.receptive_fields(model, x, rf_block, 7, 7)
    fwd_ms, _ = median_ms(forward, args.repeats, device)
    maps_ms, _ = median_ms(lambda: A.explain(model, x, ex.target, lm.classes, ablation=False), args.repeats, device)
    explain_ms, ex = median_ms(lambda: A.explain(model, x, ex.target, lm.classes), args.repeats, device)
    rf_ms, _ = median_ms(lambda: A.receptive_fields(model, x, rf_block, 7, 7), args.repeats, device)

    def everything() -> None:
        A.explain(model, x, ex.target, lm.classes)
        A.receptive_fields(model, x, rf_block, 7, 7)

    total_ms, _ = median_ms(everything, args.repeats, device)
    # What the page does: the ablations once per image, then the top-5 classes in one pass (switching among
    # them is a lookup), or one other class on its own with the cached ablations.
    ablated_ms, ablated = median_ms(lambda: A.ablation_logits(model, x), args.repeats, device)
    top5 = [int(i) for i in torch.from_numpy(ex.logits).argsort(descending=True)[:5]]
    top5_ms, _ = median_ms(lambda: A.explain_many(model, x, top5, lm.classes, ablated=ablated), args.repeats, device)
    other_ms, _ = median_ms(
        lambda: A.explain(model, x, (top5[-1] + 1) % len(ex.logits), lm.classes, ablated=ablated), args.repeats, device
    )
    target_ms = gpu_target if device.type == "cuda" else cpu_target
    batches = f"{len(blocks)} batches of 4" if square else f"{len(blocks)} batches, one per block"
    k = len(lm.branch_paths(rf_block))
    rows = [
        ("baseline: one plain forward pass", fwd_ms),
        (f"{n} Grad-CAM + grad×act (1 forward + 1 backward)", maps_ms),
        (f"  + {n} ablations ({batches})", explain_ms),
        (f"one receptive field ({k} branches: 1 fwd + {k} bwd)", rf_ms),
        ("everything (explain + receptive field)", total_ms),
        (f"page: the {n} ablations alone (once per image)", ablated_ms),
        ("page: top-5 targets in one pass, ablations given", top5_ms),
        ("page: one other target, ablations given", other_ms),
    ]
    if args.naive:
        naive_ms, _ = median_ms(lambda: naive(model, x, ex.target), max(1, args.repeats // 3), device)
        rows.append((f"naive: {n} hooked fwd+bwd + {n} full forwards", naive_ms))
    for name, ms in rows:
        print(f"{name:<52} {ms:9.1f} ms   {ms / fwd_ms:6.1f}× forward")
    if target_ms is None:
        print(f"no target set on {device.type}: {total_ms:.1f} ms, {total_ms / fwd_ms:.1f}× one forward")
    else:
        print(
            f"target ≤ {target_ms:.0f} ms on {device.type}: {'met' if total_ms <= target_ms else 'NOT met'} "
            f"({total_ms:.1f} ms, {total_ms / fwd_ms:.1f}× one forward)"
        )
    if args.naive:
        print(f"speed-up over the naive version: {naive_ms / explain_ms:.1f}× (explain vs naive)")


if __name__ == "__main__":
    main()
