"""What a channel wants to see: activation maximisation per branch, branch specialisation,
and the on-disk cache + background jobs that make both cheap to look at twice.

Activation maximisation follows Olah, Mordvintsev & Schubert, "Feature Visualization"
(Distill 2017) and their Lucid library:
- the image is parameterised by its Fourier spectrum, scaled by 1/frequency so that
  every frequency learns at a similar rate (plain pixels drift into high-frequency noise);
- colours live in a decorrelated space (the square root of ImageNet's colour
  correlation, Lucid's matrix) and a sigmoid maps them into 0..1;
- every step sees a randomly jittered (roll), scaled and rotated (affine_grid +
  grid_sample) copy, so the result is robust rather than an adversarial pattern;
- one seeded generator drives the start image and every transform: a result is
  deterministic on a CPU for a fixed seed.

The network is never touched: the target layer is reached by running the main path module
by module (no hooks), gradients are taken with `torch.autograd.grad` with respect to the
image parameters only (no `.grad` on any weight), and the model must already be in eval
mode (BatchNorm statistics are never updated). torchvision's `transform_input` and each
model's own preprocessing (mean/std, 1-channel d2l checkpoints get a grey image) are applied
inside the objective, so the optimised picture is in plain 0..1 pixel space.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import functools
import hashlib
import io
import json
import math
import os
import signal
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from gnet import fsio, jobs
from gnet.features import FeatureError, find_layer
from gnet.fsio import atomic_write_bytes
from gnet.images import Preprocess, crop_for_model, to_tensor
from gnet.net import Net, PlanBranch, as_net, content_key, plan_of
from gnet.plan import CONV, layer_plan, short_label
from gnet.runs import read_json, runs_root, write_json
from gnet.spec import NetworkSpec, SpecError
from gnet.v3 import MODELS, InceptionV3Spec, v3_plan

# Lucid's square root of ImageNet's colour correlation matrix, columns scaled to unit max norm.
_COLOR_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_MATRIX = _COLOR_SVD_SQRT / _COLOR_SVD_SQRT.norm(dim=0).max()


class VisError(FeatureError):
    """A visualisation request that can't be run (bad target, setting out of range, busy workers ...)."""


