"""Per-block, per-branch training telemetry (records from `gnet.runs.read_telemetry`): the blocks × branches
grid with a step slider, one panel of lines per block, the aux heads' loss, and two runs side by side."""

from __future__ import annotations

import math
import re

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gnet.charts.branches import Grid
from gnet.charts.training import RUN_COLORS, thinned
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.plan import short_label

MAX_HEATMAP_FRAMES = 60  # the heatmap's step slider: every k-th telemetry record and the latest


_MODULE_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}")


def module_name(name: object) -> bool:
    """A block, branch or head name as the trainer writes them (module names: inception3a, b1, aux1). A name in a
    hand-edited telemetry file that is not one is left out of every chart: plotly reads HTML in names."""
    return isinstance(name, str) and _MODULE_NAME.fullmatch(name) is not None


def telemetry_series(records: list[dict], stat: str) -> tuple[list[int], dict[tuple[str, str], list[float]]]:
    """Steps and, per (block, branch) in network order, the statistic at each step (nan where missing)."""
    steps = [int(r["step"]) for r in records]
    keys: dict[tuple[str, str], None] = {}
    for r in records:
        for blk, brs in r["branches"].items():
            if isinstance(brs, dict) and module_name(blk):
                keys.update({(blk, br): None for br in brs if module_name(br)})
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


NO_PARAMETER_STATS = ("weight_norm", "update_norm")  # None for a branch without parameters (v3's B and D pools)


def _gap_text(stat: str) -> str:
    """What a branch the block has, but without a value of `stat`, says in its cell's hover."""
    return "— (no parameters: a pool-only branch)" if stat in NO_PARAMETER_STATS else "— (not measured)"


def _grid(series: dict[tuple[str, str], list[float]], i: int, stat: str, run: str = "") -> Grid:
    """The blocks × branches grid at record i: log10 of the values for the colours (None where missing), the
    values themselves in the hover. A branch without a value (None in the record: a pool-only branch's weight
    norm) reads "—"; a branch the block does not have stays blank."""
    blocks = list(dict.fromkeys(b for b, _ in series))
    branches = list(dict.fromkeys(br for _, br in series))
    cells = [[series[(b, br)][i] if (b, br) in series else None for br in branches] for b in blocks]
    rows = [short_label(b) for b in blocks]
    texts = [["" if v is None else f"{v:.4g}" if math.isfinite(v) else "—" for v in row] for row in cells]
    hovers = [
        [
            f"{run} {b} {br}: {_gap_text(stat) if t == '—' else t}".lstrip() if t else f"{run} {b} has no {br}".lstrip()
            for br, t in zip(branches, row)
        ]
        for b, row in zip(rows, texts)
    ]
    return Grid(
        rows=rows,
        branches=branches,
        values=[[None if v is None else _log10(v) for v in row] for row in cells],
        texts=texts,
        hovers=hovers,
    )


def _log_colorbar(lo: float | None, hi: float | None) -> dict:
    """Colours are log10 of the value; the bar's ticks print the values themselves."""
    if lo is None or hi is None:
        return dict(title="log scale")
    ticks = [lo + (hi - lo) * i / 4 for i in range(5)] if hi > lo else [lo]
    return dict(title="log scale", tickvals=ticks, ticktext=[f"{10**t:.3g}" for t in ticks])


def _color_range(series: list[dict[tuple[str, str], list[float]]]) -> tuple[float, float] | tuple[None, None]:
    """One colour scale over every step of every run given."""
    logs = [x for s in series for vs in s.values() for v in vs if (x := _log10(v)) is not None]
    return (min(logs), max(logs)) if logs else (None, None)


def telemetry_heatmap_fig(records: list[dict], stat: str, label: str = "") -> go.Figure:
    """The blocks × branches grid (9 × 4 for GoogLeNet) of one statistic, with a slider over the recorded
    steps (at most about MAX_HEATMAP_FRAMES of them, the latest shown). Colours are log10 of the value on one
    scale for all steps; hover shows the value."""
    steps, series = telemetry_series(records, stat)
    fig = go.Figure()
    if not steps or not series:
        fig.update_layout(height=120, title=f"{label or stat}: no telemetry records yet")
        return fig
    lo, hi = _color_range([series])
    last = _grid(series, len(steps) - 1, stat)
    fig.add_trace(last.heatmap(lo, hi, colorbar=_log_colorbar(lo, hi)))
    shown = thinned(list(range(len(steps))), MAX_HEATMAP_FRAMES)  # frame i is record i; the latest is always one
    fig.frames = [
        go.Frame(data=[_grid(series, i, stat).heatmap(lo, hi, colorbar=_log_colorbar(lo, hi))], name=str(steps[i]))
        for i in shown
    ]
    last.style_axes(fig)
    fig.update_layout(
        height=460,
        margin=dict(l=10, r=10, t=40, b=10),
        title=f"{label or stat} per block and branch",
        yaxis_title="block",
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
        subplot_titles=[short_label(b) for b in blocks],
        shared_xaxes=True,
        vertical_spacing=0.08,
    )
    in_legend: set[str] = set()
    for i, blk in enumerate(blocks):
        for br in dict.fromkeys(b for _, b in series):
            # log y: a value that is not positive, or None (a pool-only branch has no weight norm), is a gap
            ys = [v if v > 0 else None for v in series.get((blk, br), ())]
            if not any(y is not None for y in ys):  # no line at all: the branch is left out of this panel
                continue
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=ys,
                    mode="lines+markers",
                    marker=dict(size=4),
                    name=br,
                    legendgroup=br,
                    showlegend=br not in in_legend,
                    line=dict(color=BRANCH_COLORS.get(br, OTHER_COLOR), width=1.5),
                    hovertemplate=f"{blk} {br} step %{{x}}: %{{y:.4g}}<extra></extra>",
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
            in_legend.add(br)
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
    heads = list(
        dict.fromkeys(
            k for r in records if isinstance(r.get("aux_loss"), dict) for k in r["aux_loss"] if module_name(k)
        )
    )
    for i, head in enumerate(heads):
        fig.add_scatter(
            x=steps,
            y=[(r.get("aux_loss") or {}).get(head) for r in records],
            mode="lines+markers",
            name=head,
            line=dict(color=RUN_COLORS[i % len(RUN_COLORS)], dash="dash"),
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
    lo, hi = _color_range(list(all_series.values()))
    for j, n in enumerate(names):
        series = all_series[n]
        if not runs_records[n] or not series:
            continue
        grid = _grid(series, -1, stat, run=n)
        fig.add_trace(grid.heatmap(lo, hi, colorbar=_log_colorbar(lo, hi), showscale=j == 0), row=1, col=j + 1)
        grid.style_axes(fig, row=1, col=j + 1)
    fig.update_layout(
        height=440, margin=dict(l=10, r=10, t=60, b=10), title=f"{label or stat}: latest telemetry step of each run"
    )
    return fig
