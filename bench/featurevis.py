"""Speed of channel visualisation (gnet.featurevis.visualize) on the GoogLeNet or Inception v3 architecture.

Targets: on CPU, 128×128 and 256 steps in at most 60 s; on a CUDA GPU, 224×224 and
512 steps in at most 5 s. The weights do not change the cost, so the seeded untrained network
stands in when the pretrained file is not cached. The baseline, measured in the same run, is the
shared model as loaded (BatchNorm separate, NCHW) for a few steps; the figure is the private copy
the CLI and the jobs use (BatchNorm folded, channels last), extrapolated from nothing: the full run.

    python bench/featurevis.py                    # CPU figure (and CUDA when present)
    python bench/featurevis.py --quick            # 32 steps, figures scaled to the full step count
    python bench/featurevis.py --threads 2 --layer inception4b --branch b3 --channel 5
    python bench/featurevis.py --model inception-v3   # Mixed_6b·b3 (its 1×7/7×1 stack) by default
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import torch

from gnet import featurevis as fv
from gnet.pretrained import ModelSource, hub_weights_path, load_model, v3_hub_weights_path


def seconds(model: torch.nn.Module, pre, target: fv.Target, cfg: fv.VisConfig) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    (vis,) = fv.visualize(model, pre, [target], cfg)
    return time.perf_counter() - t0, vis.activation_start, vis.activation_end


def run(device: torch.device, size: int, steps: int, budget_s: float, args: argparse.Namespace) -> None:
    cached = (v3_hub_weights_path() if args.model == "inception-v3" else hub_weights_path()).is_file()
    lm = load_model(ModelSource("pretrained" if cached else "untrained", model=args.model), device)
    layer = args.layer or ("Mixed_6b" if args.model == "inception-v3" else "inception4b")
    target = fv.Target(layer, args.branch, args.channel)
    fast = fv.private_copy(lm.module)
    run_steps = 32 if args.quick else steps
    seconds(fast, lm.preprocess, target, fv.VisConfig(size=size, steps=2))  # warm-up (allocator, kernels)
    base_steps = min(16, run_steps)
    base, _, _ = seconds(lm.module, lm.preprocess, target, fv.VisConfig(size=size, steps=base_steps))
    total, a0, a1 = seconds(fast, lm.preprocess, target, fv.VisConfig(size=size, steps=run_steps))
    scale = steps / run_steps
    full = total * scale
    per_base, per_fast = base / base_steps, total / run_steps
    print(
        f"{device.type}: {fv.resolve(lm, target).caption()} of {lm.label}, {size}×{size}, {steps} steps, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"  {full:.1f} s{' (extrapolated from ' + str(run_steps) + ' steps)' if scale != 1 else ''}, "
        f"target ≤ {budget_s:g} s → {full / budget_s:.2f} of the budget; "
        f"activation {a0:.3f} → {a1:.3f}"
    )
    print(
        f"  per step: {per_fast * 1e3:.1f} ms (private copy) vs {per_base * 1e3:.1f} ms (model as loaded): "
        f"×{per_base / per_fast:.2f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--model", choices=("googlenet", "inception-v3"), default="googlenet")
    p.add_argument("--layer", default=None, help="default: inception4b (GoogLeNet), Mixed_6b (Inception v3)")
    p.add_argument("--branch", default="b3")
    p.add_argument("--channel", type=int, default=5)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run(torch.device("cpu"), 128, 256, 60.0, args)
    if torch.cuda.is_available():
        run(torch.device("cuda"), 224, 512, 5.0, args)


if __name__ == "__main__":
    main()
