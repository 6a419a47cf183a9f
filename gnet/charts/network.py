"""The Network Explorer's layer table and its figures: depth, cost per block, where the parameters live, and the
receptive field along depth (from the layer plan; Araujo et al., Distill 2019)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gnet.analysis import Cost, LayerRow, NetworkReport, total
from gnet.charts.tables import chw
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.plan import Step, short_label
from gnet.spec import BRANCHES

# ---------------------------------------------------------------------------
# Tables


def layer_row(r: LayerRow, rf_column: str, rf: object, note: str = "") -> dict[str, object]:
    """One row of a Network Explorer layer table (GoogLeNet's and Inception v3's): the receptive field is given
    by the caller, a side for GoogLeNet, per axis for v3."""
    return {
        "layer": r.name,
        "type": r.kind,
        "output (C×H×W)": chw(r.output_shape),
        "params": r.cost.params,
        "mult-adds": r.cost.mult_adds,
        rf_column: rf,
        "note": note,
    }


def aux_row(head: str, block: str, input_shape: tuple[int, ...], cost: Cost) -> dict[str, object]:
    """One row of the aux-head table: where the head attaches and what it costs."""
    return {
        "head": head,
        "attaches after": block,
        "input (C×H×W)": chw(input_shape),
        "params": cost.params,
        "mult-adds": cost.mult_adds,
    }


def layer_rows(report: NetworkReport, expand: bool = False) -> list[dict[str, object]]:
    """torchinfo-like table, blocks summed, each aux head listed right after the block it attaches to.
    expand=True also lists every layer inside each block (branch by branch) under its block row."""
    aux_after = report.plan.aux_after()
    main = [r for r in report.summary_rows() if not r.group.startswith("aux")]
    aux = [r for r in report.rows if r.group.startswith("aux")]
    out: list[dict[str, object]] = []

    def add(r: LayerRow, note: str = "") -> None:
        out.append(layer_row(r, "receptive field (px)", rf_size(report, r.name), note))

    for r in main:
        note = ""
        if r.name.startswith("inception"):
            blk = report.blocks[r.group]
            note = " | ".join(f"{b.name} {b.output_shape[0]}" for b in blk.branches)
        add(r, note)
        if expand and r.name.startswith("inception"):
            for b in report.blocks[r.group].branches:
                for layer in b.layers:
                    add(layer, f"{b.name} ({b.label})")
        if r.name in aux_after:
            for a in aux:
                if a.group == aux_after[r.name]:
                    add(a, "aux head: training only")
    return out


def totals(report: NetworkReport) -> dict[str, int]:
    """The figures torchinfo prints: total params (aux heads included) and
    total mult-adds of the eval-mode forward (aux heads not run)."""
    return {
        "params": report.params_total,
        "mult_adds": report.cost.mult_adds,
        "multiplications": report.cost.multiplications,
        "aux_params": report.aux_cost.params,
        "aux_mult_adds": report.aux_cost.mult_adds,
    }


def aux_rows(report: NetworkReport) -> list[dict[str, object]]:
    """One row per auxiliary head: where it attaches and what it costs."""
    out = []
    for i, b in enumerate(report.spec.aux_blocks(), start=1):
        cost = total(r.cost for r in report.rows if r.group == f"aux{i}")
        out.append(aux_row(f"aux{i}", b, report.blocks[b].output_shape, cost))
    return out


# ---------------------------------------------------------------------------
# Figures


def depth_fig(report: NetworkReport) -> go.Figure:
    """Spatial size and channel count along depth (main path; aux attachment points marked)."""
    rows = [r for r in report.summary_rows() if not r.group.startswith("aux")]
    names = ["input"] + [short_label(r.name) for r in rows]
    shapes = [report.input_shape] + [r.output_shape for r in rows]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("spatial size (H; W alongside)", "channels (C)"),
    )
    for row, name, axis, color in ((1, "H", 1, OTHER_COLOR), (2, "C", 0, BRANCH_COLORS["b1"])):
        fig.add_scatter(
            x=names,
            y=[s[axis] for s in shapes],
            mode="lines+markers",
            name=name,
            row=row,
            col=1,
            line=dict(color=color),
            customdata=[chw(s) for s in shapes],
            hovertemplate="%{x}: %{customdata} (C×H×W)<extra></extra>",
        )
    for i, b in enumerate(report.spec.aux_blocks(), start=1):
        fig.add_annotation(
            x=b, y=report.blocks[b].output_shape[0], text=f"aux{i}", row=2, col=1, showarrow=True, arrowhead=2, ay=-30
        )
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=460, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def block_cost_fig(report: NetworkReport) -> go.Figure:
    """Params and mult-adds per block, stacked by branch."""
    names = list(report.blocks)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("params per block", "mult-adds per block (torchinfo)"))
    for br in BRANCHES:
        color = BRANCH_COLORS[br]
        for col, metric in ((1, "params"), (2, "mult_adds")):
            ys = [getattr(report.blocks[n].branch(br).cost, metric) for n in names]
            label = report.blocks[names[0]].branch(br).label if names else br
            fig.add_bar(
                x=names,
                y=ys,
                name=f"{br} ({label})",
                marker_color=color,
                row=1,
                col=col,
                legendgroup=br,
                showlegend=col == 1,
                hovertemplate=f"%{{x}} {br}: %{{y:,}}<extra></extra>",
            )
    fig.update_layout(
        barmode="stack", height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.15)
    )
    return fig


_STAGE_GREY = "#B4B4B4"  # stages lighter than blocks (OTHER_COLOR), branches in their colours


def params_sunburst_fig(report: NetworkReport) -> go.Figure:
    """Where the parameters live: stage → block → branch (stem, head and aux heads beside)."""
    ids, labels, parents, values, colors = [], [], [], [], []

    def add(id_: str, label: str, parent: str, value: int, color: str) -> None:
        ids.append(id_), labels.append(label), parents.append(parent), values.append(value), colors.append(color)

    stem = total(r.cost for r in report.rows if r.group == "stem")
    head = total(r.cost for r in report.rows if r.group == "head")
    add("network", "all", "", report.params_total, "rgba(0,0,0,0)")
    if stem.params:
        add("stem", "stem", "network", stem.params, _STAGE_GREY)
    stages: dict[str, list[str]] = {}
    for name in report.blocks:
        stages.setdefault(f"stage {name[:-1]}", []).append(name)
    aux_at = {b: f"aux{i + 1}" for i, b in enumerate(report.spec.aux_blocks())}
    for stage, blocks in stages.items():
        aux_params = sum(
            total(r.cost for r in report.rows if r.group == aux_at[b]).params for b in blocks if b in aux_at
        )
        add(stage, stage, "network", sum(report.blocks[b].cost.params for b in blocks) + aux_params, _STAGE_GREY)
        for b in blocks:
            rep = report.blocks[b]
            add(b, b, stage, rep.cost.params, OTHER_COLOR)
            for br in rep.branches:
                add(f"{b}/{br.name}", br.name, b, br.cost.params, BRANCH_COLORS[br.name])
            if b in aux_at:
                aux = total(r.cost for r in report.rows if r.group == aux_at[b])
                add(aux_at[b], f"{aux_at[b]} (after {b})", stage, aux.params, OTHER_COLOR)
    add("head", "fc", "network", head.params, _STAGE_GREY)
    fig = go.Figure(
        go.Sunburst(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            marker=dict(colors=colors, line=dict(width=1)),
            hovertemplate="%{label}: %{value:,} params (%{percentRoot:.1%})<extra></extra>",
        )
    )
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10), title="Where the parameters live")
    return fig


# ---------------------------------------------------------------------------
# Receptive fields


def rf_size(report: NetworkReport, path: str) -> int | None:
    """A layer's receptive field in input pixels (one side; None where it has no single one)."""
    rf = report.plan.step(path).rf if report.plan is not None and path in report.plan else None
    return rf.size if rf else None


