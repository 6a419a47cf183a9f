"""Feature Maps speed: uploaded JPEG bytes (a 12-megapixel photo) → the branch mosaics of one block.

Prints the median of REPEATS runs for each stage (decode, preprocess, forward, render)
and the end-to-end total, against targets of ≤ 1.0 s end to end on a 2-core CPU and a
forward pass ≤ 10 ms on a GPU (GoogLeNet at 224²), ≤ 0.8 s end to end for Inception v3 at
299² (--model inception-v3). The baseline, measured in the same run, decodes the
same JPEG at full resolution and preprocesses with torchvision's transforms (what one
would write without Image.draft); every stage is also given as a ratio to the forward pass.

    python bench/feature_maps.py [--model googlenet|inception-v3] [--layer 3a] [--repeats 7] [--device auto]
        [--threads N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gnet import features as F
from gnet.devices import describe, inference_threads, pick_device
from gnet.images import load, preprocess
from gnet.net import Net
from gnet.pretrained import V3_WEIGHTS, WEIGHTS, ModelSource, load_model

# per model: default layer, the torchvision weights whose transforms are the baseline, end-to-end target on CPU (ms)
MODELS = {"googlenet": ("3a", WEIGHTS, 1000), "inception-v3": ("6e", V3_WEIGHTS, 800)}


def twelve_megapixel_jpeg(seed: int = 0) -> bytes:
    """4000×3000: smooth gradients plus noise and some edges, JPEG quality 90 (like a phone photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    r = 128 + 100 * np.sin(x / 300) * np.cos(y / 410)
    g = 255 * x / 4000
    b = 255 * ((x // 250 + y // 250) % 2) * 0.6 + 40
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (3000, 4000, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=list(MODELS), default="googlenet")
    ap.add_argument("--layer", default=None, help="default: 3a (GoogLeNet), 6e (Inception v3)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0: what the app uses, gnet.devices.inference_threads())",
    )
    args = ap.parse_args()
    default_layer, weights, target_ms = MODELS[args.model]
    args.layer = args.layer or default_layer
    torch.set_num_threads(args.threads if args.threads > 0 else inference_threads())

    device = pick_device(args.device)
    data = twelve_megapixel_jpeg()
    # same architecture and cost as the pretrained weights
    lm = load_model(ModelSource("untrained", model=args.model), device)
    _, h, w = lm.plan.input_shape
    model_text = f" · Inception v3 at {h}×{w}" if args.model != "googlenet" else ""
    print(
        f"input: 4000×3000 JPEG, {len(data) / 2**20:.1f} MB{model_text} · layer {args.layer} · top-{args.k} per branch · "
        f"device {describe(device)} (load average {os.getloadavg()[0]:.1f}) · torch {torch.__version__} · median of {args.repeats}"
    )

    decode_ms, loaded = median_ms(lambda: load(data), args.repeats)
    pre_ms, (cropped, x) = median_ms(lambda: preprocess(loaded.image, lm.preprocess), args.repeats)
    F.extract(lm, x, args.layer)  # warm-up (allocator, kernels / cuDNN autotune)
    fwd_ms, ex = median_ms(lambda: F.extract(lm, x, args.layer), args.repeats)
    fwd_only_ms = statistics.median(F.extract(lm, x, args.layer).forward_s * 1000 for _ in range(args.repeats))

    def render() -> list[bytes]:
        return [
            F.png_bytes(F.mosaic(a, F.rank_channels(a, args.k), ex.offsets[g], F.group_color(g), g))
            for g, a in ex.groups.items()
        ]

    render_ms, pngs = median_ms(render, args.repeats)
    total_ms, _ = median_ms(lambda: render_from_bytes(data, lm, args), max(3, args.repeats // 2))

    # Baseline: full-resolution decode, then torchvision's transforms on the 12 MP image.
    transform = weights.transforms()
    base_decode_ms, full = median_ms(lambda: Image.open(io.BytesIO(data)).convert("RGB"), 3)
    base_pre_ms, _ = median_ms(lambda: transform(full)[None], 3)

    v3 = args.model != "googlenet"
    print(f"{'stage':<12}{'median ms':>10}" + ("   × forward" if v3 else ""))
    stages = (("decode", decode_ms), ("preprocess", pre_ms), ("forward", fwd_ms), ("render", render_ms))
    for name, ms in (*stages, ("sum", decode_ms + pre_ms + fwd_ms + render_ms)):
        print(f"{name:<12}{ms:>10.1f}" + (f"   {ms / fwd_ms:6.2f}×" if v3 else ""))
    mosaics = f"{len(ex.groups)} PNG mosaics"
    print(
        f"{'end to end':<12}{total_ms:>10.1f}   (bytes → {mosaics}, one call chain; target ≤ {target_ms} ms on CPU)"
        + (f"   {total_ms / fwd_ms:.2f}× forward, {'met' if total_ms <= target_ms else 'NOT met'}" if v3 else "")
    )
    print(
        f"forward pass alone (device-synchronised, inside extract): {fwd_only_ms:.2f} ms"
        + ("   (target ≤ 10 ms on a GPU)" if device.type == "cuda" else "")
    )
    print(
        f"baseline decode+preprocess (full-res decode + torchvision transforms): "
        f"{base_decode_ms + base_pre_ms:.1f} ms vs ours {decode_ms + pre_ms:.1f} ms "
        f"→ {(base_decode_ms + base_pre_ms) / (decode_ms + pre_ms):.1f}× faster"
    )
    print(f"mosaic PNG sizes: {', '.join(f'{len(p) // 1024} kB' for p in pngs)}")


def render_from_bytes(data: bytes, lm: Net, args: argparse.Namespace) -> list[bytes]:
    _, x = preprocess(load(data).image, lm.preprocess)
    ex = F.extract(lm, x, args.layer)
    return [
        F.png_bytes(F.mosaic(a, F.rank_channels(a, args.k), ex.offsets[g], F.group_color(g), g))
        for g, a in ex.groups.items()
    ]


if __name__ == "__main__":
    main()
