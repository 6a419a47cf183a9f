"""Links to the Block Anatomy page with a unit selected (not a page itself: app.py lists the pages).

The unit travels in the URL (`/anatomy?block=3a&branch=b2&channel=5&row=3&col=4`), so the link also works in a new tab
or when shared. Feature Maps, Explain and the Block Designer call `anatomy_link`; the Anatomy page reads the query with
`unit_from_query`, strictly: numbers are ASCII digits, anything else is reported and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from gnet.plan import short_label

PAGE = "pages/anatomy.py"
_WHOLE = re.compile(r"[0-9]{1,6}")
_BRANCH = re.compile(r"b[0-9]{1,2}")


@dataclass(frozen=True)
class LinkedUnit:
    block: str | None = None  # a label as a person types it ("3a"), checked against the network by the page
    branch: str | None = None
    channel: int | None = None
    row: int | None = None
    col: int | None = None


def anatomy_query(
    block: str, branch: str | None = None, channel: int | None = None, row: int | None = None, col: int | None = None
) -> dict[str, str]:
    q = {"block": short_label(block), "branch": branch, "channel": channel, "row": row, "col": col}
    return {k: str(v) for k, v in q.items() if v is not None}


def anatomy_link(
    block: str,
    branch: str | None = None,
    channel: int | None = None,
    row: int | None = None,
    col: int | None = None,
    label: str = "Block Anatomy: how this unit is computed, step by step",
) -> None:
    """st.page_link to the Anatomy page with this unit; a plain link when the page runs outside app.py's navigation."""
    query = anatomy_query(block, branch, channel, row, col)
    try:
        st.page_link(PAGE, label=label, icon=":material/biotech:", query_params=query)
    except StreamlitPageNotFoundError:
        st.markdown(f"[{label}](/anatomy?{urlencode(query)})")


def unit_from_query(params: Mapping[str, str]) -> tuple[LinkedUnit, list[str]]:
    """The unit a link asks for, and a message per field that could not be read (that field is left out)."""
    problems: list[str] = []
    found: dict[str, object] = {}
    if "block" in params:
        text = str(params["block"]).strip()
        if re.fullmatch(r"[A-Za-z0-9_]{1,32}", text):
            found["block"] = text
        else:
            problems.append(f"link parameter block: {text[:20]!r} is not a block name")
    if "branch" in params:
        text = str(params["branch"]).strip()
        if _BRANCH.fullmatch(text):
            found["branch"] = text
        else:
            problems.append(f"link parameter branch must be b1, b2, …, got {text[:20]!r}")
    for key in ("channel", "row", "col"):
        if key in params:
            text = str(params[key]).strip()
            if _WHOLE.fullmatch(text):
                found[key] = int(text)
            else:
                problems.append(
                    f"link parameter {key} must be a whole number written with the digits 0-9, got {text[:20]!r}"
                )
    return LinkedUnit(**found), problems  # type: ignore[arg-type]
