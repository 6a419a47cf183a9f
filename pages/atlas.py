"""Channel Atlas: what each channel of a block wants to see, branch by branch, and where
colour-sensitive and strong channels sit.

Thin page: widgets in; gnet.featurevis (cache, jobs, specialisation), gnet.features and
gnet.charts out. Optimisation never runs in the server: it runs in capped background jobs
(`python -m gnet visualize --job-dir ...`) whose pictures land in a shared on-disk cache.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import streamlit as st
from PIL import Image, ImageDraw, ImageOps

from gnet import features as F
from gnet import featurevis as fv
from gnet.charts.explain import specialisation_fig
from gnet.colors import BRANCH_COLORS
from gnet.devices import describe, pick_device
from gnet.images import ImageError, load, preprocess, to_tensor
from gnet.net import Net
from gnet.plan import parse_label, short_label
from gnet.pretrained import ModelSource
from gnet.v3 import InceptionV3Spec
from ui.common import branch_chip, page_link, plain, use_app_navigation
from ui.sources import SAMPLES, choose_model, load_chosen, read_image

use_app_navigation()

TILE = 112
ORDERS = {"top": "strongest on this image first", "index": "in channel order"}


# ---------------------------------------------------------------------------
# Tiles


def framed(img: Image.Image, color: str, size: int = TILE) -> Image.Image:
    return ImageOps.expand(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), border=4, fill=color)


def placeholder(color: str, size: int = TILE) -> Image.Image:
    img = Image.new("RGB", (size, size), "#e6e6e6")
    ImageDraw.Draw(img).text((size // 2 - 22, size // 2 - 6), "not yet", fill="#666666")
    return ImageOps.expand(img, border=4, fill=color)


def _select(layer: str, branch: str, channel: int) -> None:
    st.session_state["at_selected"] = (layer, branch, channel)


def halves_text(lm: Net, layer: str, branch: str) -> str:
    """An E branch's two halves and their channels, e.g. "ch 0–383: 1×3 (Mixed_7b.branch3x3_2a) ‖ ..."."""
    parts = [f"ch {h.first}–{h.first + h.width - 1}: {h.kernel} ({h.path})" for h in fv.halves(lm, layer, branch)]
    return " ‖ ".join(parts)


def show_grid(
    lm: Net,
    resolved: dict[str, list[fv.ResolvedTarget]],
    found: dict[str, fv.CachedResult],
    key: str,
    ex: F.Extraction,
) -> None:
    for b, targets in resolved.items():
        st.markdown(
            branch_chip(b, f"{b}: {ex.kernel_labels.get(b, '')}")
            + f" · channels {ex.offsets[b]}–{ex.offsets[b] + ex.groups[b].shape[0] - 1} of the block output"
        )
        if split := halves_text(lm, ex.layer.module, b):  # Inception v3's E: two layers side by side
            st.caption(f"Two halves side by side, concatenated: {split}")
        per_row = 4  # four across: the full "4b·b3 ch 5 | out 389" fits a button, tiles line up
        for start in range(0, len(targets), per_row):
            cols = st.columns(per_row)
            for col, r in zip(cols, targets[start : start + per_row]):
                res = found.get(r.caption())
                t = r.target
                col.image(framed(res.image(), BRANCH_COLORS[b]) if res else placeholder(BRANCH_COLORS[b]))
                col.button(
                    r.caption(),
                    key=f"at_open_{key}_{b}_{t.channel}",
                    on_click=_select,
                    args=(t.layer, b, t.channel),
                    use_container_width=True,
                )


