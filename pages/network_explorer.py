"""Network Explorer: whole GoogLeNets layer by layer; edit any block, export the result. Inception v3 is shown
the same way (its layers, per-axis receptive fields, torchinfo), without the GoogLeNet block editor."""

from __future__ import annotations

import dataclasses
import json

import plotly.graph_objects as go
import streamlit as st

from gnet import codegen, urlstate
from gnet.analysis import NetworkReport, network_report, plan_report, validate_network
from gnet.charts import network as network_charts
from gnet.charts import v3_network as v3_charts
from gnet.charts.tables import chw, layer_branch_color, rows_csv, table_html
from gnet.export import network_exportable
from gnet.network import torchinfo_summary
from gnet.spec import NETWORK_PRESETS, BlockDesign, NetworkSpec, SpecError, network_preset, with_input
from gnet.v3 import V3_PRESETS, InceptionV3Spec, v3_plan
from ui import compare_sections
from ui.common import plain, show_html, use_app_navigation
from ui.export_buttons import export_buttons, file_stem
from ui.forms import NUMBER, block_editor, edited_block, load_block
from ui.handoff import offer_network, send_block

use_app_navigation()

DEFAULT_PRESET = "d2l-fashion96"
# torchinfo runs a real forward pass on the CPU: refuse what would take long or exhaust memory.
TORCHINFO_MAX_MULT_ADDS = 20_000_000_000
TORCHINFO_MAX_ACTIVATIONS = 150_000_000


FIGURES = {
    "depth": network_charts.depth_fig,
    "rf": network_charts.receptive_field_fig,
    "blocks": network_charts.block_cost_fig,
    "sunburst": network_charts.params_sunburst_fig,
}


V3_FIGURES = {"rf": v3_charts.receptive_field_fig, "sunburst": network_charts.params_sunburst_fig}

AnyNetwork = NetworkSpec | InceptionV3Spec


def _preset(name: str) -> AnyNetwork:
    return V3_PRESETS[name]() if name in V3_PRESETS else network_preset(name)


def _from_json(spec_json: str) -> AnyNetwork:
    is_v3 = json.loads(spec_json).get("family") == InceptionV3Spec.family
    return InceptionV3Spec.from_json(spec_json) if is_v3 else NetworkSpec.from_json(spec_json)


def _report(spec: AnyNetwork) -> NetworkReport:
    return plan_report(v3_plan(spec)) if isinstance(spec, InceptionV3Spec) else network_report(spec)


@st.cache_resource(max_entries=64, show_spinner=False)
def _figure(spec_json: str, which: str) -> go.Figure:
    """One chart, cached by the network (building these Figures was most of a rerun's work). Shared like a model
    and never changed: st.plotly_chart only reads a Figure (a dict it would re-validate, slowly)."""
    spec = _from_json(spec_json)
    return (V3_FIGURES if isinstance(spec, InceptionV3Spec) else FIGURES)[which](_report(spec))


@st.cache_data(max_entries=32, show_spinner=False)
def _code(spec_json: str) -> str:
    return codegen.network_code(NetworkSpec.from_json(spec_json))


@st.cache_data(max_entries=16, show_spinner="Building the module and running torchinfo…")
def _torchinfo(spec_json: str) -> tuple[str, int, int]:
    spec, model = _from_json(spec_json), None
    if isinstance(spec, InceptionV3Spec):
        from gnet.v3_modules import InceptionV3  # torchvision's module layout, so its summary is torchvision's

        model = InceptionV3(spec)
    summary = torchinfo_summary(spec, model=model)
    return str(summary), int(summary.total_params), int(summary.total_mult_adds)


def _set_network(spec: AnyNetwork) -> None:
    """Replace the network; the input widgets and the block editor re-read it."""
    s = st.session_state
    s.ne_network = spec
    s.ne_c, (s.ne_h, s.ne_w) = spec.in_channels, spec.input_size
    s.ne_version = s.get("ne_version", 0) + 1
    s.ne_edit_error = None


def _on_preset() -> None:
    if st.session_state.ne_preset is not None:
        _set_network(_preset(st.session_state.ne_preset))
        st.session_state.ne_source = st.session_state.ne_preset  # what "undo all edits" reloads
        st.session_state.ne_upload_error = None


def _on_input() -> None:
    s = st.session_state
    c, hw = int(s.ne_c), (int(s.ne_h), int(s.ne_w))
    if isinstance(s.ne_network, InceptionV3Spec):
        s.ne_network = dataclasses.replace(s.ne_network, in_channels=c, input_size=hw)
    else:
        s.ne_network = with_input(s.ne_network, c, hw)


