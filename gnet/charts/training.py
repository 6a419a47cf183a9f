"""Training curves (loss and accuracy against epochs) and the comparison of runs, from the metric records
(`gnet.metrics`) that `gnet.runs` reads back."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

import plotly.graph_objects as go

from gnet.charts.svg import GRID_STROKE, MUTED, svg_doc, svg_text
from gnet.metrics import EpochRecord, StepRecord

RUN_COLORS = ("#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288", "#AA4499", "#44AA99", "#999933")


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


def training_curves_svg(steps: list[StepRecord], epochs: list[EpochRecord]) -> str:
    """Loss and accuracy against epochs (per-step training records, per-epoch train and test), as inline SVG: a
    live run's page redraws it on every poll, where a changed plotly figure is remounted in the browser.
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


def compare_runs_fig(epochs_by_run: dict[str, list[EpochRecord]]) -> go.Figure:
    """Test loss and accuracy per epoch, one colour per run."""
    layout, (left, right) = _row_of_panels(("Test loss", "Test accuracy"))
    traces = []
    for i, (name, eps) in enumerate(epochs_by_run.items()):
        line = dict(color=RUN_COLORS[i % len(RUN_COLORS)])
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