# Branches with the same field (b2's 3×3 and b4's pool → 1×1) coincide: open, larger markers keep both visible.
_RF_MARKERS = {
    "b1": dict(symbol="circle", size=8),
    "b2": dict(symbol="diamond-open", size=14),
    "b3": dict(symbol="circle", size=8),
    "b4": dict(symbol="square-open", size=12),
}


def main_path_fig(names: list[str], sizes: list[int], hovers: list[str]) -> go.Figure:
    """A receptive-field figure begun with the main path's field, layer by layer, in grey."""
    fig = go.Figure()
    fig.add_scatter(
        x=names,
        y=sizes,
        mode="lines+markers",
        name="layer output",
        line=dict(color=OTHER_COLOR),
        customdata=hovers,
        hovertemplate="%{customdata}<extra></extra>",
    )
    return fig


def add_input_side(fig: go.Figure, report: NetworkReport) -> None:
    """The dotted line at the input's longer side: above it a unit sees the whole image (and padding)."""
    side = max(report.input_shape[1:])
    fig.add_hline(
        y=side,
        line_dash="dot",
        line_color=OTHER_COLOR,
        annotation_text=f"input {side} px",
        annotation_position="top left",
    )


def receptive_field_fig(report: NetworkReport) -> go.Figure:
    """Receptive field along depth: the main path in grey, each block's four branches in their colours.

    Every branch of a block starts from the same field (the block's input), so the spread at a block
    is what its kernels add; the dotted line is the input's side: above it a unit sees the whole image
    (and padding)."""
    plan = report.plan
    main = [plan.step(p) for p in plan.main_path()]
    names = [short_label(s.path) for s in main]

    def hover(s: Step) -> str:
        return f"{s.path}: {s.rf.size} px, jump {s.rf.jump}, first centre {s.rf.start:g}"

    fig = main_path_fig(names, [s.rf.size for s in main], [hover(s) for s in main])
    blocks = plan.blocks()
    for br in BRANCHES:
        steps = [plan.branch_steps(b)[br] for b in blocks]
        label = report.blocks[short_label(blocks[0])].branch(br).label if blocks else br
        fig.add_scatter(
            x=[short_label(b) for b in blocks],
            y=[s.rf.size for s in steps],
            mode="markers",
            name=f"{br} ({label})",
            marker=dict(color=BRANCH_COLORS[br], **_RF_MARKERS[br], line=dict(width=2)),
            customdata=[hover(s) for s in steps],
            hovertemplate="%{customdata}<extra></extra>",
        )
    add_input_side(fig, report)
    fig.update_xaxes(categoryorder="array", categoryarray=names)
    fig.update_yaxes(title="receptive field (input pixels)", rangemode="tozero")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.15))
    return fig
