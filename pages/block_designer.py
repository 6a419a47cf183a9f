"""Block Designer: one Inception block, its shapes and costs, live."""

from __future__ import annotations

import streamlit as st

from gnet import codegen, urlstate
from gnet.analysis import block_report, bottleneck_comparison, factorization_comparison, factorized_conv_comparison
from gnet.charts.block import block_diagram_svg, branch_rows, branch_share_svg, comparison_rows
from gnet.charts.tables import chw
from gnet.colors import BRANCH_COLORS
from gnet.export import block_exportable
from gnet.spec import BlockDesign, BlockSpec, SpecError, block_presets
from gnet.v3 import KIND_SPECS, KINDS
from ui import compare_sections, v3_designer
from ui.anatomy_link import anatomy_link
from ui.common import branch_chip, plain, show_html, use_app_navigation
from ui.export_buttons import export_buttons
from ui.forms import NUMBER, block_editor, edited_block, load_block
from ui.handoff import editing_block, return_block, set_editing_block, take_block

use_app_navigation()

PRESETS = block_presets()
DEFAULT_PRESET = "Ng's example (28×28×192, seed 002)"
# The editor's widget keys (the links and the tests know these names).
KEYS = {"b2_reduce": "bd_b2r", "b3_reduce": "bd_b3r"}


def _key(field: str) -> str:
    return KEYS.get(field, f"bd_{field}")


@st.cache_data(max_entries=64, show_spinner=False)
def _drawings(design_json: str) -> tuple[str, str]:
    """The diagram and the share chart as SVG, cached by the design (going back to a design redraws nothing)."""
    design = BlockDesign.from_json(design_json)
    report = block_report(design.block, design.input_shape)
    return block_diagram_svg(report), branch_share_svg(report)


@st.cache_data(max_entries=64, show_spinner=False)
def _code(design_json: str) -> str:
    return codegen.block_code(BlockDesign.from_json(design_json))


def _load(design: BlockDesign) -> None:
    """Put a design into the widgets (called before they are drawn: callbacks, first run)."""
    s = st.session_state
    s.bd_c, s.bd_h, s.bd_w = design.input_shape
    load_block(_key, design.block)


def _on_preset() -> None:
    if st.session_state.bd_preset is not None:
        _load(PRESETS[st.session_state.bd_preset])
        st.session_state.bd_upload_error = None


def _on_upload() -> None:
    file = st.session_state.bd_upload
    st.session_state.bd_upload_error = None
    if file is None:
        return
    try:
        _load(BlockDesign.from_json(file.getvalue()))
    except SpecError as e:
        st.session_state.bd_upload_error = f"The uploaded file is not a usable block design: {e}"


def _design() -> BlockDesign:
    s = st.session_state
    return BlockDesign(edited_block(_key), (int(s.bd_c), int(s.bd_h), int(s.bd_w))).validate()


def _bottleneck_tab(spec: BlockSpec, shape: tuple[int, int, int]) -> None:
    """What the 1×1 reductions and the factorized 5×5 save, in numbers (seeds 000–004)."""
    int_col = st.column_config.NumberColumn(format="localized")
    b2 = bottleneck_comparison(spec, shape, "b2")
    b3 = bottleneck_comparison(spec, shape, "b3")
    whole = bottleneck_comparison(spec, shape)
    c, _, _ = shape
    st.markdown(
        f"A 1×1 conv first shrinks the {c:,} input channels; the expensive conv then works on fewer.\n\n"
        f"- {branch_chip('b2', 'b2 path')} {c:,}→{spec.b2_reduce:,}→{spec.b2:,}: weights "
        f"**{b2.a.weights:,}** without vs **{b2.b.weights:,}** with the 1×1 reduction "
        f"(×{b2.ratio('weights'):.2f})\n"
        f"- {branch_chip('b3', 'b3 path')} {c:,}→{spec.b3_reduce:,}→{spec.b3:,} ({spec.b3_label()}): "
        f"multiplications **{b3.a.multiplications:,}** without vs **{b3.b.multiplications:,}** with "
        f"(×{b3.ratio('multiplications'):.2f})\n"
        f"- whole block: params **{whole.a.params:,}** vs **{whole.b.params:,}** "
        f"(×{whole.ratio('params'):.2f}), multiplications **{whole.a.multiplications:,}** vs "
        f"**{whole.b.multiplications:,}** (×{whole.ratio('multiplications'):.2f})"
    )
    ratio_col = st.column_config.NumberColumn(format="%.3f", help="with / without")
    rows = comparison_rows({"b2 path": b2, "b3 path": b3}) + comparison_rows(
        {"whole block": whole}, ("params", "multiplications")
    )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={  # short headers: the table fits its column unscrolled
            "without 1×1 reductions": st.column_config.NumberColumn(
                "without 1×1", format="localized", help="without 1×1 reductions"
            ),
            "with 1×1 reductions": st.column_config.NumberColumn(
                "with 1×1", format="localized", help="with 1×1 reductions"
            ),
            "metric": st.column_config.TextColumn(width="medium"),
            "saved": int_col,
            "ratio": ratio_col,
        },
    )
    st.markdown("#### b3: one 5×5 conv vs two stacked 3×3 convs")
    conv = factorized_conv_comparison(spec, shape)
    branch = factorization_comparison(spec, shape)
    st.markdown(
        f"Two 3×3 convs see the same 5×5 window with fewer weights (seed 004).\n\n"
        f"- the conv alone, {conv.label_a} vs {conv.label_b}: weights **{conv.a.weights:,}** vs "
        f"**{conv.b.weights:,}** (×{conv.ratio('weights'):.2f}), multiplications "
        f"**{conv.a.multiplications:,}** vs **{conv.b.multiplications:,}**\n"
        f"- the whole b3 branch (with its 1×1 reduction, if on): params **{branch.a.params:,}** vs "
        f"**{branch.b.params:,}** (×{branch.ratio('params'):.2f})"
    )
    seed = factorized_conv_comparison(BlockSpec(b1=64, b2_reduce=64, b2=64, b3_reduce=64, b3=64, b4=64), (64, 1, 1))
    st.caption(
        f"Seed 004's example, {seed.label_a} vs {seed.label_b}: {seed.a.weights:,} vs "
        f"{seed.b.weights:,} weights. Factorizing saves most when b3's input and output channels are "
        "close; with a narrow reduction (16→32) the second 3×3 conv can cost more than it saves."
    )
    rows = comparison_rows({"b3 conv alone": conv}, columns=("one 5×5", "two 3×3")) + comparison_rows(
        {"whole b3 branch": branch}, ("params", "multiplications"), ("one 5×5", "two 3×3")
    )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={"one 5×5": int_col, "two 3×3": int_col, "saved": int_col, "ratio": ratio_col},
    )


