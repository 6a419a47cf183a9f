"""Per-branch activations of one layer, channel ranking, mosaics, heatmaps and branch ablation.

The network's main path is run module by module on every call (no forward
hooks): a model shared by many sessions holds no per-request state, so
concurrent sessions can never see each other's activations. Works for
torchvision's GoogLeNet and this project's `gnet.network.GoogLeNet` alike
(same module names).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from gnet.blocks import branch_kernel_labels  # noqa: F401 (part of this module's API: tests read it here)
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.net import Net, as_net
from gnet.plan import BLOCK, short_label
from gnet.raster import LUT, ascii_label
from gnet.raster import font as _font

MAX_TOP_K = 256


class FeatureError(ValueError):
    """A request the network can't answer (unknown layer, channel out of range ...)."""


@dataclass(frozen=True)
class Layer:
    module: str  # e.g. "inception3a" or "conv1"
    label: str  # e.g. "3a" or "conv1 (stem)"
    is_block: bool


def layers(net: Net | nn.Module) -> list[Layer]:
    """What a user can pick: the stem layers and the Inception blocks (not the pools between stages)."""
    net = as_net(net)
    out: list[Layer] = []
    for name in net.main_path():
        if net.plan.step(name).kind == BLOCK:
            out.append(Layer(name, short_label(name), True))
        elif not out or not out[-1].is_block:  # still in the stem
            out.append(Layer(name, f"{name} (stem)", False))
    return out


def find_layer(net: Net | nn.Module, label_or_module: str) -> Layer:
    for layer in layers(net):
        if label_or_module in (layer.label, layer.module):
            return layer
    raise FeatureError(f"no layer {label_or_module!r}; choose one of {', '.join(layer.label for layer in layers(net))}")


