"""The Network Explorer's layer table and receptive-field figure for an Inception v3 network.

Its blocks are named by torchvision's module paths (Mixed_5b), a grid reduction has three branches, and a
1×n or n×1 kernel widens a unit's field along one axis only, so the field is given per axis (height × width).
"""

from __future__ import annotations

import plotly.graph_objects as go

from gnet.analysis import LayerRow, NetworkReport, total
from gnet.charts.network import add_input_side, aux_row, layer_row, main_path_fig
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.plan import Step, short_label

RF_COLUMN = "receptive field (px, H×W)"


def rf_text(step: Step | None) -> str:
    """'23' for a square field, '159×255' (height × width) where a factorised kernel made it oblong."""
    if step is None or step.rf is None:
        return ""
    h, w = step.size_hw
    return f"{h}" if h == w else f"{h}×{w}"


def _step(report: NetworkReport, path: str) -> Step | None:
    plan = report.plan
    return plan.step(path) if plan is not None and path in plan else None


def layer_rows(report: NetworkReport, expand: bool = False) -> list[dict[str, object]]:
    """One row per stem layer, Mixed block (its branches' channels in the note), pool and head layer, the aux
    head's layers after the block it reads; expand=True also lists every layer of each branch."""
    aux_after = report.plan.aux_after()
    out: list[dict[str, object]] = []

    def add(r: LayerRow, note: str = "") -> None:
        out.append(layer_row(r, RF_COLUMN, rf_text(_step(report, r.name)), note))

    for r in report.summary_rows():
        if r.group.startswith("aux") or r.name.split(".")[0] in aux_after.values():
            continue
        blk = report.blocks.get(r.group) if r.kind == "inception" else None
        add(r, " | ".join(f"{b.name} {b.output_shape[0]}" for b in blk.branches) if blk else "")
        if blk is not None and expand:
            for b in blk.branches:
                for layer in b.layers:
                    add(layer, f"{b.name} ({b.label})")
        if r.name in aux_after:
            head = aux_after[r.name]
            for a in report.rows:
                if a.name.startswith(f"{head}."):
                    add(a, "aux head: training only")
    return out


def aux_rows(report: NetworkReport) -> list[dict[str, object]]:
    """The aux head: where it attaches and what it costs (it runs in training only)."""
    out = []
    for block, head in report.plan.aux_after().items():
        cost = total(r.cost for r in report.rows if r.name.startswith(f"{head}."))
        out.append(aux_row(head, block, report.blocks[short_label(block)].output_shape, cost))
    return out


def receptive_field_fig(report: NetworkReport) -> go.Figure:
    """Receptive field along depth, per axis: the main path in grey, and at each block every branch's field
    along the height (filled) and the width (open) in the branch's colour; they part where a 1×n or n×1
    kernel widens one axis only."""
    plan = report.plan
    main = [plan.step(p) for p in plan.main_path() if plan.step(p).rf is not None]
    names = [s.path for s in main]

    def hover(s: Step) -> str:
        (h, w), (jh, jw) = s.size_hw, s.jump_hw
        return f"{s.path}: {h}×{w} px (H×W), jump {jh}×{jw}"

    fig = main_path_fig(names, [s.size_hw[0] for s in main], [hover(s) for s in main])
    blocks = plan.blocks()
    branches = sorted({br for b in blocks for br in plan.branch_steps(b)})
    for br in branches:
        steps = [(b, plan.branch_steps(b).get(br)) for b in blocks]
        steps = [(b, s) for b, s in steps if s is not None and s.rf is not None]
        color = BRANCH_COLORS.get(br, OTHER_COLOR)
        for axis, label, symbol in ((0, "height", "circle"), (1, "width", "circle-open")):
            fig.add_scatter(
                x=[b for b, _ in steps],
                y=[s.size_hw[axis] for _, s in steps],
                mode="markers",
                name=f"{br} ({label})",
                legendgroup=br,
                marker=dict(color=color, symbol=symbol, size=9 if axis == 0 else 14, line=dict(width=2)),
                customdata=[hover(s) for _, s in steps],
                hovertemplate="%{customdata}<extra></extra>",
            )
    add_input_side(fig, report)
    fig.update_xaxes(categoryorder="array", categoryarray=names)
    fig.update_yaxes(title_text="receptive field (px)", rangemode="tozero")
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig
