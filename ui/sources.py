"""The model-source picker and image picker shared by the pages that run a network on the
user's image (Feature Maps, Explain, ...). Not a page itself: app.py lists the pages.

Each page passes its own widget-key prefix ("fm", "ex", ...), so the pages keep
separate choices; the loaded model is cached once per process for all of them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

from gnet.checkpoints import CheckpointError
from gnet.devices import describe, pick_device
from gnet.images import FORMAT_NAMES, ImageError, LoadedImage, Preprocess, load, preprocess
from gnet.net import Net
from gnet.pretrained import (
    V3_SOURCES,
    ModelSource,
    checkpoint_family,
    ensure_pretrained_weights,
    ensure_v3_weights,
    find_checkpoints,
    find_v3_checkpoints,
    how_to_get_weights,
    hub_weights_path,
    load_model,
    user_file,
    v3_hub_weights_path,
)
from gnet.spec import SpecError
from ui.common import plain
from ui.download_panel import weights_download
from ui.handoff import requested_checkpoint

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
SOURCE_LABELS = {
    "pretrained": "Pretrained (torchvision, ImageNet)",
    "checkpoint": "Training checkpoint",
    "weights": "Weights file",
    "untrained": "Untrained (random weights)",
}


FAMILY_LABELS = {"googlenet": "GoogLeNet (Inception v1)", "inception-v3": "Inception v3"}


@st.cache_resource(show_spinner="Loading the network…", max_entries=6)
def cached_model(kind: str, path: str, mtime: float, device: str, model: str = "googlenet") -> Net:
    """One model per (family, source, file, device) for the whole process; mtime makes a rewritten file reload."""
    return load_model(ModelSource(kind, path, model), torch.device(device))


# The decoded image and the model's input, cached by the image's hash (and the model's preprocessing): shared by
# every session like the model, and only ever read. A rerun that changes neither decodes nothing again.
@st.cache_resource(max_entries=8, show_spinner=False)
def decoded(image_key: str, _data: bytes) -> LoadedImage:
    return load(_data)


@st.cache_resource(max_entries=8, show_spinner=False)
def prepared(
    image_key: str, model_key: object, _image: Image.Image, _pre: Preprocess
) -> tuple[Image.Image, torch.Tensor]:
    return preprocess(_image, _pre)


def file_mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _request_retry(prefix: str) -> None:
    st.session_state[f"{prefix}_retry_now"] = True


def _confined(path: str) -> str:
    """Paths from widgets may only reach the app's own folders (gnet.pretrained.user_file)."""
    try:
        return str(user_file(path))
    except CheckpointError as e:
        st.error(plain(str(e)))
        st.stop()


def choose_model(prefix: str = "fm", families: bool = False) -> tuple[ModelSource, bool]:
    """Widgets for the model source → (what to load, whether it stands in for missing pretrained weights).
    Offline, says what it could not get and what it shows instead. families=True asks for the family first
    (GoogLeNet or Inception v3), then the source."""
    if families:
        _land_on_handoff_family(prefix)
        family = st.radio(
            "Family",
            list(FAMILY_LABELS),
            format_func=FAMILY_LABELS.__getitem__,
            horizontal=True,
            key=f"{prefix}_family",
        )
        if family == "inception-v3":
            return _choose_v3(prefix)
    found = [str(p) for p in find_checkpoints()]
    requested = requested_checkpoint(prefix)  # sent by the Training page's "open in ..."
    if requested and requested not in found:
        found.insert(0, requested)
    env_weights = os.environ.get("GNET_WEIGHTS", "")
    default = "checkpoint" if requested else "weights" if env_weights else "pretrained"
    kinds = list(SOURCE_LABELS)
    kind = st.radio(
        "Network",
        kinds,
        index=kinds.index(default),
        format_func=SOURCE_LABELS.__getitem__,
        horizontal=True,
        key=f"{prefix}_source",
    )
    if kind == "checkpoint":
        if not found:
            st.info(
                "No training checkpoints yet (looked for `*/checkpoints/*.pt` under GNET_RUNS_DIR). "
                "Train one on the Training page, or pick another network."
            )
            st.stop()
        index = found.index(requested) if requested in found else 0
        path = st.selectbox("Checkpoint", found, index=index, key=f"{prefix}_ckpt_path", format_func=run_and_file)
        return ModelSource("checkpoint", _confined(path)), False
    if kind == "weights":
        # The operator's GNET_WEIGHTS path is used, not shown (no server path on a page).
        typed = st.text_input(
            "Path to a torchvision GoogLeNet weights file (.pth)",
            key=f"{prefix}_weights_path",
            placeholder="empty: the server's GNET_WEIGHTS file" if env_weights else "",
            help="Leave empty to use the file the server's GNET_WEIGHTS names.",
        )
        path = typed.strip() or env_weights
        if not path.strip():
            st.info("Enter the path of a weights file on the server, e.g. googlenet-1378be20.pth.")
            st.stop()
        return ModelSource("weights", _confined(path)), False
    if kind == "untrained":
        return ModelSource("untrained"), False
    status = ensure_pretrained_weights(retry=bool(st.session_state.pop(f"{prefix}_retry_now", False)))
    if status.ok:
        return ModelSource("pretrained"), False
    fallback = ModelSource("checkpoint", found[0]) if found else ModelSource("untrained")
    shown = (
        f"the training checkpoint {plain(run_and_file(fallback.path))}"
        if fallback.kind == "checkpoint"
        else "an UNTRAINED network (random weights)"
    )
    if status.state == "downloading":  # progress, then the page switches to the pretrained net by itself
        weights_download(shown, prefix)
        return fallback, True
    st.warning(f"{plain(status.message)}.\n\nShowing {shown} instead.\n\n{how_to_get_weights()}")
    st.button("Retry download", key=f"{prefix}_retry", on_click=_request_retry, args=(prefix,))
    return fallback, True


