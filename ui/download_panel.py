"""Download progress on the pages (not a page itself: app.py lists the pages).

The download itself runs in gnet.downloads (a background thread per file, shared by every
session); these fragments only poll it, so the rest of the page stays usable meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from gnet import downloads
from gnet.pretrained import cancel_weights_download, ensure_pretrained_weights
from ui.common import plain

POLL_S = 1.0


def show_progress(p: downloads.Progress | None, what: str) -> None:
    if p is None:
        st.progress(0.0, text=f"Downloading {what}: starting…")
        return
    st.progress(p.fraction or 0.0, text=f"Downloading {what}: {p.describe()}")
    if p.message:  # e.g. "the connection closed after …; trying again"
        st.caption(plain(p.message))


@st.fragment(run_every=POLL_S)
def weights_download(showing: str, prefix: str = "fm") -> None:
    """While the pretrained weights download: their progress. When the verified file is in
    place (or the download failed), the whole page reruns and shows the result by itself."""
    status = ensure_pretrained_weights()
    if status.state != "downloading":
        st.rerun()  # scope "app": the page now loads the pretrained network, or says why it could not
    show_progress(status.progress, "the pretrained GoogLeNet weights (torchvision, ImageNet)")
    st.caption(
        f"Meanwhile the page shows {showing}; it switches to the pretrained network by itself once the file "
        "is downloaded and its hash checked. You can pick another network above in the meantime."
    )
    st.button("Cancel download", key=f"{prefix}_cancel_download", on_click=cancel_weights_download)


@st.fragment(run_every=POLL_S)
def dataset_download(
    what: str, poll: Callable[[], downloads.Progress | None], cancel: Callable[[], None], key: str
) -> None:
    """A dataset's download: `poll()` returns its progress, or None once every file is in place;
    the page reruns when it ends (to start the waiting run, or to say why it failed)."""
    p = poll()
    if p is None or p.state != "running":
        st.rerun()
    show_progress(p, what)
    st.caption("The run starts by itself when the files are downloaded and verified.")
    st.button("Cancel download", key=f"{key}_cancel", on_click=cancel)