def show_selected(lm: Net, layer: str, cropped: Image.Image, found: dict[str, fv.CachedResult]) -> None:
    sel = st.session_state.get("at_selected")
    if not sel or sel[0] != layer:
        return
    r = fv.resolve(lm, fv.Target(*sel))
    with st.container(border=True):
        head, close = st.columns([5, 1])
        half = next((h for h in fv.halves(lm, layer, r.target.branch) if h.holds(r.target.channel)), None)
        head.markdown(
            branch_chip(r.target.branch, r.caption())
            + (f" · channel {r.target.channel - half.first} of the {half.kernel} half ({half.path})" if half else "")
        )
        close.button("Close", key="at_close", on_click=st.session_state.pop, args=("at_selected",))
        a, b, c = st.columns(3)
        res = found.get(r.caption())
        if res:
            a.image(
                res.image().resize((336, 336), Image.Resampling.BICUBIC),
                caption=f"what it wants to see: mean activation {res.meta['activation_start']:.3f} "
                f"on the grey start → {res.meta['activation_end']:.3f} after {res.meta['steps']} steps",
            )
        else:
            a.info("Not visualised yet with these settings: press the button under the grid.")
        x = to_tensor(cropped, lm.preprocess)
        fmap = fv.activation_map(lm, x, r.target)
        b.image(
            F.overlay(cropped, fmap).resize((336, 336)),
            caption=f"where it fires on your image (mean {fmap.mean():.3f}, max {fmap.max():.3f})",
        )
        c.image(F.heatmap(fmap, 336), caption=f"its map at its real resolution ({fmap.shape[0]}×{fmap.shape[1]})")


# ---------------------------------------------------------------------------
# Jobs


@st.fragment(run_every=1.0)
def job_panel(path: str) -> None:
    info = fv.read_job(Path(path))
    if info.active:
        current = info.status.get("current", "")
        st.progress(
            info.fraction,
            text=f"Visualising: {info.done} of {info.total} pictures done"
            + (f" · now {current}" if current else "")
            + f" ({info.state})",
        )
        st.button("Cancel", key="at_cancel", on_click=fv.cancel_job, args=(info.path,))
        return
    st.session_state.pop("at_job", None)
    if info.state == "finished":
        st.rerun()  # the whole page, to show the new pictures
    elif info.state != "missing":
        st.warning(f"The visualisation job {info.state}: {plain(info.message)}")


def start(
    root: Path, source: ModelSource, fingerprint: str, layer: str, missing: list[fv.Target], cfg: fv.VisConfig
) -> None:
    try:
        job = fv.start_job(
            root, {"kind": source.kind, "path": source.path, "model": source.model}, fingerprint, layer, missing, cfg
        )
    except fv.VisError as e:  # every worker busy, or a cache folder that is not usable
        st.session_state["at_busy"] = str(e)
        return
    st.session_state.pop("at_busy", None)
    st.session_state["at_job"] = str(job.path)


@st.cache_data(show_spinner="Measuring branch specialisation on the images and their grey copies…", max_entries=16)
def _specialisation(model_key: str, digest: str, _lm: Net, _upload: bytes | None) -> fv.Specialisation:
    """Over the sample images and the user's upload, on the page's own Net (its key and the upload's digest key
    the cache; the network and the bytes ride along)."""
    images = [load((SAMPLES / p).read_bytes()).image for p in sorted(os.listdir(SAMPLES)) if p.endswith(".jpg")]
    return fv.specialisation(_lm, _lm.preprocess, images + ([load(_upload).image] if _upload else []))


