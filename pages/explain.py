"""Explain: which branch of which block carries the evidence for a class.

Thin page: the shared model/image pickers (ui/sources.py), gnet.attribution for the numbers,
gnet.charts.explain for the figures. Results are cached per (model, image, target).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from gnet import attribution as A
from gnet.charts import explain as C
from gnet.devices import describe
from gnet.net import Net
from gnet.plan import short_label
from ui import explain_data as D
from ui.anatomy_link import anatomy_link
from ui.common import branch_chip, plain, show_html, use_app_navigation
from ui.sources import choose_model_and_image
from ui.unit_picker import clicked, unit_picker

use_app_navigation()

TARGET_MODES = ("One of the top 5", "Any class (search by name)")


def choose_target(lm: Net, logits: np.ndarray) -> int:
    probs = torch.softmax(torch.from_numpy(logits).double(), 0).numpy()
    top = D.top_classes(logits)
    c1, c2 = st.columns([1, 2])
    mode = c1.radio("Target class", TARGET_MODES, key="ex_target_mode")
    if mode == TARGET_MODES[0]:
        return c2.selectbox(
            "Class",
            top,
            key="ex_top5",
            format_func=lambda i: f"#{top.index(i) + 1} {A.class_name(lm.classes, i)} ({A.pct(probs[i])})",
        )
    n = logits.shape[0]
    return c2.selectbox(
        "Class (type to search)",
        list(range(n)),
        index=top[0],
        key="ex_any",
        format_func=lambda i: f"{A.class_name(lm.classes, i)} · #{i} ({A.pct(probs[i])})",
    )


def show_gradcam(ex: A.Explanation, cropped: Image.Image, mkey: str, ikey: str) -> None:
    st.subheader("Grad-CAM of every branch")
    scale = st.radio(
        "Colour scale",
        C.SCALES,
        horizontal=True,
        key="ex_scale",
        format_func={"shared": "shared by all maps", "row": "per row (block)"}.__getitem__,
    )
    st.caption(
        "α_k = mean over positions of ∂y/∂A_k, map = ReLU(Σ_k α_k A_k) at the branch's own resolution "
        "(Selvaraju et al.), upsampled onto the image in the branch's colour. Rows: blocks; columns: branches."
    )
    st.image(
        D.gradcam_jpeg(mkey, ikey, ex.target, scale, ex, cropped),
        caption=f"Grad-CAM for '{plain(ex.label)}', colour scale: "
        + ("shared by all maps" if scale == "shared" else "per row (each block's own maximum)"),
    )


def show_evidence(ex: A.Explanation) -> None:
    st.subheader(f"Where the evidence for '{plain(ex.label)}' flows")
    st.caption(
        "Gradient × activation: Σ over the branch output of A ⊙ ∂y/∂A. Positive: the branch's activity "
        "raises the logit; negative: it lowers it."
    )
    a, b = st.columns(2)
    show_html(C.evidence_heatmap(ex), a)  # our SVG (st.html's sanitiser drops SVG)
    show_html(C.block_share_svg(ex), b)


def show_ablation(ex: A.Explanation) -> None:
    st.subheader("Zeroing one branch at a time")
    st.caption(
        "Each cell: the class's probability with that one branch's output set to zero and everything else "
        "unchanged (the block's four ablations run as one batch from the block's saved input). Hover for "
        "the numbers."
    )
    a, b = st.columns([3, 2])
    show_html(C.ablation_heatmap(ex), a)
    with b:
        st.markdown("**Largest drops**")
        st.markdown("\n".join(f"- {plain(s)}" for s in C.drop_sentences(ex, 5)))


def _apply_click(hh: int, ww: int) -> None:
    """A click on the unit picker (sent once, read before the inputs exist) sets row and col."""
    unit = clicked("ex_pick", hh, ww)
    if unit is not None:
        st.session_state["ex_row"], st.session_state["ex_col"] = unit


def show_receptive_fields(
    lm: Net, ex: A.Explanation, mkey: str, ikey: str, x: torch.Tensor, cropped: Image.Image
) -> None:
    st.subheader("Receptive fields on the image")
    blocks = ex.block_names()
    c1, c2, c3, c4 = st.columns(4)
    block = c1.selectbox(
        "Block",
        blocks,
        index=min(len(blocks) - 1, blocks.index("inception4d")) if "inception4d" in blocks else 0,
        key="ex_rf_block",
        format_func=short_label,
    )
    labels = ex.kernel_labels[block]
    branches = list(ex.blocks[block])  # b1..bN: Inception v3's grid reductions have three
    if st.session_state.get("ex_rf_branch") not in branches:
        st.session_state.pop("ex_rf_branch", None)
    elif st.session_state.get("ex_rf_for") != block:
        # Inception v3's blocks label the same branch key differently ("b1 (1×1)" in 5b, "b1 (3×3/2)" in 6a): a
        # keyed box keeps showing its old label unless its value is sent again
        st.session_state["ex_rf_branch"] = st.session_state["ex_rf_branch"]
    st.session_state["ex_rf_for"] = block
    branch = c2.selectbox("Branch", branches, key="ex_rf_branch", format_func=lambda b: f"{b} ({labels[b]})")
    cam = ex.blocks[block][branch].gradcam
    hh, ww = cam.shape
    _apply_click(hh, ww)
    if "ex_row" not in st.session_state:  # first visit: the map's peak
        st.session_state["ex_row"], st.session_state["ex_col"] = (
            int(v) for v in np.unravel_index(cam.argmax(), cam.shape)
        )
    st.session_state["ex_row"] = min(max(int(st.session_state["ex_row"]), 0), hh - 1)
    st.session_state["ex_col"] = min(max(int(st.session_state["ex_col"]), 0), ww - 1)
    row = int(c3.number_input(f"Row (0–{hh - 1})", 0, hh - 1, key="ex_row"))
    col = int(c4.number_input(f"Column (0–{ww - 1})", 0, ww - 1, key="ex_col"))
    anatomy_link(
        block,
        branch,
        None,
        row,
        col,
        label=f"Block Anatomy: how {short_label(block, branch)} ({row}, {col}) is computed, step by step",
    )
    try:
        rf = D.fields(mkey, ikey, block, row, col, lm, x)
    except A.AttributionError as e:
        st.error(plain(e))
        return
    left, mid, right = st.columns([4, 3, 3])
    with left:
        unit_picker(D.unit_picker(mkey, ikey, block, branch, ex), (row, col), key="ex_pick")
    t = rf.theory[branch]
    jpegs = D.rf_jpegs(mkey, ikey, block, row, col, branch, rf, cropped)
    mid.image(
        jpegs["plain"],
        caption=f"theoretical receptive field of {short_label(block)}·{branch} ({row}, {col}): "
        f"{t.size}×{t.size} px, from the kernels, strides and paddings",
    )
    right.image(
        jpegs["heat"],
        caption=f"empirical: |∂ unit / ∂ input| (summed over {branch}'s channels at that position)",
    )
    count = {3: "three", 4: "four"}.get(len(branches), str(len(branches)))
    st.markdown(f"**The {count} branches of {short_label(block)} at ({row}, {col})**, each with its theoretical box")
    for col_, b in zip(st.columns(len(branches)), branches):
        with col_:
            st.markdown(branch_chip(b, f"{b}: {labels[b]}"))
            st.image(jpegs[b], caption=C.rf_caption(rf, b, labels[b]))


# ---------------------------------------------------------------------------

st.title("Explain")
st.caption(
    "Which branch of which block carries the evidence for a class: Grad-CAM and gradient × activation for "
    "every branch from one forward and one backward pass, a branch-ablation grid, and receptive fields. "
    "Tensor shapes are C×H×W; positions are (row, column)."
)

chosen = choose_model_and_image(
    "ex", "The explanations show what random filters do, not what a trained network learned."
)
lm, mkey, ikey, what, cropped, x = chosen.lm, chosen.lm.key, chosen.image_key, chosen.what, chosen.cropped, chosen.x


@st.fragment  # switching the target or the colour scale reruns this part alone: the pickers and receptive fields stay
def explanation(lm: Net, mkey: str, ikey: str, x: torch.Tensor, cropped: Image.Image, what: str) -> None:
    logits = D.class_logits(mkey, ikey, lm, x)
    left, right = st.columns([1, 3])
    left.image(
        D.input_jpeg(mkey, ikey, cropped),
        caption=f"{what}: what the network sees, {cropped.height}×{cropped.width} (H×W)",
    )
    with right:
        target = choose_target(lm, logits)
        if not lm.trained:
            st.caption("Untrained network: these classes are arbitrary.")
        with st.spinner("Explaining: one forward and one backward pass for all branches, then the ablations…"):
            try:
                top = tuple(D.top_classes(logits))
                ex = (
                    D.explain_top(mkey, ikey, top, lm, x)[int(target)]
                    if int(target) in top
                    else D.explain(mkey, ikey, int(target), lm, x)
                )
            except A.AttributionError as e:
                st.error(plain(e))
                return
        st.markdown(
            f"**Target:** {plain(ex.label)} (class {ex.target}) · logit {ex.logit:.3f} · probability "
            f"{A.pct(ex.prob)} · computed in {ex.seconds * 1000:.0f} ms on {describe(lm.device)} (the ablations "
            "do not depend on the target: they run once per image)"
        )
    show_gradcam(ex, cropped, mkey, ikey)
    show_evidence(ex)
    show_ablation(ex)


explanation(lm, mkey, ikey, x, cropped, what)
# The receptive fields do not depend on the target: they read the top class's explanation (its activations, and
# the peak of its Grad-CAM as the first unit shown).
try:
    top = tuple(D.top_classes(D.class_logits(mkey, ikey, lm, x)))
    first = D.explain_top(mkey, ikey, top, lm, x)[top[0]]
except A.AttributionError as e:
    st.error(plain(e))
    st.stop()
show_receptive_fields(lm, first, mkey, ikey, x, cropped)
