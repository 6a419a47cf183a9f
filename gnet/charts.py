"""Plotly figures (and the Block Designer's two SVG drawings) and the tables beside them, for the Block Designer
and Network Explorer.

Everything here is built from `gnet.analysis` reports (no tensors), returns
plain data (plotly figures, lists of row dicts for st.dataframe) and never
imports streamlit. Each branch has its colour from `gnet.colors` everywhere.
Figures leave fonts and backgrounds to the Streamlit theme (light and dark).

Conventions shown to users: shapes are printed H×W×C (the seeds' notation)
unless a column says C×H×W; mult-adds follow torchinfo; multiplications are
the seeds' hand count (no bias); FLOPs = 2 × multiplications.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gnet.analysis import BlockReport, Comparison, LayerRow, NetworkReport, total
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.compare import Comparison as ABComparison
from gnet.compare import align_names, network_receptive_fields, pareto_front
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
        rows.append(
            {
                "branch": b.name,
                "path": b.label,
                "output (H×W×C)": hwc(b.output_shape),
                "params": b.cost.params,
                "weights": b.cost.weights,
                "mult-adds": b.cost.mult_adds,
                "multiplications": b.cost.multiplications,
                "FLOPs": b.cost.flops,
                "share of params": b.cost.params / total_params,
            }
        )
    c = report.cost
    rows.append(
        {
            "branch": "total",
            "path": "concat",
            "output (H×W×C)": hwc(report.output_shape),
            "params": c.params,
            "weights": c.weights,
            "mult-adds": c.mult_adds,
            "multiplications": c.multiplications,
            "FLOPs": c.flops,
            "share of params": 1.0 if c.params else 0.0,
        }
    )
    return rows


def comparison_rows(
    parts: dict[str, Comparison],
    metrics: tuple[str, ...] = ("weights", "multiplications"),
    columns: tuple[str, str] = ("without 1×1 reductions", "with 1×1 reductions"),
) -> list[dict[str, object]]:
    """Side-by-side rows: part, metric, version a, version b, b/a and the saving (a − b)."""
    rows: list[dict[str, object]] = []
    for part, comp in parts.items():
        for m in metrics:
            rows.append(
                {
                    "part": part,
                    "metric": METRICS.get(m, m),
                    columns[0]: getattr(comp.a, m),
                    columns[1]: getattr(comp.b, m),
                    "ratio": comp.ratio(m),
                    "saved": comp.saved(m),
                }
            )
    return rows


# ---------------------------------------------------------------------------
# Block figures


# Drawn as inline SVG, not plotly: both change on every keystroke, and a plotly chart whose figure changed is
# remounted in the browser (its element id hashes the figure), ~80 ms of script each on a 2-core machine; building
# the figure validates every property (~15 ms). An SVG string costs neither, and <title> gives the hover text.
# Text inherits the page's font. (issue 17)


# Secondary text and grid lines in the theme's text colour, faded: readable on the light and the dark theme.
MUTED = {"fill": "currentColor", "fill_opacity": "0.65"}
GRID_STROKE = 'stroke="currentColor" stroke-opacity="0.15"'


def svg_doc(width: int, height: int, body: list[str], label: str) -> str:
    """An inline SVG document that scales to its column, at most its own width."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(label)}" style="max-width:{width}px;height:auto">' + "".join(body) + "</svg>"
    )


def svg_text(x: float, y: float, text: str, size: int = 12, anchor: str = "middle", **attrs: str) -> str:
    """A <text> centred vertically on y; attrs are SVG attributes (font_weight -> font-weight, class_ -> class)."""
    attrs = {"fill": "currentColor", **attrs}  # the theme's text colour, light or dark
    more = "".join(f' {k.rstrip("_").replace("_", "-")}="{v}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" dominant-baseline="middle"{more}>'
        f"{escape(text, quote=False)}</text>"
    )


SHARE_METRICS = {  # label -> what each branch contributes
    "output channels": lambda b: b.output_shape[0],
    "params": lambda b: b.cost.params,
    "mult-adds": lambda b: b.cost.mult_adds,
    "multiplications": lambda b: b.cost.multiplications,
}


def branch_shares(report: BlockReport) -> dict[str, dict[str, float]]:
    """metric -> branch -> percent of the block's total (each metric's shares add to 100)."""
    out = {}
    for metric, get in SHARE_METRICS.items():
        whole = sum(get(b) for b in report.branches) or 1
        out[metric] = {b.name: 100 * get(b) / whole for b in report.branches}
    return out


def branch_share_svg(report: BlockReport) -> str:
    """100 % stacked bars: each branch's share of channels, params, mult-adds, multiplications."""
    width, left, right, top, bar, gap = 660, 112, 14, 34, 28, 8
    shares = branch_shares(report)
    span = width - left - right
    body = [svg_text(4, 14, "Each branch's share", 14, "start", font_weight="600")]
    axis_y = top + len(shares) * (bar + gap)
    for pct in range(0, 101, 20):  # the grid first: the bars cover it
        x = left + span * pct / 100
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{axis_y - gap + 4}" {GRID_STROKE}/>')
        body.append(svg_text(x, axis_y + 4, f"{pct}", 11, **MUTED))
    for i, (metric, share) in enumerate(shares.items()):
        y = top + i * (bar + gap)
        body.append(svg_text(left - 8, y + bar / 2, metric, 12, "end"))
        x = float(left)
        for b in report.branches:
            w = span * share[b.name] / 100
            value = SHARE_METRICS[metric](b)
            inside = svg_text(x + w / 2, y + bar / 2, f"{b.name} {share[b.name]:.0f}%", 12, fill="white")
            body.append(
                f'<g class="share" data-branch="{b.name}" data-metric="{metric}" data-percent="{share[b.name]:.6f}">'
                f"<title>{escape(f'{b.name} ({b.label}): {share[b.name]:.1f}% of {metric} ({value:,})')}</title>"
                f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar}" fill="{BRANCH_COLORS[b.name]}"/>'
                + (inside if w >= 0.06 * span else "")
                + "</g>"
            )
            x += w
    body.append(svg_text(left + span / 2, axis_y + 22, "share (%)", 12, **MUTED))
    legend_y, x = axis_y + 46, float(left)
    for b in report.branches:
        body.append(f'<rect x="{x:.1f}" y="{legend_y - 6}" width="12" height="12" fill="{BRANCH_COLORS[b.name]}"/>')
        body.append(svg_text(x + 18, legend_y, f"{b.name} {b.label}", 12, "start"))
        x += 26 + 6.5 * len(f"{b.name} {b.label}")
    return svg_doc(width, legend_y + 14, body, "each branch's share of channels, params, mult-adds and multiplications")


