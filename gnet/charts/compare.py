"""A/B comparisons (`gnet.compare`) and sweeps (`gnet.sweeps` rows): tables and figures."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gnet.analysis import NetworkReport
from gnet.charts.tables import Shape, chw, plotly_text
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.compare import Comparison, align_names, network_receptive_fields, pareto_front
from gnet.plan import short_label

A_COLOR, B_COLOR = "#0072B2", "#D55E00"  # A solid blue, B dashed vermillion (Okabe–Ito, not a branch colour)


def compare_table(c: Comparison) -> list[dict[str, object]]:
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
    """Spatial size, channels and receptive field along depth for A and B, overlaid (layers aligned by name).
    Two networks that share no layer names past the input (a GoogLeNet and an Inception v3) are drawn against
    their depth, the layer's position along the main path, each named on hover."""
    label_a, label_b = plotly_text(label_a), plotly_text(label_b)  # "A (the uploaded file's name)"
    panels = ("spatial size H", "channels C", "receptive field (input pixels)")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=panels)

    def series(report: NetworkReport) -> dict[str, tuple[Shape, int | None]]:
        rf = network_receptive_fields(report.spec)
        aux = set(report.plan.aux_after().values()) if report.plan else set()
        rows = [
            r
            for r in report.summary_rows()
            if not r.group.startswith("aux") and r.group not in aux and r.name not in ("avgpool", "fc")
        ]
        return {
            "input": (report.input_shape, 1),
            **{short_label(r.name): (r.output_shape, rf[r.name]) for r in rows},
        }

    sa, sb = series(a), series(b)
    by_depth = not (set(sa) & set(sb)) - {"input"}
    order = [x for pair in align_names(list(sa), list(sb)) for x in pair if x is not None]
    order = list(dict.fromkeys(order))
    for s, label, color, dash in ((sa, label_a, A_COLOR, "solid"), (sb, label_b, B_COLOR, "dash")):
        names = list(s) if by_depth else [n for n in order if n in s]
        for row, pick in ((1, lambda v: v[0][1]), (2, lambda v: v[0][0]), (3, lambda v: v[1])):
            fig.add_scatter(
                x=list(range(len(names))) if by_depth else names,
                y=[pick(s[n]) for n in names],
                mode="lines+markers",
                name=label,
                legendgroup=label,
                showlegend=row == 1,
                row=row,
                col=1,
                line=dict(color=color, dash=dash),
                customdata=[[n, chw(s[n][0])] for n in names] if by_depth else [chw(s[n][0]) for n in names],
                hovertemplate=(
                    f"{label} %{{customdata[0]}} (depth %{{x}}): %{{y:,}} (%{{customdata[1]}} C×H×W)<extra></extra>"
                    if by_depth
                    else f"{label} %{{x}}: %{{y:,}} (%{{customdata}} C×H×W)<extra></extra>"
                ),
            )
    if by_depth:
        fig.update_xaxes(title_text="depth (layers along the main path)", row=3, col=1)
    else:
        fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=620, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.08))
    return fig


def block_compare_fig(c: Comparison) -> go.Figure:
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
