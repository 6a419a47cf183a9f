"""Inception v3: its block kinds A–E as specs, their layouts and layer plans, the network and its presets.

torch-free, like `gnet.spec` and `gnet.plan`: a spec is validated, costed, serialised and planned without
a tensor; `gnet.v3_modules` builds the modules. Everything follows torchvision's `models/inception.py` as
installed (not the paper's figures, which differ in places: pytorch/vision#798), with its module names
(`branch1x1`, `branch5x5_1`, ...), so torchvision's state_dicts load into the built modules.

A block kind spec holds the out-channels of each of its convs, named by the conv's module; the pools and
the kernel sizes are the kind's. Defaults are torchvision's first block of that kind (Mixed_5b, Mixed_6a,
Mixed_6b, Mixed_7a, Mixed_7b). Every conv is torchvision's BasicConv2d: no bias, BatchNorm eps 1e-3, ReLU.

torchvision's branches are not modules: a block's forward runs each branch's convs (and functional pools)
in turn. The plan therefore names each branch's convs by their module paths (`Mixed_6b.branch7x7_2`), a
functional pool by the function (`Mixed_5b.avg_pool2d`, `virtual`), and gives a branch of more than one
layer a virtual step named by torchvision's local variable (`Mixed_6b.branch7x7dbl`). E's split branches
end in two halves (`half` "a" and "b") that run side by side on the same input and are concatenated.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from gnet.analysis import BlockReport, Cost, conv_cost, steps_block_report, total
from gnet.plan import (
    ADAPTIVE_AVGPOOL,
    AUX,
    AVGPOOL,
    BLOCK,
    BRANCH,
    CONV,
    DROPOUT,
    LINEAR,
    MAXPOOL,
    PIXEL,
    Plan,
    ReceptiveField,
    Shape,
    Step,
    conv_out,
    pool_out,
)
from gnet.spec import (
    MAX_CHANNELS,
    MAX_SPATIAL,
    BlockSpec,
    ConvSpec,
    NetworkSpec,
    PoolSpec,
    SpecError,
    _check_int,
    _check_keys,
    _normalise,
    _parse_json,
    _show,
    check_blocks,
    check_network_fields,
)

KINDS = ("v1", "A", "B", "C", "D", "E")
MODELS = ("googlenet", "inception-v3")  # the network families a model source can be (gnet.pretrained)


@dataclass(frozen=True)
class ConvHW:
    """A conv's geometry with a kernel and padding per axis (torchvision's 1×7 is kernel (1, 7))."""

    out_channels: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Layer:
    """One layer of a branch, as torchvision's forward runs it."""

    name: str  # the conv's module attribute ("branch5x5_1"), or the pool's function ("avg_pool2d")
    kind: str  # CONV, AVGPOOL or MAXPOOL
    out_channels: int  # a pool's is its input's (filled in by `layout`)
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Branch:
    key: str  # "b1".."bN", concatenation order
    name: str  # torchvision's local variable: "branch5x5", "branch_pool"
    layers: tuple[Layer, ...]
    halves: tuple[Layer, ...] = ()  # E: two layers that both read the last of `layers`, concatenated

    @property
    def label(self) -> str:
        parts = [_layer_label(x) for x in self.layers]
        if self.halves:
            parts.append(" ‖ ".join(_layer_label(x) for x in self.halves))
        return " → ".join(parts)


def _layer_label(x: Layer) -> str:
    kh, kw = x.kernel
    if x.kind == CONV:
        return f"{kh}×{kw}" + (f"/{x.stride}" if x.stride > 1 else "")
    return f"{kh}×{kw}{'/2' if x.stride == 2 else ''} {'avg' if x.kind == AVGPOOL else 'max'}-pool"


