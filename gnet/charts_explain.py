"""Figures and images of the Explain page (issue 12), from `gnet.attribution` results.

Kept apart from gnet/charts.py because these need numpy/PIL images and the
attribution results (charts.py stays torch-free). Plotly figures leave fonts and
backgrounds to the Streamlit theme; every branch keeps its colour from gnet.colors.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from gnet.attribution import BRANCHES, EmpiricalRF, Explanation, block_label, rf_box
from gnet.charts import GRID_STROKE, MUTED, svg_doc, svg_text
from gnet.colors import BRANCH_COLORS
from gnet.features import LUT, ascii_label

SCALES = ("shared", "row")  # Grad-CAM colour scale: one for all maps, or one per block (row)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _rgb(hex_color: str) -> np.ndarray:
    h = hex_color.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], np.float32)


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
    out = base * (1 - 0.85 * up) + _rgb(color) * (0.85 * up)
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


def gradcam_grid(ex: Explanation, image: Image.Image, scale: str = "shared", tile: int = 112) -> Image.Image:
    """All blocks x 4 branches of Grad-CAM thumbnails in one image: rows are blocks, columns the
    branches (framed and coloured in the branch colours); the header says which scale is used."""
    vmax = gradcam_scales(ex, scale)
    pad, label_w, head_h, foot_h = 6, 44, 70, 14
    blocks = list(ex.blocks)
    w = label_w + len(BRANCHES) * (tile + pad) + pad
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
        font=_font(14),
    )
    draw.text((pad, 22), ascii_label(which.split(": ", 1)[1]), fill="#444444", font=_font(11))
    first = next(iter(ex.kernel_labels.values()))
    base = _grey_base(image, tile)  # once for all 36 tiles
    for j, r in enumerate(BRANCHES):
        x0 = label_w + pad + j * (tile + pad)
        draw.rectangle([x0, 40, x0 + tile - 1, head_h - 2], fill=BRANCH_COLORS[r])
        draw.text((x0 + 4, 41), r, fill="white", font=_font(12))
        draw.text((x0 + 4, 55), ascii_label(first.get(r, "")), fill="white", font=_font(10))
    for i, b in enumerate(blocks):
        y0 = head_h + i * (tile + foot_h + pad)
        draw.text((6, y0 + tile // 2 - 8), block_label(b), fill="#222222", font=_font(16))
        for j, r in enumerate(BRANCHES):
            x0 = label_w + pad + j * (tile + pad)
            cam = ex.blocks[b][r].gradcam
            img.paste(branch_overlay(image, cam, vmax[b], BRANCH_COLORS[r], tile, base), (x0, y0))
            draw.rectangle([x0 - 2, y0 - 2, x0 + tile + 1, y0 + tile + 1], outline=BRANCH_COLORS[r], width=2)
            draw.text(
                (x0, y0 + tile + 2),
                f"{cam.shape[0]}x{cam.shape[1]}  max {float(cam.max()):.3g}",
                fill="#444444",
                font=_font(10),
            )
    return img


def _grid_axes(fig: go.Figure, ex: Explanation) -> None:
    labels = next(iter(ex.kernel_labels.values()))
    fig.update_xaxes(tickvals=list(BRANCHES), ticktext=[f"{r}<br>{labels.get(r, '')}" for r in BRANCHES], side="top")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(height=110 + 34 * len(ex.blocks), margin=dict(l=10, r=10, t=90, b=10))


# The two 9×4 grids are inline SVG, not plotly heatmaps: both change with every target, and a changed plotly
# chart is remounted in the browser (issue 17). <title> carries each cell's hover text.
_DIVERGING = ("#2166ac", "#67a9cf", "#f7f7f7", "#ef8a62", "#b2182b")  # ColorBrewer RdBu, blue = negative


def diverging_color(v: float, lim: float) -> str:
    """v in [-lim, lim] -> blue … white (0) … red, by linear steps between the five stops."""
    t = 0.5 if lim <= 0 or not np.isfinite(v) else min(max(0.5 + 0.5 * v / lim, 0.0), 1.0)
    k = min(int(t * 4), 3)
    f = t * 4 - k
    a, b = _rgb(_DIVERGING[k]), _rgb(_DIVERGING[k + 1])
    r, g, bl = (a + (b - a) * f).round().astype(int)
    return f"#{r:02x}{g:02x}{bl:02x}"


def grid_svg(
    z: np.ndarray,
    rows: list[str],
    labels: dict[str, str],
    texts: list[list[str]],
    hovers: list[list[str]],
    lim: float,
    title: str,
    scale_label: str,
    flip: bool = False,
) -> str:
    """A blocks × branches heatmap: cells coloured on a diverging scale (flip: negative red), each with its
    value and a hover <title>; branch headers in the branch colours; a colour key below."""
    cell_w, cell_h, left, top = 92, 30, 44, 74
    width = left + cell_w * len(BRANCHES) + 8
    height = top + cell_h * len(rows) + 46
    out = [svg_text(4, 14, title, 13, "start", font_weight="600")]
    for j, r in enumerate(BRANCHES):
        x = left + j * cell_w
        out.append(f'<rect x="{x + 1}" y="{top - 44}" width="{cell_w - 2}" height="40" fill="{BRANCH_COLORS[r]}"/>')
        out.append(svg_text(x + cell_w / 2, top - 32, r, 12, fill="white", font_weight="700"))
        out.append(svg_text(x + cell_w / 2, top - 15, labels.get(r, ""), 10, fill="white"))
    for i, name in enumerate(rows):
        y = top + i * cell_h
        out.append(svg_text(left - 6, y + cell_h / 2, name, 12, "end"))
        for j in range(len(BRANCHES)):
            v = float(z[i, j])
            fill = diverging_color(-v if flip else v, lim)
            ink = "white" if np.isfinite(v) and abs(v) > 0.6 * lim else "#222"
            out.append(
                f'<g class="cell" data-row="{i}" data-col="{j}" data-value="{v!r}"><title>{escape(hovers[i][j])}</title>'
                f'<rect x="{left + j * cell_w + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{fill}"/>'
                + svg_text(left + (j + 0.5) * cell_w, y + cell_h / 2, texts[i][j], 12, fill=ink)
                + "</g>"
            )
    key_y, key_w = top + cell_h * len(rows) + 12, cell_w * len(BRANCHES)
    for k in range(40):  # the colour key: -lim … +lim
        v = -lim + 2 * lim * (k + 0.5) / 40
        out.append(
            f'<rect x="{left + k * key_w / 40:.1f}" y="{key_y}" width="{key_w / 40 + 0.5:.1f}" height="10" '
            f'fill="{diverging_color(-v if flip else v, lim)}"/>'
        )
    out.append(svg_text(left, key_y + 24, f"{-lim:+.3g}", 11, "start", **MUTED))
    out.append(svg_text(left + key_w / 2, key_y + 24, f"0 · {scale_label}", 11, **MUTED))
    out.append(svg_text(left + key_w, key_y + 24, f"{lim:+.3g}", 11, "end", **MUTED))
    return svg_doc(width, height, out, title)


def evidence_heatmap(ex: Explanation) -> str:
    """grad x act per block and branch (SVG): where the evidence for the class flows (diverging, 0 = white)."""
    m = ex.matrix("grad_x_act")
    lim = float(np.abs(m).max()) or 1.0
    rows = [block_label(b) for b in ex.blocks]
    return grid_svg(
        m,
        rows,
        next(iter(ex.kernel_labels.values())),
        [[f"{v:+.3g}" for v in row] for row in m],
        [[f"block {n} · {r}: Σ A·∂y/∂A = {v:.4g}" for r, v in zip(BRANCHES, row)] for n, row in zip(rows, m)],
        lim,
        f"Where the evidence for '{ex.label}' flows: Σ A ⊙ ∂y/∂A per branch",
        "grad×act",
    )


def block_share_svg(ex: Explanation) -> str:
    """Each block's grad x act split by branch, as signed shares of the block's total |grad x act|: stacked bars,
    positive shares up from zero and negative ones down (SVG: it changes with every target, see grid_svg). Each
    segment is a <g class="share"> with data-block, data-branch, data-share and a hover <title>."""
    shares, raw = ex.block_shares(), ex.matrix("grad_x_act")
    rows = [block_label(b) for b in ex.blocks]
    width, left, top, plot_h = 460, 52, 34, 240
    ups = [float(np.nansum(np.clip(r, 0, None))) for r in shares]
    downs = [float(np.nansum(np.clip(r, None, 0))) for r in shares]
    hi = max(0.25, math.ceil(max(ups, default=0) * 4 - 1e-9) / 4)  # to the next 25 %
    lo = min(0.0, math.floor(min(downs, default=0) * 4 + 1e-9) / 4)

    def y_of(v: float) -> float:
        return top + plot_h * (hi - v) / (hi - lo)

    out = [
        svg_text(4, 14, "Each block's share per branch (negative: evidence against)", 13, "start", font_weight="600")
    ]
    for k in range(round(lo * 4), round(hi * 4) + 1):
        y = y_of(k / 4)
        zero = ' stroke-width="1.5"' if k == 0 else ""
        out.append(f'<line x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}" {GRID_STROKE}{zero}/>')
        out.append(svg_text(left - 6, y, f"{k * 25}%", 11, "end", **MUTED))
    col_w = (width - left - 6) / max(len(rows), 1)
    for i, name in enumerate(rows):
        x = left + i * col_w + col_w * 0.15
        up = down = 0.0
        for j, r in enumerate(BRANCHES):
            v = float(shares[i, j])
            if not np.isfinite(v) or v == 0:
                continue
            base = up if v > 0 else down
            y0, y1 = sorted((y_of(base), y_of(base + v)))
            up, down = (up + v, down) if v > 0 else (up, down + v)
            hover = f"block {name} · {r}: {v:.1%} of the block's |grad×act|; grad×act {raw[i, j]:+.4g}"
            out.append(
                f'<g class="share" data-block="{escape(name)}" data-branch="{r}" data-share="{v!r}">'
                f"<title>{escape(hover)}</title>"
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{col_w * 0.7:.1f}" height="{y1 - y0:.1f}" '
                f'fill="{BRANCH_COLORS[r]}"/></g>'
            )
        out.append(svg_text(left + (i + 0.5) * col_w, top + plot_h + 14, name, 12))
    legend_y, x = top + plot_h + 38, float(left)
    for r in BRANCHES:
        out.append(f'<rect x="{x:.1f}" y="{legend_y - 6}" width="12" height="12" fill="{BRANCH_COLORS[r]}"/>')
        out.append(svg_text(x + 16, legend_y, r, 12, "start"))
        x += 60
    return svg_doc(width, legend_y + 14, out, "each block's share of grad×act per branch")


def ablation_heatmap(ex: Explanation) -> str:
    """Change in the class's probability when one branch is zeroed (SVG); the hover has all the numbers."""
    dp, dl = ex.matrix("delta_prob"), ex.matrix("delta_logit")
    lim = float(np.nanmax(np.abs(dp))) * 100 if np.isfinite(dp).any() else 1.0
    lim = lim or 1.0
    rows = [block_label(b) for b in ex.blocks]
    hovers = [
        [
            f"zero {n}·{r}: probability {ex.prob:.2%} → {ex.prob + p:.2%} ({p * 100:+.3g} pp); "
            f"logit Δ {d:+.4g} (→ {ex.logit + d:.4g})"
            for r, p, d in zip(BRANCHES, prow, drow)
        ]
        for n, prow, drow in zip(rows, dp, dl)
    ]
    return grid_svg(
        dp * 100,
        rows,
        next(iter(ex.kernel_labels.values())),
        [[f"{v * 100:+.2g}" for v in row] for row in dp],
        hovers,
        lim,
        f"Zeroing one branch: change in P('{ex.label}'), percentage points",
        "Δ prob (pp)",
        flip=True,  # a drop (negative) is red: evidence that branch carried
    )


