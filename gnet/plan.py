"""The one layer plan: every module of a GoogLeNet, in order, with its shapes and receptive field.

`layer_plan(spec)` walks a `NetworkSpec` once, without torch, and returns a `Plan`:
one `Step` per module of the built network (`gnet.network.GoogLeNet`), named as
torchvision names them (`conv1`, `inception3a.branch2.1`, `aux1.fc2`). Everything
that walks a network reads it: the cost analysis, the module builder, code export,
the Feature Maps layer list and the pages, so they can never disagree.

Order: steps come in module order, i.e. the order of `named_modules()` of the built
module (torchvision's registration order; containers before their children). That is
the forward order too, except that the auxiliary heads, registered after the last
block, run right after their block (`Plan.aux_after`).

A conv step is a whole conv → (BatchNorm) → ReLU unit (`ConvBlock`, torchvision's
BasicConv2d): its `.conv`/`.bn` children are not steps.

Receptive fields follow Araujo, Norouzi and Kornblith, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019, in input-pixel index coordinates: the
first input pixel's centre is 0. A layer with kernel k, stride s and padding p maps
(size r, jump j, start c) to (r + (k-1)·j, j·s, c + ((k-1)/2 - p)·j); ceil_mode only
adds output units at the far edge and does not change the formula. An Inception
block's output unit sees the union of its branches' fields (all are centred on the
same pixel: every branch layer has stride 1 and (k-1)/2 == p), so the block's field
is the widest branch's. The field is the theoretical one: it may hang over the
image edge, where padding is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gnet.spec import BRANCHES, MAX_SPATIAL, BlockSpec, ConvSpec, NetworkSpec, PoolSpec, SpecError

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (features,) after flattening

# Step kinds, and what their `spec` is.
CONV = "conv"  # ConvSpec; batch_norm says BatchNorm (no conv bias) or conv bias
MAXPOOL = "maxpool"  # PoolSpec
AVGPOOL = "avgpool"  # PoolSpec (the paper's aux-head 5×5/3 average pool)
ADAPTIVE_AVGPOOL = "adaptive_avgpool"  # (H, W) output size
BLOCK = "block"  # BlockSpec
BRANCH = "branch"  # None: an nn.Sequential of the steps below it (a one-layer branch is that layer's step)
AUX = "aux"  # None: an auxiliary classifier, the steps below it
DROPOUT = "dropout"  # float: the drop probability
LINEAR = "linear"  # int: out_features (in_features is the flattened input shape)

AUX_CHANNELS = 128  # the paper's auxiliary head: 1×1 conv to 128 channels, FC 1024
AUX_HIDDEN = 1024


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output unit along one axis, in input pixels (square kernels: both axes alike).

    size: pixels seen; jump: input pixels between neighbouring units (cumulative stride);
    start: centre of the first unit's field (input pixel index; may be fractional or
    lie in the padding)."""

    size: int
    jump: int
    start: float

    def through(self, kernel: int, stride: int, padding: int) -> ReceptiveField:
        """The field after a conv or pool with this geometry (Araujo et al., eq. for r, j and c)."""
        return ReceptiveField(
            self.size + (kernel - 1) * self.jump,
            self.jump * stride,
            self.start + ((kernel - 1) / 2 - padding) * self.jump,
        )

    def centre(self, index: int) -> float:
        return self.start + index * self.jump

    def span(self, index: int) -> tuple[int, int]:
        """First and last input pixel (inclusive) that unit `index` sees; may lie outside the image."""
        half = (self.size - 1) / 2
        return round(self.centre(index) - half), round(self.centre(index) + half)

    def union(self, other: ReceptiveField) -> ReceptiveField:
        """The field of a unit that sees both (same jump: branches of one block)."""
        lo = min(self.start - (self.size - 1) / 2, other.start - (other.size - 1) / 2)
        hi = max(self.start + (self.size - 1) / 2, other.start + (other.size - 1) / 2)
        return ReceptiveField(round(hi - lo) + 1, self.jump, (lo + hi) / 2)


PIXEL = ReceptiveField(1, 1, 0.0)  # an input pixel sees itself


