"""The "Download ONNX" and "Download .pt2" buttons (not a page itself: app.py lists the pages).

Each is a deferred st.download_button: the file is exported when the button is clicked, on the server, and
never on a rerun. Without the optional onnx packages the ONNX button is disabled and says how to install them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from gnet.export import MIME, Exportable, export_bytes, onnx_available, onnx_missing_message

ONNX_HELP = (
    "ONNX with every tensor's shape inferred (opens in Netron and ONNX Runtime); nodes are named after the modules "
    "(e.g. inception3a.branch2.1/Conv). Any batch size. Built when clicked: a large network takes a few seconds."
)
PT2_HELP = (
    "A torch.export program: `torch.export.load(path).module()` runs it with torch alone. Any batch size. "
    "Built when clicked."
)


def file_stem(name: str) -> str:
    """A download's file name from a network's name (which a loaded JSON file chose): letters, digits, . _ -."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "network"


def _builder(make: Callable[[], Exportable], fmt: str) -> Callable[[], bytes]:
    return lambda: export_bytes(make(), fmt, dynamic_batch=True)


def _format_button(
    slot: Any, label: str, make: Callable[[], Exportable], fmt: str, stem: str, key: str, help_text: str
) -> None:
    """One format's download button: the file is built on the click (`on_click="ignore"`: no rerun)."""
    slot.download_button(
        label,
        data=_builder(make, fmt),
        file_name=f"{stem}.{fmt}",
        mime=MIME[fmt],
        key=f"{key}_{fmt}",
        on_click="ignore",
        help=help_text,
    )


def export_buttons(make: Callable[[], Exportable], stem: str, key: str, slots: Sequence[Any] | None = None) -> None:
    """Two download buttons for what `make()` builds (called only on a click, in a server thread: it must
    not touch st.session_state). `slots`: two containers (e.g. columns) to put them in."""
    onnx_slot, pt2_slot = slots if slots is not None else st.columns(2)
    if onnx_available():
        _format_button(onnx_slot, "Download ONNX", make, "onnx", stem, key, ONNX_HELP)
    else:
        onnx_slot.download_button(
            "Download ONNX", data=b"", file_name=f"{stem}.onnx", key=f"{key}_onnx", disabled=True, help=ONNX_HELP
        )
        onnx_slot.caption(onnx_missing_message())
    _format_button(pt2_slot, "Download .pt2", make, "pt2", stem, key, PT2_HELP)
