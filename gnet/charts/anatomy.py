"""Block anatomy, drawn: the unit picker, one SVG per layer of the unit's chain (window, kernel, per-channel
contributions, sum, bias, BatchNorm, ReLU; a pool's window and winner), the concatenation, the receptive-field box on
the image, and the animation (a small HTML/JS player over precomputed frames: it runs in the browser, never the page).

Torch-free: the steps come in as `gnet.anatomy` dataclasses holding numpy arrays and plain numbers.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from gnet.charts.explain import rf_box
from gnet.charts.svg import MUTED, svg_doc, svg_text
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.plan import ReceptiveField, short_label
from gnet.raster import LUT

if TYPE_CHECKING:
    from gnet.anatomy import Anatomy, Animation, BatchNormStep, ConvStep, PoolStep, ReluStep, Step

POS, NEG = "#D55E00", "#56B4E9"  # Okabe–Ito vermillion / sky blue: positive / negative contributions
DEFAULT_MS = 250  # CNN Explainer's step
SPEEDS = (1000, 500, 250, 100, 30)


def fmt(v: float | None) -> str:
    if v is None:
        return "none"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.3e}".replace("-", "−")
    return f"{v:.4f}".replace("-", "−")


def _diverging(v: float, vmax: float) -> tuple[str, float]:
    """(colour, opacity) of a signed value on a scale of ±vmax."""
    if not math.isfinite(v):
        return OTHER_COLOR, 0.15
    t = min(abs(v) / vmax, 1.0) if vmax > 0 else 0.0
    return (POS if v >= 0 else NEG), 0.08 + 0.92 * t


def _grid(
    x: float, y: float, values: np.ndarray, cell: float, vmax: float, title: str, mark: tuple | None = None
) -> list[str]:
    """A kh×kw grid of signed values, each cell coloured and labelled; `mark`: (i, j) outlined."""
    out = [svg_text(x + values.shape[1] * cell / 2, y - 9, title, 11, **MUTED)]
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = float(values[i, j])
            color, op = _diverging(v, vmax)
            cx, cy = x + j * cell, y + i * cell
            text = "pad" if not math.isfinite(v) else fmt(v)
            out.append(
                f'<g class="cell"><title>{escape(title)} [{i}, {j}]: {text}</title>'
                f'<rect x="{cx:.1f}" y="{cy:.1f}" width="{cell - 1:.1f}" height="{cell - 1:.1f}" fill="{color}" '
                f'fill-opacity="{op:.2f}"/></g>'
            )
            if cell >= 34:
                out.append(svg_text(cx + cell / 2, cy + cell / 2, f"{v:.3g}" if math.isfinite(v) else "·", 9))
    if mark is not None:
        i, j = mark
        out.append(
            f'<rect class="winner" x="{x + j * cell:.1f}" y="{y + i * cell:.1f}" width="{cell - 1:.1f}" '
            f'height="{cell - 1:.1f}" fill="none" stroke="currentColor" stroke-width="3"/>'
        )
    return out


def conv_svg(step: ConvStep, color: str, width: int = 720) -> str:
    """A conv step: the window and the kernel of the strongest input channel, every input channel's contribution as a
    heat strip, the strongest named as bars, then Σ + bias = the conv's output."""
    cin, kh, kw = step.kernel.shape
    top = step.top_inputs(6)
    body: list[str] = []
    y = 24
    body.append(
        svg_text(
            10,
            10,
            f"{step.layer} · {kh}×{kw} conv over {cin} input channels at {tuple(step.at)}",
            13,
            "start",
            font_weight="bold",
        )
    )
    # window × kernel of the top channel (a 1×1 conv: one number each, the dot product over channels is the strip)
    c0 = top[0][0]
    cell = max(8.0, min(40.0, 120 / max(kh, kw)))
    vmax_x = float(np.nanmax(np.abs(step.inputs[c0]))) or 1.0
    vmax_w = float(np.max(np.abs(step.kernel[c0]))) or 1.0
    # each grid centred in a slot as wide as its title at least (a 7×1 window is one 17 px column)
    slot = max(kw * cell, 90.0)
    inset = (slot - kw * cell) / 2
    body += _grid(10 + inset, y + 16, step.inputs[c0], cell, vmax_x, f"input ch {c0}")
    gx = 10 + slot + 30
    body.append(svg_text(gx - 15, y + 16 + kh * cell / 2, "⊙", 16))
    body += _grid(gx + inset, y + 16, step.kernel[c0], cell, vmax_w, f"kernel ch {c0}")
    ex = gx + slot + 12
    body.append(svg_text(ex, y + 16 + kh * cell / 2, f"Σ = {fmt(top[0][1])}", 12, "start"))
    # the strip: one cell per input channel
    sy = y + 16 + kh * cell + 30
    vmax = float(np.max(np.abs(step.contributions))) or 1.0
    sw = (width - 20) / cin
    body.append(
        svg_text(
            10,
            sy - 10,
            f"each input channel's Σ over the {kh}×{kw} window of w·x (red +, blue −), channels 0–{cin - 1}",
            11,
            "start",
            **MUTED,
        )
    )
    # one short rect per channel and no hover text: up to 832 of them are re-sent and re-parsed on every unit move
    body.append(f'<g class="strip" transform="translate(10 {sy})">')
    for c in range(cin):
        col, op = _diverging(float(step.contributions[c]), vmax)
        body.append(
            f'<rect x="{c * sw:.1f}" width="{max(sw, 0.6):.2f}" height="18" fill="{col}" fill-opacity="{op:.2f}"/>'
        )
    body.append("</g>")
    # the strongest, as bars on both sides of a zero line, the values in a column of their own
    by = sy + 36
    zero, bar_w = 300, 200
    body.append(
        f'<line x1="{zero}" x2="{zero}" y1="{by - 3}" y2="{by + len(top) * 17}" stroke="currentColor" '
        'stroke-opacity="0.4"/>'
    )
    for k, (c, v) in enumerate(top):
        yy = by + k * 17
        L = bar_w * abs(v) / vmax
        x0 = zero if v >= 0 else zero - L
        body.append(svg_text(zero - bar_w - 10, yy + 6, f"ch {c}", 11, "end"))
        body.append(
            f'<rect class="top" data-channel="{c}" x="{x0:.1f}" y="{yy}" width="{max(L, 0.5):.1f}" height="12" '
            f'fill="{POS if v >= 0 else NEG}"><title>input ch {c}: {fmt(v)}</title></rect>'
        )
        body.append(svg_text(zero + bar_w + 12, yy + 6, fmt(v), 11, "start"))
    rest = step.dot - sum(v for _, v in top)
    ey = by + len(top) * 17 + 18
    body.append(svg_text(10, ey, f"the other {cin - len(top)} channels: {fmt(rest)}", 11, "start", **MUTED))
    if step.bias is None:
        line = f"Σ w·x = {fmt(step.dot)}, no bias (BatchNorm follows): the conv outputs {fmt(step.out)}"
    else:
        line = f"Σ w·x + bias = {fmt(step.dot)} + ({fmt(step.bias)}) = {fmt(step.out)}"
    body.append(svg_text(10, ey + 22, line, 13, "start", font_weight="bold", fill=color))
    return svg_doc(width, int(ey + 36), body, f"{step.layer}: conv step")