def _edge_width(channels: int, biggest: int) -> float:
    # sqrt: a 16-channel path stays visible next to a 4096-channel one
    return 1.5 + 14.0 * math.sqrt(channels / max(biggest, 1))


_STEP = 1.7  # x distance between layer columns: room for an H×W×C label between boxes
_HALF = 0.42  # half a box's width
_PX = 80.0  # pixels per layout unit across (the diagram fits the page's right column at 1:1)
_PY = 88.0  # pixels per layout unit down (rows are 1 unit apart)


def block_diagram_svg(report: BlockReport) -> str:
    """Input → four parallel paths → concat. Edge widths follow channel counts;
    every edge inside a branch is labelled with the shape it carries (H×W×C). Each edge is a
    <polyline class="edge"> with data-channels and a <title> (the hover text)."""
    cols = max(len(b.layers) for b in report.branches)
    x_concat = _STEP * (cols + 1.4)  # extra room for the branch-output labels
    x_out = x_concat + _STEP
    y_mid = 1.5
    ys = {name: 3 - i for i, name in enumerate(BRANCHES)}
    biggest = max([report.input_shape[0]] + [r.output_shape[0] for b in report.branches for r in b.layers])
    top = 40  # the title's room

    def px(x: float) -> float:
        return (x + 0.5) * _PX

    def py(y: float) -> float:
        return top + (3.45 - y) * _PY

    edges: list[str] = []
    labels: list[str] = []
    nodes: list[str] = []

    def edge(xs: list[float], ys_: list[float], shape: Shape, color: str, label_x: float | None) -> None:
        """A polyline; its label sits above its first point's row, at label_x."""
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys_))
        edges.append(
            f'<polyline class="edge" data-channels="{shape[0]}" points="{points}" fill="none" stroke="{color}" '
            f'stroke-width="{_edge_width(shape[0], biggest):.2f}" stroke-opacity="0.7" stroke-linejoin="round">'
            f"<title>{escape(f'{hwc(shape)} ({shape[0]:,} channels)')}</title></polyline>"
        )
        if label_x is not None:
            labels.append(svg_text(px(label_x), py(ys_[0]) - 16, hwc(shape), 11, class_="shape"))

    def node(x: float, y: float, lines: list[str], color: str) -> None:
        w = max(2 * _HALF * _PX, 7 * max(map(len, lines)) + 8)  # wide enough for a 224×224×4096 label
        nodes.append(
            f'<rect x="{px(x) - w / 2:.1f}" y="{py(y + 0.24):.1f}" width="{w:.1f}" '
            f'height="{0.48 * _PY:.1f}" rx="4" fill="{color}"/>'
        )
        for k, line in enumerate(lines):
            dy = (k - (len(lines) - 1) / 2) * 14
            nodes.append(svg_text(px(x), py(y) + dy, line, 11, fill="white", font_weight="700"))

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
            node(x, y, [kind + (" conv" if layer.kind.startswith("conv") else "")], color)
        # straight on to the concat column, then a short diagonal into it
        edge(
            [x + _HALF, x_concat - 0.85, x_concat - _HALF],
            [y, y, y_mid],
            b.output_shape,
            color,
            (x + _HALF + x_concat - 0.85) / 2,
        )
        labels.append(svg_text(px(_STEP - _HALF - 0.05), py(y) - 14, b.name, 13, "end", fill=color, font_weight="700"))
    edge([x_concat + _HALF, x_out - _HALF], [y_mid, y_mid], report.output_shape, OTHER_COLOR, None)
    node(0, y_mid, ["input", hwc(report.input_shape)], OTHER_COLOR)
    node(x_concat, y_mid, ["concat"], OTHER_COLOR)
    node(x_out, y_mid, ["output", hwc(report.output_shape)], OTHER_COLOR)
    title = svg_text(4, 16, "Block diagram (edge width ∝ √channels; labels H×W×C)", 14, "start", font_weight="600")
    width, height = round(px(x_out + 0.5)), round(py(-0.45))
    return svg_doc(width, height, [title, *edges, *nodes, *labels], f"block diagram, output {hwc(report.output_shape)}")


# ---------------------------------------------------------------------------
# Network tables


