"""Plotly figures and the tables beside them, for the Block Designer and Network Explorer.

Everything here is built from `gnet.analysis` reports (no tensors), returns
plain data (plotly figures, lists of row dicts for st.dataframe) and never
imports streamlit. Each branch has its colour from `gnet.colors` everywhere.
Figures leave fonts and backgrounds to the Streamlit theme (light and dark).

Conventions shown to users: shapes are printed H×W×C (the seeds' notation)
unless a column says C×H×W; mult-adds follow torchinfo; multiplications are
the seeds' hand count (no bias); FLOPs = 2 × multiplications.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gnet.analysis import BlockReport, Comparison, LayerRow, NetworkReport, total
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.spec import BRANCHES

Shape = tuple[int, int, int]

METRICS: dict[str, str] = {  # Cost field -> label
    "params": "params",
    "weights": "weights (no bias/BN)",
    "mult_adds": "mult-adds (torchinfo)",
    "multiplications": "multiplications (hand count)",
}


def hwc(shape: Shape) -> str:
    """(C, H, W) printed the seeds' way, H×W×C."""
    c, h, w = shape
    return f"{h}×{w}×{c}"


def chw(shape: Shape) -> str:
    return "×".join(map(str, shape))


# ---------------------------------------------------------------------------
# Block tables


def branch_rows(report: BlockReport) -> list[dict[str, object]]:
    """One row per branch and a total row: shapes and every cost, with shares of params."""
    rows: list[dict[str, object]] = []
    total_params = max(report.cost.params, 1)
    for b in report.branches:
        rows.append({
            "branch": b.name, "path": b.label, "output (H×W×C)": hwc(b.output_shape),
            "params": b.cost.params, "weights": b.cost.weights, "mult-adds": b.cost.mult_adds,
            "multiplications": b.cost.multiplications, "FLOPs": b.cost.flops,
            "share of params": b.cost.params / total_params,
        })
    c = report.cost
    rows.append({
        "branch": "total", "path": "concat", "output (H×W×C)": hwc(report.output_shape),
        "params": c.params, "weights": c.weights, "mult-adds": c.mult_adds,
        "multiplications": c.multiplications, "FLOPs": c.flops, "share of params": 1.0 if c.params else 0.0,
    })
    return rows


def comparison_rows(parts: dict[str, Comparison], metrics: tuple[str, ...] = ("weights", "multiplications"),
                    columns: tuple[str, str] = ("without 1×1 reductions", "with 1×1 reductions"),
                    ) -> list[dict[str, object]]:
    """Side-by-side rows: part, metric, version a, version b, b/a and the saving (a − b)."""
    rows: list[dict[str, object]] = []
    for part, comp in parts.items():
        for m in metrics:
            rows.append({
                "part": part, "metric": METRICS.get(m, m), columns[0]: getattr(comp.a, m),
                columns[1]: getattr(comp.b, m), "ratio": comp.ratio(m), "saved": comp.saved(m),
            })
    return rows


# ---------------------------------------------------------------------------
# Block figures


def branch_share_fig(report: BlockReport) -> go.Figure:
    """100 % stacked bars: each branch's share of channels, params, mult-adds, multiplications."""
    metrics = {"output channels": lambda b: b.output_shape[0], "params": lambda b: b.cost.params,
               "mult-adds": lambda b: b.cost.mult_adds, "multiplications": lambda b: b.cost.multiplications}
    fig = go.Figure()
    for b in report.branches:
        xs, texts = [], []
        for label, get in metrics.items():
            whole = sum(get(x) for x in report.branches) or 1
            xs.append(100 * get(b) / whole)
            texts.append(f"{get(b):,}")
        fig.add_bar(name=f"{b.name} {b.label}", y=list(metrics), x=xs, orientation="h",
                    marker_color=BRANCH_COLORS[b.name], customdata=texts,
                    text=[f"{b.name} {x:.0f}%" if x >= 6 else "" for x in xs], textposition="inside",
                    hovertemplate=f"{b.name}: %{{x:.1f}}%% of %{{y}} (%{{customdata}})<extra></extra>")
    fig.update_layout(barmode="stack", height=260, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="share (%)", range=[0, 100]), yaxis=dict(autorange="reversed"),
                      legend=dict(orientation="h", y=-0.35, traceorder="normal"), title="Each branch's share")
    return fig


def _edge_width(channels: int, biggest: int) -> float:
    # sqrt: a 16-channel path stays visible next to a 4096-channel one
    return 1.5 + 14.0 * math.sqrt(channels / max(biggest, 1))


_STEP = 1.7  # x distance between layer columns: room for an H×W×C label between boxes
_HALF = 0.42  # half a box's width


