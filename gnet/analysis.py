"""Exact, analytic shapes and costs of Inception blocks and GoogLeNets.

Nothing here allocates a tensor: a 4096-channel block at 224×224 is reported
as fast as a small one. The numbers are the ones torch and torchinfo produce
for the real module (the property tests check that over random specs):

- params: `sum(p.numel() for p in module.parameters())`
- weights: conv and linear weights only (no bias, no BatchNorm), which is what
  the seeds' hand counts use (seed 000: 3×3×192×128 = 221,184)
- mult_adds: torchinfo's "Total mult-adds" convention: a conv counts
  (weights + bias) × output H × W, a linear layer and a BatchNorm count
  their parameter count once per image
- multiplications: conv and linear weight multiplications per image, no bias,
  as in seed 002's hand count (5×5×192×28×28×32 = 120,422,400); FLOPs = 2 × this.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

from gnet.spec import (
    MAX_ACTIVATION_BYTES, MAX_PARAMS, MAX_SPATIAL, BlockDesign, BlockSpec, ConvSpec, NetworkSpec, PoolSpec, SpecError, branch_layers,
)

Shape = tuple[int, int, int]  # (C, H, W)


@dataclass(frozen=True)
class Cost:
    params: int = 0
    weights: int = 0
    mult_adds: int = 0
    multiplications: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    @property
    def flops(self) -> int:
        return 2 * self.multiplications

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def total(costs: Iterable[Cost]) -> Cost:
    out = Cost()
    for c in costs:
        out = out + c
    return out


def conv_cost(c_in: int, c_out: int, kernel: int, out_hw: tuple[int, int], bias: bool = True,
              batch_norm: bool = False) -> Cost:
    """One conv (plus its BatchNorm) at an output size (H, W), per image."""
    hw = out_hw[0] * out_hw[1]
    weights = c_out * c_in * kernel * kernel
    bias_n = c_out if bias else 0
    bn = 2 * c_out if batch_norm else 0
    return Cost(params=weights + bias_n + bn, weights=weights,
                mult_adds=(weights + bias_n) * hw + bn, multiplications=weights * hw)


def linear_cost(c_in: int, c_out: int) -> Cost:
    w = c_in * c_out
    return Cost(params=w + c_out, weights=w, mult_adds=w + c_out, multiplications=w)


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


# ---------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True)
class LayerRow:
    name: str  # module path, e.g. "inception3a.branch2.1" or "conv1"
    kind: str  # human label, e.g. "conv 3×3", "max-pool 3×3/2"
    output_shape: Shape
    cost: Cost
    group: str = ""  # "stem", "3a", "head", "aux1" ...
    branch: str = ""  # "b1".."b4" inside a block


@dataclass(frozen=True)
class BranchReport:
    name: str  # "b1".."b4"
    label: str  # "1×1 → 3×3"
    layers: tuple[LayerRow, ...]
    output_shape: Shape
    cost: Cost


@dataclass(frozen=True)
class BlockReport:
    spec: BlockSpec
    input_shape: Shape
    branches: tuple[BranchReport, ...]
    output_shape: Shape
    cost: Cost

    def branch(self, name: str) -> BranchReport:
        for b in self.branches:
            if b.name == name:
                return b
        raise SpecError(f"no branch {name!r}; a block has branches b1, b2, b3 and b4")

    def concat_text(self) -> str:
        """The seeds' H×W×(C1+C2+C3+C4) notation with the numbers filled in."""
        _, h, w = self.output_shape
        parts = "+".join(str(b.output_shape[0]) for b in self.branches)
        return f"{h}×{w}×({parts}) = {h}×{w}×{self.output_shape[0]}"


def block_report(spec: BlockSpec, input_shape: Shape, prefix: str = "") -> BlockReport:
    """Per-branch output shapes and costs of one block at an input (C, H, W)."""
    c, h, w = BlockDesign(spec, input_shape).validate().input_shape
    branches = []
    labels = spec.branch_labels()
    for i, (bname, layers) in enumerate(branch_layers(c, spec).items()):
        rows = []
        for j, (kind, c_in, c_out, k) in enumerate(layers):
            path = f"{prefix}branch{i + 1}" + (f".{j}" if len(layers) > 1 else "")
            if kind == "maxpool":
                rows.append(LayerRow(path, f"max-pool {k}×{k}/1", (c_in, h, w), Cost(), branch=bname))
            else:
                cost = conv_cost(c_in, c_out, k, (h, w), bias=not spec.batch_norm, batch_norm=spec.batch_norm)
                rows.append(LayerRow(path, f"conv {k}×{k}", (c_out, h, w), cost, branch=bname))
        branches.append(BranchReport(bname, labels[bname], tuple(rows), rows[-1].output_shape,
                                     total(r.cost for r in rows)))
    return BlockReport(spec, (c, h, w), tuple(branches), (spec.out_channels, h, w),
                       total(b.cost for b in branches))