def layer_rows(report: NetworkReport, expand: bool = False) -> list[dict[str, object]]:
    """torchinfo-like table, blocks summed, each aux head listed right after the block it attaches to.
    expand=True also lists every layer inside each block (branch by branch) under its block row."""
    aux_after = report.plan.aux_after()
    main = [r for r in report.summary_rows() if not r.group.startswith("aux")]
    aux = [r for r in report.rows if r.group.startswith("aux")]
    out: list[dict[str, object]] = []

    def add(r: LayerRow, note: str = "") -> None:
        out.append(
            {
                "layer": r.name,
                "type": r.kind,
                "output (C×H×W)": chw(r.output_shape),
                "params": r.cost.params,
                "mult-adds": r.cost.mult_adds,
                "receptive field (px)": rf_size(report, r.name),
                "note": note,
            }
        )

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
        out.append(
            {
                "head": f"aux{i}",
                "attaches after": b,
                "input (C×H×W)": chw(report.blocks[b].output_shape),
                "params": cost.params,
                "mult-adds": cost.mult_adds,
            }
        )
    return out


_PERCENT = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?%$")


def _numeric_cell(v: object) -> bool:
    """A number, a blank, or a percentage like '12.5%': right-aligned."""
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) or bool(_PERCENT.match(str(v)))


_BRANCH_OF_PATH = re.compile(r"^inception\w+\.branch(\d)")


