"""Block anatomy: how one unit of one branch is computed from the image, layer by layer, with the model's own numbers.

For (net, image, block, branch, channel, row, col):

1. `trace` runs the branch's layers one by one on the block's input (`Net.block_input`, then `Net.submodule` for each
   layer of the plan: a conv layer as its `.conv`, its `.bn` and a ReLU, a pool as itself) and keeps every
   intermediate map, on the CPU. Nothing is written to the shared module: no hooks, no gradients, its mode is kept.
2. `anatomy` walks back from the chosen unit: the last layer's position and channel are the chosen ones; an earlier
   layer's position is the centre of the later layer's window in its input, and its channel is the input channel that
   contributes most (largest |w·x| summed over the window) to the later conv (a pool keeps the channel). Then it reads,
   in forward order, one step per conv / BatchNorm / ReLU / pool: the window, the kernel, each input channel's
   contribution Σ_kh×kw w·x (they sum to `dot`), the bias, BatchNorm's scale γ/√(σ²+ε) and shift β − γμ/√(σ²+ε),
   the pool's window and its winner. Every `out` is read from the captured maps, so it is what the module computed;
   the tests check that the arithmetic shown reproduces it.
3. `animation` precomputes one frame per output position of one layer (its window in the input, the value it
   produces), for the browser to play.

Windows are [r0, c0, r1, c1], inclusive, in the step's input coordinates; they may reach into the padding (negative
or past the edge), where a conv reads zeros and a max-pool reads nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from gnet.net import Net, NetError
from gnet.plan import AVGPOOL, CONV, MAXPOOL, ReceptiveField, short_label

TOP_INPUTS = 8  # input channels listed per conv step in the JSON, strongest first


class AnatomyError(ValueError):
    """A request the network can't answer (unknown block or branch, channel or position out of range)."""


# ---------------------------------------------------------------------------
# The branch, run layer by layer


