"""The two drawings every per-branch view shares: the blocks × branches grid and the share bars.

A `Grid` is one number per block (row) and branch (column), with the text each cell shows and its hover line. It
is drawn as inline SVG (`Grid.svg`, for the charts that change with every input) or as a plotly heatmap trace
(`Grid.heatmap`, where a chart needs plotly: the telemetry heatmap's step slider, several panels on one scale).
`share_bars_svg` draws stacked bars of branch shares, vertical or horizontal, signed shares below zero.
`unit_grid` is one branch's map as units to click (Explain's and Anatomy's unit pickers, ui/unit_picker.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
import plotly.graph_objects as go

from gnet.charts.svg import GRID_STROKE, MUTED, legend, svg_doc, svg_text
from gnet.colors import BRANCH_COLORS, OTHER_COLOR


def branch_color(branch: str) -> str:
    return BRANCH_COLORS.get(branch, OTHER_COLOR)


def _ink(fill: str) -> str:
    """Text that reads on a cell of this colour: white on dark fills, near-black on light ones."""
    r, g, b = (int(fill.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "#222"


@dataclass(frozen=True)
class Grid:
    """Blocks (rows, top to bottom) × branches (columns, in concatenation order)."""

    rows: list[str]  # the blocks' labels, "3a"
    branches: list[str]  # "b1".."b4"
    values: list[list[float | None]]  # what the colour shows; None or nan where a cell has no value
    texts: list[list[str]]  # what each cell says
    hovers: list[list[str]]  # each cell's hover line
    headers: dict[str, str] = field(default_factory=dict)  # branch -> a second header line (its kernel sizes)

    def value(self, i: int, j: int) -> float:
        v = self.values[i][j]
        return float(v) if v is not None else float("nan")

    def svg(self, title: str, color: Callable[[float], str], key: tuple[float, float, str]) -> str:
        """Cells coloured by color(value) (nan: its colour for no value), each with its text and a hover <title>,
        in a <g class="cell"> with data-row, data-col and data-value; branch headers in the branch colours; a
        colour key below from key = (low, high, what the middle says)."""
        cell_w, cell_h, left, top = 92, 30, 44, 74
        width = left + cell_w * len(self.branches) + 8
        height = top + cell_h * len(self.rows) + 46
        out = [svg_text(4, 14, title, 13, "start", font_weight="600")]
        for j, r in enumerate(self.branches):
            x = left + j * cell_w
            out.append(f'<rect x="{x + 1}" y="{top - 44}" width="{cell_w - 2}" height="40" fill="{branch_color(r)}"/>')
            out.append(svg_text(x + cell_w / 2, top - 32, r, 12, fill="white", font_weight="700"))
            out.append(svg_text(x + cell_w / 2, top - 15, self.headers.get(r, ""), 10, fill="white"))
        for i, name in enumerate(self.rows):
            y = top + i * cell_h
            out.append(svg_text(left - 6, y + cell_h / 2, name, 12, "end"))
            for j in range(len(self.branches)):
                v = self.value(i, j)
                fill = color(v)
                out.append(
                    f'<g class="cell" data-row="{i}" data-col="{j}" data-value="{v!r}">'
                    f"<title>{escape(self.hovers[i][j])}</title>"
                    f'<rect x="{left + j * cell_w + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
                    f'fill="{fill}"/>'
                    + svg_text(left + (j + 0.5) * cell_w, y + cell_h / 2, self.texts[i][j], 12, fill=_ink(fill))
                    + "</g>"
                )
        lo, hi, middle = key
        key_y, key_w = top + cell_h * len(self.rows) + 12, cell_w * len(self.branches)
        for k in range(40):  # the colour key: low … high
            v = lo + (hi - lo) * (k + 0.5) / 40
            out.append(
                f'<rect x="{left + k * key_w / 40:.1f}" y="{key_y}" width="{key_w / 40 + 0.5:.1f}" height="10" '
                f'fill="{color(v)}"/>'
            )
        out.append(svg_text(left, key_y + 24, f"{lo:+.3g}", 11, "start", **MUTED))
        out.append(svg_text(left + key_w / 2, key_y + 24, middle, 11, **MUTED))
        out.append(svg_text(left + key_w, key_y + 24, f"{hi:+.3g}", 11, "end", **MUTED))
        return svg_doc(width, height, out, title)

    def heatmap(
        self,
        zmin: float | None,
        zmax: float | None,
        show_text: bool = False,
        colorbar: dict | None = None,
        showscale: bool = True,
    ) -> go.Heatmap:
        """The grid as a plotly heatmap trace (Viridis); hover shows the cell's hover line, show_text its text."""
        return go.Heatmap(
            z=self.values,
            x=self.branches,
            y=self.rows,
            zmin=zmin,
            zmax=zmax,
            colorscale="Viridis",
            customdata=self.hovers,
            hovertemplate="%{customdata}<extra></extra>",
            text=self.texts if show_text else None,
            texttemplate="%{text}" if show_text else None,
            showscale=showscale,
            colorbar=colorbar,
            xgap=2,
            ygap=2,
        )

    def style_axes(self, fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
        """Branch names in their colours (and their kernels under them) along x, blocks down y in order."""
        ticks = [
            f"<span style='color:{branch_color(b)}'><b>{b}</b></span>"
            + (f"<br>{escape(self.headers[b])}" if self.headers.get(b) else "")
            for b in self.branches
        ]
        fig.update_xaxes(tickvals=self.branches, ticktext=ticks, row=row, col=col)
        fig.update_yaxes(autorange="reversed", type="category", row=row, col=col)


@dataclass(frozen=True)
class Segment:
    """One branch's part of a bar."""

    branch: str  # its colour
    value: float  # its share: 1.0 is the whole; negative shares stack below zero; nan is not drawn
    hover: str
    data: dict[str, str]  # the <g>'s data-* attributes (without the "data-"), read back by tests and the browser
    text: str = ""  # written inside the segment where it fits (horizontal bars)


@dataclass(frozen=True)
class Bar:
    label: str
    segments: list[Segment]
    note: str = ""  # a second, muted line under the label (vertical bars)
    end_text: str = ""  # written beyond the bar's end (vertical bars)
    label_color: str | None = None  # the label bold in this colour


def share_bars_svg(
    bars: list[Bar],
    title: str,
    label: str,
    ticks: Sequence[float],
    tick_text: Callable[[float], str],
    horizontal: bool = False,
    width: int = 660,
    length: int = 220,
    css_class: str = "share",
    legend_items: Sequence[tuple[str, str]] = (),
    axis_title: str = "",
) -> str:
    """Bars of stacked branch shares in the branch colours, from zero along an axis spanning the ticks (positive
    shares one way, negative ones the other). Each segment is a <g class=css_class> with its data-* attributes and
    a hover <title>. label: the SVG's aria-label. length: the vertical plot's height."""
    lo, hi = min(ticks), max(ticks)
    body = [svg_text(4, 14, title, 14 if width >= 600 else 13, "start", font_weight="600")]
    top = 34
    if horizontal:
        left, right, thick, gap = 112, 14, 28, 8
        span = width - left - right
        axis_end = top + len(bars) * (thick + gap)

        def pos(v: float) -> float:
            return left + span * (v - lo) / (hi - lo)

        for t in ticks:  # the grid first: the bars cover it
            x = pos(t)
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{axis_end - gap + 4}" {GRID_STROKE}/>')
            body.append(svg_text(x, axis_end + 4, tick_text(t), 11, **MUTED))
        slot = float(thick + gap)
    else:
        left, right = 56, 10
        span = length
        axis_end = top + length
        slot = (width - left - right) / max(len(bars), 1)

        def pos(v: float) -> float:
            return top + length * (hi - v) / (hi - lo)

        for t in ticks:
            y = pos(t)
            zero = ' stroke-width="1.5"' if t == 0 and lo < 0 else ""
            body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" {GRID_STROKE}{zero}/>')
            body.append(svg_text(left - 6, y, tick_text(t), 11, "end", **MUTED))
    for i, bar in enumerate(bars):
        start = top + i * slot if horizontal else left + i * slot + slot * 0.15  # the bar's side, across the axis
        across = thick if horizontal else slot * 0.7
        up = down = 0.0
        for s in bar.segments:
            if not math.isfinite(s.value):
                continue
            base = up if s.value >= 0 else down
            a, b = sorted((pos(base), pos(base + s.value)))
            if s.value >= 0:
                up += s.value
            else:
                down += s.value
            if horizontal:
                rect = f'x="{a:.2f}" y="{start:.1f}" width="{b - a:.2f}" height="{across:.1f}"'
            else:
                rect = f'x="{start:.1f}" y="{a:.1f}" width="{across:.1f}" height="{b - a:.1f}"'
            inside = (
                svg_text((a + b) / 2, start + across / 2, s.text, 12, fill="white")
                if s.text and horizontal and b - a >= 0.06 * span
                else ""
            )
            data = "".join(f' data-{k}="{escape(v)}"' for k, v in s.data.items())
            body.append(
                f'<g class="{css_class}"{data}><title>{escape(s.hover, quote=False)}</title>'
                f'<rect {rect} fill="{branch_color(s.branch)}"/>{inside}</g>'
            )
        bold = {"font_weight": "700", "fill": bar.label_color} if bar.label_color else {}
        if horizontal:
            body.append(svg_text(left - 8, start + across / 2, bar.label, 12, "end", **bold))
        else:
            mid = start + across / 2
            if bar.end_text:
                body.append(svg_text(mid, pos(up) - 9, bar.end_text, 12))
            body.append(svg_text(mid, axis_end + 14, bar.label, 12, **bold))
            if bar.note:
                body.append(svg_text(mid, axis_end + 30, bar.note, 11, **MUTED))
    y = axis_end + (4 if horizontal else 30 if any(bar.note for bar in bars) else 14)
    if axis_title:
        y += 18
        body.append(svg_text(left + (width - left - right) / 2, y, axis_title, 12, **MUTED))
    if legend_items:
        y += 24
        body += legend(float(left), y, list(legend_items))
    return svg_doc(width, round(y + 14), body, label)


def unit_grid(fmap: np.ndarray, branch: str, title: str, what: str = "", px: int = 420) -> dict:
    """One branch's map at its own resolution as cells to click (ui/unit_picker.py draws them in the browser), from
    light grey at the map's minimum to the branch's colour at its maximum. Plain JSON: the fills are computed here,
    so the browser only lays out squares. what: the value's name in the hover; px: about the grid's side."""
    hh, ww = fmap.shape
    v = np.asarray(fmap, np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    t = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    light = np.array([0xF2, 0xF2, 0xF2], np.float64)
    full = np.array([int(branch_color(branch)[i : i + 2], 16) for i in (1, 3, 5)], np.float64)
    rgb = np.rint(light + t[:, None] * (full - light)).astype(int)
    return {
        "h": hh,
        "w": ww,
        "cell": max(6, min(28, px // max(hh, ww))),
        "fills": [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb],
        "values": [float(f"{x:.4g}") for x in v],
        "title": title,
        "what": what,
    }