def table_html(
    rows: list[dict[str, object]],
    help: dict[str, str] | None = None,
    row_color: Callable[[dict[str, object]], str | None] | None = None,
    max_height_px: int = 760,
    bold_last: bool = False,
    wide: bool = False,
) -> str:
    """A read-only table as one HTML string (shown with st.markdown): the browser lays 80 rows out in a few ms,
    where st.dataframe's grid took ~250 ms to redraw on every change (issue 17). Numbers are right-aligned with
    thousands separators (percentages too), None is blank; `help` adds a column's tooltip, `row_color` a row's
    left rule; `wide` spreads the table over its column."""
    if not rows:
        return ""
    cols = list(rows[0])
    numeric = {c for c in cols if all(_numeric_cell(r.get(c)) for r in rows)}

    def cell(v: object) -> str:
        if v is None:
            return ""
        return f"{v:,}" if isinstance(v, int) else (f"{v:,.4g}" if isinstance(v, float) else escape(str(v)))

    td = "padding:0.2rem 0.5rem;white-space:nowrap"  # one line a layer: the container scrolls sideways if need be
    head_style = f"{td};position:sticky;top:0;backdrop-filter:blur(6px);background:rgba(128,128,128,0.18)"
    head = "".join(
        f'<th style="{head_style};text-align:{"right" if c in numeric else "left"}"'
        + (f' title="{escape((help or {})[c])}"' if c in (help or {}) else "")
        + f">{escape(c)}</th>"
        for c in cols
    )
    body = []
    for i, r in enumerate(rows):
        color = row_color(r) if row_color else None
        style = f' style="box-shadow:inset 4px 0 0 {color}"' if color else ""
        weight = ' style="font-weight:600"' if bold_last and i == len(rows) - 1 else ""
        tds = "".join(
            f'<td style="{td};text-align:right;font-variant-numeric:tabular-nums">{cell(r.get(c))}</td>'
            if c in numeric
            else f'<td style="{td}">{cell(r.get(c))}</td>'
            for c in cols
        )
        body.append(f"<tr{style or weight}>{tds}</tr>")
    return (
        f'<div class="gnet-table" style="max-height:{max_height_px}px;overflow:auto">'
        f'<table style="width:{"100%" if wide else "auto"};font-size:0.85rem"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def rows_csv(rows: list[dict[str, object]]) -> str:
    """The rows as CSV (a header from the first row's keys; None as an empty field)."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def layer_branch_color(row: dict[str, object]) -> str | None:
    """The branch colour of a layer inside a block (inception3a.branch2.1 → b2's), for table_html's row rule."""
    m = _BRANCH_OF_PATH.match(str(row.get("layer", "")))
    return BRANCH_COLORS.get(f"b{m.group(1)}") if m else None


# ---------------------------------------------------------------------------
# Network figures


def depth_fig(report: NetworkReport) -> go.Figure:
    """Spatial size and channel count along depth (main path; aux attachment points marked)."""
    rows = [r for r in report.summary_rows() if not r.group.startswith("aux")]
    names = ["input"] + [r.name.removeprefix("inception") for r in rows]
    shapes = [report.input_shape] + [r.output_shape for r in rows]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("spatial size (H; W alongside)", "channels (C)"),
    )
    fig.add_scatter(
        x=names,
        y=[s[1] for s in shapes],
        mode="lines+markers",
        name="H",
        row=1,
        col=1,
        line=dict(color=OTHER_COLOR),
        customdata=[chw(s) for s in shapes],
        hovertemplate="%{x}: %{customdata} (C×H×W)<extra></extra>",
    )
    fig.add_scatter(
        x=names,
        y=[s[0] for s in shapes],
        mode="lines+markers",
        name="C",
        row=2,
        col=1,
        line=dict(color=BRANCH_COLORS["b1"]),
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
# Training: curves, run comparison, per-branch telemetry (records from gnet.runs readers)

_RUN_COLORS = ("#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288", "#AA4499", "#44AA99", "#999933")


def _row_of_panels(titles: Sequence[str], gap: float = 0.1) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """make_subplots(rows=1, cols=len(titles)) laid out by hand: the layout and each panel's axis references, at
    a tenth of make_subplots' cost (the comparison chart follows live runs)."""
    n = len(titles)
    width = (1 - gap * (n - 1)) / n
    layout: dict[str, Any] = {"annotations": []}
    axes = []
    for i, title in enumerate(titles):
        s, left = ("" if i == 0 else str(i + 1)), i * (width + gap)
        layout[f"xaxis{s}"] = dict(domain=[left, left + width], anchor=f"y{s}", title_text="epoch")
        layout[f"yaxis{s}"] = dict(anchor=f"x{s}")
        layout["annotations"].append(
            dict(
                text=title,
                x=left + width / 2,
                y=1.0,
                xref="paper",
                yref="paper",
                xanchor="center",
                yanchor="bottom",
                showarrow=False,
                font=dict(size=16),
            )
        )
        axes.append(dict(xaxis=f"x{s}", yaxis=f"y{s}"))
    return layout, axes


_CURVE_SERIES = (  # (name, colour, width, markers): the per-step line, then the two per-epoch ones
    ("train (per step)", "#56B4E9", 1.0, False),
    ("train (epoch)", "#0072B2", 2.0, True),
    ("test", "#D55E00", 2.0, True),
)


def _nice_top(v: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above v (an axis' top)."""
    if not math.isfinite(v) or v <= 0:
        return 1.0
    k = 10 ** math.floor(math.log10(v))
    return next(m * k for m in (1, 2, 5, 10) if m * k >= v * (1 - 1e-12))


def training_curves_svg(steps: list[dict], epochs: list[dict]) -> str:
    """Loss and accuracy against epochs (per-step training records, per-epoch train and test), as inline SVG: a
    live run's page redraws it on every poll, where a changed plotly figure is remounted in the browser (issue 17).
    Each line is a <polyline class="series"> with data-panel and data-series, and data-points (its points as JSON)
    on the per-epoch lines or data-n on the per-step one; each epoch marker has a hover <title>."""
    width, height, top, panel_w, panel_h, left, gap = 760, 318, 30, 312, 220, 54, 64
    x_max = max([1.0, *(float(r["epoch"]) for r in steps), *(float(r["epoch"]) for r in epochs)])
    body: list[str] = []
    for p, (key, title) in enumerate((("loss", "Loss"), ("acc", "Accuracy"))):
        x0 = left + p * (panel_w + gap)
        series = {
            "train (per step)": [(float(r["epoch"]), r.get(key)) for r in steps],
            "train (epoch)": [(float(r["epoch"]), r.get(f"train_{key}")) for r in epochs],
            "test": [(float(r["epoch"]), r.get(f"test_{key}")) for r in epochs],
        }
        finite = [
            float(v) for pts in series.values() for _, v in pts if isinstance(v, (int, float)) and math.isfinite(v)
        ]
        y_top = 1.0 if key == "acc" else _nice_top(max(finite, default=1.0))

        def xy(x: float, y: float, x0: float = x0, y_top: float = y_top) -> tuple[float, float]:
            return x0 + panel_w * x / x_max, top + panel_h * (1 - min(max(y / y_top, 0.0), 1.0))

        body.append(svg_text(x0 + panel_w / 2, 12, title, 14, font_weight="600"))
        for k in range(5):  # horizontal grid and the y labels
            v = y_top * k / 4
            y = xy(0, v)[1]
            body.append(f'<line x1="{x0}" x2="{x0 + panel_w}" y1="{y:.1f}" y2="{y:.1f}" {GRID_STROKE}/>')
            body.append(svg_text(x0 - 6, y, f"{v:.0%}" if key == "acc" else f"{v:.3g}", 11, "end", **MUTED))
        every = max(1, math.ceil(x_max / 10))
        for e in range(0, math.floor(x_max) + 1, every):  # the epochs along x
            body.append(svg_text(xy(e, 0)[0], top + panel_h + 12, str(e), 11, **MUTED))
        body.append(svg_text(x0 + panel_w / 2, top + panel_h + 30, "epoch", 12, **MUTED))
        for name, color, stroke, markers in _CURVE_SERIES:
            pts = [(x, float(v)) for x, v in series[name] if isinstance(v, (int, float)) and math.isfinite(v)]
            if not pts:
                continue
            coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in (xy(x, v) for x, v in pts))
            # the values themselves on the per-epoch lines (a few points); the per-step line only says how many
            data = f'data-points="{escape(json.dumps(pts))}"' if markers else f'data-n="{len(pts)}"'
            body.append(
                f'<polyline class="series" data-panel="{key}" data-series="{name}" {data} '
                f'points="{coords}" fill="none" stroke="{color}" stroke-width="{stroke}" stroke-linejoin="round"/>'
            )
            for x, v in pts if markers else ():
                cx, cy = xy(x, v)
                text = f"epoch {x:g} · {name} {key}: {f'{v:.2%}' if key == 'acc' else f'{v:.4g}'}"
                body.append(
                    f'<g class="point"><title>{escape(text)}</title>'
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}"/></g>'
                )
    x = float(left)
    for name, color, _, _ in _CURVE_SERIES:  # one legend for both panels: they share the colours
        body.append(f'<rect x="{x:.1f}" y="{height - 16}" width="18" height="4" fill="{color}"/>')
        body.append(svg_text(x + 24, height - 14, name, 12, "start"))
        x += 40 + 7 * len(name)
    return svg_doc(width, height, body, "training curves: loss and accuracy against epochs")


def compare_runs_fig(epochs_by_run: dict[str, list[dict]]) -> go.Figure:
    """Test loss and accuracy per epoch, one colour per run."""
    layout, (left, right) = _row_of_panels(("Test loss", "Test accuracy"))
    traces = []
    for i, (name, eps) in enumerate(epochs_by_run.items()):
        line = dict(color=_RUN_COLORS[i % len(_RUN_COLORS)])
        for ax, key in ((left, "test_loss"), (right, "test_acc")):
            traces.append(
                go.Scatter(
                    x=[r["epoch"] for r in eps],
                    y=[r[key] for r in eps],
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=ax is left,
                    line=line,
                    **ax,
                )
            )
    layout["yaxis2"]["tickformat"] = ".0%"
    layout |= dict(height=340, margin=dict(t=40, b=10))
    return go.Figure(data=traces, layout=layout)


def thinned(rows: list[Any], most: int) -> list[Any]:
    """Every k-th row and the last, at most about `most`: a long run's curve or slider keeps its shape at a
    bounded size (a live page rebuilds it on every poll)."""
    k = -(-len(rows) // most) if rows else 1
    return rows if k <= 1 else rows[::k] + ([rows[-1]] if (len(rows) - 1) % k else [])


MAX_HEATMAP_FRAMES = 60  # the heatmap's step slider: every k-th telemetry record and the latest


def telemetry_series(records: list[dict], stat: str) -> tuple[list[int], dict[tuple[str, str], list[float]]]:
    """Steps and, per (block, branch) in network order, the statistic at each step (nan where missing)."""
    steps = [int(r["step"]) for r in records]
    keys: dict[tuple[str, str], None] = {}
    for r in records:
        for blk, brs in r["branches"].items():
            if isinstance(brs, dict):
                keys.update({(blk, br): None for br in brs})
    series: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for r in records:
        for blk, br in keys:
            stats = (r["branches"].get(blk) or {}).get(br) if isinstance(r["branches"].get(blk), dict) else None
            v = stats.get(stat) if isinstance(stats, dict) else None
            series[(blk, br)].append(
                float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")
            )
    return steps, series


def _log10(v: float) -> float | None:
    return math.log10(v) if math.isfinite(v) and v > 0 else None


def _grid(
    series: dict[tuple[str, str], list[float]], i: int
) -> tuple[list[str], list[str], list[list[float | None]], list[list[str]]]:
    """Blocks (rows) × branches (columns) at record i: labels, log10 values for the colours (None where
    missing) and the values themselves for the hover text."""
    blocks = list(dict.fromkeys(b for b, _ in series))
    branches = list(dict.fromkeys(br for _, br in series))
    cells = [[series[(b, br)][i] if (b, br) in series else float("nan") for br in branches] for b in blocks]
    z = [[_log10(v) for v in row] for row in cells]
    text = [[f"{v:.4g}" if math.isfinite(v) else "" for v in row] for row in cells]
    return [b.removeprefix("inception") for b in blocks], branches, z, text


def _log_colorbar(lo: float | None, hi: float | None) -> dict:
    """Colours are log10 of the value; the bar's ticks print the values themselves."""
    if lo is None or hi is None:
        return dict(title="log scale")
    ticks = [lo + (hi - lo) * i / 4 for i in range(5)] if hi > lo else [lo]
    return dict(title="log scale", tickvals=ticks, ticktext=[f"{10**t:.3g}" for t in ticks])


def _color_range(series: dict[tuple[str, str], list[float]]) -> tuple[float, float] | tuple[None, None]:
    logs = [x for vs in series.values() for v in vs if (x := _log10(v)) is not None]
    return (min(logs), max(logs)) if logs else (None, None)


def telemetry_heatmap_fig(records: list[dict], stat: str, label: str = "") -> go.Figure:
    """The blocks × branches grid (9 × 4 for GoogLeNet) of one statistic, with a slider over the recorded
    steps (at most about MAX_HEATMAP_FRAMES of them, the latest shown). Colours are log10 of the value on one scale for all steps; hover shows the value."""
    steps, series = telemetry_series(records, stat)
    fig = go.Figure()
    if not steps or not series:
        fig.update_layout(height=120, title=f"{label or stat}: no telemetry records yet")
        return fig
    lo, hi = _color_range(series)
    last = len(steps) - 1

    def heat(i: int) -> go.Heatmap:
        y, x, z, text = _grid(series, i)
        return go.Heatmap(
            z=z,
            x=x,
            y=y,
            zmin=lo,
            zmax=hi,
            colorscale="Viridis",
            customdata=text,
            colorbar=_log_colorbar(lo, hi),
            xgap=2,
            ygap=2,
            hovertemplate="%{y} %{x}: %{customdata}<extra></extra>",
        )

    fig.add_trace(heat(last))
    shown = thinned(list(range(len(steps))), MAX_HEATMAP_FRAMES)  # frame i is record i; the latest is always one
    fig.frames = [go.Frame(data=[heat(i)], name=str(steps[i])) for i in shown]
    fig.update_layout(
        height=460,
        margin=dict(l=10, r=10, t=40, b=10),
        title=f"{label or stat} per block and branch",
        yaxis=dict(autorange="reversed", title="block", type="category"),
        sliders=[
            dict(
                active=len(shown) - 1,
                currentvalue=dict(prefix="step "),
                pad=dict(t=30),
                steps=[
                    dict(
                        label=str(s),
                        method="animate",
                        args=[
                            [str(s)],
                            dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0)),
                        ],
                    )
                    for s in (steps[i] for i in shown)
                ],
            )
        ],
    )
    return fig


def telemetry_lines_fig(records: list[dict], stat: str, label: str = "") -> go.Figure:
    """One panel per block, one line per branch (branch colours), the statistic against the step (log y)."""
    steps, series = telemetry_series(records, stat)
    blocks = list(dict.fromkeys(b for b, _ in series))
    cols = 3
    rows = max(1, math.ceil(len(blocks) / cols))
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[b.removeprefix("inception") for b in blocks],
        shared_xaxes=True,
        vertical_spacing=0.08,
    )
    for i, blk in enumerate(blocks):
        for br in dict.fromkeys(b for _, b in series):
            if (blk, br) not in series:
                continue
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=[v if v > 0 else None for v in series[(blk, br)]],
                    mode="lines+markers",
                    marker=dict(size=4),
                    name=br,
                    legendgroup=br,
                    showlegend=i == 0,
                    line=dict(color=BRANCH_COLORS.get(br, OTHER_COLOR), width=1.5),
                    hovertemplate=f"{blk} {br} step %{{x}}: %{{y:.4g}}<extra></extra>",
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
    fig.update_yaxes(type="log")
    fig.update_layout(
        height=max(260, 220 * rows),
        margin=dict(l=10, r=10, t=50, b=10),
        title=f"{label or stat} per block, by branch (log scale)",
        legend=dict(orientation="h", yanchor="top", y=-0.06),
    )
    return fig


