"""Feature Maps: a GoogLeNet on the user's image, branch by branch (issue 4).

Thin page: widgets in, gnet.images / gnet.pretrained / gnet.features calls, images and charts out.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st
from PIL import Image

from gnet import features as F
from gnet.colors import BRANCH_COLORS, OTHER_COLOR
from gnet.devices import describe, pick_device
from gnet.images import ImageError, load, preprocess
from gnet.pretrained import LoadedModel
from pages.sources import choose_model, load_chosen, read_image
from pages.ui import branch_chip, page_link, plain, use_app_navigation

use_app_navigation()


def show_mosaics(ex: F.Extraction, k: int) -> None:
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
            st.caption(f"channels {s.first_channel}–{s.first_channel + s.channels - 1} of the output · "
                       f"map {act.shape[1]}×{act.shape[2]} · mean {s.mean:.3f} · max {s.max:.3f} · "
                       f"zeros {s.zero_fraction:.0%} · share of the layer's activation {s.share:.1%}")
            img = F.mosaic(act, chosen, ex.offsets[g], F.group_color(g), title)
            st.image(img, output_format="PNG")
            st.download_button(f"Download {name} grid (PNG)", F.png_bytes(img), f"{ex.layer.label}_{g}_top{k}.png",
                               "image/png", key=f"fm_dl_{g}")


def show_shares(ex: F.Extraction) -> None:
    stats = F.group_stats(ex)
    fig = px.bar(
        x=[s.group for s in stats], y=[s.share for s in stats], color=[s.group for s in stats],
        color_discrete_map={**BRANCH_COLORS, "out": OTHER_COLOR},
        labels={"x": "branch", "y": "share of summed activation", "color": "branch"},
        hover_data={"kernels": [s.kernels for s in stats], "channels": [s.channels for s in stats]},
        title="Each branch's share of the block's output activation",
    )
    fig.update_layout(yaxis_tickformat=".0%", showlegend=False, height=320)
    st.plotly_chart(fig, theme="streamlit")
    st.dataframe([{"branch": s.group, "kernels": s.kernels, "channels": s.channels,
                   "first output channel": s.first_channel, "mean": round(s.mean, 4), "max": round(s.max, 4),
                   "zeros": f"{s.zero_fraction:.1%}", "share": f"{s.share:.1%}"} for s in stats], hide_index=True)


def show_channel(ex: F.Extraction, cropped: Image.Image) -> None:
    groups = list(ex.groups)
    c1, c2, c3 = st.columns([1, 1, 1])
    g = c1.selectbox("Branch", groups, key=f"fm_ch_group_{ex.layer.module}",
                     format_func=lambda b: f"{b} ({ex.kernel_labels.get(b, '')})")
    act = ex.groups[g]
    top = F.rank_channels(act, 1)[0]
    ch = c2.number_input(f"Channel in {g} (0–{act.shape[0] - 1})", 0, act.shape[0] - 1, top, 1,
                         key=f"fm_ch_{ex.layer.module}_{g}")
    alpha = c3.slider("Overlay opacity", 0.0, 1.0, 0.55, 0.05, key="fm_alpha")
    fmap = act[int(ch)]
    st.caption(f"{g} channel {int(ch)} = output channel {ex.offsets[g] + int(ch)} · mean {fmap.mean():.4f} · "
               f"max {fmap.max():.4f} · colours are this channel's own min (dark) to max (yellow)")
    a, b = st.columns(2)
    a.image(F.heatmap(fmap), caption=f"the map at its real resolution ({fmap.shape[0]}×{fmap.shape[1]})")
    b.image(F.overlay(cropped, fmap, alpha).resize((448, 448)), caption="overlaid on the network's input")


def show_ablation(lm: LoadedModel, ex: F.Extraction) -> None:
    zeroed = st.multiselect("Zero these branches", list(ex.groups), key=f"fm_ablate_{ex.layer.module}",
                            format_func=lambda b: f"{b} ({ex.kernel_labels.get(b, '')})")
    if not zeroed:
        st.caption("Pick one or more branches to see how the top-5 changes without them.")
        return
    rows = F.ablation_rows(ex.logits, F.ablate(lm.model, ex, zeroed), lm.classes)
    st.dataframe([{"class": r.label, "before": f"{r.before:.2%}", "after": f"{r.after:.2%}",
                   "rank before": r.rank_before, "rank after": r.rank_after} for r in rows], hide_index=True)
    fig = px.bar(x=[r.label for r in rows] * 2, y=[r.before for r in rows] + [r.after for r in rows],
                 color=["before"] * len(rows) + [f"without {', '.join(zeroed)}"] * len(rows), barmode="group",
                 labels={"x": "class", "y": "probability", "color": ""})
    fig.update_layout(yaxis_tickformat=".0%", height=340)
    st.plotly_chart(fig, theme="streamlit")


# ---------------------------------------------------------------------------

st.title("Feature Maps")
st.caption("What each branch of a GoogLeNet block responds to in your image. Tensor shapes are C×H×W.")

source, standing_in = choose_model()
lm = load_chosen(source, standing_in, pick_device())  # a broken stand-in checkpoint: the untrained net

if not lm.trained:
    st.warning(f"**{plain(lm.label)}.** The maps show what random filters do, not what a trained network learned.")
st.markdown(f"**Network:** {plain(lm.label)} · **device:** {describe(lm.device)}")
if lm.note:
    st.caption(lm.note)

picked = read_image()
if picked is None:
    st.info("Upload an image or pick a sample.")
    st.stop()
data, what = picked
try:
    loaded = load(data)
    cropped, x = preprocess(loaded.image, lm.preprocess)
except ImageError as e:
    st.error(f"Could not use {plain(what)}: {plain(e)}")
    st.stop()

layer_list = F.layers(lm.model)
labels = [l.label for l in layer_list]
c1, c2 = st.columns([1, 2])
layer = c1.selectbox("Layer", labels, index=labels.index("3a") if "3a" in labels else 0, key="fm_layer")
k = c2.slider("Channels shown per branch (strongest by mean activation)", 1, 64, 16, key="fm_k")

ex = F.extract(lm.model, x, layer)
st.markdown(f"**Inference:** {ex.forward_s * 1000:.1f} ms forward pass on {describe(lm.device)}")

left, mid, right = st.columns([1, 1, 1])
with left:
    ow, oh = loaded.original_size
    st.image(loaded.image, caption=f"{what}: {loaded.format}, {ow}×{oh} px, mode {loaded.original_mode}")
    for note in loaded.notes:
        st.caption(note)
with mid:
    st.image(cropped.resize((448, 448 * cropped.height // cropped.width)),
             caption=f"what the network sees: {cropped.height}×{cropped.width} (H×W)")
with right:
    st.markdown("**Preprocessing**")
    st.caption(lm.preprocess.describe())
    st.dataframe([{"channel": i, "mean": round(float(c.mean()), 3), "min": round(float(c.min()), 3),
                   "max": round(float(c.max()), 3)} for i, c in enumerate(x[0])], hide_index=True)

st.subheader("Top-5 predictions")
if not lm.trained:
    st.caption("Untrained network: these classes are arbitrary.")
st.dataframe([{"rank": p.rank, "class": p.label, "probability": f"{p.prob:.2%}"}
              for p in F.top_k(ex.logits, lm.classes)], hide_index=True)

st.subheader(f"Layer {ex.layer.label}: {ex.channels()} channels, {next(iter(ex.groups.values())).shape[1]}×"
             f"{next(iter(ex.groups.values())).shape[2]} maps")
show_mosaics(ex, k)
st.download_button(f"Download all activations of {ex.layer.label} (.npz)", F.activations_npz(ex),
                   f"activations_{ex.layer.label.split()[0]}.npz", "application/octet-stream", key="fm_dl_npz")
if ex.layer.is_block:
    show_shares(ex)

page_link("pages/atlas.py", label="Channel Atlas: what each channel wants to see", icon=":material/grid_view:")
st.subheader("One channel, large")
show_channel(ex, cropped)

if ex.layer.is_block:
    st.subheader("Branch ablation")
    show_ablation(lm, ex)