@dataclass(frozen=True)
class LayerRun:
    """One layer of a branch as it ran: its input and what each part of it produced, (C, H, W) float32 on the CPU."""

    path: str  # module path of the layer ("inception3a.branch2.1")
    kind: str  # CONV, MAXPOOL or AVGPOOL
    input: np.ndarray
    output: np.ndarray  # the layer's output (after the ReLU for a conv layer)
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    conv: np.ndarray | None = None  # conv layers: the conv's output (before BatchNorm)
    bn: np.ndarray | None = None  # conv layers with BatchNorm: BatchNorm's output (before the ReLU)
    weight: np.ndarray | None = None  # (C_out, C_in, kh, kw)
    bias: np.ndarray | None = None  # (C_out,) or None when the conv has no bias
    bn_scale: np.ndarray | None = None  # γ/√(σ²+ε), (C_out,)
    bn_shift: np.ndarray | None = None  # β − γμ/√(σ²+ε), (C_out,)
    count_include_pad: bool = True  # avg-pools
    ceil_mode: bool = False  # pools
    half: str | None = None  # Inception v3's E: "a"/"b", one of two layers reading the same input, concatenated
    offset: int = 0  # a half's first channel in the branch output

    @property
    def has_bn(self) -> bool:
        return self.bn is not None

    def window(self, r: int, c: int) -> tuple[int, int, int, int]:
        """The input rows and columns (inclusive) that output (r, c) reads."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        r0, c0 = r * sh - ph, c * sw - pw
        return r0, c0, r0 + (kh - 1) * dh, c0 + (kw - 1) * dw

    def centre(self, r: int, c: int) -> tuple[int, int]:
        """The centre of output (r, c)'s window in the input, inside the input map (even kernels: the upper left)."""
        r0, c0, r1, c1 = self.window(r, c)
        _, h, w = self.input.shape
        return min(max((r0 + r1) // 2, 0), h - 1), min(max((c0 + c1) // 2, 0), w - 1)

    def patch(self, channel: int | slice, r: int, c: int, fill: float = 0.0) -> np.ndarray:
        """The input values under output (r, c)'s window, (C, kh, kw) (or (kh, kw) for one channel); `fill` where the
        window is outside the input."""
        x = self.input[channel]
        x = x[None] if x.ndim == 2 else x
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        r0, c0, _, _ = self.window(r, c)
        rows, cols = r0 + dh * np.arange(kh), c0 + dw * np.arange(kw)
        ok_r = (rows >= 0) & (rows < x.shape[1])
        ok_c = (cols >= 0) & (cols < x.shape[2])
        out = np.full((x.shape[0], kh, kw), fill, np.float32)
        out[:, ok_r[:, None] & ok_c[None, :]] = x[:, rows[ok_r]][:, :, cols[ok_c]].reshape(x.shape[0], -1)
        return out[0] if isinstance(channel, int) else out

    def contributions(self, out_channel: int, r: int, c: int) -> np.ndarray:
        """Σ over the window of w·x for each input channel (C_in,), float64: the conv's output minus its bias."""
        assert self.weight is not None
        x = self.patch(slice(None), r, c).astype(np.float64)
        return np.einsum("chw,chw->c", self.weight[out_channel].astype(np.float64), x)


@dataclass(frozen=True)
class Trace:
    """A branch run layer by layer on one image's block input."""

    block: str  # module path, "inception3a"
    branch: str  # "b1".."b4"
    layers: tuple[LayerRun, ...]
    offset: int  # the branch's first channel in the block output
    block_channels: int
    rf: ReceptiveField | None  # the branch output's theoretical receptive field on the input image
    image_hw: tuple[int, int]  # the network input's H, W

    @property
    def output(self) -> np.ndarray:
        """The branch's output: its last layer's, or its two halves' side by side."""
        halves = [run.output for run in self.layers if run.half]
        return np.concatenate(halves, 0) if halves else self.layers[-1].output

    @property
    def label(self) -> str:
        return short_label(self.block, self.branch)

    def layers_for(self, channel: int) -> tuple[tuple[LayerRun, ...], int]:
        """The layers a branch output channel is computed by (of two halves, the one holding it), and the channel in
        the last of them."""
        whole = tuple(run for run in self.layers if not run.half)
        for run in self.layers:
            if run.half and run.offset <= channel < run.offset + run.output.shape[0]:
                return (*whole, run), channel - run.offset
        return whole, channel


def _pair(v: object) -> tuple[int, int]:
    if isinstance(v, str):
        raise AnatomyError(f"padding {v!r} given by name is not supported; the layers need numeric padding")
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))  # type: ignore[index]


def _np(t: torch.Tensor) -> np.ndarray:
    return t[0].detach().to("cpu", torch.float32).numpy()


def _branch_layers(net: Net, block: str, branch: str) -> list:
    paths = net.branch_paths(block)
    if branch not in paths:
        raise AnatomyError(f"no branch {branch!r} in {short_label(block)}; choose one of {', '.join(paths)}")
    return net.plan.branch_layers(block, branch)  # forward order; two halves, if any, last


def trace(net: Net, x: torch.Tensor, block: str, branch: str, h: torch.Tensor | None = None) -> Trace:
    """Run `branch` of `block` on images x (the first is used) layer by layer, keeping every intermediate map.
    `h`: the block's input for x, when the caller has it (`trace_block` runs the stem once for all branches)."""
    try:
        layers = _branch_layers(net, block, branch)
    except NetError as e:
        raise AnatomyError(str(e)) from None
    runs: list[LayerRun] = []
    offset = 0
    with torch.inference_mode():
        h = net.block_input(block, x[:1]) if h is None else h[:1]
        for step in layers:
            if step.kind == CONV:
                run, out = _run_conv(net, step.path, step.batch_norm, h)
            elif step.kind in (MAXPOOL, AVGPOOL):
                run, out = _run_pool(net, step, h)
            else:
                raise AnatomyError(f"{step.path} is a {step.kind} layer: only conv and pool layers can be traced")
            if step.half:  # both halves read the same input; the branch output is the two side by side
                run = dataclasses.replace(run, half=step.half, offset=offset)
                offset += run.output.shape[0]
            else:
                h = out
            runs.append(run)
    steps = net.plan.branch_steps(block)
    first = 0
    for b, s in steps.items():
        if b == branch:
            break
        first += s.out_shape[0]
    return Trace(
        block=block,
        branch=branch,
        layers=tuple(runs),
        offset=first,
        block_channels=net.plan.step(block).out_shape[0],
        rf=steps[branch].rf,
        image_hw=tuple(net.plan.input_shape[1:]),  # type: ignore[arg-type]
    )