@dataclass(frozen=True, kw_only=True)
class Step:
    """One module of the network."""

    path: str  # torchvision module path: "conv1", "inception3a.branch2.1", "aux1.fc2"
    kind: str  # CONV, MAXPOOL, AVGPOOL, ADAPTIVE_AVGPOOL, BLOCK, BRANCH, AUX, DROPOUT, LINEAR
    spec: ConvSpec | PoolSpec | BlockSpec | tuple[int, int] | float | int | None
    in_shape: Shape
    out_shape: Shape
    block: str | None  # "inception3a" for the block and everything inside it
    branch: str | None  # "b1".."b4" inside a block
    rf: ReceptiveField | None  # None where no (size, jump, start) exists: after unequal adaptive-pool windows
    batch_norm: bool = False  # conv steps: BatchNorm after the conv, and no conv bias
    rf_w: ReceptiveField | None = None  # the field along the width where it differs from `rf` (a 1×7 conv)
    virtual: bool = False  # no module at this path: a functional pool, or a branch that is not an nn.Sequential
    half: str | None = None  # "a"/"b": one of two layers that read the same input and are concatenated

    @property
    def rf_hw(self) -> tuple[ReceptiveField, ReceptiveField] | None:
        """The field along the height and along the width (`rf` is the height's)."""
        return None if self.rf is None else (self.rf, self.rf_w or self.rf)

    @property
    def size_hw(self) -> tuple[int, int] | None:
        return None if self.rf is None else (self.rf_hw[0].size, self.rf_hw[1].size)

    @property
    def jump_hw(self) -> tuple[int, int] | None:
        return None if self.rf is None else (self.rf_hw[0].jump, self.rf_hw[1].jump)

    @property
    def start_hw(self) -> tuple[float, float] | None:
        return None if self.rf is None else (self.rf_hw[0].start, self.rf_hw[1].start)

    @property
    def depth(self) -> int:
        """0 for top-level modules, 1 for a block's branches, 2 for the layers inside a branch."""
        return self.path.count(".")

    @property
    def parent(self) -> str:
        return self.path.rpartition(".")[0]


@dataclass(frozen=True)
class Plan:
    spec: NetworkSpec
    steps: tuple[Step, ...]
    aux_map: tuple[tuple[str, str], ...] = ()  # (block path, aux head path) where the spec's aux_blocks don't say
    _index: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.path: s for s in self.steps})

    @property
    def input_shape(self) -> Shape:
        return (self.spec.in_channels, *self.spec.input_size)

    @property
    def output_shape(self) -> Shape:
        return self.step("fc").out_shape

    def step(self, path: str) -> Step:
        try:
            return self._index[path]
        except KeyError:
            raise KeyError(f"no module {path!r} in this network") from None

    def __contains__(self, path: object) -> bool:
        return path in self._index

    def top_level(self) -> list[Step]:
        return [s for s in self.steps if s.depth == 0]

    def children(self, path: str) -> list[Step]:
        return [s for s in self.steps if s.parent == path and s.path != path]

    def blocks(self) -> list[str]:
        """["inception3a", ..., "inception5b"]"""
        return [s.path for s in self.steps if s.kind == BLOCK]

    def branch_paths(self, block: str) -> dict[str, str]:
        """{"b1": "inception3a.branch1", ...}: the module whose output is each branch's output."""
        out: dict[str, str] = {}
        containers: set[str] = set()
        for s in self.steps:  # a branch's container step if it has one, else its last layer (v3: 1×1 after a pool)
            if s.block == block and s.depth == 1 and s.branch and s.branch not in containers and not s.half:
                out[s.branch] = s.path
                if s.kind == BRANCH:
                    containers.add(s.branch)
        return out

    def branch_layers(self, block: str, branch: str) -> list[Step]:
        """The leaf steps of one branch in forward order (halves, if any, last: `Step.half`)."""
        return [s for s in self.steps if s.block == block and s.branch == branch and s.kind in (CONV, MAXPOOL, AVGPOOL)]

    def branch_steps(self, block: str) -> dict[str, Step]:
        return {b: self.step(p) for b, p in self.branch_paths(block).items()}

    def main_path(self) -> list[str]:
        """Top-level modules from the input to the last block or stage pool, in forward
        order (the feature extractor; no aux heads, no classifier head)."""
        return [s.path for s in self.top_level() if s.kind in (CONV, MAXPOOL, BLOCK)]

    def aux_after(self) -> dict[str, str]:
        """{"inception4a": "aux1", ...}: which block's output each auxiliary head reads."""
        if self.aux_map:
            return dict(self.aux_map)
        return {f"inception{b}": f"aux{i + 1}" for i, b in enumerate(self.spec.aux_blocks())}