def aux_loss_fig(records: list[dict]) -> go.Figure:
    """Main-head loss and each aux head's loss (batch means) at the telemetry steps."""
    steps = [r["step"] for r in records]
    fig = go.Figure()
    fig.add_scatter(
        x=steps,
        y=[r.get("loss") for r in records],
        mode="lines+markers",
        name="main head",
        line=dict(color=OTHER_COLOR),
    )
    heads = list(dict.fromkeys(k for r in records if isinstance(r.get("aux_loss"), dict) for k in r["aux_loss"]))
    for i, head in enumerate(heads):
        fig.add_scatter(
            x=steps,
            y=[(r.get("aux_loss") or {}).get(head) for r in records],
            mode="lines+markers",
            name=head,
            line=dict(color=_RUN_COLORS[i % len(_RUN_COLORS)], dash="dash"),
        )
    fig.update_layout(
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis_title="step",
        yaxis_title="loss",
        title="Aux heads' loss against the main loss" if heads else "Main loss (this network has no aux heads)",
    )
    return fig


def telemetry_compare_fig(runs_records: dict[str, list[dict]], stat: str, label: str = "") -> go.Figure:
    """Two (or more) runs' blocks × branches grids at their latest telemetry step, on one colour scale."""
    names = list(runs_records)
    fig = make_subplots(
        rows=1,
        cols=len(names),
        subplot_titles=[
            f"{n} (step {runs_records[n][-1]['step']})" if runs_records[n] else f"{n} (no telemetry)" for n in names
        ],
        horizontal_spacing=0.08,
    )
    all_series = {n: telemetry_series(runs_records[n], stat)[1] for n in names}
    logs = [x for s in all_series.values() for vs in s.values() for v in vs if (x := _log10(v)) is not None]
    lo, hi = (min(logs), max(logs)) if logs else (None, None)
    for j, n in enumerate(names):
        series = all_series[n]
        if not runs_records[n] or not series:
            continue
        y, x, z, text = _grid(series, -1)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=x,
                y=y,
                zmin=lo,
                zmax=hi,
                colorscale="Viridis",
                showscale=j == 0,
                colorbar=_log_colorbar(lo, hi),
                customdata=text,
                xgap=2,
                ygap=2,
                hovertemplate=f"{n} %{{y}} %{{x}}: %{{customdata}}<extra></extra>",
            ),
            row=1,
            col=j + 1,
        )
        fig.update_yaxes(autorange="reversed", type="category", row=1, col=j + 1)
    fig.update_layout(
        height=440, margin=dict(l=10, r=10, t=60, b=10), title=f"{label or stat}: latest telemetry step of each run"
    )
    return fig


