"""Small Streamlit helpers shared by the pages (not a page itself: app.py lists the pages)."""

from __future__ import annotations

import streamlit as st

from gnet.colors import BRANCH_COLORS


@st.cache_resource
def _device_label() -> str:
    from gnet.devices import describe, pick_device

    return describe(pick_device())


def device_badge() -> None:
    st.sidebar.caption(f"Compute device: **{_device_label()}**")


def branch_chip(branch: str, text: str) -> str:
    """Markdown for a branch name in its colour (text must be trusted, not user input)."""
    return f":{_NAMED.get(branch, 'gray')}[**{text}**]"


# Streamlit markdown only knows named colours; these are the closest to BRANCH_COLORS.
_NAMED = {"b1": "blue", "b2": "orange", "b3": "green", "b4": "violet"}
assert set(_NAMED) == set(BRANCH_COLORS)