def trace_block(net: Net, x: torch.Tensor, block: str) -> dict[str, Trace]:
    """Every branch of `block`, from one run of the layers before it."""
    try:
        branches = list(net.branch_paths(block))
    except NetError as e:
        raise AnatomyError(str(e)) from None
    with torch.inference_mode():
        h = net.block_input(block, x[:1])
    return {b: trace(net, x, block, b, h) for b in branches}


def _run_conv(net: Net, path: str, batch_norm: bool, h: torch.Tensor) -> tuple[LayerRun, torch.Tensor]:
    conv = net.submodule(f"{path}.conv")
    if not isinstance(conv, torch.nn.Conv2d) or conv.groups != 1:
        raise AnatomyError(f"{path}.conv is not a plain 2-d convolution")
    c = conv(h)
    b = scale = shift = None
    if batch_norm:
        bn = net.submodule(f"{path}.bn")
        if bn.training:
            raise AnatomyError(f"{path}.bn is in training mode: BatchNorm would use the batch's statistics")
        b = bn(c)
        inv = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv)
        scale = (gamma * inv).cpu().numpy()
        shift = (beta - gamma * bn.running_mean.double() * inv).cpu().numpy()
    out = torch.relu(b if b is not None else c)  # not in place: the BatchNorm output is kept
    run = LayerRun(
        path=path,
        kind=CONV,
        input=_np(h),
        output=_np(out),
        kernel=(conv.weight.shape[2], conv.weight.shape[3]),
        stride=_pair(conv.stride),
        padding=_pair(conv.padding),
        dilation=_pair(conv.dilation),
        conv=_np(c),
        bn=None if b is None else _np(b),
        weight=conv.weight.detach().to("cpu", torch.float32).numpy(),
        bias=None if conv.bias is None else conv.bias.detach().to("cpu", torch.float32).numpy(),
        bn_scale=scale,
        bn_shift=shift,
    )
    return run, out


def _run_pool(net: Net, step, h: torch.Tensor) -> tuple[LayerRun, torch.Tensor]:
    """A pool module (GoogLeNet's branch4.0), or a pool torchvision calls as a function in the block's forward
    (Inception v3's avg_pool2d / max_pool2d: no module, the plan's geometry, torch's defaults)."""
    kind, p = step.kind, step.spec
    try:
        pool = net.submodule(step.path)
    except NetError:
        pool = None
    if pool is None:
        out = (
            F.avg_pool2d(h, p.kernel, p.stride, p.padding, ceil_mode=p.ceil_mode)
            if kind == AVGPOOL
            else F.max_pool2d(h, p.kernel, p.stride, p.padding, ceil_mode=p.ceil_mode)
        )
        geometry = dict(kernel=_pair(p.kernel), stride=_pair(p.stride), padding=_pair(p.padding), ceil_mode=p.ceil_mode)
    else:
        want = torch.nn.MaxPool2d if kind == MAXPOOL else torch.nn.AvgPool2d
        if not isinstance(pool, want):
            raise AnatomyError(f"{step.path} is not a {want.__name__}")
        if getattr(pool, "divisor_override", None):
            raise AnatomyError(f"{step.path} overrides its divisor: not supported")
        out = pool(h)
        geometry = dict(
            kernel=_pair(pool.kernel_size),
            stride=_pair(pool.stride if pool.stride else pool.kernel_size),
            padding=_pair(pool.padding),
            dilation=_pair(getattr(pool, "dilation", 1)),
            count_include_pad=bool(getattr(pool, "count_include_pad", True)),
            ceil_mode=bool(pool.ceil_mode),
        )
    return LayerRun(path=step.path, kind=kind, input=_np(h), output=_np(out), **geometry), out