def _on_upload() -> None:
    file = st.session_state.ne_upload
    st.session_state.ne_upload_error = None
    if file is None:
        return
    try:
        _set_network(validate_network(NetworkSpec.from_json(file.getvalue())))
        st.session_state.ne_source = None
    except SpecError as e:
        st.session_state.ne_upload_error = f"The uploaded file is not a usable network spec: {e}"


def _on_reset() -> None:
    _set_network(_preset(st.session_state.ne_source))


def _form_key(field: str) -> str:
    return f"ne_f_{field}_{st.session_state.ne_block}_{st.session_state.ne_version}"


def _on_apply() -> None:
    s = st.session_state
    try:
        s.ne_network = s.ne_network.with_block(s.ne_block, edited_block(_form_key).validate())
        s.ne_edit_error = None
    except SpecError as e:
        s.ne_edit_error = f"Block {s.ne_block} was not changed: {e}"


def layer_table(network: AnyNetwork, report: NetworkReport, t: dict[str, int], spec_json: str) -> None:
    v3 = isinstance(network, InceptionV3Spec)
    expand = st.toggle(
        "Show the layers inside each block",
        key="ne_expand",
        help="Every conv and pool of each branch, with its own shape, params and mult-adds.",
    )
    rows = (v3_charts if v3 else network_charts).layer_rows(report, expand=expand)
    rows.append(
        {
            "layer": "total",
            "type": "",
            "output (C×H×W)": chw(report.output_shape),
            "params": t["params"],
            "mult-adds": t["mult_adds"],
            "note": "= torchinfo",
        }
    )
    # HTML, not st.dataframe: the grid took ~250 ms to redraw after each toggle or edit
    show_html(
        table_html(
            rows,
            help={
                "receptive field (px)": "Input pixels one output unit sees, along each side (Araujo et al., "
                "Distill 2019); it may reach into the padding.",
                v3_charts.RF_COLUMN: "Input pixels one output unit sees, height × width where they differ: a 1×n "
                "kernel widens the field along the width only, an n×1 along the height (Araujo et al., Distill 2019).",
            },
            row_color=layer_branch_color,
            max_height_px=760 if not expand else 900,
            bold_last=True,
            wide=True,
        )
    )
    st.download_button(
        "Download the table (CSV)",
        data=lambda: rows_csv(rows),  # built only when clicked
        file_name=f"layers{'-expanded' * expand}.csv",
        mime="text/csv",
        key="ne_table_csv",
        on_click="ignore",
    )
    st.caption(
        "The totals equal torchinfo's for the built module: mult-adds of one eval-mode forward"
        + (", which does not run the aux heads (their cost is listed below)." if network.aux else ".")
    )
    if v3 and network.aux:
        st.markdown("**Auxiliary classifier** (torchvision's InceptionAux after Mixed_6e; it runs in training only)")
        show_html(table_html(v3_charts.aux_rows(report)))
    elif network.aux:
        st.markdown("**Auxiliary classifiers** (training only; their loss counts with weight 0.3)")
        show_html(table_html(network_charts.aux_rows(report)))
    with st.expander("torchinfo's summary of the built module"):
        too_big = (
            report.cost.mult_adds > TORCHINFO_MAX_MULT_ADDS or report.activation_elements > TORCHINFO_MAX_ACTIVATIONS
        )
        if too_big:
            st.info(
                "This network is too large to build and run on the server just for a summary "
                "(the table above is exact without building it)."
            )
        elif st.toggle("Build the module and run torchinfo", key="ne_torchinfo"):
            text, ti_params, ti_mult_adds = _torchinfo(spec_json)
            same = ti_params == t["params"] and ti_mult_adds == t["mult_adds"]
            (st.success if same else st.warning)(
                f"torchinfo: {ti_params:,} params, {ti_mult_adds:,} mult-adds — "
                + ("the same as the table." if same else "differs from the table.")
            )
            st.code(text, language=None)


@st.fragment  # switching a tab, expanding the table, torchinfo: rerun these tabs alone, and only the open one runs
def network_tabs(network: AnyNetwork, report: NetworkReport, t: dict[str, int], spec_json: str) -> None:
    for key in ("ne_expand", "ne_torchinfo"):  # the table's toggles keep their state while another tab is open
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    if isinstance(network, InceptionV3Spec):
        v3_tabs(network, report, t, spec_json)
        return
    layer_and_figure_tabs(
        network,
        report,
        t,
        spec_json,
        {
            "Shapes along depth": "depth",
            "Receptive field": "rf",
            "Cost per block": "blocks",
            "Where the parameters live": "sunburst",
        },
        ("ne_tab", "ne"),
        "The receptive field of a unit: the input pixels it can see, per side (kernel, stride and padding of every "
        "layer before it; Araujo et al., Distill 2019). `python -m gnet receptive-field --preset NAME` lists every "
        "layer's size, jump and start.",
    )