# ---------------------------------------------------------------------------
# Receptive fields (from the layer plan; Araujo et al., Distill 2019)


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


def receptive_field_fig(report: NetworkReport) -> go.Figure:
    """Receptive field along depth: the main path in grey, each block's four branches in their colours.

    Every branch of a block starts from the same field (the block's input), so the spread at a block
    is what its kernels add; the dotted line is the input's side: above it a unit sees the whole image
    (and padding)."""
    plan = report.plan
    main = [plan.step(p) for p in plan.main_path()]
    names = [s.path.removeprefix("inception") for s in main]

    def hover(s) -> str:
        return f"{s.path}: {s.rf.size} px, jump {s.rf.jump}, first centre {s.rf.start:g}"

    fig = go.Figure()
    fig.add_scatter(
        x=names,
        y=[s.rf.size for s in main],
        mode="lines+markers",
        name="layer output",
        line=dict(color=OTHER_COLOR),
        customdata=[hover(s) for s in main],
        hovertemplate="%{customdata}<extra></extra>",
    )
    blocks = plan.blocks()
    for br in BRANCHES:
        steps = [plan.branch_steps(b)[br] for b in blocks]
        label = report.blocks[blocks[0].removeprefix("inception")].branch(br).label if blocks else br
        fig.add_scatter(
            x=[b.removeprefix("inception") for b in blocks],
            y=[s.rf.size for s in steps],
            mode="markers",
            name=f"{br} ({label})",
            marker=dict(color=BRANCH_COLORS[br], **_RF_MARKERS[br], line=dict(width=2)),
            customdata=[hover(s) for s in steps],
            hovertemplate="%{customdata}<extra></extra>",
        )
    side = max(report.input_shape[1:])
    fig.add_hline(
        y=side,
        line_dash="dot",
        line_color=OTHER_COLOR,
        annotation_text=f"input {side} px",
        annotation_position="top left",
    )
    fig.update_xaxes(categoryorder="array", categoryarray=names)
    fig.update_yaxes(title="receptive field (input pixels)", rangemode="tozero")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.15))
    return fig


# A/B comparison and sweeps (issue 14): tables and figures for gnet.compare and gnet.sweeps rows

