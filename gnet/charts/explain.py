"""What a network does with an image, drawn: the Explain page's Grad-CAM grid, evidence and ablation grids, block
shares, unit picker and receptive-field images (from `gnet.attribution` results); the Feature Maps page's branch
shares and ablation bars; the Atlas page's branch-specialisation heatmap (from `gnet.featurevis` numbers).

Torch-free: the results come in as numpy arrays and plain numbers (their types are named for the type checker only).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.subplots import make_subplots

from gnet.charts.branches import Bar, Grid, Segment, share_bars_svg, unit_grid
from gnet.charts.tables import plotly_text
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.plan import ReceptiveField, short_label
from gnet.raster import LUT, ascii_label, font, hex_rgb
from gnet.spec import BRANCHES

if TYPE_CHECKING:
    from gnet.attribution import EmpiricalRF, Explanation

SCALES = ("shared", "row")  # Grad-CAM colour scale: one for all maps, or one per block (row)


# ---------------------------------------------------------------------------
# Explain: Grad-CAM thumbnails


def _grey_base(image: Image.Image, size: int) -> np.ndarray:
    base = np.asarray(image.convert("L").resize((size, size), Image.Resampling.BILINEAR), np.float32)
    return np.repeat(base[..., None] * 0.6 + 40, 3, axis=2)


def branch_overlay(
    image: Image.Image, cam: np.ndarray, vmax: float, color: str, size: int, base: np.ndarray | None = None
) -> Image.Image:
    """The map upsampled (bilinear) onto a dimmed grey copy of the image, as the branch's colour:
    transparent at 0, full colour at vmax. `base`: that grey copy, when the caller has made it already."""
    base = _grey_base(image, size) if base is None else base
    v = np.zeros(cam.shape, np.float32) if vmax <= 0 else np.clip(cam / vmax, 0, 1).astype(np.float32)
    up = (
        np.asarray(
            Image.fromarray((v * 255).astype(np.uint8), "L").resize((size, size), Image.Resampling.BILINEAR), np.float32
        )[..., None]
        / 255.0
    )
    out = base * (1 - 0.85 * up) + hex_rgb(color) * (0.85 * up)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


def gradcam_scales(ex: Explanation, scale: str) -> dict[str, float]:
    """block -> the map value drawn at full colour: the max over all 36 maps, or over the block's 4."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}")
    row_max = {b: max(float(e.gradcam.max()) for e in br.values()) for b, br in ex.blocks.items()}
    if scale == "row":
        return row_max
    top = max(row_max.values())
    return {b: top for b in ex.blocks}


def _headers(ex: Explanation) -> dict[str, str]:
    """The branches' kernel sizes for a column header: the first block's where every block has the same
    branches (GoogLeNet); none where they differ (Inception v3: A–E), so no column claims one block's kernels."""
    labels = list(ex.kernel_labels.values())
    return labels[0] if labels and all(set(x) == set(labels[0]) for x in labels) else {}


def _cell(v: float, fmt: str) -> str:
    return format(v, fmt) if np.isfinite(v) else "—"


