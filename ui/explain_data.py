"""What the Explain page computes, cached (imported once, so the caches' wrappers are made once, not on every
rerun of the page's script).

Cached per (model, image, target): the model and the tensor are not hashed (leading underscore), the key says which
they are. Results are small (36 maps of at most 28×28 and a few numbers); images are cached as JPEG bytes by what
they show, so a rerun that changes neither redraws nor re-encodes them.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from gnet import attribution as A
from gnet.charts import explain as C
from gnet.features import jpeg_bytes
from gnet.net import Net


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def class_logits(model_key: str, image_key: str, _lm: Net, _x: torch.Tensor) -> np.ndarray:
    return A.predict(_lm, _x)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def ablations(model_key: str, image_key: str, _lm: Net, _x: torch.Tensor) -> np.ndarray:
    """Once per image: they do not depend on the target, and are most of an explanation's time."""
    return A.ablation_logits(_lm, _x)


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def explain_top(
    model_key: str, image_key: str, targets: tuple[int, ...], _lm: Net, _x: torch.Tensor
) -> dict[int, A.Explanation]:
    """The top-5 classes together (one forward, five backwards): switching between them is a lookup."""
    ablated = ablations(model_key, image_key, _lm, _x)
    return {e.target: e for e in A.explain_many(_lm, _x, targets, _lm.classes, ablated=ablated)}


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def explain(model_key: str, image_key: str, target: int, _lm: Net, _x: torch.Tensor) -> A.Explanation:
    return A.explain(_lm, _x, target, _lm.classes, ablated=ablations(model_key, image_key, _lm, _x))


def top_classes(logits: np.ndarray, n: int = 5) -> list[int]:
    return [int(i) for i in np.argsort(-logits, kind="stable")[:n]]


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def fields(model_key: str, image_key: str, block: str, row: int, col: int, _lm: Net, _x: torch.Tensor) -> A.EmpiricalRF:
    return A.receptive_fields(_lm, _x, block, row, col)


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def gradcam_jpeg(
    model_key: str, image_key: str, target: int, scale: str, _ex: A.Explanation, _cropped: Image.Image
) -> bytes:
    return jpeg_bytes(C.gradcam_grid(_ex, _cropped, scale))


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def input_jpeg(model_key: str, image_key: str, _cropped: Image.Image) -> bytes:
    return jpeg_bytes(_cropped.resize((224, 224 * _cropped.height // _cropped.width)))


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def rf_jpegs(
    model_key: str,
    image_key: str,
    block: str,
    row: int,
    col: int,
    branch: str,
    _rf: A.EmpiricalRF,
    _cropped: Image.Image,
) -> dict[str, bytes]:
    """The chosen branch's image alone and with its heat, and each branch's heat at 280 px."""
    return {
        "plain": jpeg_bytes(C.rf_image(_cropped, _rf, branch, heat=False)),
        "heat": jpeg_bytes(C.rf_image(_cropped, _rf, branch)),
        **{b: jpeg_bytes(C.rf_image(_cropped, _rf, b, size=280)) for b in _rf.maps},
    }


@st.cache_resource(show_spinner=False, max_entries=32)
def unit_picker(model_key: str, image_key: str, block: str, branch: str, _ex: A.Explanation) -> dict:
    """The receptive-field section's picker: the same for every target and unit (it shows activations; the unit is
    outlined at mount), so it is built once per branch; shared by the sessions, read-only."""
    return C.unit_picker(_ex, block, branch)
