"""Block Anatomy: how one unit of one branch is computed from the user's image, step by step, with the model's numbers.

Thin page: the shared model/image pickers (ui/sources.py), gnet.anatomy for the numbers, gnet.charts.anatomy for
the drawings. The branch runs once per (model, image, block) (cached); a unit is read from that run in milliseconds.
The animation plays in its own iframe from precomputed frames: a frame never reruns the page.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from gnet import anatomy as A
from gnet.charts import anatomy as C
from gnet.charts.branches import unit_grid
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.features import jpeg_bytes
from gnet.net import Net
from gnet.plan import parse_label, short_label
from ui.anatomy_link import unit_from_query
from ui.common import branch_chip, plain, show_html, use_app_navigation
from ui.sources import choose_model_and_image
from ui.unit_picker import clicked, unit_picker

use_app_navigation()


@st.cache_resource(max_entries=16, show_spinner="Running the block's branches layer by layer…")
def traces(model_key: str, image_key: str, block: str, _lm: Net, _x: torch.Tensor) -> dict[str, A.Trace]:
    """Every branch of the block, run layer by layer once per (model, image, block); shared and only read."""
    return A.trace_block(_lm, _x, block)


@st.cache_resource(max_entries=64, show_spinner=False)
def picker(model_key: str, image_key: str, block: str, branch: str, channel: int, _t: A.Trace) -> dict:
    """Per channel, not per unit (the unit is outlined at mount). Shared, read-only."""
    h, w = _t.output.shape[1:]
    return unit_grid(_t.output[channel], branch, f"{_t.label} channel {channel}, {h}×{w}: click a unit", "output")


@st.cache_data(max_entries=64, show_spinner=False)
def rf_jpeg(key: tuple, row: int, col: int, color: str, _rf, _cropped: Image.Image) -> bytes:
    return jpeg_bytes(C.rf_image(_cropped, _rf, row, col, color))


@st.cache_data(max_entries=32, show_spinner=False)
def player_html(key: tuple, channels: tuple[int, int], color: str, _an: A.Animation) -> str:
    """The player's HTML by (model, image, block, branch, layer) and its channels: the same HTML for every unit."""
    return C.animation_html(_an, color, f"{_an.layer}: input channel {channels[0]} → output channel {channels[1]}")


@st.cache_data(max_entries=32, show_spinner=False)
def kernels(model_key: str, block: str, _lm: Net) -> dict[str, str]:
    return _lm.branch_labels(block)


def apply_link(lm: Net) -> None:
    """A link from Feature Maps, Explain or the Block Designer selects its unit (once per distinct link)."""
    params = {k: st.query_params.get(k) for k in ("block", "branch", "channel", "row", "col") if k in st.query_params}
    if not params or params == st.session_state.get("an_linked"):
        return
    st.session_state["an_linked"] = params
    linked, problems = unit_from_query(params)
    for p in problems:
        st.warning(plain(p))
    if linked.block is not None:
        try:
            block, _ = parse_label(lm.plan, linked.block)
        except KeyError as e:
            st.warning(plain(f"link parameter block: {e.args[0]}"))
            return
        st.session_state["an_block"] = block
        st.session_state["an_branch_" + block] = linked.branch
        for key, value in (("channel", linked.channel), ("row", linked.row), ("col", linked.col)):
            if value is not None:
                st.session_state[f"an_{key}"] = value
        st.session_state["an_link_pending"] = {k for k in ("channel", "row", "col") if getattr(linked, k) is not None}


def _apply_click(hh: int, ww: int) -> None:
    """A click on the unit picker (sent once, read before the inputs exist) sets row and column."""
    unit = clicked("an_pick", hh, ww)
    if unit is not None:
        st.session_state["an_row"], st.session_state["an_col"] = unit


def _clamp(key: str, hi: int, default: int) -> int:
    v = st.session_state.get(key)
    v = default if not isinstance(v, int) or isinstance(v, bool) else v
    st.session_state[key] = min(max(v, 0), hi)
    return st.session_state[key]


def show_layers(a: A.Anatomy, labels: dict[str, str]) -> None:
    halves = [run for run in a.trace.layers if run.half]
    if halves:  # Inception v3's E: the branch ends in two layers side by side
        last = a.layers[-1]
        st.caption(
            f"This branch ends in two halves side by side ({' ‖ '.join(f'`{r.path}`' for r in halves)}): its channel "
            f"{a.channel} is channel {a.channel - last.offset} of `{last.path}`, so the other half is not on its path."
        )
    for i, (path, svgs) in enumerate(C.layer_svgs(a)):
        steps = a.layer_steps(path)
        kind = steps[0].kind
        what = {"conv": "convolution", "maxpool": "max-pool", "avgpool": "average pool"}.get(kind, kind)
        k = a.layers[i].kernel
        one = kind == "conv" and k == (1, 1)
        st.markdown(
            f"**Layer {i + 1} of {len(a.layers)}: `{path}`**, {k[0]}×{k[1]} {what}"
            + (" — a 1×1 conv is a dot product over the channels at one position" if one else "")
            + (
                " — it reads the previous layer's output, not the block input"
                if i and kind == "conv" and not one
                else ""
            )
        )
        for svg in svgs:
            show_html(svg)  # our SVG (st.html's sanitiser drops SVG)