def block_diagram_fig(report: BlockReport) -> go.Figure:
    """Input → four parallel paths → concat. Edge widths follow channel counts;
    every edge inside a branch is labelled with the shape it carries (H×W×C)."""
    fig = go.Figure()
    cols = max(len(b.layers) for b in report.branches)
    x_concat = _STEP * (cols + 1.4)  # extra room for the branch-output labels
    x_out = x_concat + _STEP
    y_mid = 1.5
    ys = {name: 3 - i for i, name in enumerate(BRANCHES)}
    biggest = max([report.input_shape[0]] + [r.output_shape[0] for b in report.branches for r in b.layers])
    annotations: list[dict] = []
    shapes: list[dict] = []

    def edge(xs: list[float], ys_: list[float], shape: Shape, color: str, label_x: float | None) -> None:
        """A polyline; its label sits above its first point's row, at label_x."""
        fig.add_trace(go.Scatter(x=xs, y=ys_, mode="lines", showlegend=False,
                                 line=dict(color=color, width=_edge_width(shape[0], biggest)),
                                 hoverinfo="text", text=f"{hwc(shape)} ({shape[0]:,} channels)", opacity=0.7))
        if label_x is not None:
            annotations.append(dict(x=label_x, y=ys_[0], yshift=16, text=hwc(shape), showarrow=False,
                                    font=dict(size=11)))

    def node(x: float, y: float, text: str, color: str) -> None:
        shapes.append(dict(type="rect", x0=x - _HALF, x1=x + _HALF, y0=y - 0.24, y1=y + 0.24,
                           fillcolor=color, line=dict(width=0), layer="above"))
        annotations.append(dict(x=x, y=y, text=f"<b>{text}</b>", showarrow=False, font=dict(color="white", size=12)))

    for b in report.branches:
        color = BRANCH_COLORS[b.name]
        y = ys[b.name]
        # fan out from the input: a short diagonal, then straight to the first layer
        edge([_HALF, 0.85, _STEP - _HALF], [y_mid, y, y], report.input_shape, color, None)
        x = _STEP
        for j, layer in enumerate(b.layers):
            x = _STEP * (j + 1)
            if j:
                edge([x - _STEP + _HALF, x - _HALF], [y, y], b.layers[j - 1].output_shape, color, x - _STEP / 2)
            kind = layer.kind.replace("max-pool 3×3/1", "3×3 pool").replace("conv ", "")
            node(x, y, kind + (" conv" if layer.kind.startswith("conv") else ""), color)
        # straight on to the concat column, then a short diagonal into it
        edge([x + _HALF, x_concat - 0.85, x_concat - _HALF], [y, y, y_mid], b.output_shape, color,
             (x + _HALF + x_concat - 0.85) / 2)
        annotations.append(dict(x=_STEP - _HALF - 0.05, y=y, xanchor="right", yshift=14, text=f"<b>{b.name}</b>",
                                showarrow=False, font=dict(color=color, size=13)))
    edge([x_concat + _HALF, x_out - _HALF], [y_mid, y_mid], report.output_shape, OTHER_COLOR, None)
    node(0, y_mid, f"input<br>{hwc(report.input_shape)}", OTHER_COLOR)
    node(x_concat, y_mid, "concat", OTHER_COLOR)
    node(x_out, y_mid, f"output<br>{hwc(report.output_shape)}", OTHER_COLOR)
    fig.update_layout(shapes=shapes, annotations=annotations, height=430, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(visible=False, range=[-0.5, x_out + 0.5], fixedrange=True),
                      yaxis=dict(visible=False, range=[-0.45, 3.45], fixedrange=True),
                      title="Block diagram (edge width ∝ √channels; labels H×W×C)")
    return fig


# ---------------------------------------------------------------------------
# Network tables


def layer_rows(report: NetworkReport, expand: bool = False) -> list[dict[str, object]]:
    """torchinfo-like table, blocks summed, each aux head listed right after the block it attaches to.
    expand=True also lists every layer inside each block (branch by branch) under its block row."""
    aux_after = {f"inception{b}": f"aux{i + 1}" for i, b in enumerate(report.spec.aux_blocks())}
    main = [r for r in report.summary_rows() if not r.group.startswith("aux")]
    aux = [r for r in report.rows if r.group.startswith("aux")]
    out: list[dict[str, object]] = []

    def add(r: LayerRow, note: str = "") -> None:
        out.append({"layer": r.name, "type": r.kind, "output (C×H×W)": chw(r.output_shape),
                    "params": r.cost.params, "mult-adds": r.cost.mult_adds, "note": note})

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
    return {"params": report.params_total, "mult_adds": report.cost.mult_adds,
            "multiplications": report.cost.multiplications, "aux_params": report.aux_cost.params,
            "aux_mult_adds": report.aux_cost.mult_adds}