# ---------------------------------------------------------------------------
# Labels for people. Inside the library a block or branch is its module path ("inception3a",
# "inception3a.branch2"); pages, charts and the CLI show "3a" and "3a·b2" (the paper's block names, branches
# b1…b4 in concatenation order). These two functions are the only translation between the two.

_BLOCK_PREFIX = re.compile(r"^(inception|Mixed_)")
BRANCH_SEP = "·"


def short_label(block: str, branch: str | None = None) -> str:
    """ "inception3a" → "3a"; with branch "b2" → "3a·b2". Other module paths ("conv1") stay as they are."""
    name = _BLOCK_PREFIX.sub("", block)
    return f"{name}{BRANCH_SEP}{branch}" if branch else name


def parse_label(plan: Plan, text: str) -> tuple[str, str | None]:
    """A block, and optionally a branch, as a person types them → (block module path, branch key or None).
    Accepts "3a", "inception3a", "3a·b2", "3a.b2", "3a/b2" and "inception3a.branch2". KeyError with the
    valid choices for anything else."""
    head, _, tail = re.sub(r"[./ ]", BRANCH_SEP, text.strip()).partition(BRANCH_SEP)
    blocks = {short_label(b): b for b in plan.blocks()}
    block = head if head in plan.blocks() else blocks.get(head)
    if block is None:
        raise KeyError(f"no block {head!r}; choose one of {', '.join(blocks)}")
    if not tail:
        return block, None
    paths = plan.branch_paths(block)
    by_attr = {p.rpartition(".")[2]: b for b, p in paths.items()}
    branch = tail if tail in paths else by_attr.get(tail)
    if branch is None:
        raise KeyError(f"no branch {tail!r} in {short_label(block)}; choose one of {', '.join(paths)}")
    return block, branch