def _family(path: str) -> str | None:
    """The family of a checkpoint in the app's own folders (gnet.pretrained.user_file); None elsewhere or unreadable."""
    try:
        return checkpoint_family(user_file(path))
    except CheckpointError:
        return None


def _land_on_handoff_family(prefix: str) -> None:
    """A checkpoint just sent by the Training page opens in its own family, selected: an Inception v3 run's on
    the Inception v3 picker. Once per hand-off (the widgets are set before they are drawn), so the user's later
    choices stand."""
    requested, s = requested_checkpoint(prefix), st.session_state
    if not requested or s.get(f"{prefix}_handoff_seen") == requested:
        return
    s[f"{prefix}_handoff_seen"] = requested
    family = _family(requested)
    if family == "inception-v3":
        s[f"{prefix}_family"] = family
        s[f"{prefix}_v3_source"] = "checkpoint"
        s[f"{prefix}_v3_ckpt_path"] = requested
    elif family is not None:
        s[f"{prefix}_family"] = family


# The v3 picker's sources, in the GoogLeNet picker's order: a training checkpoint of a v3 run is among them.
V3_PICKER_SOURCES = ("pretrained", "checkpoint", *(k for k in V3_SOURCES if k != "pretrained"))


def _choose_v3_checkpoint(prefix: str) -> ModelSource:
    """A training checkpoint whose network is an Inception v3 (the runs folder's, and one the Training page sent)."""
    found = [str(p) for p in find_v3_checkpoints()]
    requested = requested_checkpoint(prefix)
    if requested and requested not in found and _family(requested) == "inception-v3":
        found.insert(0, requested)
    if not found:
        st.info(
            "No Inception v3 training checkpoints yet (looked for `*/checkpoints/*.pt` of v3 runs under "
            "GNET_RUNS_DIR). Train the mini-v3 preset on the Training page, or pick another source."
        )
        st.stop()
    if st.session_state.get(f"{prefix}_v3_ckpt_path") not in (None, *found):  # deleted since: the newest instead
        del st.session_state[f"{prefix}_v3_ckpt_path"]
    path = st.selectbox("Checkpoint", found, key=f"{prefix}_v3_ckpt_path", format_func=run_and_file)
    # A project checkpoint names its family in its own spec: the checkpoint loader builds an Inception v3 from it.
    return ModelSource("checkpoint", _confined(path))