# ---------------------------------------------------------------------------
# One unit, step by step


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of the unit's computation. `out` is the module's own output at (channel, at)."""

    layer: str  # module path: "….conv", "….bn", the conv layer itself for its ReLU, the pool
    kind: str  # "conv", "bn", "relu", "maxpool", "avgpool"
    at: tuple[int, int]  # the position in this step's output that the chosen unit's computation passes through
    channel: int
    window: tuple[int, int, int, int]  # [r0, c0, r1, c1] inclusive, in this step's input
    out: float

    def to_json(self) -> dict:
        return {
            "layer": self.layer,
            "kind": self.kind,
            "at": list(self.at),
            "channel": self.channel,
            "window": list(self.window),
            "out": self.out,
        }


@dataclass(frozen=True, kw_only=True)
class ConvStep(Step):
    dot: float  # Σ over the window and the input channels of w·x (= Σ contributions)
    bias: float | None
    contributions: np.ndarray = field(repr=False)  # (C_in,) float64: Σ over kh×kw of w·x per input channel
    inputs: np.ndarray = field(repr=False)  # (C_in, kh, kw) the window's values (0 in the padding)
    kernel: np.ndarray = field(repr=False)  # (C_in, kh, kw) the output channel's weights

    def top_inputs(self, n: int = TOP_INPUTS) -> list[tuple[int, float]]:
        """(input channel, contribution), strongest (largest |contribution|) first."""
        order = np.argsort(-np.abs(self.contributions), kind="stable")[:n]
        return [(int(i), float(self.contributions[i])) for i in order]

    def to_json(self) -> dict:
        return super().to_json() | {
            "dot": self.dot,
            "bias": self.bias,
            "top_inputs": [{"channel": c, "contribution": v} for c, v in self.top_inputs()],
        }


@dataclass(frozen=True, kw_only=True)
class BatchNormStep(Step):
    input: float  # the conv's output
    scale: float  # γ/√(σ²+ε)
    shift: float  # β − γμ/√(σ²+ε)

    def to_json(self) -> dict:
        return super().to_json() | {"input": self.input, "scale": self.scale, "shift": self.shift}


@dataclass(frozen=True, kw_only=True)
class ReluStep(Step):
    input: float

    def to_json(self) -> dict:
        return super().to_json() | {"input": self.input}


@dataclass(frozen=True, kw_only=True)
class PoolStep(Step):
    values: np.ndarray = field(repr=False)  # (kh, kw) the channel's values under the window (nan: outside the input)
    argmax: tuple[int, int] | None  # max-pool: the winning input position
    count: int  # avg-pool: the divisor (the cells counted); max-pool: the cells inside the input

    def to_json(self) -> dict:
        extra = {"argmax": list(self.argmax)} if self.argmax is not None else {"count": self.count}
        return super().to_json() | extra


@dataclass(frozen=True)
class Anatomy:
    block: str
    branch: str
    channel: int
    at: tuple[int, int]
    concat_channel: int  # the unit's channel in the block output
    value: float  # the branch output at the unit (= steps[-1].out)
    steps: tuple[Step, ...]
    trace: Trace = field(repr=False)
    layers: tuple[LayerRun, ...] = field(repr=False, default=())  # the layers on the unit's path (of two halves, one)

    @property
    def label(self) -> str:
        return short_label(self.block, self.branch)

    def to_json(self) -> dict:
        return {
            "block": self.block,
            "branch": self.branch,
            "channel": self.channel,
            "at": list(self.at),
            "concat_channel": self.concat_channel,
            "value": self.value,
            "steps": [s.to_json() for s in self.steps],
        }

    def layer_steps(self, path: str) -> list[Step]:
        """The steps of one layer of the branch (a conv layer's conv, bn and relu)."""
        return [s for s in self.steps if s.layer == path or s.layer.rpartition(".")[0] == path]

    def path(self) -> list[tuple[str, int, tuple[int, int]]]:
        """(layer, channel, at) of each layer of the branch: the chain the unit depends on."""
        out = []
        for run in self.layers:
            s = self.layer_steps(run.path)[-1]
            out.append((run.path, s.channel, s.at))
        return out


def check_unit(t: Trace, channel: int, row: int, col: int) -> None:
    c, h, w = t.output.shape
    if not 0 <= channel < c:
        raise AnatomyError(f"channel {channel} is out of range for {t.label}: choose 0–{c - 1}")
    if not (0 <= row < h and 0 <= col < w):
        raise AnatomyError(
            f"position ({row}, {col}) is outside {t.label}'s {h}×{w} map: row 0–{h - 1}, column 0–{w - 1}"
        )


def anatomy(
    net: Net, x: torch.Tensor, block: str, branch: str, channel: int, row: int, col: int, t: Trace | None = None
) -> Anatomy:
    """The chosen unit's computation (see the module's docstring); `t`: a trace of this branch on x, reused."""
    t = t or trace(net, x, block, branch)
    return unit(t, channel, row, col)


def unit(t: Trace, channel: int, row: int, col: int) -> Anatomy:
    """`anatomy` from a trace: numpy only, milliseconds."""
    check_unit(t, channel, row, col)
    layers, last = t.layers_for(channel)
    # Walk back: each layer's (channel, position in its output).
    chain: list[tuple[int, tuple[int, int]]] = [(last, (row, col))]
    for i in range(len(layers) - 1, 0, -1):
        run, (ch, (r, c)) = layers[i], chain[0]
        if run.kind == CONV:
            ch = int(np.argmax(np.abs(run.contributions(ch, r, c))))
        chain.insert(0, (ch, run.centre(r, c)))
    steps: list[Step] = []
    for run, (ch, (r, c)) in zip(layers, chain):
        steps += _layer_steps(run, ch, r, c)
    return Anatomy(
        block=t.block,
        branch=t.branch,
        channel=channel,
        at=(row, col),
        concat_channel=t.offset + channel,
        value=steps[-1].out,
        steps=tuple(steps),
        trace=t,
        layers=layers,
    )


def _layer_steps(run: LayerRun, ch: int, r: int, c: int) -> list[Step]:
    win = run.window(r, c)
    at, point = (r, c), (r, c, r, c)
    if run.kind != CONV:
        return [_pool_step(run, ch, r, c)]
    assert run.conv is not None and run.weight is not None
    contrib = run.contributions(ch, r, c)
    bias = None if run.bias is None else float(run.bias[ch])
    steps: list[Step] = [
        ConvStep(
            layer=f"{run.path}.conv",
            kind="conv",
            at=at,
            channel=ch,
            window=win,
            out=float(run.conv[ch, r, c]),
            dot=float(contrib.sum()),
            bias=bias,
            contributions=contrib,
            inputs=run.patch(slice(None), r, c),
            kernel=run.weight[ch],
        )
    ]
    pre = float(run.conv[ch, r, c])
    if run.bn is not None:
        assert run.bn_scale is not None and run.bn_shift is not None
        steps.append(
            BatchNormStep(
                layer=f"{run.path}.bn",
                kind="bn",
                at=at,
                channel=ch,
                window=point,
                out=float(run.bn[ch, r, c]),
                input=pre,
                scale=float(run.bn_scale[ch]),
                shift=float(run.bn_shift[ch]),
            )
        )
        pre = float(run.bn[ch, r, c])
    steps.append(
        ReluStep(
            layer=run.path, kind="relu", at=at, channel=ch, window=point, out=float(run.output[ch, r, c]), input=pre
        )
    )
    return steps


def _pool_step(run: LayerRun, ch: int, r: int, c: int) -> PoolStep:
    _, h, w = run.input.shape
    r0, c0, r1, c1 = run.window(r, c)
    values = run.patch(ch, r, c, fill=np.nan)
    inside = int(np.isfinite(values).sum())
    argmax = None
    if run.kind == MAXPOOL:
        # torch keeps the first maximum in row-major order, as np.nanargmax does
        k = int(np.nanargmax(values))
        dh, dw = run.dilation
        argmax = (r0 + dh * (k // values.shape[1]), c0 + dw * (k % values.shape[1]))
        count = inside
    elif run.count_include_pad:  # ATen: the window clipped to the padded input
        (ph, pw) = run.padding
        count = (min(r1 + 1, h + ph) - r0) * (min(c1 + 1, w + pw) - c0)
    else:
        count = inside
    return PoolStep(
        layer=run.path,
        kind=run.kind,
        at=(r, c),
        channel=ch,
        window=(r0, c0, r1, c1),
        out=float(run.output[ch, r, c]),
        values=values,
        argmax=argmax,
        count=count,
    )


def anatomy_text(a: Anatomy, network: str = "") -> str:
    """The unit's computation for a terminal, one line per step."""
    lines = [
        f"{a.label} channel {a.channel} at {a.at} = block output channel {a.concat_channel}"
        + (f" ({network})" if network else "")
    ]
    for s in a.steps:
        head = f"  {s.layer:32s} {s.kind:7s} ch {s.channel:4d} at {s.at} window {list(s.window)}"
        if isinstance(s, ConvStep):
            top = ", ".join(f"ch {c} {v:+.4g}" for c, v in s.top_inputs(3))
            bias = "" if s.bias is None else f" + bias {s.bias:.4g}"
            lines.append(f"{head}: Σ w·x = {s.dot:.6g}{bias} = {s.out:.6g}  (strongest: {top})")
        elif isinstance(s, BatchNormStep):
            lines.append(f"{head}: {s.input:.6g} × {s.scale:.6g} + {s.shift:.6g} = {s.out:.6g}")
        elif isinstance(s, ReluStep):
            lines.append(f"{head}: max(0, {s.input:.6g}) = {s.out:.6g}")
        elif isinstance(s, PoolStep):
            how = f"max at {s.argmax}" if s.argmax is not None else f"mean of {s.count}"
            lines.append(f"{head}: {how} = {s.out:.6g}")
    lines.append(f"value {a.value:.6g}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Animation: one layer's window sliding over its output map


@dataclass(frozen=True)
class Animation:
    """Frames for the browser: frame k is output position (k // W, k % W) of one layer. It depends on the layer and
    its two channels only, not on the unit's position, so the page's player stays as it is while the unit moves."""

    layer: str  # the layer's module path
    kind: str
    in_channel: int  # the input channel drawn under the window
    out_channel: int
    input_map: np.ndarray  # (H_in, W_in)
    output_map: np.ndarray  # (H, W): the layer's output, which fills in frame by frame
    frames: list[tuple[int, int, int, int, int, int, float]]  # (r, c, r0, c0, r1, c1, value)


def animation(a: Anatomy, layer: str) -> Animation:
    """The frames of one layer of the unit's branch, for the output channel the unit's chain passes through there and
    the input channel whose kernel for it weighs most (Σ|w|; a pool: the same channel)."""
    index = {run.path: i for i, run in enumerate(a.layers)}
    if layer not in index:
        raise AnatomyError(f"no layer {layer!r} in {a.label}; choose one of {', '.join(index)}")
    run = a.layers[index[layer]]
    out_ch = a.path()[index[layer]][1]
    in_ch = out_ch
    if run.kind == CONV:
        assert run.weight is not None
        in_ch = int(np.argmax(np.abs(run.weight[out_ch]).sum(axis=(1, 2))))
    out = run.output[out_ch]
    h, w = out.shape
    frames = [(r, c, *run.window(r, c), float(out[r, c])) for r in range(h) for c in range(w)]
    return Animation(
        layer=layer,
        kind=run.kind,
        in_channel=in_ch,
        out_channel=out_ch,
        input_map=run.input[in_ch],
        output_map=out,
        frames=frames,
    )


__all__ = [
    "AnatomyError",
    "LayerRun",
    "Trace",
    "Step",
    "ConvStep",
    "BatchNormStep",
    "ReluStep",
    "PoolStep",
    "Anatomy",
    "Animation",
    "trace",
    "trace_block",
    "anatomy",
    "anatomy_text",
    "unit",
    "animation",
    "check_unit",
]