def _export_tab(design: BlockDesign) -> None:
    code = _code(design.to_json())
    d1 = d2 = d3 = d4 = st.container(horizontal=True)  # side by side, each as wide as its label
    d1.download_button(
        "Download PyTorch code (.py)", code, file_name="inception_block.py", mime="text/x-python", key="bd_dl_code"
    )
    d2.download_button(
        "Download design (.json)",
        design.to_json(),
        file_name="inception_block.json",
        mime="application/json",
        key="bd_dl_json",
    )
    design_json = design.to_json()  # the export rebuilds the block from its JSON when a button is clicked
    export_buttons(lambda: block_exportable(BlockDesign.from_json(design_json)), "inception_block", "bd_dl", (d3, d4))
    st.caption(
        "The page's link holds this design: copy the address bar to share it. "
        "Load a JSON design with the uploader on the left."
    )
    st.code(code, language="python")


handoff = take_block()  # "open in Block Designer" from the Network Explorer
if handoff is not None:
    set_editing_block(handoff.block)
    _load(handoff.design)
    st.session_state.bd_link_error = None
elif "bd_c" not in st.session_state:  # first run, or back from another page (widget state is dropped there)
    try:
        linked = urlstate.design_from_query(st.query_params.to_dict())
        st.session_state.bd_link_error = None
    except SpecError as e:
        linked = None
        st.session_state.bd_link_error = f"The link's design was not loaded: {e}."
    saved = st.session_state.get("bd_saved")
    _load(linked or (BlockDesign.from_dict(saved) if saved else PRESETS[DEFAULT_PRESET]))

st.title("Block Designer")
st.caption(
    "Set an Inception block's input and branch channels; every shape and count below is computed exactly, "
    "without building the module, so even a 4096-channel block at 224×224 reports instantly."
)
if link_error := st.session_state.pop("bd_link_error", None):  # shown once; the next change rewrites the link
    st.error(plain(link_error))

if "block_kind" not in st.session_state and (v3_link_error := v3_designer.load_link(st.query_params.to_dict())):
    st.error(plain(v3_link_error))  # a first visit's link with an Inception v3 design picks its kind
kind = st.radio(
    "Block kind",
    KINDS,
    key="block_kind",
    horizontal=True,
    format_func=lambda k: "v1 (GoogLeNet)" if k == "v1" else KIND_SPECS[k].TITLE,
    help="GoogLeNet's block, or one of Inception v3's five kinds as torchvision builds them.",
)
if kind != "v1":
    v3_designer.render(kind)
    st.stop()
v3_designer.clear_link()

left, right = st.columns([1, 2.7], gap="large")