def _choose_v3(prefix: str) -> tuple[ModelSource, bool]:
    """The sources of an Inception v3: torchvision's pretrained weights, a training checkpoint of a v3 run, a
    weights file, random weights."""
    labels = {k: SOURCE_LABELS[k] for k in V3_PICKER_SOURCES}
    kind = st.radio("Network", list(labels), format_func=labels.__getitem__, horizontal=True, key=f"{prefix}_v3_source")
    if kind == "checkpoint":
        return _choose_v3_checkpoint(prefix), False
    if kind == "weights":
        typed = st.text_input("Path to a torchvision Inception v3 weights file (.pth)", key=f"{prefix}_v3_weights_path")
        if not typed.strip():
            st.info("Enter the path of a weights file on the server, e.g. inception_v3_google-0cc3c7bd.pth.")
            st.stop()
        return ModelSource("weights", _confined(typed.strip()), model="inception-v3"), False
    if kind == "untrained":
        return ModelSource("untrained", model="inception-v3"), False
    status = ensure_v3_weights(retry=bool(st.session_state.pop(f"{prefix}_v3_retry_now", False)))
    if status.ok:
        return ModelSource("pretrained", model="inception-v3"), False
    if status.state == "downloading":
        p = status.progress
        done = f" ({p.done / 2**20:.0f} of {p.total / 2**20:.0f} MB)" if p and p.total else ""
        st.info(f"Downloading the Inception v3 weights{done}; showing an UNTRAINED Inception v3 until they arrive.")
    else:
        st.warning(
            f"{plain(status.message)}.\n\nShowing an UNTRAINED Inception v3 (random weights) instead. Put "
            "torchvision's `inception_v3_google-0cc3c7bd.pth` into `$TORCH_HOME/hub/checkpoints/`, or set "
            "GNET_V3_WEIGHTS_URL (+ GNET_V3_WEIGHTS_SHA256) to a mirror."
        )
        st.button("Retry download", key=f"{prefix}_v3_retry", on_click=_request_retry, args=(f"{prefix}_v3",))
    return ModelSource("untrained", model="inception-v3"), True


def load_chosen(source: ModelSource, standing_in: bool, device: torch.device) -> Net:
    """The cached model for a source; a broken stand-in checkpoint falls back to the untrained net."""
    # the pretrained net is keyed by its cache file too, so a file downloaded or replaced later is loaded afresh
    hub = v3_hub_weights_path() if source.model == "inception-v3" else hub_weights_path()
    key_path = str(hub) if source.kind == "pretrained" else source.path
    try:
        return cached_model(source.kind, key_path, file_mtime(key_path) if key_path else 0.0, str(device), source.model)
    except (CheckpointError, SpecError) as e:
        st.error(f"Could not load this network: {plain(e)}")
        if not standing_in:
            st.stop()
        return cached_model("untrained", "", 0.0, str(device), source.model)


def run_and_file(path: str) -> str:
    p = Path(path)
    return f"{p.parent.parent.name}/{p.name}" if p.parent.name == "checkpoints" else str(p)


def read_image(prefix: str = "fm") -> tuple[bytes, str] | None:
    left, right = st.columns([3, 2])
    upload = left.file_uploader(
        f"Upload an image ({FORMAT_NAMES}; GIF: first frame)", type=UPLOAD_TYPES, key=f"{prefix}_upload"
    )
    samples = sorted(p.name for p in SAMPLES.glob("*.jpg"))
    sample = right.selectbox(
        "…or use a sample image",
        samples,
        key=f"{prefix}_sample",
        help="Public-domain / CC0 photos; see assets/samples/LICENSE.md.",
    )
    if upload is not None:
        return upload.getvalue(), "your upload"
    if sample:
        return (SAMPLES / sample).read_bytes(), f"sample {sample}"
    return None


@dataclass(frozen=True)
class ChosenInput:
    """The network and the image a page runs it on, ready for a forward pass."""

    lm: Net
    image_key: str  # the sha256 of the image's bytes: the caches' key
    what: str  # "your upload" or "sample NAME"
    loaded: LoadedImage
    cropped: Image.Image  # what the network sees
    x: torch.Tensor


def choose_model_and_image(prefix: str, untrained_note: str) -> ChosenInput:
    """The preamble of the pages that run a network on the user's image: the model picker (GoogLeNet or
    Inception v3, then the source), the network line, the image picker and its preprocessing. Stops the page
    with a message where there is no image yet or it cannot be used; `untrained_note` says what random filters
    mean for this page's output."""
    source, standing_in = choose_model(prefix, families=True)
    lm = load_chosen(source, standing_in, pick_device())  # a broken stand-in checkpoint: the untrained net
    if not lm.trained:
        st.warning(f"**{plain(lm.label)}.** {untrained_note}")
    st.markdown(f"**Network:** {plain(lm.label)} · **device:** {describe(lm.device)}")
    if lm.note:
        st.caption(lm.note)

    picked = read_image(prefix)
    if picked is None:
        st.info("Upload an image or pick a sample.")
        st.stop()
    data, what = picked
    image_key = hashlib.sha256(data).hexdigest()
    try:
        loaded = decoded(image_key, data)
        cropped, x = prepared(image_key, lm.key, loaded.image, lm.preprocess)
    except ImageError as e:
        st.error(f"Could not use {plain(what)}: {plain(e)}")
        st.stop()
    return ChosenInput(lm, image_key, what, loaded, cropped, x)