def aux_rows(report: NetworkReport) -> list[dict[str, object]]:
    """One row per auxiliary head: where it attaches and what it costs."""
    out = []
    for i, b in enumerate(report.spec.aux_blocks(), start=1):
        cost = total(r.cost for r in report.rows if r.group == f"aux{i}")
        out.append({"head": f"aux{i}", "attaches after": b, "input (C×H×W)": chw(report.blocks[b].output_shape),
                    "params": cost.params, "mult-adds": cost.mult_adds})
    return out


# ---------------------------------------------------------------------------
# Network figures


def depth_fig(report: NetworkReport) -> go.Figure:
    """Spatial size and channel count along depth (main path; aux attachment points marked)."""
    rows = [r for r in report.summary_rows() if not r.group.startswith("aux")]
    names = ["input"] + [r.name.removeprefix("inception") for r in rows]
    shapes = [report.input_shape] + [r.output_shape for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("spatial size (H; W alongside)", "channels (C)"))
    fig.add_scatter(x=names, y=[s[1] for s in shapes], mode="lines+markers", name="H", row=1, col=1,
                    line=dict(color=OTHER_COLOR), customdata=[chw(s) for s in shapes],
                    hovertemplate="%{x}: %{customdata} (C×H×W)<extra></extra>")
    fig.add_scatter(x=names, y=[s[0] for s in shapes], mode="lines+markers", name="C", row=2, col=1,
                    line=dict(color=BRANCH_COLORS["b1"]), customdata=[chw(s) for s in shapes],
                    hovertemplate="%{x}: %{customdata} (C×H×W)<extra></extra>")
    for i, b in enumerate(report.spec.aux_blocks(), start=1):
        fig.add_annotation(x=b, y=report.blocks[b].output_shape[0], text=f"aux{i}", row=2, col=1,
                           showarrow=True, arrowhead=2, ay=-30)
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
            fig.add_bar(x=names, y=ys, name=f"{br} ({label})", marker_color=color, row=1, col=col,
                        legendgroup=br, showlegend=col == 1,
                        hovertemplate=f"%{{x}} {br}: %{{y:,}}<extra></extra>")
    fig.update_layout(barmode="stack", height=380, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.15))
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
        aux_params = sum(total(r.cost for r in report.rows if r.group == aux_at[b]).params
                         for b in blocks if b in aux_at)
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
    fig = go.Figure(go.Sunburst(ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
                                marker=dict(colors=colors, line=dict(width=1)),
                                hovertemplate="%{label}: %{value:,} params (%{percentRoot:.1%})<extra></extra>"))
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10), title="Where the parameters live")
    return fig


# ---------------------------------------------------------------------------
# Branch specialisation (issue 13): plain numbers in, so this module stays torch-free

SPECIALISATION_METRICS: dict[str, str] = {  # gnet.featurevis.BranchStats field -> panel title
    "colour_sensitivity": "colour sensitivity (mean over channels)",
    "colour_selective": "share of colour-selective channels",
    "strongest_share": "share of the block's strongest channels",
}


def specialisation_fig(blocks: list[str], grids: dict[str, list[list[float]]],
                       expected: list[list[float]] | None = None) -> go.Figure:
    """One blocks × branches heatmap per metric (values 0..1, shown as %), branch names in their colours.
    expected: each branch's share of the block's channels, shown on hover beside the strongest share."""
    fig = make_subplots(rows=1, cols=len(grids), subplot_titles=[SPECIALISATION_METRICS.get(k, k) for k in grids],
                        shared_yaxes=True, horizontal_spacing=0.04)
    ticks = [f"<span style='color:{BRANCH_COLORS[b]}'><b>{b}</b></span>" for b in BRANCHES]
    for i, (metric, z) in enumerate(grids.items()):
        hover = "%{y} · %{x}: %{z:.0%}"
        custom = None
        if metric == "strongest_share" and expected is not None:
            custom, hover = expected, hover + " (its share of the channels: %{customdata:.0%})"
        fig.add_heatmap(z=z, x=list(BRANCHES), y=blocks, zmin=0, zmax=1, colorscale="Viridis", customdata=custom,
                        text=[[f"{v:.0%}" for v in row] for row in z], texttemplate="%{text}",
                        hovertemplate=hover + "<extra></extra>", showscale=i == len(grids) - 1,
                        colorbar=dict(tickformat=".0%", len=0.9), row=1, col=i + 1)
        fig.update_xaxes(tickvals=list(BRANCHES), ticktext=ticks, row=1, col=i + 1)
    fig.update_yaxes(autorange="reversed", title_text="block", row=1, col=1)
    fig.update_layout(height=max(260, 40 * len(blocks) + 120), margin=dict(l=10, r=10, t=50, b=10))
    return fig
