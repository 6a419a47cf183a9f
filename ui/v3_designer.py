"""The Block Designer for Inception v3's kinds A–E (not a page itself: pages/block_designer.py draws it when a
v3 kind is picked). Everything shown is computed from the spec by gnet.v3 and gnet.analysis."""

from __future__ import annotations

import streamlit as st

from gnet import urlstate
from gnet.charts.tables import chw
from gnet.export import v3_block_exportable
from gnet.spec import SpecError
from gnet.v3 import (
    KindSpec,
    default_kind,
    factorisation_savings,
    kind_from_query,
    kind_report,
    kind_to_json,
    kind_to_query,
    kind_with,
    query_keys,
)
from ui.common import plain
from ui.export_buttons import export_buttons
from ui.forms import NUMBER

# Where torchvision's layers (which its weights need) differ from the v3 paper's figures (pytorch/vision#798).
DIFFERENCES = {
    "A": " Unlike the paper's figure 5, torchvision's b2 keeps a 5×5 (b3 has the two 3×3) (pytorch/vision#798).",
}


# counts with thousands separators, still numbers (right-aligned, sortable)
COUNTS = {k: st.column_config.NumberColumn(format="localized") for k in ("params", "mult-adds", "multiplications")}


def _key(kind: str, field: str) -> str:
    return f"v3_{kind}_{field}"


def _put(spec: KindSpec, shape: tuple[int, int, int]) -> None:
    s = st.session_state
    for f, v in zip("chw", shape):
        s[_key(spec.KIND, f)] = v
    for f in spec.fields():
        s[_key(spec.KIND, f)] = getattr(spec, f)


def _reset(kind: str) -> None:
    spec = default_kind(kind)
    _put(spec, spec.DEFAULT_INPUT)


def load_link(params: dict) -> str | None:
    """A first visit's link with a v3 design ("?kind=C&in=768,17,17&c7=160"): its kind is picked and its numbers
    put into the widgets. Returns what was wrong with the link, if anything."""
    try:
        found = kind_from_query(params)
    except SpecError as e:
        return f"The link's design was not loaded: {e}."
    if found is not None:
        st.session_state.block_kind = found[0].KIND
        _put(*found)
    return None


def clear_link() -> None:
    """Showing a v1 block: its link holds none of a v3 design's keys."""
    for k in [k for k in st.query_params if k in query_keys()]:
        del st.query_params[k]


def _write_link(spec: KindSpec, shape: tuple[int, int, int]) -> None:
    query = kind_to_query(spec, shape)
    for k in [k for k in st.query_params if k in urlstate.KEYS or (k in query_keys() and k not in query)]:
        del st.query_params[k]
    if {k: st.query_params.get(k) for k in query} != query:
        st.query_params.update(query)  # the link reproduces the design


def _editor(kind: str, col) -> None:
    spec = default_kind(kind)
    if _key(kind, "c") not in st.session_state:
        _reset(kind)
    with col:
        st.button(f"Reset to torchvision's {spec.BLOCK}", key=f"v3_{kind}_reset", on_click=_reset, args=(kind,))
        st.markdown("**Input** (H×W×C)")
        c1, c2, c3 = st.columns(3)
        c1.number_input("H", key=_key(kind, "h"), **NUMBER)
        c2.number_input("W", key=_key(kind, "w"), **NUMBER)
        c3.number_input("C", key=_key(kind, "c"), **NUMBER)
        st.markdown("**Out-channels per conv** (torchvision's module names)" + (" and n" if kind == "C" else ""))
        for f in spec.fields():
            st.number_input(f, key=_key(kind, f), **NUMBER)


def _spec(kind: str) -> tuple[KindSpec, tuple[int, int, int]]:
    s = st.session_state
    spec = kind_with(default_kind(kind), {f: s[_key(kind, f)] for f in default_kind(kind).fields()})
    return spec, (s[_key(kind, "c")], s[_key(kind, "h")], s[_key(kind, "w")])