# ---------------------------------------------------------------------------
# Output sizes (the same integer arithmetic as torch; the tests check it over random sizes)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pool_out(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's max-pool output size (ATen's pooling_output_shape), or 0 where torch
    refuses the input. In ceil mode a window may hang over the edge, so a 2-pixel
    input to a 3×3/2 pool gives 1 pixel, as long as the last window starts inside
    the input or its left padding."""
    span = size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return max(out, 0)


def _adaptive_rf(rf: ReceptiveField | None, in_hw: tuple[int, ...], out_hw: tuple[int, int]) -> ReceptiveField | None:
    """An adaptive pool has a (size, jump, start) field only where all its windows are equal
    and alike on both axes: a square map divisible by the output size (global pooling of a
    square map; torchvision's 4×4 aux pool at 16×16, not at 14×14, where windows overlap unevenly)."""
    h, w = in_hw
    if rf is None or h != w or out_hw[0] != out_hw[1] or h % out_hw[0]:
        return None
    k = h // out_hw[0]
    return rf.through(k, k, 0)


# ---------------------------------------------------------------------------
# Blocks


def branch_layers(
    in_channels: int,
    b1: int,
    b2: tuple[int, int],
    b3: tuple[int, int],
    b4: int,
    reduce: bool = True,
    b3_kernel: int = 5,
    factorize: bool = False,
) -> list[list[tuple[str, int, int, int]]]:
    """The four branches of an Inception block, each a list of (kind, in, out, kernel) layers.

    b1: 1×1 conv
    b2 = (reduce, out): 1×1 conv to `reduce` channels, then 3×3 conv to `out`
    b3 = (reduce, out): 1×1 conv, then a b3_kernel×b3_kernel conv
         (factorize=True: two stacked 3×3 convs, the same 5×5 receptive field)
    b4: 3×3 max-pool (stride 1), then 1×1 conv ("pool projection")
    reduce=False is the naive module: b2 and b3 convolve the input directly.
    """
    (b2_reduce, b2_out), (b3_reduce, b3_out) = b2, b3
    head2 = [("conv", in_channels, b2_reduce, 1)] if reduce else []
    head3 = [("conv", in_channels, b3_reduce, 1)] if reduce else []
    b2_in = b2_reduce if reduce else in_channels
    b3_in = b3_reduce if reduce else in_channels
    if factorize:
        tail3 = [("conv", b3_in, b3_out, 3), ("conv", b3_out, b3_out, 3)]
    else:
        tail3 = [("conv", b3_in, b3_out, b3_kernel)]
    return [
        [("conv", in_channels, b1, 1)],
        [*head2, ("conv", b2_in, b2_out, 3)],
        [*head3, *tail3],
        [("maxpool", in_channels, in_channels, 3), ("conv", in_channels, b4, 1)],
    ]


def spec_branch_layers(in_channels: int, spec: BlockSpec) -> dict[str, list[tuple[str, int, int, int]]]:
    """`branch_layers` for a BlockSpec, keyed by branch name."""
    layers = branch_layers(
        in_channels,
        spec.b1,
        (spec.b2_reduce, spec.b2),
        (spec.b3_reduce, spec.b3),
        spec.b4,
        reduce=spec.reduce,
        b3_kernel=spec.b3_kernel,
        factorize=spec.factorize,
    )
    return dict(zip(BRANCHES, layers))


# The pool of branch b4, as torchvision builds it (ceil_mode is a no-op at stride 1).
BRANCH_POOL = PoolSpec(3, 1, padding=1, ceil_mode=True)


def block_steps(
    spec: BlockSpec, in_shape: Shape, prefix: str = "", rf: ReceptiveField | None = PIXEL, block: str | None = None
) -> list[Step]:
    """The branch and layer steps inside one block (not the block's own step), module paths
    under `prefix` ("inception3a." inside a network, "" for a block on its own). Every
    branch keeps H and W ("same" padding, stride 1)."""
    c, h, w = in_shape
    steps: list[Step] = []
    for i, (bname, layers) in enumerate(spec_branch_layers(c, spec).items()):
        path = f"{prefix}branch{i + 1}"
        inner: list[Step] = []
        r = rf
        for j, (kind, c_in, c_out, k) in enumerate(layers):
            sub = path if len(layers) == 1 else f"{path}.{j}"
            r = None if r is None else r.through(k, 1, k // 2)
            if kind == MAXPOOL:
                inner.append(
                    Step(
                        path=sub,
                        kind=MAXPOOL,
                        spec=BRANCH_POOL,
                        in_shape=(c_in, h, w),
                        out_shape=(c_out, h, w),
                        block=block,
                        branch=bname,
                        rf=r,
                    )
                )
            else:
                inner.append(
                    Step(
                        path=sub,
                        kind=CONV,
                        spec=ConvSpec(c_out, k, 1, k // 2),
                        in_shape=(c_in, h, w),
                        out_shape=(c_out, h, w),
                        block=block,
                        branch=bname,
                        rf=r,
                        batch_norm=spec.batch_norm,
                    )
                )
        if len(inner) > 1:  # an nn.Sequential: its own step, before its layers (module order)
            steps.append(
                Step(
                    path=path,
                    kind=BRANCH,
                    spec=None,
                    in_shape=(c, h, w),
                    out_shape=inner[-1].out_shape,
                    block=block,
                    branch=bname,
                    rf=r,
                )
            )
        steps += inner
    return steps


def block_rf(steps: list[Step]) -> ReceptiveField | None:
    """A block's output field: the union of its branches' fields."""
    fields = [s.rf for s in steps if s.depth == steps[0].depth]
    if any(f is None for f in fields):
        return None
    out = fields[0]
    for f in fields[1:]:
        out = out.union(f)
    return out


# ---------------------------------------------------------------------------
# Networks


def layer_plan(spec: NetworkSpec) -> Plan:
    """Validate a network spec's fields and spatial sizes and plan every module.

    A spatial size that reaches 0 raises SpecError naming the layer and the smallest
    square input that works. (Parameter and activation caps are the analysis's: they
    need costs.)"""
    spec.validate_fields()
    steps = _walk(spec, spec.input_size)
    if isinstance(steps, str):
        need = min_input(spec)
        hint = f"; the smallest square input it accepts is {need}×{need}" if need else ""
        raise SpecError(f"input {spec.input_size[0]}×{spec.input_size[1]} is too small: {steps}{hint}")
    return Plan(spec, tuple(steps))


def _walk(spec: NetworkSpec, size: tuple[int, int]) -> list[Step] | str:
    """Every step at an input size, or a message naming the layer where a size reaches 0.

    Walks in forward order (so the first layer to fail is the one named) and emits module
    order: aux heads after the last block."""
    steps: list[Step] = []
    aux_steps: list[Step] = []
    c, (h, w) = spec.in_channels, size
    rf: ReceptiveField | None = PIXEL
    convs = pools = 0

    def pool(p: PoolSpec, where: str) -> str | None:
        nonlocal h, w, pools, rf
        pools += 1
        name = f"maxpool{pools}"
        oh, ow = (pool_out(x, p.kernel, p.stride, p.padding, p.ceil_mode) for x in (h, w))
        if oh < 1 or ow < 1:
            return f"{name} ({where}) would output {max(oh, 0)}×{max(ow, 0)}"
        rf = rf.through(p.kernel, p.stride, p.padding) if rf else None
        steps.append(
            Step(
                path=name,
                kind=MAXPOOL,
                spec=p,
                in_shape=(c, h, w),
                out_shape=(c, oh, ow),
                block=None,
                branch=None,
                rf=rf,
            )
        )
        h, w = oh, ow
        return None

    for layer in spec.stem:
        if isinstance(layer, ConvSpec):
            convs += 1
            name = f"conv{convs}"
            oh, ow = (conv_out(x, layer.kernel, layer.stride, layer.padding) for x in (h, w))
            if oh < 1 or ow < 1:
                return f"{name} would output {max(oh, 0)}×{max(ow, 0)}"
            rf = rf.through(layer.kernel, layer.stride, layer.padding) if rf else None
            steps.append(
                Step(
                    path=name,
                    kind=CONV,
                    spec=layer,
                    in_shape=(c, h, w),
                    out_shape=(layer.out_channels, oh, ow),
                    block=None,
                    branch=None,
                    rf=rf,
                    batch_norm=spec.batch_norm,
                )
            )
            c, h, w = layer.out_channels, oh, ow
        elif (err := pool(layer, "stem")) is not None:
            return err
    names = iter(spec.block_names())
    aux_blocks = spec.aux_blocks()
    for s, stage in enumerate(spec.stages):
        for block in stage:
            bname = next(names)
            path = f"inception{bname}"
            inner = block_steps(block, (c, h, w), prefix=f"{path}.", rf=rf, block=path)
            rf = block_rf(inner)
            steps.append(
                Step(
                    path=path,
                    kind=BLOCK,
                    spec=block,
                    in_shape=(c, h, w),
                    out_shape=(block.out_channels, h, w),
                    block=path,
                    branch=None,
                    rf=rf,
                )
            )
            steps += inner
            c = block.out_channels
            if bname in aux_blocks:
                aux = _aux_steps(spec, f"aux{aux_blocks.index(bname) + 1}", (c, h, w), rf)
                if isinstance(aux, str):
                    return aux
                aux_steps += aux
        if s < len(spec.stage_pools) and (err := pool(spec.stage_pools[s], f"after stage {s + 3}")) is not None:
            return err
    steps += aux_steps
    rf = _adaptive_rf(rf, (h, w), (1, 1))
    steps.append(
        Step(
            path="avgpool",
            kind=ADAPTIVE_AVGPOOL,
            spec=(1, 1),
            in_shape=(c, h, w),
            out_shape=(c, 1, 1),
            block=None,
            branch=None,
            rf=rf,
        )
    )
    steps.append(
        Step(
            path="dropout",
            kind=DROPOUT,
            spec=spec.dropout,
            in_shape=(c,),
            out_shape=(c,),
            block=None,
            branch=None,
            rf=rf,
        )
    )
    steps.append(
        Step(
            path="fc",
            kind=LINEAR,
            spec=spec.num_classes,
            in_shape=(c,),
            out_shape=(spec.num_classes,),
            block=None,
            branch=None,
            rf=rf,
        )
    )
    return steps


def _aux_steps(spec: NetworkSpec, name: str, shape: Shape, rf: ReceptiveField | None) -> list[Step] | str:
    """The paper's auxiliary head: avg-pool, 1×1 conv 128, FC 1024, dropout, FC classes (module order:
    pool, conv, fc1, fc2, dropout; forward: fc1 → ReLU → dropout → fc2)."""
    c, h, w = shape
    pool: tuple[str, PoolSpec | tuple[int, int]]
    if spec.aux_pool == "torchvision":
        (ph, pw), pool = (4, 4), (ADAPTIVE_AVGPOOL, (4, 4))
        prf = _adaptive_rf(rf, (h, w), (4, 4))
    else:
        ph, pw = conv_out(h, 5, 3, 0), conv_out(w, 5, 3, 0)
        if ph < 1 or pw < 1:
            return f"{name}'s 5×5/3 average pool needs at least 5×5 at its block, got {h}×{w}"
        pool = (AVGPOOL, PoolSpec(5, 3))
        prf = rf.through(5, 3, 0) if rf else None
    # fc1 reads the whole pooled map: its field is that of a ph×pw conv over it.
    frf = prf.through(ph, 1, 0) if prf and ph == pw else None
    flat = AUX_CHANNELS * ph * pw
    return [
        Step(
            path=name,
            kind=AUX,
            spec=None,
            in_shape=shape,
            out_shape=(spec.num_classes,),
            block=None,
            branch=None,
            rf=frf,
        ),
        Step(
            path=f"{name}.pool",
            kind=pool[0],
            spec=pool[1],
            in_shape=shape,
            out_shape=(c, ph, pw),
            block=None,
            branch=None,
            rf=prf,
        ),
        Step(
            path=f"{name}.conv",
            kind=CONV,
            spec=ConvSpec(AUX_CHANNELS, 1),
            in_shape=(c, ph, pw),
            out_shape=(AUX_CHANNELS, ph, pw),
            block=None,
            branch=None,
            rf=prf,
            batch_norm=spec.batch_norm,
        ),
        Step(
            path=f"{name}.fc1",
            kind=LINEAR,
            spec=AUX_HIDDEN,
            in_shape=(flat,),
            out_shape=(AUX_HIDDEN,),
            block=None,
            branch=None,
            rf=frf,
        ),
        Step(
            path=f"{name}.fc2",
            kind=LINEAR,
            spec=spec.num_classes,
            in_shape=(AUX_HIDDEN,),
            out_shape=(spec.num_classes,),
            block=None,
            branch=None,
            rf=frf,
        ),
        Step(
            path=f"{name}.dropout",
            kind=DROPOUT,
            spec=spec.aux_dropout,
            in_shape=(AUX_HIDDEN,),
            out_shape=(AUX_HIDDEN,),
            block=None,
            branch=None,
            rf=frf,
        ),
    ]


def min_input(spec: NetworkSpec) -> int | None:
    """Smallest square input the network accepts (a larger input never makes a
    feature map smaller). Doubling first, then bisecting: a few walks, not twelve."""
    lo, hi = 1, 16
    while isinstance(_walk(spec, (hi, hi)), str):
        if hi >= MAX_SPATIAL:
            return None
        lo, hi = hi + 1, min(2 * hi, MAX_SPATIAL)
    while lo < hi:
        mid = (lo + hi) // 2
        if isinstance(_walk(spec, (mid, mid)), str):
            lo = mid + 1
        else:
            hi = mid
    return lo


__all__ = [
    "ReceptiveField",
    "Step",
    "Plan",
    "layer_plan",
    "block_steps",
    "branch_layers",
    "spec_branch_layers",
    "conv_out",
    "pool_out",
    "min_input",
    "PIXEL",
    "short_label",
    "parse_label",
]
