"""Inline-SVG primitives: the document, its text, and the theme's muted ink.

Charts that change on every keystroke or target are drawn as SVG strings, not plotly: a plotly chart whose figure
changed is remounted in the browser (its element id hashes the figure), ~80 ms of script each on a 2-core machine,
and building the figure validates every property (~15 ms). An SVG string costs neither, <title> gives the hover
text, and text inherits the page's font.
"""

from __future__ import annotations

from html import escape

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


def legend(x: float, y: float, items: list[tuple[str, str]]) -> list[str]:
    """A row of colour swatches, each followed by its text: items are (colour, text)."""
    out = []
    for color, text in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 6}" width="12" height="12" fill="{color}"/>')
        out.append(svg_text(x + 18, y, text, 12, "start"))
        x += 30 + 6.5 * len(text)
    return out
