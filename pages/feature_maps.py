"""Feature Maps: a GoogLeNet on the user's image, branch by branch.

Thin page: widgets in, gnet.images / gnet.pretrained / gnet.features calls, images and charts out.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from gnet import features as F
from gnet.charts.explain import ablation_bars_fig, branch_activation_share_svg
from gnet.charts.tables import table_html
from gnet.colors import BRANCH_COLORS
from gnet.devices import describe
from gnet.images import LoadedImage
from gnet.net import Net
from ui.anatomy_link import anatomy_link
from ui.common import branch_chip, page_link, show_html, use_app_navigation
from ui.sources import choose_model_and_image

use_app_navigation()

ModelKey = str  # Net.key: weights, spec, preprocessing and device


# Everything below the image is a pure function of (model, image bytes, layer, widget values): cached by those
# inputs, so a rerun that changes none of them does no model work and encodes no image again.
@st.cache_resource(max_entries=12, show_spinner="Running the network…")
def _extract(model_key: ModelKey, image_key: str, layer: str, _lm: Net, _x: torch.Tensor) -> F.Extraction:
    """Shared by all sessions like the model: the pages only read an Extraction, never change it."""
    return F.extract(_lm, _x, layer)


def _ex_key(model_key: ModelKey, image_key: str, ex: F.Extraction) -> tuple:
    return (*model_key, image_key, ex.layer.module)


@st.cache_data(max_entries=128, show_spinner=False)
def _mosaic_png(ex_key: tuple, group: str, k: int, title: str, _ex: F.Extraction) -> bytes:
    """A branch's mosaic, PNG (flat tiles: smaller than JPEG, and lossless for the download)."""
    act = _ex.groups[group]
    return F.png_bytes(F.mosaic(act, F.rank_channels(act, k), _ex.offsets[group], F.group_color(group), title))