@st.fragment  # the unit's pickers and everything they drive rerun without the model and image pickers
def anatomy_view(lm: Net, mkey: str, ikey: str, x: torch.Tensor, cropped: Image.Image) -> None:
    apply_link(lm)
    blocks = lm.blocks()
    if st.session_state.get("an_block") not in blocks:
        st.session_state["an_block"] = "inception3a" if "inception3a" in blocks else blocks[0]
    c1, c2, c3, c4, c5 = st.columns(5)
    block = c1.selectbox("Block", blocks, key="an_block", format_func=short_label)
    labels = kernels(mkey, block, lm)
    ts = traces(mkey, ikey, block, lm, x)
    branches = list(ts)
    bkey = "an_branch_" + block
    if st.session_state.get(bkey) not in branches:
        st.session_state[bkey] = "b2" if "b2" in branches else branches[0]
    branch = c2.selectbox("Branch", branches, key=bkey, format_func=lambda b: f"{b} ({labels.get(b, '')})")
    t = ts[branch]
    ch_n, hh, ww = t.output.shape
    pending = st.session_state.pop("an_link_pending", None)
    if pending is not None:  # a link: what it leaves out is filled in around what it gives
        if "channel" not in pending and {"row", "col"} <= pending:  # the strongest channel at the linked unit
            r, c = _clamp("an_row", hh - 1, 0), _clamp("an_col", ww - 1, 0)
            st.session_state["an_channel"] = int(np.argmax(t.output[:, r, c]))
        elif "channel" in pending and not {"row", "col"} <= pending:  # the linked channel's peak
            ch = _clamp("an_channel", ch_n - 1, 0)
            r, c = np.unravel_index(int(np.argmax(t.output[ch])), (hh, ww))
            st.session_state["an_row"], st.session_state["an_col"] = int(r), int(c)
        elif not pending:
            pending = None
    if pending is None and ("an_channel" not in st.session_state or st.session_state.get("an_for") != (block, branch)):
        # a new branch: its strongest channel at its peak
        peak = np.unravel_index(int(np.argmax(t.output)), t.output.shape)
        st.session_state["an_channel"], st.session_state["an_row"], st.session_state["an_col"] = (int(v) for v in peak)
    st.session_state["an_for"] = (block, branch)
    _apply_click(hh, ww)
    channel = _clamp("an_channel", ch_n - 1, 0)
    row, col = _clamp("an_row", hh - 1, 0), _clamp("an_col", ww - 1, 0)
    channel = int(c3.number_input(f"Channel (0–{ch_n - 1})", 0, ch_n - 1, key="an_channel"))
    row = int(c4.number_input(f"Row (0–{hh - 1})", 0, hh - 1, key="an_row"))
    col = int(c5.number_input(f"Column (0–{ww - 1})", 0, ww - 1, key="an_col"))
    a = A.unit(t, channel, row, col)
    color = BRANCH_COLORS.get(branch, OTHER_COLOR)

    left, mid, right = st.columns([4, 3, 3])
    with left:
        unit_picker(picker(mkey, ikey, block, branch, channel, t), (row, col), key="an_pick")
    with mid:
        if t.rf is not None:
            st.image(
                rf_jpeg((mkey, ikey, block, branch), row, col, color, t.rf, cropped),
                caption=f"receptive field of {a.label} ({row}, {col}): {t.rf.size}×{t.rf.size} px of the "
                f"{cropped.height}×{cropped.width} input (from the kernels, strides and paddings)",
            )
    with right:
        st.markdown(branch_chip(branch, f"{a.label}: {labels.get(branch, '')}"))
        st.markdown(
            f"**Unit:** {a.label} channel {channel} at ({row}, {col}) = **{C.fmt(a.value)}**  \n"
            f"**In the block output:** channel {a.concat_channel} of {t.block_channels}  \n"
            f"**Chain:** " + " → ".join(f"`{p.partition('.')[2]}` ch {c} at {at}" for p, c, at in a.path())
        )
        st.caption(
            "Each layer below shows the numbers the module computes at the position the unit depends on; the "
            "earlier layers follow the input channel that contributes most (|w·x|) to the next conv."
        )
    st.subheader(f"How {a.label} ({row}, {col}), channel {channel}, is computed")
    show_layers(a, labels)
    st.markdown("**Concatenation**")
    widths = {b: tr.output.shape[0] for b, tr in ts.items()}
    show_html(C.concat_svg(widths, branch, channel, a.concat_channel, block))

    st.subheader("Animation: one layer's window sliding over its output map")
    layer_paths = [run.path for run in a.layers]
    if st.session_state.get("an_anim_layer") not in layer_paths:
        st.session_state["an_anim_layer"] = layer_paths[-1]
    layer = st.selectbox("Layer to animate", layer_paths, key="an_anim_layer")
    an = A.animation(a, layer)
    st.caption(
        f"{len(an.frames)} frames, one per output position, precomputed; Play, Pause, Step and the speed run in the "
        f"browser ({C.DEFAULT_MS} ms per step by default, as CNN Explainer)."
    )
    html = player_html((mkey, ikey, block, branch, layer), (an.in_channel, an.out_channel), color, an)
    st.iframe(html, height=380)  # our HTML: numbers and module paths only


# ---------------------------------------------------------------------------

st.title("Block Anatomy")
st.caption(
    "How one unit of one branch is computed from your image: for each layer of the branch, the input window, the "
    "kernel, each input channel's contribution, the sum, the bias, BatchNorm's scale and shift and the ReLU, with "
    "the model's own numbers. Tensor shapes are C×H×W; positions are (row, column)."
)

chosen = choose_model_and_image("an", "The numbers are those of random filters, not of a trained network.")
lm, mkey, ikey, what, cropped, x = chosen.lm, chosen.lm.key, chosen.image_key, chosen.what, chosen.cropped, chosen.x
st.caption(f"{what}: what the network sees is {cropped.height}×{cropped.width} (H×W)")
try:
    anatomy_view(lm, mkey, ikey, x, cropped)
except A.AnatomyError as e:
    st.error(plain(e))