def _conv(name: str, out: int, kh: int, kw: int | None = None, stride: int = 1) -> Layer:
    kw = kh if kw is None else kw
    pad = (0, 0) if stride > 1 else ((kh - 1) // 2, (kw - 1) // 2)  # torchvision: 'same' at stride 1, none at 2
    return Layer(name, CONV, out, (kh, kw), stride, pad)


AVG_POOL = Layer("avg_pool2d", AVGPOOL, 0, (3, 3), 1, (1, 1))  # F.avg_pool2d(x, 3, stride=1, padding=1)
MAX_POOL = Layer("max_pool2d", MAXPOOL, 0, (3, 3), 2, (0, 0))  # F.max_pool2d(x, 3, stride=2)


class _Kind:
    """What every v3 block kind spec has: its fields are the out-channels of its convs (and C's n)."""

    KIND: ClassVar[str]
    BLOCK: ClassVar[str]  # torchvision's first block of this kind, whose numbers are the defaults
    DEFAULT_INPUT: ClassVar[tuple[int, int, int]]  # that block's input in torchvision's network at 299×299
    TITLE: ClassVar[str]

    def __post_init__(self) -> None:
        _normalise(self, *self.fields())

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def validate(self) -> _Kind:
        for name in self.fields():
            _check_int(name, getattr(self, name), 1, MAX_CHANNELS)
        return self

    def branches(self) -> tuple[Branch, ...]:
        raise NotImplementedError

    def layout(self, in_channels: int) -> tuple[Branch, ...]:
        """The branches with every pool's channels filled in (a pool keeps its input's)."""
        out = []
        for b in self.branches():
            layers = tuple(dataclasses.replace(x, out_channels=in_channels) if x.kind != CONV else x for x in b.layers)
            out.append(dataclasses.replace(b, layers=layers))
        return tuple(out)

    def branch_labels(self) -> dict[str, str]:
        return {b.key: b.label for b in self.branches()}

    def branch_channels(self, in_channels: int) -> dict[str, int]:
        return {
            b.key: sum(x.out_channels for x in b.halves) if b.halves else b.layers[-1].out_channels
            for b in self.layout(in_channels)
        }

    def out_channels_for(self, in_channels: int) -> int:
        return sum(self.branch_channels(in_channels).values())

    def out_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Output H, W; 0 where the input is too small (a grid reduction needs at least 3×3)."""
        h, w = hw
        for x in self.branches()[0].layers:
            h = conv_out(h, x.kernel[0], x.stride, x.padding[0])
            w = conv_out(w, x.kernel[1], x.stride, x.padding[1])
        return max(h, 0), max(w, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class InceptionASpec(_Kind):
    """A (35×35): 1×1; 1×1 → 5×5; 1×1 → 3×3 → 3×3; 3×3 avg-pool → 1×1.

    torchvision keeps a 5×5 here where the v3 paper's figure 5 has two 3×3 (pytorch/vision#798)."""

    KIND: ClassVar[str] = "A"
    BLOCK: ClassVar[str] = "Mixed_5b"
    DEFAULT_INPUT: ClassVar[tuple[int, int, int]] = (192, 35, 35)
    TITLE: ClassVar[str] = "A (35×35)"
    branch1x1: int = 64
    branch5x5_1: int = 48
    branch5x5_2: int = 64
    branch3x3dbl_1: int = 64
    branch3x3dbl_2: int = 96
    branch3x3dbl_3: int = 96
    branch_pool: int = 32

    def branches(self) -> tuple[Branch, ...]:
        return (
            Branch("b1", "branch1x1", (_conv("branch1x1", self.branch1x1, 1),)),
            Branch(
                "b2",
                "branch5x5",
                (_conv("branch5x5_1", self.branch5x5_1, 1), _conv("branch5x5_2", self.branch5x5_2, 5)),
            ),
            Branch(
                "b3",
                "branch3x3dbl",
                (
                    _conv("branch3x3dbl_1", self.branch3x3dbl_1, 1),
                    _conv("branch3x3dbl_2", self.branch3x3dbl_2, 3),
                    _conv("branch3x3dbl_3", self.branch3x3dbl_3, 3),
                ),
            ),
            Branch("b4", "branch_pool", (AVG_POOL, _conv("branch_pool", self.branch_pool, 1))),
        )


@dataclass(frozen=True)
class InceptionBSpec(_Kind):
    """B, grid reduction 35 → 17: 3×3/2; 1×1 → 3×3 → 3×3/2; 3×3/2 max-pool (its channels are the input's)."""

    KIND: ClassVar[str] = "B"
    BLOCK: ClassVar[str] = "Mixed_6a"
    DEFAULT_INPUT: ClassVar[tuple[int, int, int]] = (288, 35, 35)
    TITLE: ClassVar[str] = "B (grid reduction 35 → 17)"
    branch3x3: int = 384
    branch3x3dbl_1: int = 64
    branch3x3dbl_2: int = 96
    branch3x3dbl_3: int = 96

    def branches(self) -> tuple[Branch, ...]:
        return (
            Branch("b1", "branch3x3", (_conv("branch3x3", self.branch3x3, 3, stride=2),)),
            Branch(
                "b2",
                "branch3x3dbl",
                (
                    _conv("branch3x3dbl_1", self.branch3x3dbl_1, 1),
                    _conv("branch3x3dbl_2", self.branch3x3dbl_2, 3),
                    _conv("branch3x3dbl_3", self.branch3x3dbl_3, 3, stride=2),
                ),
            ),
            Branch("b3", "branch_pool", (MAX_POOL,)),
        )


@dataclass(frozen=True)
class InceptionCSpec(_Kind):
    """C (17×17), factorised n×n with width c7: 1×1; 1×1 → 1×n → n×1; 1×1 → n×1 → 1×n → n×1 → 1×n;
    3×3 avg-pool → 1×1. torchvision's n is 7; c7 is its channels_7x7 (128, 160, 160, 192 in 6b–6e)."""

    KIND: ClassVar[str] = "C"
    BLOCK: ClassVar[str] = "Mixed_6b"
    DEFAULT_INPUT: ClassVar[tuple[int, int, int]] = (768, 17, 17)
    TITLE: ClassVar[str] = "C (17×17, factorised n×n)"
    branch1x1: int = 192
    c7: int = 128
    branch7x7_3: int = 192
    branch7x7dbl_5: int = 192
    branch_pool: int = 192
    n: int = 7

    def validate(self) -> InceptionCSpec:
        for name in self.fields():
            if name != "n":
                _check_int(name, getattr(self, name), 1, MAX_CHANNELS)
        _check_int("n", self.n, 3, 15)
        if self.n % 2 == 0:
            raise SpecError(f"n must be odd (a 1×n conv keeps the size with padding (n−1)/2), got {self.n}")
        return self

    def branches(self) -> tuple[Branch, ...]:
        n, c7 = self.n, self.c7
        return (
            Branch("b1", "branch1x1", (_conv("branch1x1", self.branch1x1, 1),)),
            Branch(
                "b2",
                "branch7x7",
                (
                    _conv("branch7x7_1", c7, 1),
                    _conv("branch7x7_2", c7, 1, n),
                    _conv("branch7x7_3", self.branch7x7_3, n, 1),
                ),
            ),
            Branch(
                "b3",
                "branch7x7dbl",
                (
                    _conv("branch7x7dbl_1", c7, 1),
                    _conv("branch7x7dbl_2", c7, n, 1),
                    _conv("branch7x7dbl_3", c7, 1, n),
                    _conv("branch7x7dbl_4", c7, n, 1),
                    _conv("branch7x7dbl_5", self.branch7x7dbl_5, 1, n),
                ),
            ),
            Branch("b4", "branch_pool", (AVG_POOL, _conv("branch_pool", self.branch_pool, 1))),
        )


@dataclass(frozen=True)
class InceptionDSpec(_Kind):
    """D, grid reduction 17 → 8: 1×1 → 3×3/2; 1×1 → 1×7 → 7×1 → 3×3/2; 3×3/2 max-pool."""

    KIND: ClassVar[str] = "D"
    BLOCK: ClassVar[str] = "Mixed_7a"
    DEFAULT_INPUT: ClassVar[tuple[int, int, int]] = (768, 17, 17)
    TITLE: ClassVar[str] = "D (grid reduction 17 → 8)"
    branch3x3_1: int = 192
    branch3x3_2: int = 320
    branch7x7x3_1: int = 192
    branch7x7x3_2: int = 192
    branch7x7x3_3: int = 192
    branch7x7x3_4: int = 192

    def branches(self) -> tuple[Branch, ...]:
        return (
            Branch(
                "b1",
                "branch3x3",
                (_conv("branch3x3_1", self.branch3x3_1, 1), _conv("branch3x3_2", self.branch3x3_2, 3, stride=2)),
            ),
            Branch(
                "b2",
                "branch7x7x3",
                (
                    _conv("branch7x7x3_1", self.branch7x7x3_1, 1),
                    _conv("branch7x7x3_2", self.branch7x7x3_2, 1, 7),
                    _conv("branch7x7x3_3", self.branch7x7x3_3, 7, 1),
                    _conv("branch7x7x3_4", self.branch7x7x3_4, 3, stride=2),
                ),
            ),
            Branch("b3", "branch_pool", (MAX_POOL,)),
        )


@dataclass(frozen=True)
class InceptionESpec(_Kind):
    """E (8×8), the expanded filter bank: 1×1; 1×1 → (1×3 ‖ 3×1); 1×1 → 3×3 → (1×3 ‖ 3×1); 3×3 avg-pool → 1×1.
    ‖: the two halves read the same input and are concatenated."""

    KIND: ClassVar[str] = "E"
    BLOCK: ClassVar[str] = "Mixed_7b"
    DEFAULT_INPUT: ClassVar[tuple[int, int, int]] = (1280, 8, 8)
    TITLE: ClassVar[str] = "E (8×8, expanded filter bank)"
    branch1x1: int = 320
    branch3x3_1: int = 384
    branch3x3_2a: int = 384
    branch3x3_2b: int = 384
    branch3x3dbl_1: int = 448
    branch3x3dbl_2: int = 384
    branch3x3dbl_3a: int = 384
    branch3x3dbl_3b: int = 384
    branch_pool: int = 192

    def branches(self) -> tuple[Branch, ...]:
        return (
            Branch("b1", "branch1x1", (_conv("branch1x1", self.branch1x1, 1),)),
            Branch(
                "b2",
                "branch3x3",
                (_conv("branch3x3_1", self.branch3x3_1, 1),),
                (_conv("branch3x3_2a", self.branch3x3_2a, 1, 3), _conv("branch3x3_2b", self.branch3x3_2b, 3, 1)),
            ),
            Branch(
                "b3",
                "branch3x3dbl",
                (_conv("branch3x3dbl_1", self.branch3x3dbl_1, 1), _conv("branch3x3dbl_2", self.branch3x3dbl_2, 3)),
                (
                    _conv("branch3x3dbl_3a", self.branch3x3dbl_3a, 1, 3),
                    _conv("branch3x3dbl_3b", self.branch3x3dbl_3b, 3, 1),
                ),
            ),
            Branch("b4", "branch_pool", (AVG_POOL, _conv("branch_pool", self.branch_pool, 1))),
        )


KindSpec = InceptionASpec | InceptionBSpec | InceptionCSpec | InceptionDSpec | InceptionESpec
KIND_SPECS: dict[str, type] = {
    "A": InceptionASpec,
    "B": InceptionBSpec,
    "C": InceptionCSpec,
    "D": InceptionDSpec,
    "E": InceptionESpec,
}


def kind_fields(kind: str) -> tuple[str, ...]:
    """The fields a kind's spec has (v1: BlockSpec's)."""
    if kind == "v1":
        return tuple(f.name for f in dataclasses.fields(BlockSpec))
    return _kind_class(kind).fields()


def _kind_class(kind: Any) -> type:
    if not isinstance(kind, str) or kind not in KIND_SPECS:
        raise SpecError(f"unknown block kind {_show(kind)}; choose one of {', '.join(KINDS)}")
    return KIND_SPECS[kind]


def default_kind(kind: str) -> KindSpec:
    """torchvision's first block of this kind (`KIND.BLOCK`)."""
    return _kind_class(kind)()


def kind_with(spec: KindSpec, values: dict[str, Any]) -> KindSpec:
    """A copy with some fields changed, validated; a field the kind lacks is named with the kind's fields."""
    unknown = [k for k in values if k not in spec.fields()]
    if unknown:
        raise SpecError(
            f"block kind {spec.KIND} has no field {_show(unknown[0])}; its fields are {', '.join(spec.fields())}"
        )
    return dataclasses.replace(spec, **values).validate()


def kind_from_dict(d: Any) -> KindSpec:
    """Untrusted JSON-like data ({"kind": "C", "c7": 160, ...}; missing fields take the defaults) → a valid spec."""
    if not isinstance(d, dict):
        raise SpecError("a block kind spec must be a JSON object")
    cls = _kind_class(d.get("kind"))
    rest = {k: v for k, v in d.items() if k != "kind"}
    _check_keys(rest, cls.fields(), f"block kind {cls.KIND}")
    return cls(**rest).validate()


def kind_to_json(spec: KindSpec) -> str:
    return json.dumps(spec.to_dict())


def kind_from_json(text: str | bytes) -> KindSpec:
    return kind_from_dict(_parse_json(text))


# ---------------------------------------------------------------------------
# Links: a v3 block design in a URL query ("kind=C&in=768,17,17&c7=160&n=5"; fields left out are the defaults)


def query_keys() -> set[str]:
    """Every key a v3 design's link can hold (the Block Designer removes them when it shows a v1 block)."""
    return {"kind", "in", *(f for cls in KIND_SPECS.values() for f in cls.fields())}


def kind_to_query(spec: KindSpec, in_shape: Shape) -> dict[str, str]:
    default = default_kind(spec.KIND)
    changed = {f: str(getattr(spec, f)) for f in spec.fields() if getattr(spec, f) != getattr(default, f)}
    return {"kind": spec.KIND, "in": ",".join(map(str, in_shape)), **changed}


def _digits(key: str, text: Any) -> int:
    text = text[-1] if isinstance(text, (list, tuple)) and text else text
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 9:
        raise SpecError(f"link parameter {key} must be a whole number written with the digits 0-9, got {_show(text)}")
    return int(text)


def kind_from_query(params: dict[str, Any]) -> tuple[KindSpec, Shape] | None:
    """The v3 design in a query, None when it names no v3 kind; SpecError naming the parameter otherwise."""
    kind = params.get("kind")
    kind = kind[-1] if isinstance(kind, (list, tuple)) and kind else kind
    if kind is None or kind == "v1":
        return None
    spec = default_kind(kind)  # SpecError for an unknown kind
    values = {f: _digits(f, params[f]) for f in spec.fields() if f in params}
    text = params.get("in", ",".join(map(str, spec.DEFAULT_INPUT)))
    text = text[-1] if isinstance(text, (list, tuple)) and text else text
    parts = text.split(",") if isinstance(text, str) else []
    if len(parts) != 3:
        raise SpecError(f"link parameter in must be C,H,W, got {_show(text)}")
    shape = tuple(_digits("in", p) for p in parts)
    spec = kind_with(spec, values)
    block_plan_steps(spec, shape)  # the input must suit the kind
    return spec, shape


# ---------------------------------------------------------------------------
# Plans: the steps inside one block, then the network


def _axes(rf: tuple[ReceptiveField, ReceptiveField] | None, x: Layer | ConvSpec | PoolSpec):
    if rf is None:
        return None
    if isinstance(x, Layer):
        (kh, kw), s, (ph, pw) = x.kernel, x.stride, x.padding
    else:
        kh = kw = x.kernel
        s, ph = x.stride, x.padding
        pw = ph
    return rf[0].through(kh, s, ph), rf[1].through(kw, s, pw)


def _union(fields: list[tuple[ReceptiveField, ReceptiveField]]) -> tuple[ReceptiveField, ReceptiveField]:
    h, w = fields[0]
    for fh, fw in fields[1:]:
        h, w = h.union(fh), w.union(fw)
    return h, w


RF2 = tuple[ReceptiveField, ReceptiveField]  # (height, width)


def _step(
    path: str,
    kind: str,
    spec: Any,
    in_shape: Shape,
    out_shape: Shape,
    block: str | None,
    branch: str | None,
    rf: RF2 | None,
    **kw: Any,
) -> Step:
    """A plan step with a field per axis (rf_w only where it differs: square layers read as GoogLeNet's do)."""
    h, w = rf if rf else (None, None)
    return Step(
        path=path,
        kind=kind,
        spec=spec,
        in_shape=in_shape,
        out_shape=out_shape,
        block=block,
        branch=branch,
        rf=h,
        rf_w=w if w != h else None,
        **kw,
    )


def _layer_step(
    x: Layer, prefix: str, shape: Shape, block, branch, rf, half: str | None = None
) -> tuple[Step, Shape, Any]:
    c, h, w = shape
    oh = conv_out(h, x.kernel[0], x.stride, x.padding[0])
    ow = conv_out(w, x.kernel[1], x.stride, x.padding[1])
    out = (x.out_channels, oh, ow)
    rf = _axes(rf, x)
    if x.kind == CONV:
        spec: Any = ConvHW(x.out_channels, x.kernel, x.stride, x.padding)
        return (
            _step(f"{prefix}{x.name}", CONV, spec, shape, out, block, branch, rf, batch_norm=True, half=half),
            out,
            rf,
        )
    pool = PoolSpec(x.kernel[0], x.stride, x.padding[0])
    return _step(f"{prefix}{x.name}", x.kind, pool, shape, out, block, branch, rf, virtual=True), out, rf


def kind_steps(
    spec: KindSpec,
    in_shape: Shape,
    prefix: str = "",
    rf: tuple[ReceptiveField, ReceptiveField] | None = (PIXEL, PIXEL),
    block: str | None = None,
) -> list[Step]:
    """The branch and layer steps inside one v3 block (not the block's own step), module paths under
    `prefix`. A branch of more than one layer gets a virtual BRANCH step before its layers."""
    steps: list[Step] = []
    for b in spec.layout(in_shape[0]):
        inner: list[Step] = []
        shape, r = in_shape, rf
        for x in b.layers:
            st, shape, r = _layer_step(x, prefix, shape, block, b.key, r)
            inner.append(st)
        if b.halves:
            halves = [_layer_step(x, prefix, shape, block, b.key, r, half="ab"[i]) for i, x in enumerate(b.halves)]
            inner += [h[0] for h in halves]
            shape = (sum(h[1][0] for h in halves), *halves[0][1][1:])
            r = None if r is None else _union([h[2] for h in halves])  # each half widens along its own axis
        if len(inner) > 1 and b.name != b.layers[-1].name:  # branch_pool: its 1×1 conv is the branch's output
            steps.append(_step(f"{prefix}{b.name}", BRANCH, None, in_shape, shape, block, b.key, r, virtual=True))
        steps += inner
    return steps


def _block_rf(steps: list[Step]) -> tuple[ReceptiveField, ReceptiveField] | None:
    outputs: dict[str, Step] = {}
    for s in steps:  # a branch's output: its container step if it has one, else its last layer
        if s.half is None and (s.branch not in outputs or outputs[s.branch].kind != BRANCH):
            outputs[s.branch] = s
    fields = [s.rf_hw for s in outputs.values()]
    if any(f is None for f in fields):
        return None
    return _union(fields)


def block_plan_steps(spec: KindSpec, in_shape: Shape) -> tuple[list[Step], Shape]:
    """One v3 block on its own: its inner steps and its output shape; SpecError for a bad spec or input."""
    c, h, w = _check_input(in_shape)
    spec.validate()
    oh, ow = spec.out_hw((h, w))
    if oh < 1 or ow < 1:
        raise SpecError(f"block kind {spec.KIND} needs an input of at least 3×3 (its stride-2 3×3), got {h}×{w}")
    steps = kind_steps(spec, (c, h, w))
    return steps, (spec.out_channels_for(c), oh, ow)


def kind_report(spec: KindSpec, in_shape: Shape) -> BlockReport:
    """Per-branch output shapes and costs of one v3 block at an input (C, H, W) (E's halves included)."""
    steps, out_shape = block_plan_steps(spec, in_shape)
    return steps_block_report(spec, tuple(in_shape), steps, out_shape)


# ---------------------------------------------------------------------------
# What a factorisation buys, computed from a spec


@dataclass(frozen=True)
class Option:
    label: str
    cost: Cost
    note: str = ""


@dataclass(frozen=True)
class Saving:
    """One argument of the v3 paper, with this block's numbers: options[0] is the baseline."""

    title: str
    options: tuple[Option, ...]
    explanation: str = ""

    def saved(self, i: int = 1, metric: str = "multiplications") -> float:
        """The share of the baseline's cost that option i does without (negative: it costs more)."""
        base = getattr(self.options[0].cost, metric)
        return 1 - getattr(self.options[i].cost, metric) / base if base else 0.0


def _bn_conv(c_in: int, c_out: int, kernel: tuple[int, int], hw: tuple[int, int]) -> Cost:
    return conv_cost(c_in, c_out, kernel, hw, bias=False, batch_norm=True)


def _stack(widths: list[int], kernels: list[tuple[int, int]], hw: tuple[int, int]) -> Cost:
    """Convs in a row: widths[i] → widths[i + 1] with kernels[i], all at the same H×W."""
    return total(_bn_conv(a, b, k, hw) for a, b, k in zip(widths, widths[1:], kernels))


def _arrow(widths: list[int]) -> str:
    return "→".join(map(str, widths))


def _n_by_n(n: int, c: int, hw: tuple[int, int]) -> Saving:
    return Saving(
        f"{n}×{n} against 1×{n} + {n}×1, at equal width ({c} channels, {hw[0]}×{hw[1]})",
        (
            Option(f"one {n}×{n} conv {_arrow([c, c])}", _stack([c, c], [(n, n)], hw)),
            Option(f"1×{n} then {n}×1 {_arrow([c, c, c])}", _stack([c, c, c], [(1, n), (n, 1)], hw)),
        ),
        f"{n}² = {n * n} weights per channel pair against 2×{n} = {2 * n}: the same {n}×{n} field with "
        f"1 − {2 * n}/{n * n} = {1 - 2 / n:.0%} fewer multiplications.",
    )


def factorisation_savings(spec: KindSpec, in_shape: Shape) -> list[Saving]:
    """What each factorisation of this kind buys, at this block's input (C, H, W)."""
    c, h, w = in_shape
    hw = (h, w)
    out: list[Saving] = []
    if isinstance(spec, InceptionASpec):
        k = spec.branch5x5_2
        out.append(
            Saving(
                f"5×5 against two 3×3, at equal width ({k} channels, {h}×{w})",
                (
                    Option(f"one 5×5 conv {_arrow([k, k])}", _stack([k, k], [(5, 5)], hw)),
                    Option(f"two 3×3 convs {_arrow([k, k, k])}", _stack([k, k, k], [(3, 3), (3, 3)], hw)),
                ),
                "25 weights per channel pair against 2 × 9 = 18 for the same 5×5 field (and one more ReLU).",
            )
        )
        r, o = spec.branch5x5_1, spec.branch5x5_2
        out.append(
            Saving(
                "this block's b2, as torchvision builds it (a 5×5; the paper's figure 5 draws two 3×3, "
                "pytorch/vision#798)",
                (
                    Option(f"b2's 5×5 {_arrow([r, o])} (branch5x5_2)", _stack([r, o], [(5, 5)], hw)),
                    Option(f"two 3×3 {_arrow([r, o, o])}", _stack([r, o, o], [(3, 3), (3, 3)], hw)),
                ),
            )
        )
        r, m, o = spec.branch3x3dbl_1, spec.branch3x3dbl_2, spec.branch3x3dbl_3
        out.append(
            Saving(
                "this block's b3: two 3×3 where GoogLeNet had one 5×5",
                (
                    Option(f"one 5×5 {_arrow([r, o])}", _stack([r, o], [(5, 5)], hw)),
                    Option(
                        f"b3's two 3×3 {_arrow([r, m, o])} (branch3x3dbl_2, _3)", _stack([r, m, o], [(3, 3)] * 2, hw)
                    ),
                ),
            )
        )
    elif isinstance(spec, InceptionCSpec):
        n, c7 = spec.n, spec.c7
        out.append(_n_by_n(n, c7, hw))
        o = spec.branch7x7_3
        out.append(
            Saving(
                f"this block's b2: 1×{n} → {n}×1 in place of one {n}×{n}",
                (
                    Option(f"one {n}×{n} {_arrow([c7, o])}", _stack([c7, o], [(n, n)], hw)),
                    Option(
                        f"b2's 1×{n} → {n}×1 {_arrow([c7, c7, o])} (branch7x7_2, _3)",
                        _stack([c7, c7, o], [(1, n), (n, 1)], hw),
                    ),
                ),
            )
        )
        o = spec.branch7x7dbl_5
        out.append(
            Saving(
                f"this block's b3: four one-axis convs in place of two {n}×{n}",
                (
                    Option(f"two {n}×{n} {_arrow([c7, c7, o])}", _stack([c7, c7, o], [(n, n)] * 2, hw)),
                    Option(
                        f"b3's {n}×1 → 1×{n} → {n}×1 → 1×{n} {_arrow([c7, c7, c7, c7, o])}",
                        _stack([c7, c7, c7, c7, o], [(n, 1), (1, n), (n, 1), (1, n)], hw),
                    ),
                ),
            )
        )
    elif isinstance(spec, InceptionESpec):
        k = spec.branch3x3_1
        out.append(_n_by_n(3, k, hw))
        a, b = spec.branch3x3_2a, spec.branch3x3_2b
        out.append(
            Saving(
                "the expanded filter bank: b2's 1×3 and 3×1 side by side, against one 3×3 of the same width",
                (
                    Option(f"one 3×3 {_arrow([k, a + b])}", _stack([k, a + b], [(3, 3)], hw)),
                    Option(
                        f"1×3 {_arrow([k, a])} ‖ 3×1 {_arrow([k, b])} (branch3x3_2a, _2b), concatenated",
                        _bn_conv(k, a, (1, 3), hw) + _bn_conv(k, b, (3, 1), hw),
                    ),
                ),
                "Side by side, not stacked: each half sees only its own axis (a 1×3 or a 3×1 field after the 1×1), "
                "so the split buys width at 8×8, where the paper wants high-dimensional representations, not a "
                "3×3 field.",
            )
        )
    else:  # B, D: the grid-reduction argument
        report = kind_report(spec, in_shape)
        c_out, oh, ow = report.output_shape
        pooled = (pool_out(h, 3, 2, 0, False), pool_out(w, 3, 2, 0, False))
        out.append(
            Saving(
                f"grid reduction {h}×{w}×{c} → {oh}×{ow}×{c_out}",
                (
                    Option(
                        f"convolve first: 3×3 conv {_arrow([c, c_out])} at {h}×{w}, then 3×3/2 max-pool",
                        _bn_conv(c, c_out, (3, 3), hw),
                        "the expensive one: the conv runs on the full grid",
                    ),
                    Option(
                        f"pool first: 3×3/2 max-pool to {pooled[0]}×{pooled[1]}, then 3×3 conv {_arrow([c, c_out])}",
                        _bn_conv(c, c_out, (3, 3), pooled),
                        f"cheap, but a representational bottleneck: the grid shrinks while the map still has only "
                        f"{c} channels ({c * pooled[0] * pooled[1]:,} values in between)",
                    ),
                    Option(
                        "v3's parallel stride-2 branches (this block): " + " ‖ ".join(b.label for b in report.branches),
                        report.cost,
                        "the pool and the stride-2 convs run side by side and are concatenated: no bottleneck, "
                        + (
                            "and cheaper than pooling first here"
                            if report.cost.multiplications < _bn_conv(c, c_out, (3, 3), pooled).multiplications
                            else "at a cost between the two"
                        ),
                    ),
                ),
            )
        )
        if isinstance(spec, InceptionDSpec):
            out.append(_n_by_n(7, spec.branch7x7x3_2, hw))
    return out


def _check_input(shape: Any) -> Shape:
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise SpecError(f"input shape must be (channels, height, width), got {_show(shape)}")
    c, h, w = shape
    _check_int("input channels", c, 1, MAX_CHANNELS)
    _check_int("input height", h, 1, MAX_SPATIAL)
    _check_int("input width", w, 1, MAX_SPATIAL)
    return c, h, w


# ---------------------------------------------------------------------------
# The network


STEM: tuple[tuple[str, ConvSpec | PoolSpec], ...] = (
    ("Conv2d_1a_3x3", ConvSpec(32, 3, 2)),
    ("Conv2d_2a_3x3", ConvSpec(32, 3)),
    ("Conv2d_2b_3x3", ConvSpec(64, 3, 1, 1)),
    ("maxpool1", PoolSpec(3, 2)),
    ("Conv2d_3b_1x1", ConvSpec(80, 1)),
    ("Conv2d_4a_3x3", ConvSpec(192, 3)),
    ("maxpool2", PoolSpec(3, 2)),
)
AUX_NAME = "AuxLogits"


def _imagenet_blocks() -> tuple[tuple[str, KindSpec], ...]:
    a, c = InceptionASpec, InceptionCSpec
    return (
        ("Mixed_5b", a()),
        ("Mixed_5c", a(branch_pool=64)),
        ("Mixed_5d", a(branch_pool=64)),
        ("Mixed_6a", InceptionBSpec()),
        ("Mixed_6b", c(c7=128)),
        ("Mixed_6c", c(c7=160)),
        ("Mixed_6d", c(c7=160)),
        ("Mixed_6e", c(c7=192)),
        ("Mixed_7a", InceptionDSpec()),
        ("Mixed_7b", InceptionESpec()),
        ("Mixed_7c", InceptionESpec()),
    )


@dataclass(frozen=True)
class InceptionV3Spec:
    """An Inception v3 network: torchvision's stem, Mixed blocks of kinds A–E, an optional aux head
    (torchvision's InceptionAux: 5×5/3 avg-pool, 1×1 conv 128, 5×5 conv 768, global avg-pool, FC) after
    `aux_block`, global average pool, dropout, FC.

    transform_input=True is torchvision's remapping of ImageNet-normalised input for the ported weights."""

    name: str
    in_channels: int = 3
    input_size: tuple[int, int] = (299, 299)
    num_classes: int = 1000
    blocks: tuple[tuple[str, KindSpec], ...] = ()
    aux: bool = True
    aux_block: str = "Mixed_6e"
    dropout: float = 0.5
    transform_input: bool = False
    description: str = ""
    stem: tuple[tuple[str, ConvSpec | PoolSpec], ...] = STEM

    family: ClassVar[str] = "inception-v3"

    def __post_init__(self) -> None:
        _normalise(self, "in_channels", "num_classes")
        if isinstance(self.input_size, list):
            object.__setattr__(self, "input_size", tuple(self.input_size))
        for name in ("blocks", "stem"):
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(tuple(x) for x in v))

    def block_names(self) -> list[str]:
        return [n for n, _ in self.blocks]

    def aux_blocks(self) -> tuple[str, ...]:
        return (self.aux_block,) if self.aux else ()

    def validate_fields(self) -> InceptionV3Spec:
        check_network_fields(self.name, self.in_channels, self.input_size, self.num_classes)  # a list is a tuple here
        if not isinstance(self.stem, tuple) or len(self.stem) > 32:
            raise SpecError("stem must be a list of at most 32 [name, layer] pairs")
        for item in self.stem:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (ConvSpec, PoolSpec))):
                raise SpecError("each stem layer must be a [name, conv or max-pool] pair")
            item[1].validate(f"stem layer {item[0]}")
        if not isinstance(self.blocks, tuple) or not self.blocks:
            raise SpecError("an Inception v3 network needs at least one block")
        check_blocks(self.blocks, _Kind, "a block kind spec")
        if self.aux and self.aux_block not in self.block_names():
            raise SpecError(f"the aux head attaches to {self.aux_block}, which this network lacks")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise SpecError(f"dropout must be a number from 0 up to (not including) 1, got {_show(self.dropout)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "name": self.name,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            "num_classes": self.num_classes,
            "stem": [
                [n, {"type": "conv" if isinstance(x, ConvSpec) else "maxpool", **dataclasses.asdict(x)}]
                for n, x in self.stem
            ],
            "blocks": [[n, b.to_dict()] for n, b in self.blocks],
            "aux": self.aux,
            "aux_block": self.aux_block,
            "dropout": self.dropout,
            "transform_input": self.transform_input,
            "description": self.description,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_dict(d: Any) -> InceptionV3Spec:
        if not isinstance(d, dict) or d.get("family") != InceptionV3Spec.family:
            raise SpecError('an Inception v3 spec is a JSON object with "family": "inception-v3"')
        d = {k: v for k, v in d.items() if k != "family"}
        _check_keys(d, tuple(f.name for f in dataclasses.fields(InceptionV3Spec)), "Inception v3 spec")
        try:
            # the layers are read from copies: the caller's dict (a checkpoint's, a run's config) stays as it was
            stem = tuple(_stem_layer(n, x) for n, x in d.pop("stem")) if "stem" in d else STEM
            blocks = tuple((n, kind_from_dict(b)) for n, b in d.pop("blocks", []))
        except (TypeError, ValueError, AttributeError) as e:
            if isinstance(e, SpecError):
                raise
            raise SpecError(f"stem and blocks must be lists of [name, object] pairs: {e}") from None
        return InceptionV3Spec(**d, stem=stem, blocks=blocks).validate_fields()

    @staticmethod
    def from_json(text: str | bytes) -> InceptionV3Spec:
        return InceptionV3Spec.from_dict(_parse_json(text))


def _stem_layer(name: str, x: Any) -> tuple[str, ConvSpec | PoolSpec]:
    if not isinstance(x, dict) or x.get("type") not in ("conv", "maxpool"):
        raise SpecError(f'stem layer {_show(name)} must be an object with "type": "conv" or "maxpool"')
    fields = {k: v for k, v in x.items() if k != "type"}
    return name, (ConvSpec if x["type"] == "conv" else PoolSpec)(**fields)


def inception_v3_imagenet(aux: bool = True) -> InceptionV3Spec:
    """torchvision's inception_v3 as built for IMAGENET1K_V1: aux head, transform_input, dropout 0.5."""
    return InceptionV3Spec(
        name="inception-v3-imagenet" if aux else "inception-v3-imagenet-noaux",
        blocks=_imagenet_blocks(),
        aux=aux,
        transform_input=True,
        description="torchvision's Inception v3 for ImageNet (299×299, 1000 classes), with its aux head.",
    )


def mini_v3() -> InceptionV3Spec:
    """A small Inception v3 that trains on a CPU: one block of each kind A–E at CIFAR size, with the aux head.

    torchvision's aux head needs a 17×17 map (after its 5×5/3 pool, a 5×5 conv): the stem keeps the input's size
    and B halves it, so the input is at least 35×35; at 36×36 B gives 17×17 and D 8×8. Channels are about a tenth of torchvision's."""
    return InceptionV3Spec(
        name="mini-v3",
        input_size=(36, 36),
        num_classes=10,
        stem=(("Conv2d_1a_3x3", ConvSpec(24, 3, 1, 1)), ("Conv2d_2b_3x3", ConvSpec(32, 3, 1, 1))),
        blocks=(
            ("Mixed_5b", InceptionASpec(16, 16, 24, 16, 24, 24, 16)),
            ("Mixed_6a", InceptionBSpec(64, 16, 24, 24)),
            ("Mixed_6b", InceptionCSpec(48, 24, 48, 48, 48)),
            ("Mixed_7a", InceptionDSpec(48, 64, 48, 48, 48, 48)),
            ("Mixed_7b", InceptionESpec(48, 48, 48, 48, 64, 48, 48, 48, 48)),
        ),
        aux=True,
        aux_block="Mixed_6b",
        dropout=0.2,
        description="A small Inception v3 for 32×32 datasets (trained at 36×36): one block of each kind A–E, "
        "with the aux head after the 17×17 block.",
    )


V3_PRESETS = {"inception-v3-imagenet": inception_v3_imagenet, "mini-v3": mini_v3}


def network_from_dict(d: Any) -> NetworkSpec | InceptionV3Spec:
    """A GoogLeNet NetworkSpec or an InceptionV3Spec from its dict (a checkpoint's or a run's), by its "family"."""
    if isinstance(d, dict) and d.get("family") == InceptionV3Spec.family:
        return InceptionV3Spec.from_dict(d)
    return NetworkSpec.from_dict(d)


def network_from_json(text: str | bytes) -> NetworkSpec | InceptionV3Spec:
    return network_from_dict(_parse_json(text))


def v3_plan(spec: InceptionV3Spec) -> Plan:
    """Validate an Inception v3 spec and plan every step, in module order (torchvision registers
    AuxLogits between Mixed_6e and Mixed_7a; it runs on Mixed_6e's output, in training only)."""
    spec.validate_fields()
    steps: list[Step] = []
    c, (h, w) = spec.in_channels, spec.input_size
    rf: tuple[ReceptiveField, ReceptiveField] | None = (PIXEL, PIXEL)

    def too_small(name: str, oh: int, ow: int) -> SpecError:
        return SpecError(
            f"input {spec.input_size[0]}×{spec.input_size[1]} is too small: {name} would output "
            f"{max(oh, 0)}×{max(ow, 0)}; torchvision's Inception v3 needs at least 75×75"
        )

    for name, x in spec.stem:
        if isinstance(x, ConvSpec):
            oh, ow = (conv_out(v, x.kernel, x.stride, x.padding) for v in (h, w))
            kind, out_c = CONV, x.out_channels
            sp: Any = ConvHW(x.out_channels, (x.kernel, x.kernel), x.stride, (x.padding, x.padding))
        else:
            oh, ow = (pool_out(v, x.kernel, x.stride, x.padding, x.ceil_mode) for v in (h, w))
            kind, out_c, sp = MAXPOOL, c, x
        if oh < 1 or ow < 1:
            raise too_small(name, oh, ow)
        rf = _axes(rf, x)
        steps.append(_step(name, kind, sp, (c, h, w), (out_c, oh, ow), None, None, rf, batch_norm=kind == CONV))
        c, h, w = out_c, oh, ow
    for name, b in spec.blocks:
        oh, ow = b.out_hw((h, w))
        if oh < 1 or ow < 1:
            raise too_small(name, oh, ow)
        inner = kind_steps(b, (c, h, w), prefix=f"{name}.", rf=rf, block=name)
        rf = _block_rf(inner)
        out = (b.out_channels_for(c), oh, ow)
        steps.append(_step(name, BLOCK, b, (c, h, w), out, name, None, rf))
        steps += inner
        if spec.aux and name == spec.aux_block:
            steps += _aux_steps(spec, (*out,), rf)
        c, h, w = out
    grf = None if rf is None or h != w else _axes(rf, PoolSpec(h, h))  # global pooling of a square map
    steps.append(_step("avgpool", ADAPTIVE_AVGPOOL, (1, 1), (c, h, w), (c, 1, 1), None, None, grf))
    steps.append(_step("dropout", DROPOUT, spec.dropout, (c,), (c,), None, None, grf))
    steps.append(_step("fc", LINEAR, spec.num_classes, (c,), (spec.num_classes,), None, None, grf))
    return Plan(spec, tuple(steps), aux_map=((spec.aux_block, AUX_NAME),) if spec.aux else ())


def _aux_steps(spec: InceptionV3Spec, shape: Shape, rf) -> list[Step]:
    """torchvision's InceptionAux: F.avg_pool2d 5/3, conv0 1×1 → 128, conv1 5×5 → 768, F.adaptive_avg_pool2d 1,
    fc. Its conv1 needs a 5×5 map after the pool, i.e. a 17×17 block output (any 17..19)."""
    c, h, w = shape
    ph, pw = conv_out(h, 5, 3, 0), conv_out(w, 5, 3, 0)
    if ph < 5 or pw < 5:
        raise SpecError(
            f"input {spec.input_size[0]}×{spec.input_size[1]} is too small for the aux head (it runs in training): "
            f"it needs at least 17×17 at {spec.aux_block} (torchvision's 299×299 input), got {h}×{w}"
        )
    n = AUX_NAME
    prf = _axes(rf, PoolSpec(5, 3))
    crf = _axes(prf, ConvSpec(768, 5))
    oh, ow = ph - 4, pw - 4
    grf = _axes(crf, PoolSpec(oh, oh)) if oh == ow else None  # global pooling of a square map
    k = spec.num_classes
    return [
        _step(n, AUX, None, shape, (k,), None, None, grf),
        _step(f"{n}.avg_pool2d", AVGPOOL, PoolSpec(5, 3), shape, (c, ph, pw), None, None, prf, virtual=True),
        _step(f"{n}.conv0", CONV, ConvHW(128, (1, 1)), (c, ph, pw), (128, ph, pw), None, None, prf, batch_norm=True),
        _step(f"{n}.conv1", CONV, ConvHW(768, (5, 5)), (128, ph, pw), (768, oh, ow), None, None, crf, batch_norm=True),
        _step(
            f"{n}.adaptive_avg_pool2d",
            ADAPTIVE_AVGPOOL,
            (1, 1),
            (768, oh, ow),
            (768, 1, 1),
            None,
            None,
            grf,
            virtual=True,
        ),
        _step(f"{n}.fc", LINEAR, k, (768,), (k,), None, None, grf),
    ]


__all__ = [
    "KINDS",
    "MODELS",
    "KIND_SPECS",
    "ConvHW",
    "Layer",
    "Branch",
    "InceptionASpec",
    "InceptionBSpec",
    "InceptionCSpec",
    "InceptionDSpec",
    "InceptionESpec",
    "InceptionV3Spec",
    "KindSpec",
    "default_kind",
    "kind_with",
    "kind_fields",
    "kind_from_dict",
    "kind_from_json",
    "kind_to_json",
    "kind_steps",
    "block_plan_steps",
    "kind_report",
    "kind_to_query",
    "kind_from_query",
    "query_keys",
    "factorisation_savings",
    "Saving",
    "Option",
    "inception_v3_imagenet",
    "mini_v3",
    "network_from_dict",
    "network_from_json",
    "v3_plan",
    "V3_PRESETS",
    "STEM",
]
