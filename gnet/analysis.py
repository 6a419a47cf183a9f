"""Exact, analytic shapes and costs of Inception blocks and GoogLeNets, one row per step of the layer plan.

Shapes and module paths come from `gnet.plan` (the one walk of a network); this module adds what
each step costs.

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
from collections.abc import Iterable
from dataclasses import dataclass, field

from gnet.plan import (
    ADAPTIVE_AVGPOOL,
    AUX,
    AVGPOOL,
    BLOCK,
    BRANCH,
    CONV,
    LINEAR,
    MAXPOOL,
    Plan,
    Step,
    block_steps,
    layer_plan,
    short_label,
)
from gnet.spec import MAX_ACTIVATION_BYTES, MAX_PARAMS, BlockDesign, BlockSpec, NetworkSpec, SpecError

Shape = tuple[int, int, int]  # (C, H, W)


@dataclass(frozen=True)
class Cost:
    params: int = 0
    weights: int = 0
    mult_adds: int = 0
    multiplications: int = 0

    def __add__(self, other: Cost) -> Cost:
        # field by field: dataclasses.astuple deep-copies, and was most of a network report's time
        return Cost(
            self.params + other.params,
            self.weights + other.weights,
            self.mult_adds + other.mult_adds,
            self.multiplications + other.multiplications,
        )

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


def conv_cost(
    c_in: int,
    c_out: int,
    kernel: int | tuple[int, int],
    out_hw: tuple[int, int],
    bias: bool = True,
    batch_norm: bool = False,
) -> Cost:
    """One conv (plus its BatchNorm) at an output size (H, W), per image; kernel k or (kh, kw)."""
    hw = out_hw[0] * out_hw[1]
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    weights = c_out * c_in * kh * kw
    bias_n = c_out if bias else 0
    bn = 2 * c_out if batch_norm else 0
    return Cost(
        params=weights + bias_n + bn,
        weights=weights,
        mult_adds=(weights + bias_n) * hw + bn,
        multiplications=weights * hw,
    )


def linear_cost(c_in: int, c_out: int) -> Cost:
    w = c_in * c_out
    return Cost(params=w + c_out, weights=w, mult_adds=w + c_out, multiplications=w)


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
    halves: tuple[LayerRow, ...] = ()  # Inception v3's E: the two layers at the end that run side by side


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
    shape = BlockDesign(spec, input_shape).validate().input_shape
    return _block_report(spec, shape, block_steps(spec, shape, prefix))


LEAVES = (CONV, MAXPOOL, AVGPOOL, ADAPTIVE_AVGPOOL, LINEAR)  # the kinds a row is shown for (not containers, dropout)


def step_label(step: Step) -> str:
    """A layer's kind in words, e.g. "conv 7×7/2", "max-pool 3×3/1", "adaptive avg-pool 4×4"."""
    if step.kind == CONV:
        k, stride = step.spec.kernel, step.spec.stride
        kh, kw = (k, k) if isinstance(k, int) else k  # Inception v3's 1×7 is (1, 7)
        return f"conv {kh}×{kw}" + (f"/{stride}" if stride > 1 else "")
    if step.kind in (MAXPOOL, AVGPOOL):
        k = step.spec.kernel
        return f"{'max' if step.kind == MAXPOOL else 'avg'}-pool {k}×{k}/{step.spec.stride}"
    if step.kind == ADAPTIVE_AVGPOOL:
        return "global avg-pool" if step.spec == (1, 1) else f"adaptive avg-pool {step.spec[0]}×{step.spec[1]}"
    return step.kind


def step_cost(step: Step) -> Cost:
    """One image through one leaf step (containers and pools cost nothing of their own)."""
    if step.kind == CONV:
        return conv_cost(
            step.in_shape[0],
            step.spec.out_channels,
            step.spec.kernel,
            step.out_shape[1:],
            bias=not step.batch_norm,
            batch_norm=step.batch_norm,
        )
    if step.kind == LINEAR:
        return linear_cost(step.in_shape[0], step.spec)
    return Cost()


def _chw(shape: tuple[int, ...]) -> Shape:
    """A row's shape as (C, H, W): a linear layer's (features,) is (features, 1, 1), as the seeds write it."""
    return shape if len(shape) == 3 else (shape[0], 1, 1)


