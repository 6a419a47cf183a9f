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


def plain(text: str) -> str:
    """Escape markdown so a message quoting a user's file or value renders as typed."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~:$])", r"\\\1", str(text))


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