@dataclass(frozen=True)
class Comparison:
    """Two versions of the same thing; ratio = b / a for each cost."""

    label_a: str
    label_b: str
    a: Cost
    b: Cost

    def ratio(self, metric: str) -> float:
        return getattr(self.b, metric) / max(getattr(self.a, metric), 1)

    def saved(self, metric: str) -> int:
        return getattr(self.a, metric) - getattr(self.b, metric)


def bottleneck_comparison(spec: BlockSpec, input_shape: Shape, branch: str | None = None) -> Comparison:
    """The same block (or one branch of it) without and with the 1×1 reductions."""
    naive = block_report(dataclasses.replace(spec, reduce=False), input_shape)
    reduced = block_report(dataclasses.replace(spec, reduce=True), input_shape)
    pick = (lambda r: r.branch(branch).cost) if branch else (lambda r: r.cost)
    return Comparison("without 1×1 reductions", "with 1×1 reductions", pick(naive), pick(reduced))


def factorization_comparison(spec: BlockSpec, input_shape: Shape) -> Comparison:
    """Branch b3 as one 5×5 conv vs two stacked 3×3 convs (seed 004)."""
    five = block_report(dataclasses.replace(spec, b3_kernel=5, factorize=False), input_shape)
    two = block_report(dataclasses.replace(spec, b3_kernel=5, factorize=True), input_shape)
    return Comparison("b3 as 5×5", "b3 as two 3×3", five.branch("b3").cost, two.branch("b3").cost)


def factorized_conv_comparison(spec: BlockSpec, input_shape: Shape) -> Comparison:
    """b3's large conv alone (after its 1×1 reduction, if any): one 5×5 vs two 3×3 (seed 004).

    Seed 004 counts only this conv, e.g. 64→64: 5×5×64×64 = 102,400 weights vs
    2 × 3×3×64×64 = 73,728; the whole-branch comparison also counts the 1×1 reduction.
    """
    c, h, w = input_shape
    c_in = spec.b3_reduce if spec.reduce else c
    bias, bn = not spec.batch_norm, spec.batch_norm
    five = conv_cost(c_in, spec.b3, 5, (h, w), bias, bn)
    two = conv_cost(c_in, spec.b3, 3, (h, w), bias, bn) + conv_cost(spec.b3, spec.b3, 3, (h, w), bias, bn)
    return Comparison(f"one 5×5 conv {c_in}→{spec.b3}", f"two 3×3 convs {c_in}→{spec.b3}→{spec.b3}", five, two)


# ---------------------------------------------------------------------------
# Networks


@dataclass(frozen=True)
class NetworkReport:
    spec: NetworkSpec
    input_shape: Shape
    rows: tuple[LayerRow, ...]  # every leaf layer with a cost or a shape change, in order
    blocks: dict[str, BlockReport]
    output_shape: Shape
    cost: Cost  # what an inference forward pass uses (aux heads excluded)
    aux_cost: Cost = field(default_factory=Cost)  # the auxiliary heads (training only)

    @property
    def params_total(self) -> int:
        """All parameters of the module, aux heads included: sum(p.numel())."""
        return self.cost.params + self.aux_cost.params

    def row(self, name: str) -> LayerRow:
        for r in self.summary_rows():
            if r.name == name:
                return r
        raise KeyError(name)

    def summary_rows(self) -> list[LayerRow]:
        """One row per stem layer, block, pool and head layer (blocks summed), then aux rows."""
        out: list[LayerRow] = []
        seen: set[str] = set()
        for r in self.rows:
            if r.group in self.blocks:
                if r.group not in seen:
                    seen.add(r.group)
                    b = self.blocks[r.group]
                    out.append(LayerRow(f"inception{r.group}", "inception", b.output_shape, b.cost, group=r.group))
            else:
                out.append(r)
        return out

    @property
    def activation_elements(self) -> int:
        """Output elements of all layers for one image: a lower bound on activation memory."""
        return sum(r.output_shape[0] * r.output_shape[1] * r.output_shape[2] for r in self.rows)


def network_report(spec: NetworkSpec) -> NetworkReport:
    """Validate a network spec and compute every layer's shape and cost.

    A spatial size that reaches 0 raises SpecError naming the layer and the
    smallest input that works.
    """
    spec.validate_fields()
    blocks: dict[str, BlockReport] = {}
    rows = _walk(spec, spec.input_size, blocks)
    if isinstance(rows, str):
        need = _min_input(spec)
        hint = f"; the smallest square input it accepts is {need}×{need}" if need else ""
        raise SpecError(f"input {spec.input_size[0]}×{spec.input_size[1]} is too small: {rows}{hint}")
    main, aux = [], []
    for r in rows:
        (aux if r.group.startswith("aux") else main).append(r)
    report = NetworkReport(spec, (spec.in_channels, *spec.input_size), tuple(rows), blocks,
                           main[-1].output_shape, total(r.cost for r in main), total(r.cost for r in aux))
    if report.params_total > MAX_PARAMS:
        raise SpecError(f"this network has {report.params_total:,} parameters; the cap is {MAX_PARAMS:,}")
    if 4 * report.activation_elements > MAX_ACTIVATION_BYTES:
        raise SpecError(f"one image through this network makes {4 * report.activation_elements / 2**30:.1f} GiB "
                        f"of activations; the cap is {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB: use a smaller input or "
                        "fewer channels")
    return report


