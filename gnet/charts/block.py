"""The Block Designer's drawings and tables: the block diagram, each branch's share, branch and comparison rows."""

from __future__ import annotations

import math
from html import escape

from gnet.analysis import BlockReport, Comparison
from gnet.charts.branches import Bar, Segment, share_bars_svg
from gnet.charts.svg import svg_doc, svg_text
from gnet.charts.tables import Shape, hwc
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.plan import BRANCH, CONV, MAXPOOL, block_steps
from gnet.spec import BRANCHES

METRICS: dict[str, str] = {  # Cost field -> label
    "params": "params",
    "weights": "weights (no bias/BN)",
    "mult_adds": "mult-adds (torchinfo)",
    "multiplications": "multiplications (hand count)",
}


# ---------------------------------------------------------------------------
# Tables


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
# Drawings (inline SVG: both change on every keystroke, see gnet.charts.svg)


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
    bars = [
        Bar(
            metric,
            [
                Segment(
                    b.name,
                    share[b.name] / 100,
                    f"{b.name} ({b.label}): {share[b.name]:.1f}% of {metric} ({SHARE_METRICS[metric](b):,})",
                    {"branch": b.name, "metric": metric, "percent": f"{share[b.name]:.6f}"},
                    text=f"{b.name} {share[b.name]:.0f}%",
                )
                for b in report.branches
            ],
        )
        for metric, share in branch_shares(report).items()
    ]
    return share_bars_svg(
        bars,
        "Each branch's share",
        "each branch's share of channels, params, mult-adds and multiplications",
        ticks=[k / 5 for k in range(6)],
        tick_text=lambda t: f"{round(t * 100)}",
        horizontal=True,
        legend_items=[(BRANCH_COLORS[b.name], f"{b.name} {b.label}") for b in report.branches],
        axis_title="share (%)",
    )


def _edge_width(channels: int, biggest: int) -> float:
    # sqrt: a 16-channel path stays visible next to a 4096-channel one
    return 1.5 + 14.0 * math.sqrt(channels / max(biggest, 1))


_STEP = 1.7  # x distance between layer columns: room for an H×W×C label between boxes
_HALF = 0.42  # half a box's width
_PX = 80.0  # pixels per layout unit across (the diagram fits the page's right column at 1:1)
_PY = 88.0  # pixels per layout unit down (rows are 1 unit apart)
_NODE_KINDS = {CONV: "conv", MAXPOOL: "pool"}


def branch_nodes(report: BlockReport) -> dict[str, list[str]]:
    """branch -> the diagram's box text for each of its layers ("1×1 conv", "3×3 pool"), from the block's
    layer plan: the kernel sizes the analysis counted, not read back from its labels."""
    steps = [s for s in block_steps(report.spec, report.input_shape) if s.kind != BRANCH]
    return {
        name: [f"{s.spec.kernel}×{s.spec.kernel} {_NODE_KINDS[s.kind]}" for s in steps if s.branch == name]
        for name in BRANCHES
    }


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
    boxes = branch_nodes(report)
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
        for j, text in enumerate(boxes[b.name]):
            x = _STEP * (j + 1)
            if j:
                edge([x - _STEP + _HALF, x - _HALF], [y, y], b.layers[j - 1].output_shape, color, x - _STEP / 2)
            node(x, y, [text], color)
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