def layer_and_figure_tabs(
    network: AnyNetwork,
    report: NetworkReport,
    t: dict[str, int],
    spec_json: str,
    figures: dict[str, str],
    keys: tuple[str, str],
    rf_caption: str,
) -> None:
    """A "Layers" tab (the layer table), then a tab per figure (its label → _figure's name) with `rf_caption` under
    the receptive field; only the open tab runs. `keys`: the tabs' widget key and the figures' key prefix."""
    tab_table, *tabs = st.tabs(["Layers", *figures], key=keys[0], on_change="rerun")
    if tab_table.open:
        with tab_table:
            layer_table(network, report, t, spec_json)
    for tab, which in zip(tabs, figures.values(), strict=True):
        if tab.open:
            with tab:
                st.plotly_chart(_figure(spec_json, which), theme="streamlit", key=f"{keys[1]}_{which}")
                if which == "rf":
                    st.caption(rf_caption)


def v3_tabs(network: InceptionV3Spec, report: NetworkReport, t: dict[str, int], spec_json: str) -> None:
    """Inception v3's tabs: the layer table, the per-axis receptive field and where the parameters live (the depth
    and per-block cost charts are drawn for GoogLeNet's four-branch blocks only)."""
    layer_and_figure_tabs(
        network,
        report,
        t,
        spec_json,
        {"Receptive field": "rf", "Where the parameters live": "sunburst"},
        ("ne_tab_v3", "ne_v3"),
        "Filled markers: a branch's field along the height; open ones: along the width. Each branch ends square (a "
        "1×7 is followed by a 7×1), but inside it a 1×n layer sees a wider than tall patch: the layer table, "
        "expanded, gives every layer's H×W; `python -m gnet receptive-field --preset inception-v3-imagenet` lists "
        "size_hw, jump_hw and start_hw.",
    )


def v1_block_editor(network: NetworkSpec) -> None:
    """GoogLeNet's block editor (the Block Designer's form): apply an edit to one block, or open it there."""
    st.markdown("**Edit a block**")
    names = network.block_names()
    if st.session_state.get("ne_block") not in names:
        st.session_state.ne_block = names[0]
    block_name = st.selectbox("Block", names, key="ne_block")
    block = network.block(block_name)
    if _form_key("b1") not in st.session_state:  # this block (or this version of the network) is new to the form
        load_block(_form_key, block)
    with st.form(f"ne_form_{block_name}_{st.session_state.ne_version}", border=True):
        block_editor(_form_key, live=False)
        st.form_submit_button(f"Apply to {block_name}", on_click=_on_apply, type="primary")
    if st.session_state.get("ne_edit_error"):
        st.error(plain(st.session_state.ne_edit_error))
    st.caption("Downstream blocks take their input channels from the block before them, so totals follow.")
    if st.button(f"Open {block_name} in Block Designer", key="ne_open_designer"):
        try:
            shape = network_report(network).blocks[block_name].input_shape
        except SpecError as e:
            st.error(plain(f"Fix the network first: {e}"))
        else:
            design = BlockDesign(block, shape)
            send_block(block_name, design)
            st.switch_page("pages/block_designer.py", query_params=urlstate.design_to_query(design))


def v3_export(network: InceptionV3Spec, spec_json: str) -> None:
    st.markdown("#### Export")
    row = st.container(horizontal=True)
    row.download_button(
        "Download network (.json)",
        spec_json,
        file_name=f"{network.name}.json",
        mime="application/json",
        key="ne_v3_dl_json",
    )
    export_buttons(lambda spec=network: network_exportable(spec), file_stem(network.name), "ne_v3_dl", (row, row))
    st.caption(
        "`python -m gnet export --preset inception-v3-imagenet` writes the same files. The PyTorch code, "
        "Compare A/B, sweeps and the Training hand-off are for GoogLeNet networks: pick a GoogLeNet preset for them."
    )


compare_sections.network_link(_set_network)  # a shared A/B link sets the network first
if "ne_network" not in st.session_state:
    _set_network(network_preset(DEFAULT_PRESET))
    st.session_state.ne_source = DEFAULT_PRESET
if "ne_c" not in st.session_state:  # widget state is dropped when the user visits another page
    _set_network(st.session_state.ne_network)