with left:
    st.selectbox(
        "Preset",
        list(PRESETS),
        key="bd_preset",
        index=None,
        placeholder="Load a preset…",
        on_change=_on_preset,
        help="The paper's blocks 3a…5b at their real input sizes, and seed 002's example.",
    )
    st.markdown("**Input** (H×W×C)")
    c1, c2, c3 = st.columns(3)
    c1.number_input("H", key="bd_h", **NUMBER)
    c2.number_input("W", key="bd_w", **NUMBER)
    c3.number_input("C", key="bd_c", **NUMBER)
    block_editor(_key)
    st.file_uploader("Load a design (JSON)", type=["json"], key="bd_upload", on_change=_on_upload)
    if st.session_state.get("bd_upload_error"):
        st.error(plain(st.session_state.bd_upload_error))

with right:
    try:
        design = _design()
    except SpecError as e:
        st.error(plain(f"Invalid input: {e}"))
        st.stop()
    st.session_state.bd_saved = design.to_dict()
    query = urlstate.design_to_query(design)
    if {k: st.query_params.get(k) for k in query} != query:
        st.query_params.update(query)  # the link reproduces the design

    report = block_report(design.block, design.input_shape)
    if (editing := editing_block()) is not None:
        target = editing[0]
        st.info(
            f"Editing block {target} of the Network Explorer's network. In the network, the block's input "
            "comes from the layer before it; H, W and C here only drive this page's analysis."
        )
        n1, n2 = st.columns(2)
        if n1.button(f"Apply to {target} and return to the Network Explorer", type="primary", key="bd_apply"):
            return_block(target, design.block)
            st.switch_page("pages/network_explorer.py")
        if n2.button("Stop editing the network's block", key="bd_detach"):
            set_editing_block(None)
            st.rerun()
    spec, shape = design.block, design.input_shape
    st.markdown(f"### Output {report.concat_text()}")
    st.caption(
        f"H×W×C, channels last as the seeds write it; PyTorch tensors are C×H×W: "
        f"{chw(report.input_shape)} → {chw(report.output_shape)}. "
        "Every conv is 'same'-padded and the pool has stride 1, so H and W are unchanged."
    )
    with st.container(horizontal=True, gap="large"):  # exact numbers: let them take their width and wrap
        st.metric("Parameters", f"{report.cost.params:,}", width="content")
        st.metric(
            "Mult-adds",
            f"{report.cost.mult_adds:,}",
            width="content",
            help="torchinfo's convention: bias adds counted.",
        )
        st.metric(
            "Multiplications",
            f"{report.cost.multiplications:,}",
            width="content",
            help="The seeds' hand count: kernel weights × output positions, no bias.",
        )

    # a paper block (or the network's block being edited) can be watched computing on an image
    named = editing[0] if editing is not None else None
    papers = {n.removeprefix("Paper "): d for n, d in PRESETS.items() if n.startswith("Paper ")}
    named = named or next((n for n, d in papers.items() if d == design), None)
    if named is not None:
        anatomy_link(named, label=f"Block Anatomy: watch block {named} compute on an image, layer by layer")

    int_col = st.column_config.NumberColumn(format="localized")
    rows = [r | {"branch": [r["branch"]]} for r in branch_rows(report)]  # a one-pill list: in its colour
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_order=(
            "branch",
            "path",
            "output (H×W×C)",
            "params",
            "weights",
            "mult-adds",
            "multiplications",
            "share of params",
        ),
        column_config={k: int_col for k in ("params", "weights", "mult-adds", "multiplications", "FLOPs")}
        | {
            # each branch in its colour, as in every chart (a pill column: no pandas Styler, ~20 ms a rerun)
            "branch": st.column_config.MultiselectColumn(
                width=60, options=[*BRANCH_COLORS, "total"], color=[*BRANCH_COLORS.values(), "gray"]
            ),
            "output (H×W×C)": st.column_config.TextColumn("output", help="H×W×C, channels last as in the seeds"),
            "share of params": st.column_config.NumberColumn(
                "share", format="percent", help="the branch's share of the block's parameters"
            ),
        },
    )
    st.caption(
        f"FLOPs = 2 × multiplications = {report.cost.flops:,}. weights = conv kernels only (no bias, "
        "no BatchNorm), the seeds' parameter count; params = everything torch counts."
    )

    # Lazy tabs: only the open tab runs and is sent (a click reruns the page, cheaply: figures are cached).
    tab_diagram, tab_bottleneck, tab_export = st.tabs(
        ["Diagram", "What the bottleneck buys", "Export"], key="bd_tab", on_change="rerun"
    )
    if tab_diagram.open:
        with tab_diagram:
            diagram, share = _drawings(design.to_json())
            # markdown, not st.html: st.html's sanitiser keeps only HTML and drops SVG; these strings are ours
            show_html(diagram)
            show_html(share)

    if tab_bottleneck.open:
        with tab_bottleneck:
            _bottleneck_tab(spec, shape)
    if tab_export.open:
        with tab_export:
            _export_tab(design)

compare_sections.block_compare_section(design)  # full width, below both columns
