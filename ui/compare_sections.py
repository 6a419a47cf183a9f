"""A/B comparison and sweeps, as sections the Block Designer and the Network Explorer call
(not a page itself: app.py lists the pages).

B is always the page's own design (edit it, or load a preset or a JSON file with the page's own
controls); A is pinned from it, or picked from a preset or a JSON file. The link carries both:
the Block Designer's design keys plus the same keys prefixed "a", and the Network Explorer's
"nb" (its network) and "na" (A), see gnet.urlstate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from gnet import runs, sweeps, urlstate
from gnet.charts import compare as compare_charts
from gnet.compare import AnyNetwork, Comparison, compare_blocks, compare_networks, load_design, report_of, same_family
from gnet.data import dataset_choices
from gnet.spec import NETWORK_PRESETS, BlockDesign, NetworkSpec, SpecError, block_presets, network_preset
from gnet.train_options import OPTIONS, TRAIN_PRESETS
from gnet.v3 import V3_PRESETS
from ui.common import plain
from ui.forms import option_input

PINNED, PRESET, FILE = "the pinned design", "a preset", "a JSON file"
POLL_S = 1.5
INT = st.column_config.NumberColumn(format="localized")


def _table(rows: list[dict[str, object]]) -> None:
    cols: dict[str, object] = {}
    for k in rows[0]:
        cols[k] = INT if k.startswith("Δ") or k.endswith((" A", " B")) else None
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={k: v for k, v in cols.items() if v},
        height=min(35 * (len(rows) + 1) + 3, 760),
    )
    st.caption(
        "Δ = B − A. RF: receptive field in input pixels (the layer plan's; None for the aux heads). "
        "A row only one design has shows '–' (shape) and None (numbers) on the other side, and counts as 0 in Δ."
    )


def _pick_a(prefix: str, presets: dict[str, object], loader: Callable[[bytes], object], what: str):
    """A's source: the pinned design, a preset, or a JSON file. Returns (design or None, label)."""
    s = st.session_state
    source = st.radio("A is", [PINNED, PRESET, FILE], key=f"{prefix}_cmp_source", horizontal=True)
    if source == PINNED:
        pinned = s.get(f"{prefix}_cmp_a")
        if pinned is None:
            st.info(f"Pin the current {what} as A (button above), then edit it: the page's {what} is B.")
        return pinned, "A (pinned)"
    if source == PRESET:
        name = st.selectbox("Preset for A", list(presets), key=f"{prefix}_cmp_preset")
        return presets[name], f"A ({name})"
    file = st.file_uploader(f"A {what} (JSON, as this page exports it)", type=["json"], key=f"{prefix}_cmp_file")
    if file is None:
        return None, "A"
    try:
        return loader(file.getvalue()), f"A ({file.name})"
    except SpecError as e:
        st.error(plain(f"The file is not a usable {what}: {e}"))
        return None, "A"


def _pin_and_clear(pin_slot: Any, clear_slot: Any, prefix: str, own: object, what: str) -> None:
    """The Pin (the page's own design becomes A, held in the link) and Clear A buttons; each reruns the page."""
    s = st.session_state
    if pin_slot.button(f"Pin this {what} as A", key=f"{prefix}_cmp_pin", help=f"Then edit the {what}: it becomes B."):
        s[f"{prefix}_cmp_a"], s[f"{prefix}_cmp_open"], s[f"{prefix}_cmp_source"] = own, True, PINNED
        st.rerun()
    if clear_slot.button("Clear A", key=f"{prefix}_cmp_clear", disabled=s.get(f"{prefix}_cmp_a") is None):
        s[f"{prefix}_cmp_a"] = None
        st.rerun()


def _show_in_link(query: dict[str, str]) -> None:
    """The pinned comparison into the page's link, written only where it differs (each write is a history entry)."""
    if {k: st.query_params.get(k) for k in query} != query:
        st.query_params.update(query)


def _comparison_footer(c: Comparison, file_name: str, key: str, in_link: bool, what: str) -> None:
    """Below a comparison: its JSON download and, where the link holds both sides, how to share it."""
    st.download_button(
        "Download the comparison (.json)",
        json.dumps(c.as_dict()),
        file_name=file_name,
        mime="application/json",
        key=key,
    )
    if in_link:
        st.caption(f"This page's link now holds both {what}: copy the address bar to share the comparison.")


# ---------------------------------------------------------------------------
# Block Designer


def _load_block(data: bytes) -> BlockDesign:
    design = load_design(data)
    if not isinstance(design, BlockDesign):
        raise SpecError("it is a network; compare networks on the Network Explorer")
    return design