@dataclass(frozen=True)
class VisConfig:
    """Settings of one optimisation; every field is part of the cache key."""

    size: int = 128  # the optimised image is size × size pixels
    steps: int = 256
    lr: float = 0.05  # Adam on the spectrum (Lucid's default)
    seed: int = 0
    jitter: int = 8  # pixels, each way (roll)
    scale: float = 0.1  # random zoom in 1 ± scale
    rotate: float = 10.0  # degrees, each way
    decay_power: float = 1.0  # spectrum scaled by 1 / f ** decay_power

    def validate(self) -> VisConfig:
        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise VisError(f"{name} must be {allowed}, got {getattr(self, name)!r}")

        def whole(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        check("size", whole(self.size) and 32 <= self.size <= 512, "a whole number from 32 to 512")
        check("steps", whole(self.steps) and 1 <= self.steps <= 4096, "a whole number from 1 to 4096")
        check("lr", number(self.lr) and 0 < self.lr <= 10, "a number above 0, at most 10")
        check("seed", whole(self.seed) and 0 <= self.seed < 2**31, "a whole number from 0 to 2147483647")
        check("jitter", whole(self.jitter) and 0 <= self.jitter <= self.size // 4, "0 to a quarter of the size")
        check("scale", number(self.scale) and 0 <= self.scale <= 0.5, "0 to 0.5")
        check("rotate", number(self.rotate) and 0 <= self.rotate <= 45, "0 to 45 degrees")
        check("decay_power", number(self.decay_power) and 0 <= self.decay_power <= 3, "0 to 3")
        return self

    @staticmethod
    def from_dict(d: Any) -> VisConfig:
        if not isinstance(d, dict):
            raise VisError("the visualisation settings are not a JSON object")
        known = {k: v for k, v in d.items() if k in VisConfig.__dataclass_fields__}
        return VisConfig(**known).validate()


# ---------------------------------------------------------------------------
# Targets: which layer, branch and channel


@dataclass(frozen=True)
class Target:
    """A block (module name, e.g. "inception4b"), optionally one branch, optionally one channel of it.
    branch None: the whole block; channel None: the whole branch (or block)."""

    layer: str
    branch: str | None = None
    channel: int | None = None


@dataclass(frozen=True)
class ResolvedTarget:
    target: Target
    label: str  # the block as the paper names it, e.g. "4b"
    branch_width: int  # channels of the branch (of the block when branch is None)
    offset: int  # index of the branch's first channel in the block output

    @property
    def output_channel(self) -> int | None:
        """The channel's index in the block's concatenated output."""
        return None if self.target.channel is None else self.offset + self.target.channel

    def caption(self) -> str:
        """Branch-aware name, e.g. "4b·b3 ch 5 | out 421"."""
        t = self.target
        if t.branch is None:
            return f"{self.label} out {t.channel}" if t.channel is not None else f"{self.label} (whole block)"
        if t.channel is None:
            return f"{self.label}·{t.branch} (whole branch)"
        return f"{self.label}·{t.branch} ch {t.channel} | out {self.output_channel}"


def branch_widths(net: Net | nn.Module, block: str) -> dict[str, int]:
    """Output channels of each branch of `block`, from the network's layer plan."""
    return {b: step.out_shape[0] for b, step in as_net(net).plan.branch_steps(block).items()}


def block_names(net: Net | nn.Module) -> list[str]:
    """The Inception blocks a user can visualise, in order (module names)."""
    return as_net(net).blocks()


def resolve(net: Net | nn.Module, target: Target) -> ResolvedTarget:
    """Check a target against the loaded network; VisError says what is wrong."""
    net = as_net(net)
    try:
        lay = find_layer(net, target.layer)
    except FeatureError as e:
        raise VisError(str(e)) from None
    if not lay.is_block:
        names = ", ".join(short_label(m) for m in net.blocks())
        raise VisError(f"{lay.label} is not an Inception block; visualise one of {names}")
    widths = branch_widths(net, lay.module)
    t = Target(lay.module, target.branch, target.channel)
    if t.branch is None:
        width, offset = sum(widths.values()), 0
    elif t.branch not in widths:
        raise VisError(f"no branch {t.branch!r}; choose one of {', '.join(widths)}")
    else:  # widths are in concatenation order (Inception v3's B and D blocks have three branches)
        order = list(widths)
        width, offset = widths[t.branch], sum(widths[b] for b in order[: order.index(t.branch)])
    if t.channel is not None:
        what = f"{lay.label}·{t.branch}" if t.branch else lay.label
        if isinstance(t.channel, bool) or not isinstance(t.channel, int) or not 0 <= t.channel < width:
            raise VisError(f"{what} has channels 0 to {width - 1}, got {t.channel!r}")
    return ResolvedTarget(t, lay.label, width, offset)


@dataclass(frozen=True)
class Half:
    """One of the two layers an Inception v3 E branch ends in, side by side: its channels in the branch."""

    path: str  # e.g. "Mixed_7b.branch3x3_2a"
    kernel: str  # "1×3"
    first: int  # its first channel in the branch's output
    width: int

    def holds(self, channel: int) -> bool:
        return self.first <= channel < self.first + self.width


def halves(net: Net | nn.Module, block: str, branch: str) -> list[Half]:
    """The halves of a split branch (Inception v3's E: 1×3 ‖ 3×1, concatenated), in order; [] for any other."""
    out, first = [], 0
    for step in as_net(net).plan.branch_layers(block, branch):
        if step.half:
            kh, kw = step.spec.kernel
            out.append(Half(step.path, f"{kh}×{kw}", first, step.out_shape[0]))
            first += step.out_shape[0]
    return out


def from_output_channel(net: Net | nn.Module, layer: str, out_channel: int) -> Target:
    """A block-output channel index → the branch it sits in and its index there."""
    net = as_net(net)
    lay = resolve(net, Target(layer)).target.layer
    widths = branch_widths(net, lay)
    start = 0
    for b in widths:
        if 0 <= out_channel - start < widths[b]:
            return Target(lay, b, out_channel - start)
        start += widths[b]
    raise VisError(f"{short_label(lay)} has output channels 0 to {start - 1}, got {out_channel}")


MIN_SIZE, MAX_SIZE = 32, 512


def _reaches(spec: NetworkSpec | InceptionV3Spec, block: str, size: int) -> bool:
    """Whether a size × size image leaves `block`'s output at least 1×1 (the layer plan's shapes). An Inception v3
    is planned only up to the block, so a later block's grid reduction does not count; no aux head either."""
    try:
        if isinstance(spec, InceptionV3Spec):
            names = spec.block_names()
            kept = spec.blocks[: names.index(block) + 1] if block in names else spec.blocks
            v3_plan(dataclasses.replace(spec, input_size=(size, size), blocks=kept, aux=False))
        else:
            layer_plan(dataclasses.replace(spec, input_size=(size, size), aux=False))
    except SpecError:
        return False
    return True


def min_size(net: Net | nn.Module, block: str) -> int:
    """The smallest image side (MIN_SIZE..MAX_SIZE) at which block `block` still has an output: Inception v3
    shrinks its input by 8 before Mixed_5b and by 32 before Mixed_7b, so its deep blocks need more than 32 px."""
    return _min_size(as_net(net).plan.spec, block)


@functools.lru_cache(maxsize=64)  # specs are frozen (hashable); a page asks on every rerun
def _min_size(spec: NetworkSpec | InceptionV3Spec, block: str) -> int:
    lo, hi = MIN_SIZE, MAX_SIZE
    if not _reaches(spec, block, hi):
        return hi + 1
    while lo < hi:  # the output shrinks with the input: bisect for the first size that reaches the block
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _reaches(spec, block, mid) else (mid + 1, hi)
    return lo


# ---------------------------------------------------------------------------
# The image parameterisation


def _spectrum_scale(h: int, w: int, decay_power: float) -> torch.Tensor:
    """1 / f (f in cycles per pixel, floored at one cycle per image) times sqrt(h·w), as Lucid's fft_image."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = (fx * fx + fy * fy).sqrt()
    return (1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power) * math.sqrt(h * w)


def to_pixels(spectrum: torch.Tensor, scale: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Spectrum parameters (N, C, H, W//2+1, 2) → image (N, C, H, W) in 0..1."""
    z = torch.view_as_complex(spectrum) * scale
    img = torch.fft.irfft2(z, s=(size, size)) / 4.0  # Lucid's "magic" 4: a start near mid-grey
    if channels == 3:  # decorrelated colour → RGB
        img = torch.einsum("ij,njhw->nihw", COLOR_MATRIX.to(img.device, img.dtype), img)
    return torch.sigmoid(img)


def random_transform(img: torch.Tensor, cfg: VisConfig, gen: torch.Generator) -> torch.Tensor:
    """Jitter (roll), then random scale and rotation (one affine resample), then a small second jitter.
    `gen` is a CPU generator: the same draws on every device."""

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    def shift() -> int:
        return int(torch.randint(-cfg.jitter, cfg.jitter + 1, (), generator=gen)) if cfg.jitter else 0

    img = torch.roll(img, shifts=(shift(), shift()), dims=(2, 3))
    s = uniform(1 - cfg.scale, 1 + cfg.scale)
    a = math.radians(uniform(-cfg.rotate, cfg.rotate))
    j2 = max(cfg.jitter // 2, 0)
    tx, ty = (uniform(-j2, j2) * 2 / img.shape[3], uniform(-j2, j2) * 2 / img.shape[2]) if j2 else (0.0, 0.0)
    theta = torch.tensor(
        [[math.cos(a) / s, -math.sin(a) / s, tx], [math.sin(a) / s, math.cos(a) / s, ty]],
        dtype=img.dtype,
        device=img.device,
    ).expand(img.shape[0], 2, 3)
    grid = TF.affine_grid(theta, list(img.shape), align_corners=False)
    return TF.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# ---------------------------------------------------------------------------
# The objective: run the network module by module up to the target block


def _normaliser(pre: Preprocess, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return mean, std


def block_input(net: Net | nn.Module, x: torch.Tensor, module: str) -> torch.Tensor:
    """The normalised input `x` run through everything before block `module` (transform_input included)."""
    return as_net(net).block_input(module, x)


class RedirectedReLU(torch.autograd.Function):
    """ReLU whose gradient, for a batch item where the plain ReLU passes none (the target is zero
    everywhere on it, as a channel can be on the grey start image), lets through the part that
    would raise the input. Lucid's `redirected_relu_grad`: without it such a channel never moves."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return z.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        relu_grad = torch.where(z < 0, torch.zeros_like(g), g)
        redirected = torch.where((z < 0) & (g > 0), torch.zeros_like(g), g)  # never push a negative input lower
        alive = relu_grad.flatten(1).norm(dim=1) > 0
        return torch.where(alive.view(-1, *([1] * (g.ndim - 1))), relu_grad, redirected)


def _redirected(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A conv → (BN) → ReLU layer with its ReLU swapped for RedirectedReLU (same values); other layers as they are."""
    conv, bn = getattr(layer, "conv", None), getattr(layer, "bn", None)
    if not isinstance(conv, nn.Conv2d):
        return layer(h)
    z = conv(h)
    return RedirectedReLU.apply(bn(z) if isinstance(bn, nn.Module) else z)


def _run_branch(net: Net, block: str, branch: str, h: torch.Tensor, redirect: bool) -> torch.Tensor:
    """A branch's output; redirect=True swaps its final ReLU (each half's, for Inception v3's split E branches)
    for RedirectedReLU. The branch is the Net's own (net.branch_module); a branch that is several plan steps
    (a PlanBranch) runs its leading steps as one PlanBranch, then its last layer (or two halves) redirected."""
    module = net.branch_module(block, branch)
    if not redirect:
        return module(h)
    if isinstance(module, PlanBranch):
        steps = net.plan.branch_layers(block, branch)
        halves = [s for s in steps if s.half]
        lead = [s for s in steps if not s.half] if halves else steps[:-1]
        last = halves or steps[-1:]
        if any(s.kind != CONV for s in last):  # ends in a pool: nothing to redirect
            return module(h)
        if lead:
            h = PlanBranch(net.module, lead)(h)
        outs = [_redirected(net.submodule(s.path), h) for s in last]
        return torch.cat(outs, 1) if halves else outs[0]
    mods = list(module) if isinstance(module, nn.Sequential) else [module]
    for m in mods[:-1]:
        h = m(h)
    return _redirected(mods[-1], h)


def objectives(
    net: Net | nn.Module, h: torch.Tensor, targets: Sequence[ResolvedTarget], redirect: bool = False
) -> torch.Tensor:
    """(N,) mean activation of target i on batch item i, from the block's input `h`.
    Only the branches the targets need are run."""
    net = as_net(net)
    block = targets[0].target.layer
    wanted = {t.target.branch for t in targets}
    order = list(net.branch_paths(block))
    need = order if None in wanted else [b for b in order if b in wanted]
    outs = {b: _run_branch(net, block, b, h, redirect) for b in need}
    values = []
    for i, t in enumerate(targets):
        if t.target.branch is None:
            out = torch.cat([outs[b][i : i + 1] for b in order], dim=1)
        else:
            out = outs[t.target.branch][i : i + 1]
        values.append(out.mean() if t.target.channel is None else out[:, t.target.channel].mean())
    return torch.stack(values)


class Cancelled(Exception):
    """The job was asked to stop; what finished before is kept."""


@dataclass
class Visualisation:
    target: ResolvedTarget
    image: np.ndarray  # (H, W, 3) or (H, W) uint8
    activation_start: float  # the objective on the start image (mid-grey with faint noise)
    activation_end: float  # ... on the final image, untransformed
    steps: int
    seconds: float  # wall time of the optimisation this image was part of
    device: str = "cpu"

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image, "RGB" if self.image.ndim == 3 else "L")

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.pil().save(buf, format="PNG")
        return buf.getvalue()


ProgressFn = Callable[[int, int, list[float]], None]  # (step done, steps, current objective per image)


def visualize(
    model: nn.Module,
    pre: Preprocess,
    targets: Sequence[Target],
    cfg: VisConfig = VisConfig(),
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Visualisation]:
    """Optimise one image per target (all in the same block), as one batch.

    Each batch item starts from the same seeded spectrum and sees the same transforms,
    so a channel's picture does not depend on which other channels share its batch.
    Raises Cancelled when should_stop() turns true (checked every step).
    """
    cfg.validate()
    if not targets:
        raise VisError("nothing to visualise")
    if model.training:
        raise VisError("the network must be in eval mode (a training-mode forward would update BatchNorm)")
    resolved = [resolve(model, t) for t in targets]
    if len({r.target.layer for r in resolved}) != 1:
        raise VisError("all targets of one batch must be in the same block")
    smallest = min_size(model, resolved[0].target.layer)
    if cfg.size < smallest:
        raise VisError(
            f"{resolved[0].label} needs an image of at least {smallest}×{smallest} px "
            f"(its input shrinks to nothing below that), got {cfg.size}"
        )
    device = next(model.parameters()).device
    n, c, size = len(resolved), pre.in_channels, cfg.size
    if c not in (1, 3):
        raise VisError(f"can only optimise 1- or 3-channel images, this network takes {c}")
    gen = torch.Generator().manual_seed(cfg.seed)
    start = torch.randn((1, c, size, size // 2 + 1, 2), generator=gen) * 0.01
    spectrum = start.expand(n, -1, -1, -1, -1).contiguous().to(device).requires_grad_(True)
    scale = _spectrum_scale(size, size, cfg.decay_power).to(device)
    mean, std = _normaliser(pre, device)
    module = resolved[0].target.layer
    net = as_net(model)

    def value(img: torch.Tensor, redirect: bool = False) -> torch.Tensor:
        return objectives(net, net.block_input(module, (img - mean) / std), resolved, redirect)

    opt = torch.optim.Adam([spectrum], lr=cfg.lr)
    t0 = time.perf_counter()
    with torch.no_grad():
        first = value(to_pixels(spectrum, scale, size, c)).float().cpu().tolist()
    with torch.enable_grad():
        for step in range(cfg.steps):
            if should_stop is not None and should_stop():
                raise Cancelled(f"stopped after {step} of {cfg.steps} steps")
            img = random_transform(to_pixels(spectrum, scale, size, c), cfg, gen)
            vals = value(img, redirect=True)
            (grad,) = torch.autograd.grad(-vals.sum(), [spectrum])  # the image's gradient only: no weight .grad
            spectrum.grad = grad
            opt.step()
            if progress is not None:
                progress(step + 1, cfg.steps, vals.detach().float().cpu().tolist())
    with torch.no_grad():
        final_img = to_pixels(spectrum, scale, size, c)
        last = value(final_img).float().cpu().tolist()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    pixels = (final_img.detach().float().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return [
        Visualisation(
            r,
            pixels[i].transpose(1, 2, 0) if c == 3 else pixels[i, 0],
            first[i],
            last[i],
            cfg.steps,
            seconds,
            device.type,
        )
        for i, r in enumerate(resolved)
    ]


def private_copy(model: nn.Module) -> nn.Module:
    """A copy for a process of its own (the CLI, a job): BatchNorm folded into the convs and
    channels-last weights, about 1.5× faster on a CPU. Never used on the app's shared model
    (the copy costs memory, and a page calls nothing that optimises)."""
    if model.training:
        raise VisError("the network must be in eval mode")
    m = copy.deepcopy(model)
    for mod in m.modules():
        conv, bn = getattr(mod, "conv", None), getattr(mod, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            mod.conv, mod.bn = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return m.to(memory_format=torch.channels_last).requires_grad_(False).eval()


@torch.inference_mode()
def activation_map(net: Net | nn.Module, x: torch.Tensor, target: Target) -> np.ndarray:
    """One channel's (H, W) map for a normalised input (1, C, H, W), run module by module."""
    net = as_net(net)
    r = resolve(net, target)
    if r.target.branch is None or r.target.channel is None:
        raise VisError("an activation map needs a branch and a channel")
    h = net.block_input(r.target.layer, x)
    return net.branch_module(r.target.layer, r.target.branch)(h)[0, r.target.channel].float().cpu().numpy()


# ---------------------------------------------------------------------------
# Which model: a fingerprint of the weights and preprocessing (the cache key's model id)

_fingerprints: weakref.WeakKeyDictionary[nn.Module, dict[Preprocess, str]] = weakref.WeakKeyDictionary()


def model_fingerprint(net: Net | nn.Module, pre: Preprocess | None = None) -> str:
    """The Net's content key (weights, spec, preprocessing, transform_input): two files with the same
    weights share their visualisations; a retrained one does not. A bare module's is remembered."""
    if isinstance(net, Net) and (pre is None or pre == net.preprocess):
        return net.content[:20]
    module = net.module if isinstance(net, Net) else net
    pre = pre or as_net(module).preprocess
    memo = _fingerprints.setdefault(module, {})
    if pre not in memo:
        memo[pre] = content_key(module, plan_of(module).spec, pre)[:20]
    return memo[pre]


# ---------------------------------------------------------------------------
# The result cache: <root>/results/<key[:2]>/<key>.png + .json; the JSON is written last


def cache_root() -> Path:
    """GNET_CACHE_DIR, else <runs folder>/.featurevis (kept out of git with runs/)."""
    env = os.environ.get("GNET_CACHE_DIR", "").strip()
    return Path(env) if env else runs_root() / ".featurevis"


def result_key(fingerprint: str, target: Target, cfg: VisConfig) -> str:
    body = {
        "model": fingerprint,
        "layer": target.layer,
        "branch": target.branch,
        "channel": target.channel,
        "config": asdict(cfg),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]


def _result_paths(root: Path, key: str) -> tuple[Path, Path]:
    d = root / "results" / key[:2]
    return d / f"{key}.png", d / f"{key}.json"


@dataclass(frozen=True)
class CachedResult:
    key: str
    png: bytes
    meta: dict[str, Any]

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.png))


def write_result(root: Path, key: str, vis: Visualisation) -> None:
    """PNG first, JSON second, each atomically: a reader that finds the JSON finds the whole PNG.
    VisError when the cache's folders are links (a write would land outside the cache)."""
    png_path, json_path = _result_paths(root, key)
    try:
        fsio.confined(root, png_path, "cache entry")
    except fsio.ConfinementError as e:
        raise VisError(f"the visualisation cache is not usable: {e}") from None
    png_path.parent.mkdir(parents=True, exist_ok=True)
    data = vis.png()
    atomic_write_bytes(png_path, data)
    meta = result_json(vis)
    meta["png_sha256"] = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(json_path, json.dumps(meta).encode())


def result_json(vis: Visualisation) -> dict[str, Any]:
    t = vis.target.target
    return {
        "layer": t.layer,
        "branch": t.branch,
        "channel": t.channel,
        "output_channel": vis.target.output_channel,
        "steps": vis.steps,
        "seconds": round(vis.seconds, 3),
        "activation_start": vis.activation_start,
        "activation_end": vis.activation_end,
    }


class DamagedResult(VisError):
    """A cache entry that is whole (its PNG matches the hash its JSON names) but not usable: the message says why;
    making the picture again replaces it."""


_META_NUMBERS = ("activation_start", "activation_end", "seconds")  # what the pages show from a result's JSON
MAX_RESULT_SIDE = 4096


def read_result(root: Path, key: str) -> CachedResult | None:
    """A finished result, or None (missing, half-written or linked files count as missing). DamagedResult for a
    whole entry whose JSON lacks a field the pages show or whose PNG does not decode."""
    png_path, json_path = _result_paths(root, key)
    if not fsio.is_confined(root, png_path):
        return None
    meta = read_json(json_path)
    if meta is None:
        return None
    try:
        data = fsio.read_bytes(png_path)
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != meta.get("png_sha256"):
        return None
    _check_result(key, data, meta)
    return CachedResult(key, data, meta)


def _check_result(key: str, data: bytes, meta: dict[str, Any]) -> None:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    bad = [k for k in _META_NUMBERS if not number(meta.get(k))]
    steps = meta.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        bad.append("steps")
    if bad:
        raise DamagedResult(f"the cached picture {key[:12]} has an incomplete description (no usable {', '.join(bad)})")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG" or max(im.size) > MAX_RESULT_SIDE:
                raise DamagedResult(f"the cached picture {key[:12]} is not a PNG of at most {MAX_RESULT_SIDE} px")
            im.load()
    except DamagedResult:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # Pillow's decoding failures
        raise DamagedResult(f"the cached picture {key[:12]} does not decode ({type(e).__name__})") from None


def result_needed(root: Path, key: str) -> bool:
    """Whether a job must (re)make this picture: it is missing or damaged."""
    try:
        return read_result(root, key) is None
    except DamagedResult:
        return True


# ---------------------------------------------------------------------------
# Jobs: a separate process per batch request, at most max_jobs() at once, shared by sessions
#
# <root>/jobs/<id>/job.json (model source, targets, settings), status.json, launcher.json, log.txt, STOP
# (gnet.jobs: one status schema, liveness and stop rule for every kind of job). The id is a hash of the
# request, so two sessions asking for the same pictures watch the same job.

JOB_ACTIVE = ("starting", "running")
JOB_STALE_S = jobs.VISUALISATION.stale_s  # no status update for this long from a job on another host → died


def max_jobs() -> int:
    try:
        return max(1, int(os.environ.get("GNET_MAX_VIS_JOBS", "2")))
    except ValueError:
        return 2


@dataclass
class JobInfo:
    id: str
    path: Path
    state: str  # starting running finished cancelled failed died missing
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in JOB_ACTIVE

    def _int(self, key: str, default: int = 0) -> int:
        """A count from the status file, which may have been edited: anything but an int is the default."""
        v = self.status.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default

    @property
    def done(self) -> int:
        return self._int("done")

    @property
    def total(self) -> int:
        return self._int("total")

    @property
    def fraction(self) -> float:
        """Share of the job's optimisation steps done."""
        steps, step = self._int("steps"), self._int("step")
        if not self.total:
            return 0.0
        part = step / steps if steps else 0.0
        return min(1.0, (self.done + part * self._int("batch", 1)) / self.total)

    @property
    def message(self) -> str:
        return str(self.status.get("message", ""))


def job_id(fingerprint: str, layer: str, targets: Sequence[Target], cfg: VisConfig) -> str:
    body = {
        "model": fingerprint,
        "layer": layer,
        "config": asdict(cfg),
        "targets": [[t.branch, t.channel] for t in targets],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def write_job_status(path: Path, state: str, **fields: Any) -> None:
    jobs.write_status(path, jobs.VISUALISATION, state, merge=True, **fields)


def _job_root(path: Path) -> Path:
    return path.parent.parent  # <root>/jobs/<id>


def read_job(path: Path) -> JobInfo:
    """The job as seen now; a job whose process is gone reads "died" (its finished results stay). A job
    folder reached through a link (the folder, or jobs/) is not read: "missing"."""
    if not fsio.is_plain_dir(path) or not fsio.is_confined(_job_root(path), path):
        return JobInfo(id=path.name, path=path, state="missing")
    status = jobs.read_status(path, jobs.VISUALISATION)
    state = str(status.get("state", "died"))
    if state in JOB_ACTIVE and not jobs.alive(path, jobs.VISUALISATION, status):
        state = "died"
        status = {
            **status,
            "message": "the visualisation process ended without finishing (killed or crashed); "
            "finished pictures are kept, start it again for the rest",
        }
    return JobInfo(id=path.name, path=path, state=state, status=status)


def list_jobs(root: Path) -> list[JobInfo]:
    if not fsio.is_plain_dir(root / "jobs"):
        return []
    return [read_job(p) for p in fsio.plain_children(root / "jobs")]


@contextlib.contextmanager
def _lock(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".jobs.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class JobsBusy(VisError):
    """Every visualisation worker is taken."""


def start_job(
    root: Path,
    source: dict[str, str],
    fingerprint: str,
    layer: str,
    targets: Sequence[Target],
    cfg: VisConfig,
    spawn: bool = True,
) -> JobInfo:
    """Start (or join) the job that visualises `targets` of block `layer`.

    The same request from another session returns the running job. JobsBusy when
    max_jobs() other jobs are running. spawn=False only writes the job (tests, or to run
    it in this process with run_job)."""
    cfg.validate()
    if not targets:
        raise VisError("nothing to visualise")
    if source.get("model", "googlenet") not in MODELS:
        raise VisError(f"unknown network family {source.get('model')!r}; choose one of {', '.join(MODELS)}")
    jid = job_id(fingerprint, layer, targets, cfg)
    path = root / "jobs" / jid
    try:
        fsio.confined(root, path, "visualisation job")
    except fsio.ConfinementError as e:
        raise VisError(f"the visualisation cache is not usable: {e}") from None
    with _lock(root):
        info = read_job(path)
        if info.active:
            return info
        running = [j for j in list_jobs(root) if j.active]
        if len(running) >= max_jobs():
            raise JobsBusy(
                f"all {max_jobs()} visualisation workers are busy (GNET_MAX_VIS_JOBS); "
                "wait for one to finish or cancel one, then press the button again"
            )
        path.mkdir(parents=True, exist_ok=True)
        jobs.clear_stop(path)
        write_json(
            path / "job.json",
            {
                "source": dict(source),
                "fingerprint": fingerprint,
                "layer": layer,
                "targets": [[t.branch, t.channel] for t in targets],
                "config": asdict(cfg),
            },
        )
        jobs.write_status(
            path,
            jobs.VISUALISATION,
            "starting",
            host=socket.gethostname(),
            done=0,
            total=len(targets),
            step=0,
            steps=cfg.steps,
        )
        if spawn:
            try:
                _spawn(path)
            except OSError as e:  # e.g. no processes left: say so instead of holding a worker slot
                write_job_status(path, "failed", message=f"could not start the visualisation process ({e.strerror})")
    return read_job(path)


def _spawn(path: Path) -> int:
    return jobs.launch(path, jobs.VISUALISATION, ["visualize", "--job-dir", str(path.resolve())])


def cancel_job(path: Path) -> None:
    """Ask a job to stop: a STOP file (checked every step), and SIGTERM to its process under gnet.jobs' rule
    (the process the job recorded, pid + start time, whose command line names this job folder)."""
    info = read_job(path)
    if not info.active:
        return
    with contextlib.suppress(fsio.ConfinementError):  # read_job has checked; a link swapped in since: nothing
        jobs.request_stop(_job_root(path), path, jobs.VISUALISATION)


@dataclass(frozen=True)
class JobRequest:
    """job.json, checked: what a job process optimises and with which network."""

    source_kind: str
    source_path: str
    fingerprint: str
    source_model: str  # the family (gnet.v3.MODELS): which network an untrained or pretrained source is
    layer: str
    targets: tuple[Target, ...]
    config: VisConfig


def read_request(path: Path) -> JobRequest:
    """The job's job.json as a JobRequest; VisError for a missing, garbled or wrong-shaped file, or a job folder
    reached through a link."""
    if not fsio.is_plain_dir(path) or not fsio.is_confined(_job_root(path), path):
        raise VisError("the job folder is missing or a symbolic link")
    job = read_json(path / "job.json")
    if job is None:
        raise VisError("the job has no readable job.json")
    src = job.get("source")
    raw_targets = job.get("targets")
    layer, fingerprint = job.get("layer"), job.get("fingerprint")
    if not isinstance(src, dict) or not isinstance(layer, str) or not isinstance(fingerprint, str):
        raise VisError("the job's job.json is not usable (source, layer or fingerprint missing)")
    ok_targets = isinstance(raw_targets, list) and all(
        isinstance(t, list)
        and len(t) == 2
        and (t[0] is None or isinstance(t[0], str))
        and (t[1] is None or (isinstance(t[1], int) and not isinstance(t[1], bool)))
        for t in raw_targets
    )
    if not ok_targets or not raw_targets:
        raise VisError("the job's job.json is not usable (targets are not [branch, channel] pairs)")
    model = src.get("model", "googlenet")  # jobs written before the family was recorded are GoogLeNet's
    if model not in MODELS:
        raise VisError(f"the job's job.json names no known network family ({', '.join(MODELS)})")
    return JobRequest(
        source_kind=str(src.get("kind", "")),
        source_path=str(src.get("path", "")),
        fingerprint=fingerprint,
        source_model=model,
        layer=layer,
        targets=tuple(Target(layer, b, c) for b, c in raw_targets),
        config=VisConfig.from_dict(job.get("config")),
    )


def job_source(path: Path) -> tuple[str, str]:
    """(kind, path) of the network a job's job.json names, for the job process to load. A file path is held to
    the app's own rule for paths (gnet.pretrained.user_file: the hub cache, the data or runs folder, or the
    operator's GNET_WEIGHTS), and passes no symbolic link under the runs root; VisError otherwise."""
    from gnet.checkpoints import CheckpointError
    from gnet.pretrained import user_file

    request = read_request(path)
    kind, model_path = request.source_kind, request.source_path
    if kind in ("checkpoint", "weights"):
        try:
            user_file(model_path)
        except (CheckpointError, ValueError, OSError) as e:
            raise VisError(str(e)) from None
        runs_dir, file = runs_root().absolute(), Path(model_path).expanduser().absolute()
        if file.is_relative_to(runs_dir):
            try:
                fsio.confined(runs_dir, file, "model file")
            except fsio.ConfinementError as e:
                raise VisError(str(e)) from None
    return kind, model_path


def job_model(path: Path) -> str:
    """The network family (googlenet, inception-v3) a job's job.json names, for the job process to load."""
    return read_request(path).source_model


def batch_size(device: torch.device) -> int:
    """Images optimised together: a GPU gains from a batch; a CPU gains little and a
    smaller batch shows finished pictures sooner."""
    return 16 if device.type == "cuda" else 2


def run_job(path: Path, model: nn.Module, pre: Preprocess) -> JobInfo:
    """The job process's work: every target not already cached, a batch at a time, each finished
    batch written to the cache before the next starts. SIGTERM or a STOP file → "cancelled".
    VisError for a job.json that is not usable (read_request)."""
    job = read_request(path)
    cfg = job.config
    root = _job_root(path)
    fingerprint = model_fingerprint(model, pre)
    model = private_copy(model)
    targets = list(job.targets)
    base = {**jobs.this_process(), "total": len(targets), "steps": cfg.steps}
    if fingerprint != job.fingerprint:
        write_job_status(
            path,
            "failed",
            **base,
            message="the network's weights changed since the job was asked for; reload the page and start it again",
        )
        return read_job(path)
    should_stop = jobs.StopSignal(path).install((signal.SIGTERM,))  # elsewhere than the main thread: STOP only
    pending = [t for t in targets if result_needed(root, result_key(fingerprint, t, cfg))]
    done = len(targets) - len(pending)
    write_job_status(path, "running", **base, done=done, step=0, batch=1, message="")
    device = next(model.parameters()).device
    bs = batch_size(device)
    last_write = [0.0]
    try:
        for i in range(0, len(pending), bs):
            chunk = pending[i : i + bs]
            label = ", ".join(resolve(model, t).caption() for t in chunk)

            def progress(
                step: int,
                steps: int,
                values: list[float],
                chunk_n: int = len(chunk),
                label: str = label,
                done: int = done,
            ) -> None:
                now = time.monotonic()
                if now - last_write[0] > 0.5 or step == steps:  # at most two status writes a second
                    last_write[0] = now
                    write_job_status(path, "running", **base, done=done, step=step, batch=chunk_n, current=label)

            for vis in visualize(model, pre, chunk, cfg, progress, should_stop):
                write_result(root, result_key(fingerprint, vis.target.target, cfg), vis)
            done += len(chunk)
            write_job_status(path, "running", **base, done=done, step=0, batch=1)
    except Cancelled:
        write_job_status(
            path,
            "cancelled",
            **base,
            done=done,
            step=0,
            message=f"cancelled; {done} of {len(targets)} pictures are finished and kept",
        )
        return read_job(path)
    write_job_status(path, "finished", **base, done=done, step=0, message="")
    return read_job(path)


# ---------------------------------------------------------------------------
# Branch specialisation: where colour-sensitive and strong channels sit


@dataclass(frozen=True)
class BranchStats:
    block: str  # "3a"
    branch: str  # "b1".."b4"
    channels: int
    colour_sensitivity: float  # mean over the branch's channels, 0..1
    colour_selective: float  # share of its channels whose response changes by more than the threshold
    strongest_share: float  # share of the block's strongest channels that sit in this branch
    channel_share: float  # share of the block's channels in this branch (what strongest_share would be by chance)


@dataclass(frozen=True)
class Specialisation:
    rows: tuple[BranchStats, ...]
    images: int
    threshold: float
    top_fraction: float
    grey_network: bool  # a 1-channel network sees no colour: sensitivities are 0 by construction

    def blocks(self) -> list[str]:
        return list(dict.fromkeys(r.block for r in self.rows))

    def grid(self, metric: str) -> list[list[float]]:
        """blocks × branches of one BranchStats field."""
        return [[getattr(r, metric) for r in self.rows if r.block == b] for b in self.blocks()]


@torch.inference_mode()
def branch_means(net: Net | nn.Module, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Per block (short label) and branch, each channel's spatial mean activation: (N, C_branch) on the CPU."""
    net = as_net(net)
    _, parts = net.forward_blocks(net.input(x))
    return {
        short_label(block): {b: p.float().mean(dim=(2, 3)).cpu() for b, p in by_branch.items()}
        for block, by_branch in parts.items()
    }


def colour_sensitivity(colour: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """Per channel, over the images: Σ|a(x) − a(grey x)| / Σ max(a(x), a(grey x)), in 0..1 for ReLU outputs
    (a channel that never fires reads 0)."""
    num = (colour - grey).abs().sum(0)
    den = torch.maximum(colour.clamp_min(0), grey.clamp_min(0)).sum(0)
    return torch.where(den > 0, (num / den.clamp_min(1e-12)).clamp(0, 1), torch.zeros_like(num))


def specialisation(
    net: Net | nn.Module,
    pre: Preprocess,
    images: Sequence[Image.Image],
    threshold: float = 0.5,
    top_fraction: float = 0.1,
) -> Specialisation:
    """Branch statistics for every block, from the images and their greyscale copies."""
    if not images:
        raise VisError("need at least one image")
    if not (0 < threshold < 1 and 0 < top_fraction <= 1):
        raise VisError("threshold must be between 0 and 1, top_fraction above 0 and at most 1")
    crops = [crop_for_model(img.convert("RGB"), pre) for img in images]
    greys = [c.convert("L").convert("RGB") if pre.in_channels == 3 else c for c in crops]
    x = torch.cat([to_tensor(c, pre) for c in crops + greys])
    means = branch_means(net, x)
    n = len(images)
    rows = []
    for block, parts in means.items():
        widths = {b: p.shape[1] for b, p in parts.items()}
        total = sum(widths.values())
        strength = torch.cat([parts[b][:n].mean(0) for b in parts])
        k = max(1, round(top_fraction * total))
        top = torch.argsort(-strength, stable=True)[:k]
        start = 0
        for b in parts:
            sens = colour_sensitivity(parts[b][:n], parts[b][n:])
            inside = int(((top >= start) & (top < start + widths[b])).sum())
            rows.append(
                BranchStats(
                    block,
                    b,
                    widths[b],
                    float(sens.mean()),
                    float((sens > threshold).float().mean()),
                    inside / k,
                    widths[b] / total,
                )
            )
            start += widths[b]
    return Specialisation(tuple(rows), n, threshold, top_fraction, pre.in_channels == 1)