@dataclass
class Extraction:
    """One layer's output for one image, split by branch (a stem layer is one group "out")."""

    layer: Layer
    groups: dict[str, np.ndarray]  # group → (C, H, W) float32 on the CPU
    offsets: dict[str, int]  # group → index of its first channel in the concatenated output
    kernel_labels: dict[str, str]  # group → real kernel sizes read from the module
    logits: torch.Tensor  # (num_classes,) float32, CPU
    forward_s: float  # wall time of the forward pass (device synchronised)
    _parts: list[torch.Tensor] = field(default_factory=list, repr=False)  # on-device branch outputs, for ablation

    @property
    def output(self) -> np.ndarray:
        return np.concatenate(list(self.groups.values()), axis=0)

    def channels(self) -> int:
        return sum(a.shape[0] for a in self.groups.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def extract(net: Net | nn.Module, x: torch.Tensor, layer: str) -> Extraction:
    """Run `x` (1, C, H, W) through the network, keeping `layer`'s output per branch."""
    net = as_net(net)
    lay = find_layer(net, layer)
    _sync(net.device)
    t0 = time.perf_counter()
    if lay.is_block:
        by_branch = net.branch_outputs(lay.module, net.block_input(lay.module, x))
    else:
        by_branch = {"out": net.run_to(lay.module, x)}
    parts = list(by_branch.values())
    logits = net.head(lay.module, torch.cat(parts, dim=1))
    _sync(net.device)
    forward_s = time.perf_counter() - t0
    groups = {k: p[0].float().cpu().numpy() for k, p in by_branch.items()}
    offsets, o = {}, 0
    for k, a in groups.items():
        offsets[k] = o
        o += a.shape[0]
    labels = net.branch_labels(lay.module) if lay.is_block else {"out": _layer_label(net.submodule(lay.module))}
    return Extraction(lay, groups, offsets, labels, logits[0].float().cpu(), forward_s, parts)


@torch.inference_mode()
def ablate(net: Net | nn.Module, ex: Extraction, zeroed: Sequence[str]) -> torch.Tensor:
    """Logits with the given branches of the extracted block set to zero (the rest of
    the network re-run from that block's output)."""
    unknown = set(zeroed) - set(ex.groups)
    if unknown:
        raise FeatureError(f"no branch {', '.join(sorted(unknown))} in {ex.layer.label}")
    parts = [torch.zeros_like(p) if k in zeroed else p for k, p in zip(ex.groups, ex._parts)]
    return as_net(net).head(ex.layer.module, torch.cat(parts, dim=1))[0].float().cpu()


def _layer_label(mod: nn.Module) -> str:
    for m in mod.modules():
        if isinstance(m, nn.Conv2d):
            return f"{m.kernel_size[0]}×{m.kernel_size[1]} conv"
        if isinstance(m, nn.MaxPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            return f"{k}×{k} max-pool"
    return type(mod).__name__


# ---------------------------------------------------------------------------
# Ranking and statistics


def rank_channels(act: np.ndarray, k: int) -> list[int]:
    """Indices of the k channels with the largest mean activation (ties: lower index first)."""
    if act.ndim != 3:
        raise FeatureError("activations must be (C, H, W)")
    k = max(1, min(int(k), act.shape[0], MAX_TOP_K))
    means = act.reshape(act.shape[0], -1).mean(axis=1)
    return [int(i) for i in np.argsort(-means, kind="stable")[:k]]


@dataclass(frozen=True)
class GroupStats:
    group: str
    kernels: str
    channels: int
    first_channel: int  # in the concatenated output
    mean: float
    max: float
    zero_fraction: float  # share of exactly-zero values (ReLU sparsity)
    share: float  # this group's share of the layer's summed activation


def group_stats(ex: Extraction) -> list[GroupStats]:
    sums = {k: float(a.astype(np.float64).sum()) for k, a in ex.groups.items()}
    total = sum(sums.values())
    return [
        GroupStats(
            k,
            ex.kernel_labels.get(k, ""),
            a.shape[0],
            ex.offsets[k],
            float(a.mean()),
            float(a.max()),
            float((a == 0).mean()),
            sums[k] / total if total > 0 else 0.0,
        )
        for k, a in ex.groups.items()
    ]


def group_color(group: str) -> str:
    return BRANCH_COLORS.get(group, OTHER_COLOR)


# ---------------------------------------------------------------------------
# Predictions and ablation


@dataclass(frozen=True)
class Prediction:
    rank: int
    index: int
    label: str
    prob: float


def top_k(logits: torch.Tensor, classes: Sequence[str], k: int = 5) -> list[Prediction]:
    probs = torch.softmax(logits.double(), dim=0)
    k = min(k, probs.numel())
    p, i = torch.topk(probs, k)
    return [
        Prediction(r + 1, int(j), classes[int(j)] if int(j) < len(classes) else str(int(j)), float(q))
        for r, (q, j) in enumerate(zip(p, i))
    ]


@dataclass(frozen=True)
class AblationRow:
    label: str
    index: int
    before: float
    after: float
    rank_before: int
    rank_after: int


def ablation_rows(before: torch.Tensor, after: torch.Tensor, classes: Sequence[str], k: int = 5) -> list[AblationRow]:
    """The union of the top-k classes before and after, with both probabilities and ranks."""
    pb, pa = torch.softmax(before.double(), 0), torch.softmax(after.double(), 0)
    rank_b = torch.empty_like(pb, dtype=torch.long)
    rank_b[torch.argsort(pb, descending=True, stable=True)] = torch.arange(1, pb.numel() + 1)
    rank_a = torch.empty_like(pa, dtype=torch.long)
    rank_a[torch.argsort(pa, descending=True, stable=True)] = torch.arange(1, pa.numel() + 1)
    idx: list[int] = []
    for t in (torch.topk(pb, min(k, pb.numel())).indices, torch.topk(pa, min(k, pa.numel())).indices):
        idx += [int(j) for j in t if int(j) not in idx]
    rows = [
        AblationRow(
            classes[j] if j < len(classes) else str(j), j, float(pb[j]), float(pa[j]), int(rank_b[j]), int(rank_a[j])
        )
        for j in idx
    ]
    return sorted(rows, key=lambda r: (r.rank_before, r.rank_after))


# ---------------------------------------------------------------------------
# Images: mosaics and heatmaps


def normalise(a: np.ndarray) -> np.ndarray:
    """One channel → uint8 0..255 by its own min and max (a constant map is all 0)."""
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    if not hi > lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip((a - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def colorize(a: np.ndarray) -> Image.Image:
    return Image.fromarray(LUT[normalise(a)], "RGB")


def mosaic(
    act: np.ndarray,
    channels: Sequence[int],
    offset: int,
    color: str,
    title: str,
    tile: int = 88,
    cols: int | None = None,
) -> Image.Image:
    """A grid of channel maps framed in `color`; each tile labelled with its index in the
    branch ("ch") and in the concatenated block output ("out")."""
    n = len(channels)
    if n == 0:
        raise FeatureError("no channels to show")
    cols = cols or min(8, math.ceil(math.sqrt(n)))  # about square: tiles and labels stay readable in a column
    rows = -(-n // cols)
    pad, label_h, head_h, frame = 4, 16, 24, 4
    w = frame * 2 + pad + cols * (tile + pad)
    h = frame * 2 + head_h + pad + rows * (tile + label_h + pad)
    img = Image.new("RGB", (w, h), color)
    draw = ImageDraw.Draw(img)
    draw.rectangle([frame, frame + head_h, w - frame - 1, h - frame - 1], fill="white")
    draw.text((frame + 4, frame + 4), ascii_label(title), fill="white", font=_font(14))
    small = _font(11)
    for i, c in enumerate(channels):
        r, q = divmod(i, cols)
        x0 = frame + pad + q * (tile + pad)
        y0 = frame + head_h + pad + r * (tile + label_h + pad)
        # NEAREST keeps the map's real resolution visible (a 7×7 map looks 7×7).
        img.paste(colorize(act[c]).resize((tile, tile), Image.Resampling.NEAREST), (x0, y0))
        draw.text((x0, y0 + tile + 2), f"ch {c} | out {offset + c}", fill="#222222", font=small)
    return img


def heatmap(fmap: np.ndarray, size: int = 448) -> Image.Image:
    """One channel, large, at its real resolution (nearest-neighbour upscaling)."""
    h, w = fmap.shape
    s = size / max(h, w)
    return colorize(fmap).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.NEAREST)


def overlay(image: Image.Image, fmap: np.ndarray, alpha: float = 0.55) -> Image.Image:
    """The channel map, smoothly upsampled to the image and blended over it."""
    if not 0.0 <= alpha <= 1.0:
        raise FeatureError("alpha must be between 0 and 1")
    up = Image.fromarray(normalise(fmap), "L").resize(image.size, Image.Resampling.BILINEAR)
    colored = Image.fromarray(LUT[np.asarray(up)], "RGB")
    return Image.blend(image.convert("RGB"), colored, alpha)


def jpeg_bytes(img: Image.Image, quality: int = 88) -> bytes:
    """For photo-like views, where a lossless PNG would be several times the bytes."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def activations_npz(ex: Extraction) -> bytes:
    """All of the layer's activations: one array per branch plus the concatenated output,
    channel offsets and kernel labels (plain arrays: loads with allow_pickle=False)."""
    buf = io.BytesIO()
    keys = list(ex.groups)
    np.savez_compressed(
        buf,
        output=ex.output,
        **ex.groups,
        layer=np.array(ex.layer.label),
        groups=np.array(keys),
        offsets=np.array([ex.offsets[k] for k in keys], dtype=np.int64),
        kernel_labels=np.array([ex.kernel_labels.get(k, "") for k in keys]),
    )
    return buf.getvalue()