DISTILL = (
    "**What to look for.** Distill's *Branch Specialization* (Voss et al., 2021) found by hand that in "
    "InceptionV1 similar features gather in the same branch: mixed3a's colour detectors sit mostly in one "
    "branch, and nearly all of mixed3b's curve detectors sit in its 5×5 branch, so a whole branch can be read "
    "as one kind of feature. The charts measure two such signs for the network loaded here. "
    "torchvision's pretrained GoogLeNet is a different network from the one Distill studied: it has "
    'BatchNorm and was ported from TensorFlow (and its "5×5" branch is really 3×3), so the exact channels '
    "and branches differ; look for the pattern, not for Distill's unit numbers."
)
DISTILL_V3 = (
    "**What to look for.** Distill's *Branch Specialization* (Voss et al., 2021) found by hand that in "
    "InceptionV1 similar features gather in the same branch (mixed3a's colour detectors mostly in one branch, "
    "mixed3b's curve detectors in its 5×5 branch). Inception v3 was not part of that study: the charts measure the "
    "same two signs for its eleven Mixed blocks, where the branches differ in kind (factorised 1×n + n×1 stacks, "
    "stride-2 grid reductions, E's side-by-side 1×3 ‖ 3×1 halves). torchvision's Inception v3 weights were ported "
    "from TensorFlow and its layers follow TF-Slim rather than the paper's figures in places (pytorch/vision#798)."
)
SIZES = [32, 64, 96, 128, 160, 224]


# ---------------------------------------------------------------------------

st.title("Channel Atlas")
st.caption(
    "What each channel of an Inception block wants to see (activation maximisation: Fourier-parameterised, "
    "decorrelated colour, random jitter/scale/rotation, fixed seed), branch by branch."
)
page_link(
    "pages/feature_maps.py",
    label="Back to Feature Maps: what the channels do with your image",
    icon=":material/image_search:",
)

source, standing_in = choose_model("at", families=True)
device = pick_device()
lm = load_chosen(source, standing_in, device)
v3 = isinstance(lm.spec, InceptionV3Spec)
if not lm.trained:
    st.warning(
        f"**{plain(lm.label)}.** Its channels were never trained: the pictures show what random filters "
        "respond to, not learned features."
    )
st.markdown(f"**Network:** {plain(lm.label)} · **device:** {describe(lm.device)}")
if lm.note:
    st.caption(plain(lm.note))

picked = read_image("at")
if picked is None:
    st.info("Upload an image or pick a sample.")
    st.stop()
data, what = picked
try:
    cropped, x = preprocess(load(data).image, lm.preprocess)
except ImageError as e:
    st.error(f"Could not use {plain(what)}: {plain(e)}")
    st.stop()

blocks = fv.block_names(lm)
labels = [short_label(b) for b in blocks]
c1, c2, c3 = st.columns([1, 2, 2])
default = next((labels.index(b) for b in ("4b", "6b") if b in labels), 0)
layer_label = c1.selectbox("Block", labels, index=default, key="at_block")
order = c2.radio("Channels", list(ORDERS), format_func=ORDERS.__getitem__, horizontal=True, key="at_order")
k = c3.slider("Channels per branch", 1, 16, 6, key="at_k")
layer, _ = parse_label(lm.plan, layer_label)
smallest = fv.min_size(lm, layer)  # Inception v3's deep blocks need more than 32 px to have an output at all
sizes = [v for v in SIZES if v >= smallest] or [max(SIZES)]
if st.session_state.get("at_size") not in (None, *sizes):  # a size the block cannot take: its smallest that works
    st.session_state["at_size"] = sizes[0]
with st.expander("Optimisation settings"):
    s1, s2, s3, s4 = st.columns(4)
    size = s1.select_slider(
        "Image size (px)",
        sizes,
        value=128 if 128 in sizes else sizes[0],
        key="at_size",
        help=f"Block {layer_label} needs at least {smallest}×{smallest} px." if smallest > SIZES[0] else None,
    )
    steps = s2.number_input("Steps", 16, 2048, 256, 16, key="at_steps")
    lr = s3.number_input("Learning rate (Adam)", 0.005, 1.0, 0.05, 0.005, format="%.3f", key="at_lr")
    seed = s4.number_input("Seed", 0, 2**31 - 1, 0, 1, key="at_seed")