def _walk(spec: NetworkSpec, size: tuple[int, int], blocks: dict[str, BlockReport] | None = None) -> list[LayerRow] | str:
    """All layer rows at an input size, or a message naming the layer where a size reaches 0.

    Fills `blocks` with each block's report when given.
    """
    rows: list[LayerRow] = []
    c, (h, w) = spec.in_channels, size
    bn = spec.batch_norm
    convs = pools = 0

    def pool(p: PoolSpec, where: str) -> str | None:
        nonlocal h, w, pools
        pools += 1
        name = f"maxpool{pools}"
        h, w = (pool_out(x, p.kernel, p.stride, p.padding, p.ceil_mode) for x in (h, w))
        if h < 1 or w < 1:
            return f"{name} ({where}) would output {max(h, 0)}×{max(w, 0)}"
        rows.append(LayerRow(name, f"max-pool {p.kernel}×{p.kernel}/{p.stride}", (c, h, w), Cost(), group=where))
        return None

    for layer in spec.stem:
        if isinstance(layer, ConvSpec):
            convs += 1
            name = f"conv{convs}"
            h, w = (conv_out(x, layer.kernel, layer.stride, layer.padding) for x in (h, w))
            if h < 1 or w < 1:
                return f"{name} would output {max(h, 0)}×{max(w, 0)}"
            cost = conv_cost(c, layer.out_channels, layer.kernel, (h, w), bias=not bn, batch_norm=bn)
            c = layer.out_channels
            kind = f"conv {layer.kernel}×{layer.kernel}" + (f"/{layer.stride}" if layer.stride > 1 else "")
            rows.append(LayerRow(name, kind, (c, h, w), cost, group="stem"))
        elif (err := pool(layer, "stem")) is not None:
            return err
    names = iter(spec.block_names())
    aux_rows: list[LayerRow] = []
    for s, stage in enumerate(spec.stages):
        for block in stage:
            bname = next(names)
            rep = block_report(block, (c, h, w), prefix=f"inception{bname}.")
            if blocks is not None:
                blocks[bname] = rep
            for br in rep.branches:
                rows += [dataclasses.replace(r, group=bname) for r in br.layers]
            c = block.out_channels
            if bname in spec.aux_blocks():
                i = spec.aux_blocks().index(bname) + 1
                aux = _aux_rows(spec, f"aux{i}", (c, h, w))
                if isinstance(aux, str):
                    return aux
                aux_rows += aux
        if s < len(spec.stage_pools) and (err := pool(spec.stage_pools[s], f"after stage {s + 3}")) is not None:
            return err
    rows.append(LayerRow("avgpool", "global avg-pool", (c, 1, 1), Cost(), group="head"))
    rows.append(LayerRow("fc", "linear", (spec.num_classes, 1, 1), linear_cost(c, spec.num_classes), group="head"))
    return rows + aux_rows


def _aux_rows(spec: NetworkSpec, name: str, shape: Shape) -> list[LayerRow] | str:
    c, h, w = shape
    if spec.aux_pool == "torchvision":
        ph, pw = 4, 4
    else:
        ph, pw = conv_out(h, 5, 3, 0), conv_out(w, 5, 3, 0)
        if ph < 1 or pw < 1:
            return f"{name}'s 5×5/3 average pool needs at least 5×5 at its block, got {h}×{w}"
    bn = spec.batch_norm
    return [
        LayerRow(f"{name}.pool", "avg-pool 5×5/3" if spec.aux_pool == "paper" else "adaptive avg-pool 4×4",
                 (c, ph, pw), Cost(), group=name),
        LayerRow(f"{name}.conv", "conv 1×1", (128, ph, pw), conv_cost(c, 128, 1, (ph, pw), not bn, bn), group=name),
        LayerRow(f"{name}.fc1", "linear", (1024, 1, 1), linear_cost(128 * ph * pw, 1024), group=name),
        LayerRow(f"{name}.fc2", "linear", (spec.num_classes, 1, 1), linear_cost(1024, spec.num_classes), group=name),
    ]


def _min_input(spec: NetworkSpec) -> int | None:
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


# ---------------------------------------------------------------------------
# torchinfo, on the real module


def torchinfo_summary(spec: NetworkSpec, depth: int = 3, model=None):
    """torchinfo's summary of the built module at the spec's input size (batch 1, eval mode)."""
    import torchinfo

    from gnet.network import GoogLeNet

    model = model if model is not None else GoogLeNet(spec)
    return torchinfo.summary(model, input_size=(1, spec.in_channels, *spec.input_size), depth=depth,
                             verbose=0, mode="eval", device="cpu",
                             col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))
