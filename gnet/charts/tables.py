"""Read-only tables as HTML and CSV, and the shape notation every table and drawing prints."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from html import escape

from gnet.colors import BRANCH_COLORS

Shape = tuple[int, int, int]


def hwc(shape: Shape) -> str:
    """(C, H, W) printed the seeds' way, H×W×C."""
    c, h, w = shape
    return f"{h}×{w}×{c}"


def chw(shape: Shape) -> str:
    return "×".join(map(str, shape))


_PERCENT = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?%$")


def _numeric_cell(v: object) -> bool:
    """A number, a blank, or a percentage like '12.5%': right-aligned."""
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) or bool(_PERCENT.match(str(v)))


_BRANCH_OF_PATH = re.compile(r"^inception\w+\.branch(\d)")


def plotly_text(text: str) -> str:
    """A name (a file's, a network's, a class's) as plotly text: plotly reads its own HTML subset (<a href>, <b>,
    <span>) and entities in names, category labels and hover templates, and %{...} in templates; escaped, it shows
    as written."""
    return escape(str(text), quote=False).replace("%{", "%\u200b{")


def table_html(
    rows: list[dict[str, object]],
    help: dict[str, str] | None = None,
    row_color: Callable[[dict[str, object]], str | None] | None = None,
    max_height_px: int = 760,
    bold_last: bool = False,
    wide: bool = False,
) -> str:
    """A read-only table as one HTML string (shown with st.markdown): the browser lays 80 rows out in a few ms,
    where st.dataframe's grid took ~250 ms to redraw on every change. Numbers are right-aligned with thousands
    separators (percentages too), None is blank; `help` adds a column's tooltip, `row_color` a row's left rule;
    `wide` spreads the table over its column."""
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