def _row(step: Step, group: str = "") -> LayerRow:
    return LayerRow(
        step.path, step_label(step), _chw(step.out_shape), step_cost(step), group=group, branch=step.branch or ""
    )


def _block_report(
    spec: BlockSpec, input_shape: Shape, steps: list[Step], output_shape: Shape | None = None
) -> BlockReport:
    """A block's report from its inner steps. output_shape: where the block changes H, W (Inception v3's
    grid reductions); a branch with a container step has that step's output (E's split branches)."""
    labels = spec.branch_labels()
    branches = []
    for name in labels:
        rows = tuple(_row(s) for s in steps if s.branch == name and s.kind != BRANCH)
        container = [s for s in steps if s.branch == name and s.kind == BRANCH]
        out = _chw(container[0].out_shape) if container else rows[-1].output_shape
        halves = tuple(_row(s) for s in steps if s.branch == name and s.half)
        branches.append(BranchReport(name, labels[name], rows, out, total(r.cost for r in rows), halves))
    out_shape = output_shape or (spec.out_channels, *input_shape[1:])
    return BlockReport(spec, input_shape, tuple(branches), out_shape, total(b.cost for b in branches))


def steps_block_report(spec: object, input_shape: Shape, steps: list[Step], output_shape: Shape) -> BlockReport:
    """The report of a block of any family from its plan steps (`gnet.v3.block_plan_steps`)."""
    return _block_report(spec, input_shape, steps, output_shape)


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
    plan: Plan | None = None  # the layer plan the rows were read from (receptive fields, module paths)

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
        paths = {short_label(p): p for p in self.plan.blocks()} if self.plan else {}
        for r in self.rows:
            if r.group in self.blocks:
                if r.group not in seen:
                    seen.add(r.group)
                    b = self.blocks[r.group]
                    out.append(
                        LayerRow(
                            paths.get(r.group, f"inception{r.group}"),
                            "inception",
                            b.output_shape,
                            b.cost,
                            group=r.group,
                        )
                    )
            else:
                out.append(r)
        return out

    @property
    def activation_elements(self) -> int:
        """Output elements of all layers for one image: a lower bound on activation memory."""
        return sum(r.output_shape[0] * r.output_shape[1] * r.output_shape[2] for r in self.rows)


def network_report(spec: NetworkSpec) -> NetworkReport:
    """Validate a network spec and compute every layer's shape and cost, from its layer plan.

    A spatial size that reaches 0 raises SpecError naming the layer and the
    smallest input that works; so do networks over the parameter or activation caps.
    """
    return plan_report(layer_plan(spec))


def validate_network(spec: NetworkSpec) -> NetworkSpec:
    """The spec, if it can be built: fields, spatial sizes and caps (SpecError otherwise)."""
    network_report(spec)
    return spec


def plan_report(plan: Plan) -> NetworkReport:
    spec = plan.spec
    blocks: dict[str, BlockReport] = {}
    main: list[LayerRow] = []
    aux: list[LayerRow] = []
    group = "stem"
    aux_heads = {s.path for s in plan.steps if s.kind == AUX}
    for step in plan.steps:
        if step.kind == BLOCK:
            name = short_label(step.path)
            inner = [s for s in plan.steps if s.block == step.path and s.depth > 0]
            blocks[name] = _block_report(step.spec, step.in_shape, inner, _chw(step.out_shape))
            group = f"after stage {name[:-1]}"  # a top-level pool after this block ends its stage
        elif step.kind in LEAVES:
            if step.block:
                main.append(_row(step, short_label(step.block)))
            elif step.path.split(".")[0] in aux_heads:
                aux.append(_row(step, step.parent))
            else:
                main.append(_row(step, "head" if step.kind in (LINEAR, ADAPTIVE_AVGPOOL) else group))
    report = NetworkReport(
        spec,
        plan.input_shape,
        tuple(main + aux),
        blocks,
        main[-1].output_shape,
        total(r.cost for r in main),
        total(r.cost for r in aux),
        plan,
    )
    if report.params_total > MAX_PARAMS:
        raise SpecError(f"this network has {report.params_total:,} parameters; the cap is {MAX_PARAMS:,}")
    if 4 * report.activation_elements > MAX_ACTIVATION_BYTES:
        raise SpecError(
            f"one image through this network makes {4 * report.activation_elements / 2**30:.1f} GiB "
            f"of activations; the cap is {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB: use a smaller input or "
            "fewer channels"
        )
    return report