st.title("Network Explorer")
network: AnyNetwork = st.session_state.ne_network
is_v3 = isinstance(network, InceptionV3Spec)
source = st.session_state.get("ne_source")
if source is not None and is_v3:
    st.caption(_preset(source).description)
elif source is not None:  # a preset: its description is ours; a file's name and description are not shown as markdown
    changed = [n for (n, b), (_, p) in zip(network.blocks(), network_preset(source).blocks()) if b != p]
    st.caption(network_preset(source).description + (f" **Edited:** {', '.join(changed)}." if changed else ""))
else:
    st.caption("A network loaded from a file.")

left, right = st.columns([1, 3], gap="large")
with left:
    st.selectbox(
        "Preset",
        [*NETWORK_PRESETS, *V3_PRESETS],
        key="ne_preset",
        index=None,
        placeholder="Load a preset…",
        on_change=_on_preset,
        help="googlenet-imagenet-aux adds the paper's auxiliary heads after 4a and 4d; inception-v3-imagenet is "
        "torchvision's Inception v3 (299×299).",
    )
    st.markdown("**Input** (C×H×W)")
    c1, c2, c3 = st.columns(3)
    c1.number_input("C", key="ne_c", on_change=_on_input, **NUMBER)
    c2.number_input("H", key="ne_h", on_change=_on_input, **NUMBER)
    c3.number_input("W", key="ne_w", on_change=_on_input, **NUMBER)

    if is_v3:
        st.info(
            "Block editing here is for GoogLeNet's blocks. Inception v3's Mixed blocks (kinds A–E) are designed "
            "one at a time on the Block Designer page; here they are as torchvision builds them."
        )
    else:
        v1_block_editor(network)
    st.button("Undo edits", key="ne_reset", on_click=_on_reset, disabled=st.session_state.get("ne_source") is None)
    st.file_uploader("Load a network (JSON)", type=["json"], key="ne_upload", on_change=_on_upload)
    if st.session_state.get("ne_upload_error"):
        st.error(plain(st.session_state.ne_upload_error))

with right:
    try:
        report = _report(network)
    except SpecError as e:
        offer_network(None)  # the Training page must not train what is not shown
        st.error(plain(f"Invalid network: {e}"))
        st.stop()
    # the Training page offers to train this one (its trainer builds GoogLeNets)
    offer_network(None if is_v3 else network)
    spec_json = network.to_json()
    t = network_charts.totals(report)
    with st.container(horizontal=True, gap="large"):  # exact numbers: let them take their width and wrap
        st.metric(
            "Parameters",
            f"{t['params']:,}",
            width="content",
            help="All parameters, aux heads included (torchinfo's 'Total params').",
        )
        st.metric(
            "Mult-adds",
            f"{t['mult_adds']:,}",
            width="content",
            help="torchinfo's 'Total mult-adds': one eval-mode forward, aux heads not run, bias adds counted.",
        )
        st.metric(
            "Multiplications",
            f"{t['multiplications']:,}",
            width="content",
            help="The seeds' hand count (no bias); FLOPs = 2 × multiplications.",
        )
    st.caption(
        f"Input {chw(report.input_shape)} (C×H×W) → {report.output_shape[0]:,} classes. Blocks: "
        + ", ".join(f"{n} → {b.output_shape[0]}" for n, b in report.blocks.items())
    )

    network_tabs(network, report, t, spec_json)

    if is_v3:
        v3_export(network, spec_json)
    else:
        st.markdown("#### Export")
        code = _code(spec_json)
        d1 = d2 = d3 = d4 = st.container(horizontal=True)  # side by side, each as wide as its label
        d1.download_button(
            "Download network (.json)", spec_json, file_name="googlenet.json", mime="application/json", key="ne_dl_json"
        )
        d2.download_button(
            "Download PyTorch code (.py)", code, file_name="googlenet.py", mime="text/x-python", key="ne_dl_code"
        )
        export_buttons(lambda spec=network: network_exportable(spec), file_stem(network.name), "ne_dl", (d3, d4))
        st.caption("The Training page can train this network as it is now (edits included).")
        # lazy: highlighting this long code in the browser took ~80 ms of every edit while it sat collapsed
        code_box = st.expander("PyTorch code", key="ne_code_open", on_change="rerun")
        if code_box.open:
            with code_box:
                st.code(code, language="python")

compare_sections.network_compare_section(network)  # either family on either side
if not is_v3:  # sweeps train GoogLeNet designs
    compare_sections.sweep_section(network, st.session_state.get("ne_source"))