def block_compare_section(design: BlockDesign) -> None:
    """A/B/Δ per branch for the Block Designer; `design` (the page's own) is B."""
    s = st.session_state
    if "bd_cmp_link_read" not in s:  # the link's A, once per session
        s.bd_cmp_link_read = True
        try:
            linked = urlstate.design_from_query(st.query_params.to_dict(), prefix="a")
        except SpecError as e:
            st.error(plain(f"The link's design A was not loaded: {e}."))
            linked = None
        if linked is not None:
            s.bd_cmp_a = linked
            s.bd_cmp_open = True
    with st.expander("Compare A / B", expanded=bool(s.get("bd_cmp_open"))):
        c1, c2 = st.columns(2)
        _pin_and_clear(c1, c2, "bd", design, "design")
        a, label_a = _pick_a("bd", block_presets(), _load_block, "block design")
        pinned = s.get("bd_cmp_a")
        a_keys = {k for k in st.query_params if k.startswith("a") and urlstate.has_design({k[1:]: ""})}
        if pinned is not None and s.get("bd_cmp_source", PINNED) == PINNED:  # the link carries A beside B
            _show_in_link(urlstate.design_to_query(pinned, prefix="a"))
        elif a_keys:
            for k in a_keys:
                del st.query_params[k]
        if a is None:
            return
        c = compare_blocks(a, design, label_a, "B (this page)")
        _table(compare_charts.compare_table(c))
        st.plotly_chart(compare_charts.block_compare_fig(c), theme="streamlit", key="bd_cmp_fig")
        _comparison_footer(c, "block_comparison.json", "bd_cmp_dl", pinned is not None, "designs")


# ---------------------------------------------------------------------------
# Network Explorer


def _load_network(data: bytes) -> AnyNetwork:
    design = load_design(data)
    if not isinstance(design, AnyNetwork):
        raise SpecError("it is a block design; compare blocks on the Block Designer")
    return design


def network_link(set_network: Callable[[AnyNetwork], None]) -> None:
    """Before the page reads its network: a link's B becomes the page's network and its A is pinned (once)."""
    s = st.session_state
    if "ne_cmp_link_read" in s:
        return
    s.ne_cmp_link_read = True
    params = st.query_params.to_dict()
    try:
        if "nb" in params:
            b = urlstate.network_from_query(params["nb"], "nb")
            set_network(b)
            s.ne_source = params["nb"] if params["nb"] in (*NETWORK_PRESETS, *V3_PRESETS) else None
        if "na" in params:
            s.ne_cmp_a, s.ne_cmp_open, s.ne_cmp_source = urlstate.network_from_query(params["na"], "na"), True, PINNED
    except SpecError as e:
        s.ne_cmp_link_error = f"The link's comparison was not loaded: {e}."


def network_compare_section(network: AnyNetwork) -> None:
    """A/B/Δ per layer (or per branch) and the depth plots overlaid; `network` (the page's own) is B. A GoogLeNet
    against an Inception v3 (either side) is compared per stage: they share no layer names."""
    s = st.session_state
    if error := s.pop("ne_cmp_link_error", None):
        st.error(plain(error))
    with st.expander("Compare A / B", expanded=bool(s.get("ne_cmp_open"))):
        c1, c2, c3 = st.columns(3)
        _pin_and_clear(c1, c2, "ne", network, "network")
        branches = c3.toggle("Rows per branch too", key="ne_cmp_branches")
        presets = {**{n: network_preset(n) for n in NETWORK_PRESETS}, **{n: V3_PRESETS[n]() for n in V3_PRESETS}}
        a, label_a = _pick_a("ne", presets, _load_network, "network")
        pinned = s.get("ne_cmp_a")
        if pinned is not None and s.get("ne_cmp_source", PINNED) == PINNED:
            _show_in_link({"na": urlstate.network_to_query(pinned), "nb": urlstate.network_to_query(network)})
        else:
            for k in urlstate.NETWORK_KEYS:
                if k in st.query_params:
                    del st.query_params[k]
        if a is None:
            return
        try:
            c = compare_networks(a, network, "branches" if branches else "layers", label_a, "B (this page)")
            report_a, report_b = report_of(a), report_of(network)
        except SpecError as e:
            st.error(plain(f"A cannot be compared: {e}"))
            return
        if not same_family(a, network):
            st.info(
                "A GoogLeNet and an Inception v3 share no layer names, so the rows are stages: the stem, each grid "
                "of Inception blocks in order (a stage pool or grid-reduction block counts in the grid it makes), "
                "the head and the aux heads. Their inputs differ too (224² against 299²): the totals are each "
                "network at its own input."
            )
        t = c.total
        m1, m2, m3 = st.columns(3)
        m1.metric("Params, B", f"{t.b.params:,}", f"{t.delta('params'):+,}", delta_color="inverse")
        m2.metric("Mult-adds, B", f"{t.b.mult_adds:,}", f"{t.delta('mult_adds'):+,}", delta_color="inverse")
        m3.metric("Receptive field, B", f"{t.b.rf:,} px", f"{t.delta('rf'):+,}", delta_color="off")
        _table(compare_charts.compare_table(c))
        st.plotly_chart(
            compare_charts.depth_compare_fig(report_a, report_b, label_a, "B (this page)"),
            theme="streamlit",
            key="ne_cmp_depth",
        )
        _comparison_footer(c, "network_comparison.json", "ne_cmp_dl", pinned is not None, "networks")


