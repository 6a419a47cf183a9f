"""Small Streamlit helpers shared by the pages (not a page itself: app.py lists the pages)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from gnet.colors import BRANCH_COLORS

PAGE_FAILED = (
    "Something went wrong on this page. The details were logged on the server; try again, or change the input you gave."
)


log = logging.getLogger("inception_explorer")


def use_app_navigation() -> None:
    """Make a first visit straight to a sub-page go through app.py's st.navigation.

    With a `pages/` folder next to app.py, Streamlit runs a freshly started
    server's first request in its old folder mode (pages/*.py directly, no
    app.py) until st.navigation has run once. Every page calls this first: it
    turns that mode off and reruns, so app.py builds the real navigation and
    opens the page the URL asked for.
    """
    try:  # a Streamlit internal: if a release drops it, pages still work from app.py's links
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def run_page(page) -> None:
    """Run a page; a bug (bad input is answered by the pages with st.error) is
    logged server-side and shown as a plain message, never as a traceback."""
    try:
        page.run()
    except Exception:
        log.exception("page %r failed", getattr(page, "title", page))
        st.error(PAGE_FAILED)


@st.cache_resource
def _set_up_server() -> str:
    """Once per server process: torch's intra-op threads for inference (see
    gnet.devices.inference_threads); returns the compute device's label."""
    import torch

    from gnet.devices import describe, inference_threads, pick_device

    torch.set_num_threads(inference_threads())
    return describe(pick_device())


def device_badge() -> None:
    st.sidebar.caption(f"Compute device: **{_set_up_server()}**")


# The one door for untrusted text (names and messages from files, checkpoints, links, users) into anything
# Streamlit renders as markdown: bodies, captions, alerts, toasts, widget labels, help, radio options, tabs.
# CommonMark lets a backslash escape every ASCII punctuation character and turns it into that literal character,
# so with all of them escaped no construct can start: no image or link (`![`, `[`, `<`), no raw HTML or entity
# (`<`, `&`), no autolink (`:`, `.`, `@`), no code, emphasis or heading, and none of Streamlit's own extensions
# (`:red[..]`, `:material/..:`, emoji shortcodes, `$` maths). Line breaks and other control characters become
# spaces: a new line could start a block (an indented code block, a setext heading) or end the caller's.
# Escapes do not stop GFM's literal autolinks (http://..., www.x, a@b.c): the renderer finds them in the text
# after the escapes are resolved. An invisible word joiner before '://' and '@' and after "www" breaks their
# patterns without changing what is shown.
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_AUTOLINK = re.compile(r"(?<=\w)(?=://|@)|(?<=www)(?=\.)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """Untrusted text as markdown that renders exactly as the text, never as markup."""
    text = _AUTOLINK.sub(WORD_JOINER, _BREAKS.sub(" ", str(text)))
    return _ASCII_PUNCTUATION.sub(r"\\\1", text)


def show_html(markup: str, where=st) -> None:
    """Our own HTML or SVG (gnet.charts, whose text is HTML-escaped there), shown with st.markdown.

    The markdown parser must see it as one HTML block, inside which it parses nothing: an `<svg ...>` followed
    by more on its line starts a paragraph instead, and its text, say a class name `![t](http://host/x.png)`
    that HTML escaping leaves alone, is read as markdown and fetched. So the first tag stands alone on the first
    line (a CommonMark HTML block start) and no blank line (which ends the block) is left anywhere."""
    first = _FIRST_TAG.match(markup)
    if first is None:
        markup, first = f"<div>{markup}</div>", _FIRST_TAG.match(f"<div>{markup}</div>")
    head = re.sub(r"\s+", " ", first.group(0).strip())  # a newline inside the tag would split the block start
    where.markdown(_BLANK_LINES.sub("\n", head + "\n" + markup[first.end() :]), unsafe_allow_html=True)


_FIRST_TAG = re.compile(r"\s*<[A-Za-z][^>]*>")  # attribute values are escaped ('>' as &gt;) by html.escape
_BLANK_LINES = re.compile(r"\n(?:[ \t\r\f\v]*\n)+")  # what CommonMark counts as blank: spaces and tabs only


def branch_chip(branch: str, text: str) -> str:
    """Markdown for a branch name in its colour (text must be trusted, not user input)."""
    return f":{_NAMED.get(branch, 'gray')}[**{text}**]"


# Streamlit markdown only knows named colours; these are the closest to BRANCH_COLORS.
_NAMED = {"b1": "blue", "b2": "orange", "b3": "green", "b4": "violet"}
assert set(_NAMED) == set(BRANCH_COLORS)


def page_link(path: str, label: str, icon: str | None = None) -> None:
    """st.page_link; a plain link when the page runs outside app.py's navigation (an AppTest of one page).
    The app's url paths are the page files' names (app.py)."""
    try:
        st.page_link(path, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.markdown(f"[{label}](/{Path(path).stem})")