A_COLOR, B_COLOR = "#0072B2", "#D55E00"  # A solid blue, B dashed vermillion (Okabe–Ito, not a branch colour)


def compare_table(c: ABComparison) -> list[dict[str, object]]:
    """A/B/Δ rows for st.dataframe: shapes C×H×W, params, mult-adds (torchinfo), receptive field (px)."""
    out: list[dict[str, object]] = []
    for r in (*c.rows, c.total):
        row: dict[str, object] = {
            "row": r.name,
            "type": r.kind,
            "A (C×H×W)": chw(r.a.shape) if r.a else "–",
            "B (C×H×W)": chw(r.b.shape) if r.b else "–",
        }
        for metric, label in (("params", "params"), ("mult_adds", "mult-adds"), ("rf", "RF")):
            row[f"{label} A"] = getattr(r.a, metric) if r.a else None
            row[f"{label} B"] = getattr(r.b, metric) if r.b else None
            row[f"Δ {label}"] = r.delta(metric)
        out.append(row)
    return out


def depth_compare_fig(a: NetworkReport, b: NetworkReport, label_a: str = "A", label_b: str = "B") -> go.Figure:
    """Spatial size, channels and receptive field along depth for A and B, overlaid (layers aligned by name)."""
    panels = ("spatial size H", "channels C", "receptive field (input pixels)")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=panels)

    def series(report: NetworkReport) -> dict[str, tuple[Shape, int | None]]:
        rf = network_receptive_fields(report.spec)
        rows = [r for r in report.summary_rows() if not r.group.startswith("aux") and r.name not in ("avgpool", "fc")]
        return {
            "input": (report.input_shape, 1),
            **{r.name.removeprefix("inception"): (r.output_shape, rf[r.name]) for r in rows},
        }

    sa, sb = series(a), series(b)
    order = [x for pair in align_names(list(sa), list(sb)) for x in pair if x is not None]
    order = list(dict.fromkeys(order))
    for s, label, color, dash in ((sa, label_a, A_COLOR, "solid"), (sb, label_b, B_COLOR, "dash")):
        names = [n for n in order if n in s]
        for row, pick in ((1, lambda v: v[0][1]), (2, lambda v: v[0][0]), (3, lambda v: v[1])):
            fig.add_scatter(
                x=names,
                y=[pick(s[n]) for n in names],
                mode="lines+markers",
                name=label,
                legendgroup=label,
                showlegend=row == 1,
                row=row,
                col=1,
                line=dict(color=color, dash=dash),
                customdata=[chw(s[n][0]) for n in names],
                hovertemplate=f"{label} %{{x}}: %{{y:,}} (%{{customdata}} C×H×W)<extra></extra>",
            )
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=620, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.08))
    return fig