# ---------------------------------------------------------------------------
# Sweeps (Network Explorer)

THIS = "this page's network"


def _variant_label(v: str) -> str:
    return f"{v}: {sweeps.VARIANTS[v]}"


def sweep_section(network: NetworkSpec, source: str | None) -> None:
    """Start a sweep of design variants, and watch any sweep's accuracy against cost, live."""
    s = st.session_state
    root = runs.runs_root()
    with st.expander("Sweep: train design variants, chart accuracy against cost", expanded=bool(s.get("sw_open"))):
        st.caption(
            "Each variant trains as an ordinary run (it opens on the Training page as SWEEP/VARIANT), "
            f"at most {runs.max_runs()} at once (GNET_MAX_RUNS); the others wait, queued. The runs and the "
            "scheduler are separate processes: they go on when this page is closed."
        )
        with st.form("sw_form", border=False, enter_to_submit=False):  # Enter in a field must not start runs
            bases = [THIS, *TRAIN_PRESETS]
            c1, c2, c3 = st.columns([1, 2, 1])
            base_name = c1.selectbox(
                "Base network",
                bases,
                index=bases.index(source) if source in bases else 0,
                key="sw_base",
                help="'edits' trains this page's network beside the base.",
            )
            variants = c2.multiselect(
                "Variants",
                list(sweeps.VARIANTS),
                default=["base", "no-reduce", "factorize"],
                key="sw_variants",
                help="; ".join(map(_variant_label, sweeps.VARIANTS)),
            )
            width = c3.text_input(
                "Other widths (comma-separated factors)",
                "",
                key="sw_widths",
                help="e.g. 0.25, 1.5: every branch's channels × the factor",
            )
            c1, c2, c3, c4 = st.columns(4)
            # the training options' own widgets (gnet.train_options): labels, ranges and help as on the Training page
            dataset = option_input(c1, "dataset", OPTIONS["dataset"].default, "sw_dataset", choices=dataset_choices())
            recipe = option_input(c2, "recipe", OPTIONS["recipe"].default, "sw_recipe")
            epochs = option_input(c3, "epochs", 3, "sw_epochs")  # a sweep trains several runs: short ones
            seed = option_input(c4, "seed", OPTIONS["seed"].default, "sw_seed")
            c1, c2, c3, c4 = st.columns(4)
            size = OPTIONS["image_size"]
            image = c1.number_input(
                "Image size (0 = the network's)", 0, int(size.hi), 0, key="sw_image", help=size.help
            )
            images = c2.number_input("Training images (synthetic; 0 = default)", 0, 1_000_000, 2000, key="sw_images")
            parallel = c3.number_input("Runs at once", 1, runs.max_runs(), 1, key="sw_parallel")
            name = c4.text_input("Sweep name", f"sweep-{time.strftime('%m%d-%H%M%S')}", max_chars=64, key="sw_name")
            submitted = st.form_submit_button("Start sweep", type="primary")
        if submitted:
            _start_sweep(
                root,
                network,
                base_name,
                variants,
                width,
                dataset,
                recipe,
                int(epochs),
                int(seed),
                int(image),
                int(images),
                int(parallel),
                name.strip(),
            )
        found = sweeps.list_sweeps(root)
        if not found:
            st.caption("No sweeps yet in the runs folder (GNET_RUNS_DIR).")  # no server path on a page
            return
        names = [x.name for x in found]
        if s.get("sw_selected") not in names:
            s.sw_selected = names[0]
        chosen = st.selectbox("Watch sweep", names, key="sw_selected")
        sweep = found[names.index(chosen)]
        live = sweeps.scheduler_state(sweep) in ("running", "starting") or any(
            r.state in runs.ACTIVE for r in sweeps.rows(sweep)
        )
        st.fragment(_watch_sweep, run_every=POLL_S if live else None)(sweep.path, live)


