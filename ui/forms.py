"""Form widgets more than one page draws, defined once (not a page itself: app.py lists the pages):
* `option_input`: one training option's widget, from its gnet.train_options entry (the Training page's
  form and the sweep form);
* the block editor (Block Designer, Network Explorer): the BatchNorm choices, the typed-number cap and one
  form for an Inception block's channels, 1×1 reductions, b3 convolution and what follows each conv.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from gnet import urlstate
from gnet.spec import CHANNEL_FIELDS, BlockSpec
from gnet.train_options import OPTIONS
from ui.common import branch_chip

# -- training options


def option_input(col: Any, name: str, value: Any, key: str, choices: list[str] | None = None) -> Any:
    """The widget of one training option: label, range, choices and help from gnet.train_options."""
    o = OPTIONS[name]
    options = choices or list(o.choices)
    if options:
        return col.selectbox(
            o.label, options, index=options.index(value) if value in options else 0, key=key, help=o.help
        )
    if o.kind is bool:
        return col.checkbox(o.label, value=value, key=key, help=o.help)
    if o.kind is int:
        return col.number_input(o.label, int(o.lo), int(o.hi), int(value), key=key, help=o.help)
    return col.number_input(
        o.label, min_value=float(o.lo), max_value=float(o.hi), value=float(value), format="%.4g", key=key, help=o.help
    )


# -- the block editor

BN_CHOICES = {"bias + ReLU (d2l)": False, "BatchNorm + ReLU (torchvision)": True}
# The widgets' own cap on a typed number; the spec's caps (SpecError, named in the message) are far lower.
MAX_TYPED = 10_000_000
NUMBER = {"min_value": 0, "max_value": MAX_TYPED, "step": 1}
# A BlockSpec channel field, or "reduce", "b3v" (the b3 convolution) or "bn" -> the page's widget key.
WidgetKey = Callable[[str], str]


def load_block(key: WidgetKey, block: BlockSpec) -> None:
    """Put a block into the editor's widgets (before they are drawn: a callback, or the first run)."""
    s = st.session_state
    for f in CHANNEL_FIELDS:
        s[key(f)] = getattr(block, f)
    s[key("reduce")] = block.reduce
    s[key("b3v")] = urlstate.b3_variant(block)
    s[key("bn")] = next(k for k, v in BN_CHOICES.items() if v == block.batch_norm)


def block_editor(key: WidgetKey, live: bool = True) -> None:
    """The block's widgets, filled by `load_block`. live: each change reruns the page, and the reduce
    fields follow the toggle; inside a st.form (live=False) they stay editable until it is submitted."""
    reduce = st.toggle(
        "1×1 reductions", key=key("reduce"), help="Off: the naive module, b2 and b3 convolve the input directly."
    )
    off = live and not reduce
    st.markdown(branch_chip("b1", "b1") + " 1×1 conv")
    st.number_input("b1 channels", key=key("b1"), **NUMBER)
    st.markdown(branch_chip("b2", "b2") + " 1×1 → 3×3")
    c1, c2 = st.columns(2)
    c1.number_input("b2 reduce (1×1)", key=key("b2_reduce"), disabled=off, **NUMBER)
    c2.number_input("b2 out (3×3)", key=key("b2"), **NUMBER)
    st.markdown(branch_chip("b3", "b3") + " 1×1 → 5×5 (or its variants)")
    c1, c2 = st.columns(2)
    c1.number_input("b3 reduce (1×1)", key=key("b3_reduce"), disabled=off, **NUMBER)
    c2.number_input("b3 out", key=key("b3"), **NUMBER)
    st.radio(
        "b3 convolution",
        list(urlstate.B3_VARIANTS),
        key=key("b3v"),
        help="torchvision's pretrained GoogLeNet uses 3×3 in its '5×5' branch (pytorch/vision#906).",
    )
    st.markdown(branch_chip("b4", "b4") + " 3×3 max-pool → 1×1")
    st.number_input("b4 pool projection", key=key("b4"), **NUMBER)
    st.radio("After each conv", list(BN_CHOICES), key=key("bn"))


def edited_block(key: WidgetKey) -> BlockSpec:
    """The block the editor's widgets hold, not validated yet (the page validates it, or its design)."""
    s = st.session_state
    spec = BlockSpec(
        **{f: int(s[key(f)]) for f in CHANNEL_FIELDS}, reduce=s[key("reduce")], batch_norm=BN_CHOICES[s[key("bn")]]
    )
    return urlstate.with_b3_variant(spec, s[key("b3v")])