def drop_sentences(ex: Explanation, n: int = 5) -> list[str]:
    return [d.sentence(ex.label) for d in ex.largest_drops(n)]


def unit_picker(ex: Explanation, block: str, branch: str, row: int, col: int) -> go.Figure:
    """One branch's units at its own resolution as clickable cells (a scatter of squares: plotly heatmaps send no
    click selections), coloured by the branch's mean activation, with the picked unit outlined. It does not depend
    on the target class, so switching the target leaves this chart as it is (no redraw in the browser)."""
    act = ex.blocks[block][branch].activation
    hh, ww = act.shape
    rr, cc = np.mgrid[0:hh, 0:ww]
    size = max(6, min(28, 420 // max(hh, ww)))
    lo, hi = float(act.min()), float(act.max())
    fig = go.Figure(
        go.Scatter(
            x=cc.ravel(),
            y=rr.ravel(),
            mode="markers",
            customdata=np.stack([rr.ravel(), cc.ravel()], 1),
            marker=dict(
                symbol="square",
                size=size,
                color=act.ravel(),
                colorscale=[[0, "#f2f2f2"], [1, BRANCH_COLORS[branch]]],
                cmin=lo,
                cmax=hi if hi > lo else lo + 1.0,
                showscale=False,
                line=dict(width=0),
            ),
            hovertemplate="row %{customdata[0]}, col %{customdata[1]}<br>mean activation %{marker.color:.4g}"
            "<extra></extra>",
        )
    )
    fig.add_shape(
        type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5, line=dict(color="black", width=3)
    )
    fig.update_xaxes(range=[-0.5, ww - 0.5], showgrid=False, zeroline=False, title="col")
    fig.update_yaxes(range=[hh - 0.5, -0.5], showgrid=False, zeroline=False, title="row", scaleanchor="x")
    fig.update_layout(
        height=460,
        margin=dict(l=10, r=10, t=40, b=10),
        clickmode="event+select",
        title=f"{block_label(block)}·{branch} mean activation, {hh}×{ww}: click a unit",
    )
    return fig


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