def bn_relu_svg(steps: list[Step], color: str, width: int = 720) -> str:
    """BatchNorm (as its scale and shift) and ReLU, one line each."""
    body: list[str] = []
    y = 12
    for s in steps:
        if s.kind == "bn":
            b: BatchNormStep = s  # type: ignore[assignment]
            body.append(
                svg_text(
                    10, y, f"BatchNorm: {fmt(b.input)} × {fmt(b.scale)} + ({fmt(b.shift)}) = {fmt(b.out)}", 13, "start"
                )
            )
            body.append(
                svg_text(
                    10,
                    y + 16,
                    "scale = γ/√(σ²+ε), shift = β − γμ/√(σ²+ε), from the running statistics",
                    11,
                    "start",
                    **MUTED,
                )
            )
            y += 40
        elif s.kind == "relu":
            r: ReluStep = s  # type: ignore[assignment]
            body.append(
                svg_text(
                    10, y, f"ReLU: max(0, {fmt(r.input)}) = {fmt(r.out)}", 13, "start", font_weight="bold", fill=color
                )
            )
            y += 26
    return svg_doc(width, y, body, "BatchNorm and ReLU")


def pool_svg(step: PoolStep, color: str, width: int = 720) -> str:
    """A pool step: the channel's window, the winner outlined (max) or the mean (avg)."""
    kh, kw = step.values.shape
    cell = max(20.0, min(44.0, 140 / max(kh, kw)))
    body = [
        svg_text(
            10,
            10,
            f"{step.layer} · {kh}×{kw} {'max' if step.kind == 'maxpool' else 'average'}-pool, "
            f"channel {step.channel} at {tuple(step.at)}",
            13,
            "start",
            font_weight="bold",
        )
    ]
    finite = step.values[np.isfinite(step.values)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    mark = None
    if step.argmax is not None:
        mark = (step.argmax[0] - step.window[0], step.argmax[1] - step.window[1])
    body += _grid(10, 40, step.values, cell, vmax or 1.0, f"input ch {step.channel}", mark)
    tx = 10 + kw * cell + 20
    if step.kind == "maxpool":
        line = f"max at {tuple(step.argmax or ())} = {fmt(step.out)}"
        note = "the outlined cell wins; the pool picks it before the 1×1 mixes the channels"
    else:
        line = f"Σ / {step.count} = {fmt(step.out)}"
        note = "the mean of the window"
    body.append(svg_text(tx, 40 + kh * cell / 2 - 8, line, 13, "start", font_weight="bold", fill=color))
    body.append(svg_text(tx, 40 + kh * cell / 2 + 10, note, 11, "start", **MUTED))
    return svg_doc(width, int(50 + kh * cell), body, f"{step.layer}: pool step")


def concat_svg(
    widths: dict[str, int], branch: str, channel: int, concat_channel: int, block: str, width: int = 720
) -> str:
    """The block output as its branches stacked on the channel axis, with this unit's channel marked."""
    total = sum(widths.values()) or 1
    body = [
        svg_text(
            10,
            10,
            f"{short_label(block)} output: {total} channels = " + " + ".join(f"{b} {n}" for b, n in widths.items()),
            13,
            "start",
            font_weight="bold",
        )
    ]
    x, y, W = 10.0, 30, width - 20
    for b, n in widths.items():
        w = W * n / total
        body.append(
            f'<g class="range" data-branch="{b}"><title>{b}: channels {int(x)}</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="26" fill="{BRANCH_COLORS.get(b, OTHER_COLOR)}" '
            f'fill-opacity="{1.0 if b == branch else 0.35}"/></g>'
        )
        x += w
    x = 10.0
    for b, n in widths.items():
        first = round((x - 10) / W * total)
        body.append(svg_text(x + 3, y + 40, f"{b}: {first}–{first + n - 1}", 11, "start", **MUTED))
        x += W * n / total
    mx = 10 + W * (concat_channel + 0.5) / total
    body.append(
        f'<line class="unit" x1="{mx:.1f}" x2="{mx:.1f}" y1="{y - 6}" y2="{y + 32}" stroke="currentColor" '
        f'stroke-width="3"/>'
    )
    body.append(
        svg_text(
            10,
            y + 62,
            f"{branch} channel {channel} → block output channel {concat_channel} "
            f"(offset {concat_channel - channel} + {channel})",
            12,
            "start",
            fill="currentColor",
        )
    )
    return svg_doc(width, y + 76, body, f"concatenation of {short_label(block)}")


def layer_svgs(a: Anatomy) -> list[tuple[str, list[str]]]:
    """(layer path, its SVGs) for every layer of the unit's branch, in order."""
    color = BRANCH_COLORS.get(a.branch, OTHER_COLOR)
    out = []
    for run in a.layers:
        steps = a.layer_steps(run.path)
        svgs = []
        if steps[0].kind == "conv":
            svgs.append(conv_svg(steps[0], color))  # type: ignore[arg-type]
            svgs.append(bn_relu_svg(steps[1:], color))
        else:
            svgs.append(pool_svg(steps[0], color))  # type: ignore[arg-type]
        out.append((run.path, svgs))
    return out


def rf_image(image: Image.Image, rf: ReceptiveField, row: int, col: int, color: str, size: int = 320) -> Image.Image:
    """The network's input with the unit's theoretical receptive field as a box."""
    img = image.convert("RGB")
    s = size / max(img.size)
    out = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.BILINEAR)
    x0, y0, x1, y1 = rf_box(rf, row, col, (img.height, img.width))
    ImageDraw.Draw(out).rectangle(
        [(x0 + 0.5) * s, (y0 + 0.5) * s, (x1 + 0.5) * s - 1, (y1 + 0.5) * s - 1], outline=color, width=3
    )
    return out