def block_compare_fig(c: ABComparison) -> go.Figure:
    """Params and mult-adds per branch, A (hatched) beside B, in the branch colours."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("params per branch", "mult-adds per branch (torchinfo)"))
    names = [r.name for r in c.rows]
    colors = [BRANCH_COLORS.get(n, OTHER_COLOR) for n in names]
    for side, label, pattern in (("a", c.label_a, "/"), ("b", c.label_b, "")):
        for col, metric in ((1, "params"), (2, "mult_adds")):
            fig.add_bar(
                x=names,
                y=[r.value(side, metric) for r in c.rows],
                name=label,
                legendgroup=label,
                showlegend=col == 1,
                row=1,
                col=col,
                offsetgroup=side,
                marker=dict(color=colors, pattern_shape=pattern, opacity=0.55 if side == "a" else 1.0),
                hovertemplate=f"{label} %{{x}}: %{{y:,}}<extra></extra>",
            )
    fig.update_layout(
        barmode="group", height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.15)
    )
    return fig


SWEEP_COSTS = {"mult_adds": "mult-adds per image (torchinfo)", "params": "parameters"}


def sweep_fig(rows: list[dict[str, object]], cost: str = "mult_adds") -> go.Figure:
    """Best test accuracy against a cost, one point per variant; the Pareto front (nothing both cheaper
    and more accurate) drawn as a line through its points, which are marked larger."""
    done = [r for r in rows if isinstance(r.get("best_test_acc"), (int, float))]
    front = pareto_front([(float(r[cost]), float(r["best_test_acc"])) for r in done])
    fig = go.Figure()
    on = sorted((r for r, f in zip(done, front) if f), key=lambda r: r[cost])
    if on:
        fig.add_scatter(
            x=[r[cost] for r in on],
            y=[r["best_test_acc"] for r in on],
            mode="lines",
            line=dict(color=OTHER_COLOR, dash="dot", shape="hv"),
            name="Pareto front",
            hoverinfo="skip",
        )
    for is_front in (True, False):
        pts = [r for r, f in zip(done, front) if f == is_front]
        if not pts:
            continue
        fig.add_scatter(
            x=[r[cost] for r in pts],
            y=[r["best_test_acc"] for r in pts],
            mode="markers+text",
            text=[str(r["variant"]) for r in pts],
            textposition="top center" if is_front else "bottom center",
            name="on the front" if is_front else "dominated",
            marker=dict(
                size=14 if is_front else 9,
                color=B_COLOR if is_front else A_COLOR,
                symbol="star" if is_front else "circle",
            ),
            customdata=[[r["variant"], r["state"]] for r in pts],
            hovertemplate="%{customdata[0]} (%{customdata[1]}): %{y:.2%} at %{x:,}<extra></extra>",
        )
    fig.update_xaxes(title_text=SWEEP_COSTS[cost], type="log")
    fig.update_yaxes(title_text="best test accuracy", tickformat=".0%")
    fig.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.25),
        title=f"Test accuracy vs {SWEEP_COSTS[cost].split(' (')[0]}",
    )
    return fig


def sweep_table(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """variant, state, params, mult-adds, best test acc, images/s, time, and whether it is on the Pareto front
    of accuracy against mult-adds."""
    done = [r for r in rows if isinstance(r.get("best_test_acc"), (int, float))]
    front = dict(
        zip(
            (str(r["variant"]) for r in done),
            pareto_front([(float(r["mult_adds"]), float(r["best_test_acc"])) for r in done]),
        )
    )
    return [
        {
            "variant": r["variant"],
            "state": r["state"],
            "params": r["params"],
            "mult-adds": r["mult_adds"],
            "best test acc": r["best_test_acc"],
            "images/s": r["images_per_s"],
            "time (s)": r["seconds"],
            "Pareto": "✓" if front.get(str(r["variant"])) else "",
        }
        for r in rows
    ]


# ---------------------------------------------------------------------------
# Branch specialisation (issue 13): plain numbers in, so this module stays torch-free

SPECIALISATION_METRICS: dict[str, str] = {  # gnet.featurevis.BranchStats field -> panel title
    "colour_sensitivity": "colour sensitivity (mean over channels)",
    "colour_selective": "share of colour-selective channels",
    "strongest_share": "share of the block's strongest channels",
}


def specialisation_fig(
    blocks: list[str], grids: dict[str, list[list[float]]], expected: list[list[float]] | None = None
) -> go.Figure:
    """One blocks × branches heatmap per metric (values 0..1, shown as %), branch names in their colours.
    expected: each branch's share of the block's channels, shown on hover beside the strongest share."""
    fig = make_subplots(
        rows=1,
        cols=len(grids),
        subplot_titles=[SPECIALISATION_METRICS.get(k, k) for k in grids],
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    ticks = [f"<span style='color:{BRANCH_COLORS[b]}'><b>{b}</b></span>" for b in BRANCHES]
    for i, (metric, z) in enumerate(grids.items()):
        hover = "%{y} · %{x}: %{z:.0%}"
        custom = None
        if metric == "strongest_share" and expected is not None:
            custom, hover = expected, hover + " (its share of the channels: %{customdata:.0%})"
        fig.add_heatmap(
            z=z,
            x=list(BRANCHES),
            y=blocks,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            customdata=custom,
            text=[[f"{v:.0%}" for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate=hover + "<extra></extra>",
            showscale=i == len(grids) - 1,
            colorbar=dict(tickformat=".0%", len=0.9),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(tickvals=list(BRANCHES), ticktext=ticks, row=1, col=i + 1)
    fig.update_yaxes(autorange="reversed", title_text="block", row=1, col=1)
    fig.update_layout(height=max(260, 40 * len(blocks) + 120), margin=dict(l=10, r=10, t=50, b=10))
    return fig


# ---------------------------------------------------------------------------
# Feature Maps: a block's branch shares and the top-5 with branches zeroed


def branch_activation_share_svg(groups: list[str], shares: list[float], kernels: list[str], channels: list[int]) -> str:
    """Each branch's share of the block's summed output activation, in the branch colours (SVG: it changes with
    every layer switch, see block_diagram_svg). Each bar is a <g class="bar"> with data-share and a <title>."""
    width, left, top, plot_h, bottom = 660, 56, 34, 220, 44
    bar_w = (width - left - 10) / max(len(groups), 1)
    top_share = max([*shares, 1e-9])
    ymax = min(1.0, math.ceil(top_share * 10 + 1e-9) / 10)  # the next 10 % above the largest bar
    body = [svg_text(4, 14, "Each branch's share of the block's output activation", 14, "start", font_weight="600")]
    for k in range(0, 11):
        v = ymax * k / 10
        if k % 2:
            continue
        y = top + plot_h * (1 - v / ymax)
        body.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" {GRID_STROKE}/>')
        body.append(svg_text(left - 6, y, f"{v:.0%}", 11, "end", **MUTED))
    for i, (g, share, kern, ch) in enumerate(zip(groups, shares, kernels, channels)):
        h = plot_h * share / ymax
        x = left + i * bar_w
        color = BRANCH_COLORS.get(g, OTHER_COLOR)
        body.append(
            f'<g class="bar" data-group="{g}" data-share="{share!r}">'
            f"<title>{escape(f'{g}: {share:.1%} ({kern}, {ch} channels)', quote=False)}</title>"
            f'<rect x="{x + bar_w * 0.15:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{color}"/>'
            + svg_text(x + bar_w / 2, top + plot_h - h - 9, f"{share:.1%}", 12)
            + svg_text(x + bar_w / 2, top + plot_h + 14, g, 12, font_weight="700", fill=color)
            + svg_text(x + bar_w / 2, top + plot_h + 30, kern, 11, **MUTED)
            + "</g>"
        )
    return svg_doc(width, top + plot_h + bottom, body, "each branch's share of the block's output activation")


def ablation_bars_fig(labels: list[str], before: list[float], after: list[float], zeroed: list[str]) -> go.Figure:
    """The top-5 classes' probabilities before and after zeroing the chosen branches, side by side."""
    fig = go.Figure()
    fig.add_bar(x=labels, y=before, name="before", marker_color=OTHER_COLOR)
    fig.add_bar(x=labels, y=after, name=f"without {', '.join(zeroed)}", marker_color="#D55E00")
    fig.update_layout(
        barmode="group", xaxis_title="class", yaxis_title="probability", yaxis_tickformat=".0%", height=340
    )
    return fig