def render(kind: str) -> None:
    """The designer for one v3 kind: inputs on the left, shapes, costs and the factorisation's savings right."""
    left, right = st.columns([1, 2.7], gap="large")
    _editor(kind, left)
    with right:
        try:
            spec, shape = _spec(kind)
            report = kind_report(spec, shape)
        except SpecError as e:
            st.error(plain(f"Invalid input: {e}"))
            return
        _write_link(spec, shape)
        st.markdown(f"### Output {report.concat_text()}")
        st.caption(
            f"Inception v3 block {spec.TITLE}, as torchvision builds it (every conv: no bias, BatchNorm, ReLU). "
            f"PyTorch shapes: {chw(report.input_shape)} → {chw(report.output_shape)}." + (DIFFERENCES.get(kind, ""))
        )
        with st.container(horizontal=True, gap="large"):
            st.metric("Parameters", f"{report.cost.params:,}", width="content")
            st.metric("Mult-adds", f"{report.cost.mult_adds:,}", width="content", help="torchinfo's convention.")
            st.metric(
                "Multiplications",
                f"{report.cost.multiplications:,}",
                width="content",
                help="Kernel weights × output positions, no bias.",
            )
        rows = []
        for b in report.branches:
            rows.append(
                {
                    "branch": b.name,
                    "layers": b.label,
                    "modules": ", ".join(x.name for x in b.layers),
                    "output (H×W×C)": "×".join(map(str, (*b.output_shape[1:], b.output_shape[0]))),
                    "params": b.cost.params,
                    "mult-adds": b.cost.mult_adds,
                    "multiplications": b.cost.multiplications,
                }
            )
            for x in b.halves:
                rows.append(
                    {
                        "branch": f"{b.name} half",
                        "layers": x.kind,
                        "modules": x.name,
                        "output (H×W×C)": "×".join(map(str, (*x.output_shape[1:], x.output_shape[0]))),
                        "params": x.cost.params,
                        "mult-adds": x.cost.mult_adds,
                        "multiplications": x.cost.multiplications,
                    }
                )
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            key=f"v3_{kind}_table",
            # the shapes and costs first: the long module lists last, where they no longer push them out of view
            column_order=("branch", "layers", "output (H×W×C)", "params", "mult-adds", "multiplications", "modules"),
            column_config=COUNTS,
        )
        if any(b.halves for b in report.branches):
            st.caption("‖: the two halves read the same input and are concatenated (the expanded filter bank).")
        st.markdown("#### What this factorisation buys")
        for saving in factorisation_savings(spec, shape):
            base = saving.options[0].cost.multiplications
            st.markdown(f"**{saving.title}**")
            st.dataframe(
                [
                    {
                        "option": o.label,
                        "params": o.cost.params,
                        "multiplications": o.cost.multiplications,
                        "vs first": "—" if i == 0 else f"{saving.saved(i):.0%} fewer multiplications",
                        "note": o.note,
                    }
                    for i, o in enumerate(saving.options)
                ],
                hide_index=True,
                width="stretch",
                column_config=COUNTS,
            )
            if saving.explanation:
                st.caption(saving.explanation)
            best = max(range(1, len(saving.options)), key=saving.saved)
            st.markdown(
                f"Saves **{saving.saved(best):.0%}** of the multiplications "
                f"({base - saving.options[best].cost.multiplications:,} fewer per image)."
            )
        d1 = d2 = d3 = st.container(horizontal=True)  # side by side, each as wide as its label
        d1.download_button(
            "Download the spec (JSON)",
            data=kind_to_json(spec),
            file_name=f"inception_v3_{kind}.json",
            mime="application/json",
            key=f"v3_{kind}_download",
        )
        export_buttons(lambda: v3_block_exportable(spec, shape), f"inception_v3_{kind}", f"v3_{kind}_dl", (d2, d3))