# ---------------------------------------------------------------------------
# The animation: precomputed frames, played by a few lines of JS in the component's own iframe


def _lut_bytes(m: np.ndarray) -> list[int]:
    """A map as 0..255 indices into the viridis table (its own min to max)."""
    lo, hi = float(np.min(m)), float(np.max(m))
    t = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return np.clip(t * 255 + 0.5, 0, 255).astype(int).ravel().tolist()


def animation_html(an: Animation, color: str, title: str, ms: int = DEFAULT_MS) -> str:
    """A self-contained HTML player: the input map with the window sliding over it, the output map filling in, and
    Play/Pause/Step/speed controls. Frame k shows output position k (row-major); `data-frame` on the root says which.
    It starts at frame 0 with one cell filled; the same animation gives the same HTML, so the browser keeps it."""
    hin, win = an.input_map.shape
    h, w = an.output_map.shape
    data = {
        "hin": hin,
        "win": win,
        "h": h,
        "w": w,
        "inp": _lut_bytes(an.input_map),
        "out": _lut_bytes(an.output_map),
        "frames": [[f[0], f[1], f[2], f[3], f[4], f[5], round(f[6], 5)] for f in an.frames],
        "lut": [f"rgb({r},{g},{b})" for r, g, b in LUT.tolist()],
        "ms": ms,
        "color": color,
    }
    speeds = "".join(f'<option value="{s}"{" selected" if s == ms else ""}>{s} ms</option>' for s in SPEEDS)
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body{{font-family:sans-serif;font-size:13px;margin:4px;color:#31333f}}
canvas{{border:1px solid #ccc;image-rendering:pixelated;width:260px;height:260px}}
button,select{{font-size:13px;margin-right:6px}} .maps{{display:flex;gap:18px;align-items:flex-start}}
</style></head><body><div id="anim" data-frame="0" data-playing="0">
<div style="margin-bottom:6px"><b>{escape(title)}</b></div>
<div class="maps"><div><canvas id="cin"></canvas><div>input ch {an.in_channel} ({hin}×{win}), the window</div></div>
<div><canvas id="cout"></canvas><div>output ch {an.out_channel} ({h}×{w}), filling in</div></div></div>
<div style="margin-top:6px"><button id="play">Play</button><button id="pause">Pause</button>
<button id="step">Step</button><button id="reset">Reset</button>
<label>speed <select id="speed">{speeds}</select></label> <span id="info"></span></div></div>
<script>
const D = {json.dumps(data)};
const root = document.getElementById('anim'), info = document.getElementById('info');
const cin = document.getElementById('cin'), cout = document.getElementById('cout');
const S = 260, si = S / Math.max(D.hin, D.win), so = S / Math.max(D.h, D.w);
for (const c of [cin, cout]) {{ c.width = S; c.height = S; }}
const gi = cin.getContext('2d'), go = cout.getContext('2d');
let k = 0, timer = null;
function drawIn(f) {{
  gi.clearRect(0, 0, S, S);
  for (let i = 0; i < D.hin; i++) for (let j = 0; j < D.win; j++) {{
    gi.fillStyle = D.lut[D.inp[i * D.win + j]]; gi.fillRect(j * si, i * si, si, si);
  }}
  gi.strokeStyle = D.color; gi.lineWidth = 3;
  gi.strokeRect(f[3] * si, f[2] * si, (f[5] - f[3] + 1) * si, (f[4] - f[2] + 1) * si);
}}
function draw() {{
  const f = D.frames[k];
  drawIn(f);
  go.fillStyle = '#eee'; go.fillRect(0, 0, S, S);
  for (let n = 0; n <= k; n++) {{ const g = D.frames[n];
    go.fillStyle = D.lut[D.out[g[0] * D.w + g[1]]]; go.fillRect(g[1] * so, g[0] * so, so, so); }}
  go.strokeStyle = D.color; go.lineWidth = 3; go.strokeRect(f[1] * so, f[0] * so, so, so);
  root.dataset.frame = String(k);
  info.textContent = `frame ${{k + 1}}/${{D.frames.length}}: output (${{f[0]}}, ${{f[1]}}) = ${{f[6]}}, `
    + `window rows ${{f[2]}}–${{f[4]}}, cols ${{f[3]}}–${{f[5]}}`;
}}
function step() {{ k = (k + 1) % D.frames.length; draw(); }}
function pause() {{ if (timer) clearInterval(timer); timer = null; root.dataset.playing = '0'; }}
function play() {{ pause(); timer = setInterval(step, +document.getElementById('speed').value);
  root.dataset.playing = '1'; }}
document.getElementById('play').onclick = play;
document.getElementById('pause').onclick = pause;
document.getElementById('step').onclick = () => {{ pause(); step(); }};
document.getElementById('reset').onclick = () => {{ pause(); k = 0; draw(); }};
document.getElementById('speed').onchange = () => {{ if (timer) play(); }};
draw();
</script></body></html>"""