@st.cache_data(max_entries=64, show_spinner=False)
def _view_jpeg(key: tuple, width: int, _img: Image.Image) -> bytes:
    """A photo shown `width` pixels wide (the original upload is only shrunk), as JPEG: photos need no PNG."""
    img = _img
    if img.width > width or key[0] == "net input":  # the network's input is shown enlarged, as before
        img = img.resize((width, max(1, width * img.height // img.width)))
    return F.jpeg_bytes(img)


@st.cache_data(max_entries=64, show_spinner=False)
def _overlay_jpeg(key: tuple, alpha: float, _cropped: Image.Image, _fmap: np.ndarray) -> bytes:
    return F.jpeg_bytes(F.overlay(_cropped, _fmap, alpha).resize((448, 448)))


@st.cache_data(max_entries=64, show_spinner=False)
def _heatmap_png(key: tuple, _fmap: np.ndarray) -> bytes:
    return F.png_bytes(F.heatmap(_fmap))


@st.cache_data(max_entries=32, show_spinner=False)
def _shares_svg(ex_key: tuple, _ex: F.Extraction) -> str:
    """The branch-share bar chart, cached by the extraction."""
    stats = F.group_stats(_ex)
    return branch_activation_share_svg(
        [s.group for s in stats], [s.share for s in stats], [s.kernels for s in stats], [s.channels for s in stats]
    )


def show_mosaics(ex: F.Extraction, k: int, ex_key: tuple) -> None:
    stats = {s.group: s for s in F.group_stats(ex)}
    groups = list(ex.groups)
    cols = st.columns(2 if len(groups) > 1 else 1)
    for i, g in enumerate(groups):
        act, s = ex.groups[g], stats[g]
        chosen = F.rank_channels(act, k)
        name = g if g != "out" else ex.layer.label
        title = f"{name} · {s.kernels} · top {len(chosen)} of {s.channels} channels"
        with cols[i % len(cols)]:
            st.markdown(branch_chip(g, f"{name}: {s.kernels}") if g in BRANCH_COLORS else f"**{name}: {s.kernels}**")
            st.caption(
                f"channels {s.first_channel}–{s.first_channel + s.channels - 1} of the output · "
                f"map {act.shape[1]}×{act.shape[2]} · mean {s.mean:.3f} · max {s.max:.3f} · "
                f"zeros {s.zero_fraction:.0%} · share of the layer's activation {s.share:.1%}"
            )
            png = _mosaic_png(ex_key, g, k, title, ex)
            st.image(png, output_format="PNG")
            st.download_button(
                f"Download {name} grid (PNG)", png, f"{ex.layer.label}_{g}_top{k}.png", "image/png", key=f"fm_dl_{g}"
            )


def show_shares(ex: F.Extraction, ex_key: tuple) -> None:
    stats = F.group_stats(ex)
    show_html(_shares_svg(ex_key, ex))  # our SVG (st.html's sanitiser drops SVG)
    show_html(
        table_html(
            [
                {
                    "branch": s.group,
                    "kernels": s.kernels,
                    "channels": s.channels,
                    "first output channel": s.first_channel,
                    "mean": round(s.mean, 4),
                    "max": round(s.max, 4),
                    "zeros": f"{s.zero_fraction:.1%}",
                    "share": f"{s.share:.1%}",
                }
                for s in stats
            ]
        )
    )


@st.fragment  # its three widgets rerun only this section
def show_channel(ex: F.Extraction, cropped: Image.Image, ex_key: tuple) -> None:
    groups = list(ex.groups)
    c1, c2, c3 = st.columns([1, 1, 1])
    g = c1.selectbox(
        "Branch",
        groups,
        key=f"fm_ch_group_{ex.layer.module}",
        format_func=lambda b: f"{b} ({ex.kernel_labels.get(b, '')})",
    )
    act = ex.groups[g]
    top = F.rank_channels(act, 1)[0]
    ch = c2.number_input(
        f"Channel in {g} (0–{act.shape[0] - 1})", 0, act.shape[0] - 1, top, 1, key=f"fm_ch_{ex.layer.module}_{g}"
    )
    alpha = c3.slider("Overlay opacity", 0.0, 1.0, 0.55, 0.05, key="fm_alpha")
    fmap = act[int(ch)]
    st.caption(
        f"{g} channel {int(ch)} = output channel {ex.offsets[g] + int(ch)} · mean {fmap.mean():.4f} · "
        f"max {fmap.max():.4f} · colours are this channel's own min (dark) to max (yellow)"
    )
    if ex.layer.is_block:  # the channel's peak, computed step by step on the Anatomy page
        r, c = (int(v) for v in np.unravel_index(int(np.argmax(fmap)), fmap.shape))
        anatomy_link(
            ex.layer.module,
            g,
            int(ch),
            r,
            c,
            label=f"Block Anatomy: how {g} channel {int(ch)} at its peak ({r}, {c}) is computed",
        )
    a, b = st.columns(2)
    a.image(
        _heatmap_png((*ex_key, g, int(ch)), fmap),
        caption=f"the map at its real resolution ({fmap.shape[0]}×{fmap.shape[1]})",
    )
    b.image(
        _overlay_jpeg((*ex_key, g, int(ch)), float(alpha), cropped, fmap), caption="overlaid on the network's input"
    )


@st.fragment  # picking branches reruns only this section
def show_ablation(lm: Net, ex: F.Extraction) -> None:
    zeroed = st.multiselect(
        "Zero these branches",
        list(ex.groups),
        key=f"fm_ablate_{ex.layer.module}",
        format_func=lambda b: f"{b} ({ex.kernel_labels.get(b, '')})",
    )
    if not zeroed:
        st.caption("Pick one or more branches to see how the top-5 changes without them.")
        return
    rows = F.ablation_rows(ex.logits, F.ablate(lm, ex, zeroed), lm.classes)
    show_html(
        table_html(
            [
                {
                    "class": r.label,
                    "before": f"{r.before:.2%}",
                    "after": f"{r.after:.2%}",
                    "rank before": r.rank_before,
                    "rank after": r.rank_after,
                }
                for r in rows
            ]
        )
    )
    fig = ablation_bars_fig([r.label for r in rows], [r.before for r in rows], [r.after for r in rows], zeroed)
    st.plotly_chart(fig, theme="streamlit")


# ---------------------------------------------------------------------------

st.title("Feature Maps")
st.caption(
    "What each branch of an Inception block (GoogLeNet or Inception v3) responds to in your image. Tensor shapes are C×H×W."
)

chosen = choose_model_and_image("fm", "The maps show what random filters do, not what a trained network learned.")
lm, model_key, image_key, what = chosen.lm, chosen.lm.key, chosen.image_key, chosen.what
loaded, cropped, x = chosen.loaded, chosen.cropped, chosen.x


@st.fragment  # the layer, the channel count and everything they drive rerun without the model and image pickers
def layer_view(
    lm: Net,
    model_key: ModelKey,
    image_key: str,
    loaded: LoadedImage,
    cropped: Image.Image,
    x: torch.Tensor,
    what: str,
) -> None:
    layer_list = F.layers(lm)
    labels = [lay.label for lay in layer_list]
    c1, c2 = st.columns([1, 2])
    layer = c1.selectbox(
        "Layer", labels, index=next((i for i, n in enumerate(labels) if n in ("3a", "5b")), 0), key="fm_layer"
    )
    k = c2.slider("Channels shown per branch (strongest by mean activation)", 1, 64, 16, key="fm_k")

    ex = _extract(model_key, image_key, layer, lm, x)
    ex_key = _ex_key(model_key, image_key, ex)
    st.markdown(f"**Inference:** {ex.forward_s * 1000:.1f} ms forward pass on {describe(lm.device)}")

    left, mid, right = st.columns([1, 1, 1])
    with left:
        ow, oh = loaded.original_size
        st.image(
            _view_jpeg(("upload", image_key), 900, loaded.image),
            caption=f"{what}: {loaded.format}, {ow}×{oh} px, mode {loaded.original_mode}",
        )
        for note in loaded.notes:
            st.caption(note)
    with mid:
        st.image(
            _view_jpeg(("net input", *model_key, image_key), 448, cropped),
            caption=f"what the network sees: {cropped.height}×{cropped.width} (H×W)",
        )
    with right:
        st.markdown("**Preprocessing**")
        st.caption(lm.preprocess.describe())
        show_html(
            table_html(
                [
                    {
                        "channel": i,
                        "mean": round(float(c.mean()), 3),
                        "min": round(float(c.min()), 3),
                        "max": round(float(c.max()), 3),
                    }
                    for i, c in enumerate(x[0])
                ]
            )
        )

    st.subheader("Top-5 predictions")
    if not lm.trained:
        st.caption("Untrained network: these classes are arbitrary.")
    show_html(
        table_html(
            [{"rank": p.rank, "class": p.label, "probability": f"{p.prob:.2%}"} for p in F.top_k(ex.logits, lm.classes)]
        )
    )

    st.subheader(
        f"Layer {ex.layer.label}: {ex.channels()} channels, {next(iter(ex.groups.values())).shape[1]}×"
        f"{next(iter(ex.groups.values())).shape[2]} maps"
    )
    show_mosaics(ex, k, ex_key)
    st.download_button(
        f"Download all activations of {ex.layer.label} (.npz)",
        lambda: F.activations_npz(ex),
        f"activations_{ex.layer.label.split()[0]}.npz",
        "application/octet-stream",
        key="fm_dl_npz",
    )  # made on click: compressing every activation takes a while
    if ex.layer.is_block:
        show_shares(ex, ex_key)

    page_link("pages/atlas.py", label="Channel Atlas: what each channel wants to see", icon=":material/grid_view:")
    st.subheader("One channel, large")
    show_channel(ex, cropped, ex_key)

    if ex.layer.is_block:
        st.subheader("Branch ablation")
        show_ablation(lm, ex)


layer_view(lm, model_key, image_key, loaded, cropped, x, what)