cfg = fv.VisConfig(size=int(size), steps=int(steps), lr=float(lr), seed=int(seed), jitter=min(8, int(size) // 4))
if v3:
    st.caption(
        f"Inception v3 takes {lm.preprocess.crop[0]}×{lm.preprocess.crop[1]} photos; the pictures are optimised at "
        f"the size above (smaller is faster; a 128×128 channel takes well under a minute on a CPU)."
    )

ex = F.extract(lm, x, layer)
resolved: dict[str, list[fv.ResolvedTarget]] = {}
for b, act in ex.groups.items():
    chans = F.rank_channels(act, k) if order == "top" else list(range(min(k, act.shape[0])))
    resolved[b] = [fv.resolve(lm, fv.Target(layer, b, c)) for c in chans]

root = fv.cache_root()
fingerprint = fv.model_fingerprint(lm)
found: dict[str, fv.CachedResult] = {}
missing: list[fv.Target] = []
damaged: list[str] = []
for rs in resolved.values():
    for r in rs:
        try:
            res = fv.read_result(root, fv.result_key(fingerprint, r.target, cfg))
        except fv.DamagedResult as e:  # a hand-edited or foreign cache entry: made again with the missing ones
            res = None
            damaged.append(str(e))
        if res is None:
            missing.append(r.target)
        else:
            found[r.caption()] = res
if damaged:
    st.warning(plain(f"{len(damaged)} cached picture(s) cannot be used and count as missing: {damaged[0]}."))

st.subheader(
    f"Block {layer_label}: {ex.channels()} channels, top {k} per branch"
    if order == "top"
    else f"Block {layer_label}: {ex.channels()} channels, the first {k} of each branch"
)
# A job for exactly these pictures that another session started is shared, not started twice.
shared = fv.read_job(root / "jobs" / fv.job_id(fingerprint, layer, missing, cfg)) if missing else None
if shared is not None and shared.active:
    st.session_state["at_job"] = str(shared.path)
if st.session_state.get("at_job"):
    job_panel(st.session_state["at_job"])
elif missing:
    st.button(
        f"Visualise the {len(missing)} missing channel{'s' * (len(missing) != 1)} "
        f"({cfg.size}×{cfg.size} px, {cfg.steps} steps)",
        type="primary",
        key="at_start",
        on_click=start,
        args=(root, lm.source, fingerprint, layer, missing, cfg),
    )
    st.caption(
        f"Runs in the background (at most {fv.max_jobs()} jobs at once, shared by every session); "
        "finished pictures are kept on disk, so a second look is instant."
    )
else:
    st.caption(f"All {sum(len(r) for r in resolved.values())} pictures are cached for these settings.")
if st.session_state.get("at_busy"):
    st.warning(plain(st.session_state["at_busy"]))

show_selected(lm, layer, cropped, found)
show_grid(lm, resolved, found, layer_label, ex)

st.subheader("Branch specialisation")
upload = data if what == "your upload" else None
spec = _specialisation(lm.key, hashlib.sha256(upload or b"").hexdigest(), lm, upload)
st.plotly_chart(
    specialisation_fig(
        spec.blocks(),
        {m: spec.grid(m) for m in ("colour_sensitivity", "colour_selective", "strongest_share")},
        spec.grid("channel_share"),
    ),
    theme="streamlit",
    key="at_spec_chart",
)
st.caption(
    f"Over {spec.images} images (the sample images{' and your upload' if upload else ''}) and their greyscale copies. "
    "**Colour sensitivity** of a channel: how much its mean response changes when the image loses its colour, "
    "Σ|a(image) − a(grey copy)| / Σ max(a(image), a(grey copy)), from 0 (colour-blind) to 1; a channel counts "
    f"as **colour-selective** above {spec.threshold:.0%}. **Strongest channels**: the block's top "
    f"{spec.top_fraction:.0%} by mean activation over the images; hover to compare with the branch's share of "
    "the block's channels (what chance would give)."
)
if spec.grey_network:
    st.info("This network takes greyscale input: it cannot see colour, so every colour sensitivity is 0.")
st.markdown(DISTILL_V3 if v3 else DISTILL)