def gradcam_grid(ex: Explanation, image: Image.Image, scale: str = "shared", tile: int = 112) -> Image.Image:
    """All blocks x 4 branches of Grad-CAM thumbnails in one image: rows are blocks, columns the
    branches (framed and coloured in the branch colours); the header says which scale is used."""
    vmax = gradcam_scales(ex, scale)
    pad, label_w, head_h, foot_h = 6, 44, 70, 14
    blocks = list(ex.blocks)
    keys = ex.branch_keys()
    w = label_w + len(keys) * (tile + pad) + pad
    h = head_h + len(blocks) * (tile + foot_h + pad) + pad
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    which = (
        f"shared: one colour scale for all maps (full colour = the largest value of any map, {vmax[blocks[0]]:.3g})"
        if scale == "shared"
        else "per row: each block's maps scaled to its own largest value"
    )
    draw.text(
        (pad, 4),
        ascii_label(f"Grad-CAM for '{ex.label}', colour scale {which.split(':')[0]}"),
        fill="#222222",
        font=font(14),
    )
    draw.text((pad, 22), ascii_label(which.split(": ", 1)[1]), fill="#444444", font=font(11))
    first = _headers(ex)
    base = _grey_base(image, tile)  # once for all 36 tiles
    for j, r in enumerate(keys):
        x0 = label_w + pad + j * (tile + pad)
        draw.rectangle([x0, 40, x0 + tile - 1, head_h - 2], fill=BRANCH_COLORS[r])
        draw.text((x0 + 4, 41), r, fill="white", font=font(12))
        draw.text((x0 + 4, 55), ascii_label(first.get(r, "")), fill="white", font=font(10))
    for i, b in enumerate(blocks):
        y0 = head_h + i * (tile + foot_h + pad)
        draw.text((6, y0 + tile // 2 - 8), short_label(b), fill="#222222", font=font(16))
        for j, r in enumerate(keys):
            if r not in ex.blocks[b]:  # a grid reduction's three branches
                continue
            x0 = label_w + pad + j * (tile + pad)
            cam = ex.blocks[b][r].gradcam
            img.paste(branch_overlay(image, cam, vmax[b], BRANCH_COLORS[r], tile, base), (x0, y0))
            draw.rectangle([x0 - 2, y0 - 2, x0 + tile + 1, y0 + tile + 1], outline=BRANCH_COLORS[r], width=2)
            draw.text(
                (x0, y0 + tile + 2),
                f"{cam.shape[0]}x{cam.shape[1]}  max {float(cam.max()):.3g}",
                fill="#444444",
                font=font(10),
            )
    return img


# ---------------------------------------------------------------------------
# Explain: the two blocks × branches grids and the block shares (SVG: they change with every target)

_DIVERGING = ("#2166ac", "#67a9cf", "#f7f7f7", "#ef8a62", "#b2182b")  # ColorBrewer RdBu, blue = negative


def diverging_color(v: float, lim: float) -> str:
    """v in [-lim, lim] -> blue … white (0) … red, by linear steps between the five stops."""
    t = 0.5 if lim <= 0 or not np.isfinite(v) else min(max(0.5 + 0.5 * v / lim, 0.0), 1.0)
    k = min(int(t * 4), 3)
    f = t * 4 - k
    a, b = hex_rgb(_DIVERGING[k]), hex_rgb(_DIVERGING[k + 1])
    r, g, bl = (a + (b - a) * f).round().astype(int)
    return f"#{r:02x}{g:02x}{bl:02x}"


def _explain_grid(ex: Explanation, z: np.ndarray, texts: list[list[str]], hovers: list[list[str]]) -> Grid:
    return Grid(
        rows=[short_label(b) for b in ex.blocks],
        branches=ex.branch_keys(),
        values=z.tolist(),
        texts=texts,
        hovers=hovers,
        headers=_headers(ex),
    )


def evidence_heatmap(ex: Explanation) -> str:
    """grad x act per block and branch (SVG): where the evidence for the class flows (diverging, 0 = white)."""
    m = ex.matrix("grad_x_act")
    lim = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0
    lim = lim or 1.0
    rows = [short_label(b) for b in ex.blocks]
    keys = ex.branch_keys()
    grid = _explain_grid(
        ex,
        m,
        [[_cell(v, "+.3g") for v in row] for row in m],
        [[f"block {n} · {r}: Σ A·∂y/∂A = {_cell(v, '.4g')}" for r, v in zip(keys, row)] for n, row in zip(rows, m)],
    )
    return grid.svg(
        f"Where the evidence for '{ex.label}' flows: Σ A ⊙ ∂y/∂A per branch",
        lambda v: diverging_color(v, lim),
        (-lim, lim, "0 · grad×act"),
    )


def ablation_heatmap(ex: Explanation) -> str:
    """Change in the class's probability when one branch is zeroed (SVG); the hover has all the numbers."""
    dp, dl = ex.matrix("delta_prob"), ex.matrix("delta_logit")
    lim = float(np.nanmax(np.abs(dp))) * 100 if np.isfinite(dp).any() else 1.0
    lim = lim or 1.0
    rows = [short_label(b) for b in ex.blocks]
    hovers = [
        [
            f"zero {n}·{r}: probability {ex.prob:.2%} → {ex.prob + p:.2%} ({p * 100:+.3g} pp); "
            f"logit Δ {d:+.4g} (→ {ex.logit + d:.4g})"
            for r, p, d in zip(ex.branch_keys(), prow, drow)
        ]
        for n, prow, drow in zip(rows, dp, dl)
    ]
    grid = _explain_grid(ex, dp * 100, [[_cell(v * 100, "+.2g") for v in row] for row in dp], hovers)
    return grid.svg(
        f"Zeroing one branch: change in P('{ex.label}'), percentage points",
        lambda v: diverging_color(-v, lim),  # a drop (negative) is red: evidence that branch carried
        (-lim, lim, "0 · Δ prob (pp)"),
    )


def block_share_svg(ex: Explanation) -> str:
    """Each block's grad x act split by branch, as signed shares of the block's total |grad x act|: stacked bars,
    positive shares up from zero and negative ones down. Each segment is a <g class="share"> with data-block,
    data-branch, data-share and a hover <title>."""
    shares, raw = ex.block_shares(), ex.matrix("grad_x_act")
    rows = [short_label(b) for b in ex.blocks]
    ups = [float(np.nansum(np.clip(r, 0, None))) for r in shares]
    downs = [float(np.nansum(np.clip(r, None, 0))) for r in shares]
    hi = max(0.25, math.ceil(max(ups, default=0) * 4 - 1e-9) / 4)  # to the next 25 %
    lo = min(0.0, math.floor(min(downs, default=0) * 4 + 1e-9) / 4)
    bars = [
        Bar(
            name,
            [
                Segment(
                    r,
                    float(shares[i, j]),
                    f"block {name} · {r}: {shares[i, j]:.1%} of the block's |grad×act|; grad×act {raw[i, j]:+.4g}",
                    {"block": name, "branch": r, "share": repr(float(shares[i, j]))},
                )
                for j, r in enumerate(ex.branch_keys())
                if np.isfinite(shares[i, j]) and shares[i, j] != 0
            ],
        )
        for i, name in enumerate(rows)
    ]
    return share_bars_svg(
        bars,
        "Each block's share per branch (negative: evidence against)",
        "each block's share of grad×act per branch",
        ticks=[k / 4 for k in range(round(lo * 4), round(hi * 4) + 1)],
        tick_text=lambda t: f"{round(t * 100)}%",
        width=460,
        length=240,
        legend_items=[(BRANCH_COLORS[r], r) for r in ex.branch_keys()],
    )


def drop_sentences(ex: Explanation, n: int = 5) -> list[str]:
    return [d.sentence(ex.label) for d in ex.largest_drops(n)]


def unit_picker(ex: Explanation, block: str, branch: str) -> dict:
    """One branch's units, coloured by the branch's mean activation, to click (ui/unit_picker.py). It depends
    neither on the target class nor on the unit, so switching either leaves the grid's data as it is."""
    act = ex.blocks[block][branch].activation
    title = f"{short_label(block)}·{branch} mean activation, {act.shape[0]}×{act.shape[1]}: click a unit"
    return unit_grid(act, branch, title, what="mean activation")


def rf_box(rf: ReceptiveField, row: int, col: int, hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) pixel edges of unit (row, col)'s theoretical field, clipped to an image of hw = (H, W)
    (pixel k spans k - 0.5 .. k + 0.5; the plan's fields are in pixel-centre coordinates)."""
    (y0, y1), (x0, x1) = rf.span(row), rf.span(col)
    return (max(-0.5, x0 - 0.5), max(-0.5, y0 - 0.5), min(hw[1] - 0.5, x1 + 0.5), min(hw[0] - 0.5, y1 + 0.5))


def rf_image(image: Image.Image, rf: EmpiricalRF, branch: str, size: int = 320, heat: bool = True) -> Image.Image:
    """The unit's empirical receptive field (|d unit / d input|, own max) as a heat overlay (heat=False:
    the image alone), with its theoretical receptive field drawn as a box in the branch colour."""
    g = rf.maps[branch]
    nz = g[g > 0]
    # |gradient| is very peaked at the centre: scale by the 99th percentile and take the square root
    # so the whole region the unit sees shows, not just its middle pixels.
    top = float(np.percentile(nz, 99)) if nz.size else 0.0
    v = np.sqrt(np.clip(g / top, 0, 1)) if top > 0 and heat else np.zeros_like(g)
    lut = LUT[np.clip(v * 255 + 0.5, 0, 255).astype(np.uint8)].astype(np.float32)
    base = np.asarray(image.convert("RGB").resize((g.shape[1], g.shape[0]), Image.Resampling.BILINEAR), np.float32)
    if heat:
        base = base * 0.45
    a = 0.85 * v[..., None]
    out = Image.fromarray(np.clip(base * (1 - a) + lut * a + 0.5, 0, 255).astype(np.uint8), "RGB")
    s = size / max(g.shape)
    out = out.resize((round(g.shape[1] * s), round(g.shape[0] * s)), Image.Resampling.BILINEAR)
    x0, y0, x1, y1 = rf_box(rf.theory[branch], rf.row, rf.col, g.shape)
    draw = ImageDraw.Draw(out)
    draw.rectangle(
        [(x0 + 0.5) * s, (y0 + 0.5) * s, (x1 + 0.5) * s - 1, (y1 + 0.5) * s - 1], outline=BRANCH_COLORS[branch], width=3
    )
    return out


def rf_caption(rf: EmpiricalRF, branch: str, kernels: str) -> str:
    t = rf.theory[branch]
    g = rf.maps[branch]
    nz = np.argwhere(g > 0)
    seen = (
        f"gradient reaches {nz[:, 0].max() - nz[:, 0].min() + 1}×{nz[:, 1].max() - nz[:, 1].min() + 1} px"
        if len(nz)
        else "gradient is zero here (no active unit at this position)"
    )
    return f"{branch} ({kernels}): theoretical {t.size}×{t.size} px (jump {t.jump}); {seen}"


# ---------------------------------------------------------------------------
# Feature Maps: a block's branch shares and the top-5 with branches zeroed


def branch_activation_share_svg(groups: list[str], shares: list[float], kernels: list[str], channels: list[int]) -> str:
    """Each branch's share of the block's summed output activation, in the branch colours (SVG: it changes with
    every layer switch). Each bar is a <g class="bar"> with data-group, data-share and a <title>."""
    ymax = min(1.0, math.ceil(max([*shares, 1e-9]) * 10 + 1e-9) / 10)  # the next 10 % above the largest bar
    bars = [
        Bar(
            g,
            [Segment(g, share, f"{g}: {share:.1%} ({kern}, {ch} channels)", {"group": g, "share": repr(share)})],
            note=kern,
            end_text=f"{share:.1%}",
            label_color=BRANCH_COLORS.get(g, OTHER_COLOR),
        )
        for g, share, kern, ch in zip(groups, shares, kernels, channels)
    ]
    return share_bars_svg(
        bars,
        "Each branch's share of the block's output activation",
        "each branch's share of the block's output activation",
        ticks=[ymax * k / 10 for k in range(0, 11, 2)],
        tick_text=lambda t: f"{t:.0%}",
        css_class="bar",
    )


def ablation_bars_fig(labels: list[str], before: list[float], after: list[float], zeroed: list[str]) -> go.Figure:
    """The top-5 classes' probabilities before and after zeroing the chosen branches, side by side."""
    fig = go.Figure()
    labels = [plotly_text(x) for x in labels]  # class names from a checkpoint
    fig.add_bar(x=labels, y=before, name="before", marker_color=OTHER_COLOR)
    fig.add_bar(x=labels, y=after, name=f"without {', '.join(zeroed)}", marker_color="#D55E00")
    fig.update_layout(
        barmode="group", xaxis_title="class", yaxis_title="probability", yaxis_tickformat=".0%", height=340
    )
    return fig


# ---------------------------------------------------------------------------
# Atlas: branch specialisation (gnet.featurevis statistics as plain numbers)

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
    rows = [short_label(b) for b in blocks]
    for i, (metric, z) in enumerate(grids.items()):
        hovers = [[f"{n} · {r}: {v:.0%}" for r, v in zip(BRANCHES, row)] for n, row in zip(rows, z)]
        if metric == "strongest_share" and expected is not None:
            hovers = [
                [f"{h} (its share of the channels: {e:.0%})" for h, e in zip(hrow, erow)]
                for hrow, erow in zip(hovers, expected)
            ]
        grid = Grid(rows, list(BRANCHES), z, [[f"{v:.0%}" for v in row] for row in z], hovers)
        fig.add_trace(
            grid.heatmap(0, 1, show_text=True, colorbar=dict(tickformat=".0%", len=0.9), showscale=i == len(grids) - 1),
            row=1,
            col=i + 1,
        )
        grid.style_axes(fig, row=1, col=i + 1)
    fig.update_yaxes(title_text="block", row=1, col=1)
    fig.update_layout(height=max(260, 40 * len(blocks) + 120), margin=dict(l=10, r=10, t=50, b=10))
    return fig