def _start_sweep(
    root,
    network: NetworkSpec,
    base_name: str,
    variants: list[str],
    widths: str,
    dataset: str,
    recipe: str,
    epochs: int,
    seed: int,
    image: int,
    images: int,
    parallel: int,
    name: str,
) -> None:
    s = st.session_state
    try:
        extra = [f"width={w.strip()}" for w in widths.split(",") if w.strip()]
        chosen = sweeps.parse_variants([*variants, *extra])
        base = network if base_name == THIS else network_preset(base_name)
        synthetic = dataset == "synthetic" and images > 0
        settings = sweeps.Settings(
            dataset=dataset,
            recipe=recipe,
            epochs=epochs,
            seed=seed,
            image_size=image or None,
            synthetic_train=images if synthetic else None,
            synthetic_test=max(10, images // 5) if synthetic else None,
        )
        sweep = sweeps.create(sweeps.sweep_dir(root, name), base, chosen, settings, edits=network, parallel=parallel)
        sweeps.launch(sweep)
    except (sweeps.SweepError, runs.RunError, SpecError) as e:
        st.error(plain(f"The sweep was not started: {e}"))
        return
    s.sw_selected, s.sw_open = sweep.name, True
    st.success(plain(f"Started sweep {sweep.name}: {', '.join(chosen)}."))


def _watch_sweep(path, was_live: bool) -> None:
    try:
        sweep = sweeps.read(path)
    except sweeps.SweepError as e:
        st.error(plain(str(e)))
        return
    rows = sweeps.rows(sweep)
    state = sweeps.scheduler_state(sweep)
    live = state in ("running", "starting") or any(r.state in runs.ACTIVE for r in rows)
    if live != was_live:
        st.rerun()  # started or ended: the buttons and the polling change
    done = sum(r.state == "finished" for r in rows)
    sw = sweep.settings  # hand-edited sweep.json: names and settings are text, never markup
    st.markdown(
        f"**{plain(sweep.name)}** · base {plain(sweep.base.name)} · {plain(sw.dataset)}, {plain(sw.recipe)}, "
        f"{plain(sw.epochs)} epoch(s), seed {plain(sw.seed)} · {done}/{len(rows)} finished · scheduler {plain(state)}"
    )
    data = [r.as_dict() for r in rows]
    if state not in ("running", "starting"):  # nothing will start them: say so, not "queued"
        data = [{**d, "state": "not started"} if d["state"] == "queued" else d for d in data]
    if any(r.best_test_acc is not None for r in rows):
        c1, c2 = st.columns(2)
        c1.plotly_chart(compare_charts.sweep_fig(data, "mult_adds"), theme="streamlit", key="sw_fig_mult_adds")
        c2.plotly_chart(compare_charts.sweep_fig(data, "params"), theme="streamlit", key="sw_fig_params")
    else:
        st.caption("The chart appears when the first variant has finished an epoch.")
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        compare_charts.sweep_table(data),
        hide_index=True,
        width="stretch",
        column_config={
            "params": INT,
            "mult-adds": INT,
            "best test acc": pct,
            "images/s": st.column_config.NumberColumn(format="%.0f"),
            "time (s)": st.column_config.NumberColumn(format="%.1f"),
        },
    )
    st.caption(
        "Params and mult-adds of each network as trained (the recipe's BatchNorm, the dataset's channels "
        "and classes); time: training seconds, evaluation excluded. Open a run on the Training page: "
        + plain(", ".join(sweep.run_name(r.variant) for r in rows))
        + "."
    )
    for r in rows:
        if r.state in ("failed", "died") and r.message:
            st.warning(plain(f"{r.variant}: {r.state} — {r.message}"))
    b1 = st.columns(2)[0]
    if live and b1.button("Stop sweep", key="sw_stop", help="No more runs start; the active ones checkpoint."):
        sweeps.request_stop(sweep)
        st.toast("Stopping the sweep: the active runs save a checkpoint and stop.")
    resumable = any(r.state in (*sweeps.RESUMABLE, "queued") for r in rows)
    if (
        not live
        and resumable
        and b1.button(
            "Resume sweep",
            key="sw_resume",
            help="Stopped or killed runs continue from their checkpoints; the rest start.",
        )
    ):
        try:
            sweeps.launch(sweep)  # SweepError when a scheduler already serves it (a double click)
        except (OSError, sweeps.SweepError) as e:
            st.error(plain(f"Could not resume the sweep: {e}"))
        else:
            st.rerun()
