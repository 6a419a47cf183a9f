"""Training: start runs, watch them live, compare, stop, resume, delete.

Each run is a separate `python -m gnet train` process (gnet.runs.start), so it survives page
reloads and closed browsers; this page only reads the run's files.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from gnet import fsio, runs
from gnet.analysis import network_report, plan_report
from gnet.charts import telemetry as telemetry_charts
from gnet.charts.training import compare_runs_fig, thinned, training_curves_svg
from gnet.checkpoints import CheckpointError
from gnet.data import (
    NAMED_DATASETS,
    TORCHVISION_DATASETS,
    DataError,
    cancel_dataset_download,
    dataset_choices,
    dataset_download,
    downloads_allowed,
    how_to_get_dataset,
)
from gnet.export import checkpoint_exportable
from gnet.metrics import EpochRecord, StepRecord
from gnet.spec import NetworkSpec, SpecError
from gnet.telemetry import tensorboard_available
from gnet.train import ConfigError, TrainConfig, predictions, preflight
from gnet.train_options import OPTIONS, RECIPES, TRAINING_PAGE_PRESETS, train_preset
from gnet.v3 import InceptionV3Spec, network_from_json, v3_plan
from ui.common import plain, show_html, use_app_navigation
from ui.download_panel import dataset_download as dataset_download_panel
from ui.export_buttons import export_buttons
from ui.forms import option_input
from ui.handoff import designed_network, send_checkpoint

use_app_navigation()

USER_ERRORS = (ConfigError, SpecError, runs.RunError, DataError, CheckpointError)
DESIGNED = "Designed in Network Explorer"
POLL_S = 1.5
PREDICTIONS_EVERY_S = 30.0
TELEMETRY_REDRAW_S = 15.0
STEP_KEYS = ("step", "epoch", "loss", "acc", "images_per_s")
EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")

st.title("Training")
st.caption(
    "Runs are separate processes: they keep training when you reload or close this page, and a run started "
    "by hand with `python -m gnet train --run-dir <runs folder>/NAME` appears here too."
)
root = runs.runs_root()


# -- start a run ---------------------------------------------------------------------------------
def needs_download(cfg: TrainConfig) -> bool:
    return cfg.dataset in TORCHVISION_DATASETS and dataset_download(cfg.dataset, _data_dir(cfg.to_dict())) is not None


def _data_dir(cfg: dict) -> Path | None:
    return Path(cfg["data_dir"]) if cfg.get("data_dir") else None


def _dismiss_pending() -> None:
    st.session_state.pop("tr_pending", None)


def _start_download(dataset: str, data_dir: Path | None, retry: bool) -> None:
    dataset_download(dataset, data_dir, start=True, retry=retry)


def pending_run() -> None:
    """A run waiting for a torchvision dataset that is not in the data folder: offer the download,
    show its progress, then start the run. Offline: say which files go where."""
    pend = st.session_state.get("tr_pending")
    if not isinstance(pend, dict):
        return
    name, cfg = str(pend["name"]), dict(pend["train"])
    ds, where = str(cfg["dataset"]), _data_dir(cfg)
    info = NAMED_DATASETS.get(ds)
    pretty, size_mb = (info.title, info.download_mb) if info else (ds, "?")
    try:
        progress = dataset_download(ds, where)
        if progress is None:  # every file in place and verified: the run unpacks and trains
            _dismiss_pending()
            runs.start(root, name, {"train": cfg})
            st.session_state["tr_selected"] = name
            st.success(f"{pretty} is downloaded. Started run {plain(name)}.")
            return
    except USER_ERRORS as e:
        _dismiss_pending()
        st.error(plain(f"Could not start the run: {e}"))
        return
    if not downloads_allowed():
        st.error(
            f"Run {plain(name)} needs {pretty}, which is not in the data folder, and downloads are switched off "
            f"(GNET_OFFLINE or GNET_NO_DOWNLOAD). {how_to_get_dataset(ds)}"
        )
        st.button("Dismiss", key="tr_pending_dismiss", on_click=_dismiss_pending)
        return
    if progress.state == "running":
        dataset_download_panel(
            f"{pretty} for run {plain(name)}",
            lambda: dataset_download(ds, where),
            lambda: cancel_dataset_download(ds, where),
            key="tr_dataset_dl",
        )
        return
    c1, c2 = st.columns(2)
    if progress.state == "idle":
        st.info(
            f"Run **{plain(name)}** needs {pretty} (about {size_mb} MB), which is not in the "
            "data folder yet. Download it now? The run starts when the files are in place."
        )
        c1.button(
            f"Download {pretty} and start the run",
            type="primary",
            key="tr_dataset_dl_start",
            on_click=_start_download,
            args=(ds, where, False),
        )
    else:  # failed or cancelled
        st.error(f"Could not download {pretty}: {plain(progress.message or progress.state)}. {how_to_get_dataset(ds)}")
        c1.button(
            "Retry download",
            type="primary",
            key="tr_dataset_dl_retry",
            on_click=_start_download,
            args=(ds, where, True),
        )
    c2.button("Don't start this run", key="tr_pending_dismiss", on_click=_dismiss_pending)


SMALL_PRESETS = ("mini", "mini-v3")  # CPU-sized: a short run by default


def network_choices() -> dict[str, NetworkSpec | InceptionV3Spec]:
    nets = {name: train_preset(name) for name in TRAINING_PAGE_PRESETS}
    designed = designed_network()
    if designed is not None:
        nets = {DESIGNED: designed, **nets}
    return nets


@st.cache_data(max_entries=16, show_spinner=False)
def network_caption(spec_json: str) -> str:
    """What the chosen network is, from its own spec (a GoogLeNet's or an Inception v3's), as defined: the run
    adapts its input channels and classes to the dataset."""
    spec = network_from_json(spec_json)
    try:
        report = plan_report(v3_plan(spec)) if isinstance(spec, InceptionV3Spec) else network_report(spec)
    except SpecError as e:
        return f"This network cannot be built: {e}"
    size = f"{spec.input_size[0]}×{spec.input_size[1]}"
    if isinstance(spec, InceptionV3Spec):
        kinds = ", ".join(f"{type(b).KIND} ({n})" for n, b in spec.blocks)
        aux = f"its own aux head after {spec.aux_block}" if spec.aux else "no aux head"
        return (
            f"Inception v3: blocks {kinds}; {aux}; BatchNorm on every conv. {report.params_total:,} parameters "
            f"at {size} with {spec.num_classes} classes."
        )
    return (
        f"GoogLeNet: {len(spec.block_names())} Inception blocks. {report.params_total:,} parameters at {size} "
        f"with {spec.num_classes} classes."
    )


with st.expander("Start a new run", expanded=not runs.list_runs(root)):
    nets = network_choices()
    c1, c2, c3 = st.columns(3)
    net_name = c1.selectbox(
        "Network",
        list(nets),
        index=list(nets).index("mini") if DESIGNED not in nets else 0,
        key="tr_network",
        help="Presets (GoogLeNet's, and the small Inception v3 mini-v3), or the network you edited on the "
        "Network Explorer page.",
    )
    dataset = option_input(c2, "dataset", OPTIONS["dataset"].default, "tr_dataset", choices=dataset_choices())
    recipe = c3.radio(
        OPTIONS["recipe"].label, list(RECIPES), index=1, key="tr_recipe", horizontal=True, help=OPTIONS["recipe"].help
    )
    r = RECIPES[recipe]
    spec = nets[net_name]
    v3 = isinstance(spec, InceptionV3Spec)
    st.caption(plain(network_caption(spec.to_json())))
    c1, c2, c3, c4 = st.columns(4)
    image_size = option_input(c1, "image_size", spec.input_size[0], f"tr_size_{net_name}")
    epochs = option_input(c2, "epochs", 3 if net_name in SMALL_PRESETS else r["epochs"], f"tr_epochs_{recipe}")
    batch = option_input(c3, "batch_size", r["batch_size"], f"tr_batch_{recipe}")
    device = option_input(c4, "device", "auto", "tr_device", choices=["auto", "cpu", "cuda"])
    c1, c2, c3, c4 = st.columns(4)
    optimizer = option_input(c1, "optimizer", r["optimizer"], f"tr_opt_{recipe}")
    lr = option_input(c2, "lr", r["lr"], f"tr_lr_{recipe}")
    if v3:  # v3's aux head is part of its spec (torchvision's InceptionAux); the option adds GoogLeNet's heads
        c3.checkbox(
            OPTIONS["aux"].label,
            value=spec.aux,
            disabled=True,
            key="tr_aux_v3",
            help="An Inception v3 has its aux head in its spec (after "
            f"{spec.aux_block}), trained with loss weight 0.3.",
        )
        aux = False
    else:
        aux = option_input(c3, "aux", False, "tr_aux")
    seed = option_input(c4, "seed", 0, "tr_seed")
    c1, c2, c3 = st.columns(3)
    max_train = c1.number_input(
        "Training images (0 = all)",
        0,
        10_000_000,
        2000 if dataset == "synthetic" else 0,
        key=f"tr_max_train_{dataset}",
        help="Fewer images make a quick experiment; synthetic generates this many.",
    )
    telemetry_every = option_input(c2, "telemetry_every", OPTIONS["telemetry_every"].default, "tr_telemetry")
    name = c3.text_input(
        "Run name",
        value=f"{net_name.split()[0].lower()}-{dataset.replace(':', '-')}-{time.strftime('%m%d-%H%M%S')}",
        key="tr_name",
        max_chars=64,
        help="Letters, digits, '.', '_' or '-'.",
    )
    if st.button("Start training", type="primary", key="tr_start"):
        try:
            extra = {}
            if dataset == "synthetic" and max_train:
                extra = {"synthetic_train": int(max_train), "synthetic_test": max(10, int(max_train) // 5)}
            cfg = TrainConfig.from_recipe(
                recipe,
                spec,
                dataset=dataset,
                image_size=int(image_size),
                epochs=int(epochs),
                batch_size=int(batch),
                optimizer=optimizer,
                lr=float(lr),
                aux=aux or None,
                device=device,
                seed=int(seed),
                max_train_samples=int(max_train) if max_train and dataset != "synthetic" else None,
                telemetry_every=int(telemetry_every),
                **extra,
            )
            preflight(cfg)
            if needs_download(cfg):  # offer the download first (pending_run below), then start the run
                st.session_state["tr_pending"] = {"name": name.strip(), "train": cfg.to_dict()}
            else:
                runs.start(root, name.strip(), {"train": cfg.to_dict()})
                st.session_state["tr_selected"] = name.strip()
                st.success(f"Started run {plain(name.strip())}.")
        except USER_ERRORS as e:
            st.error(plain(f"Could not start the run: {e}"))

pending_run()

# -- the runs ------------------------------------------------------------------------------------
all_runs = runs.list_runs(root)
if not all_runs:
    st.info("No runs yet in the runs folder (GNET_RUNS_DIR). Start one above.")
    st.stop()

st.subheader("Runs")


def table_row(r: runs.RunInfo) -> dict[str, str]:
    net, best = r.setting("network"), r.status.get("best_acc")
    return {
        "run": r.name,
        "status": r.state,
        "network": str(net.get("name", "?")) if isinstance(net, dict) else "?",
        "dataset": str(r.setting("dataset", "?")),
        "epochs": str(r.setting("epochs", "")),
        "best test acc": f"{best:.2%}" if isinstance(best, (int, float)) and best >= 0 else "",
        "device": str(r.status.get("device", "")),
    }


st.dataframe(
    [table_row(r) for r in all_runs],
    hide_index=True,
    width="stretch",
)
names = [r.name for r in all_runs]
if st.session_state.get("tr_selected") not in names:
    st.session_state["tr_selected"] = names[0]
selected = st.selectbox("Watch run", names, key="tr_selected")
path = runs.run_dir(root, selected)


def fmt_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return (
        f"{seconds // 3600}h {seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m {seconds % 60:02d}s"
    )


MAX_CURVE_POINTS = 600  # per-step points drawn: a long run's poll would otherwise resend every step it ever logged


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_curves(
    run: str, started: object, n_steps: int, n_epochs: int, _steps: list[StepRecord], _epochs: list[EpochRecord]
) -> str:
    """Built again only when the run (its start time tells a re-created one apart) logged something new: the
    records are append-only. Shared by the sessions watching the run."""
    return training_curves_svg(thinned(_steps, MAX_CURVE_POINTS), _epochs)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_predictions(run: str, mtime: float) -> list:
    return predictions(Path(run))


def watch(run_path: Path, page_state: str) -> None:
    try:
        show_run(run_path, page_state)
    except (ValueError, TypeError, KeyError, OSError) as e:  # hand-edited or foreign files in the run folder
        st.error(
            f"The files of run {run_path.name} are not readable as a run ({type(e).__name__}); "
            "the other runs are unaffected."
        )


def telemetry_stat(key: str) -> str:
    return st.selectbox(
        "Statistic",
        list(runs.TELEMETRY_STATS),
        format_func=runs.TELEMETRY_STATS.get,
        key=key,
        help="Per block and branch: RMS of the branch output, RMS of the training loss's gradient "
        "with respect to it, the norm of the branch's parameters, and of the last update.",
    )


TELEMETRY_TABS = {"heat": "Blocks × branches", "lines": "Lines per block", "aux": "Aux heads vs main loss"}


@st.cache_resource(max_entries=24, show_spinner=False)
def cached_telemetry_fig(
    run: str, started: object, n_records: int, stat: str, label: str, tab: str, _records: list[dict]
) -> go.Figure:
    """Built again only when the run recorded new telemetry (append-only), as cached_curves; shared, read-only.
    Only the open tab's figure is built."""
    if tab == "heat":
        return telemetry_charts.telemetry_heatmap_fig(_records, stat, label)
    if tab == "lines":
        return telemetry_charts.telemetry_lines_fig(_records, stat, label)
    return telemetry_charts.aux_loss_fig(_records)


def _throttled(records: list[dict], run: str, live: bool) -> list[dict]:
    """While a run trains, its telemetry charts move on at most every TELEMETRY_REDRAW_S: between those, a poll
    shows the same records (append-only, so a prefix), sends the same figure, and the browser keeps the chart
    instead of redrawing a figure of some 50 kB every poll."""
    shown = st.session_state.get("tr_tel_shown")
    now = time.monotonic()
    if live and shown and shown[0] == run and now - shown[1] < TELEMETRY_REDRAW_S and shown[2] <= len(records):
        return records[: shown[2]]
    st.session_state["tr_tel_shown"] = (run, now, len(records))
    return records


def show_telemetry(run_path: Path, info: runs.RunInfo) -> None:
    """Per-branch statistics of the run (live while it trains)."""
    st.markdown("**Branch telemetry**")
    records = runs.read_telemetry(run_path)
    every = info.setting("telemetry_every", None)
    if not records:
        st.caption(
            "No telemetry in this run: it is off (telemetry every 0 steps)."
            if every == 0
            else "No telemetry yet: it is recorded at step 1 and every few steps (the 'Telemetry every' option)."
        )
        return
    records = _throttled(records, str(run_path), info.active)
    stat = telemetry_stat("tr_tel_stat")
    label = runs.TELEMETRY_STATS[stat]
    # Lazy tabs: a poll redraws the open tab's chart only (each redrawn plotly chart is remounted).
    tabs = st.tabs(list(TELEMETRY_TABS.values()), key="tr_tel_tab", on_change="rerun")
    for tab, name in zip(tabs, TELEMETRY_TABS):
        if tab.open:
            fig = cached_telemetry_fig(
                str(run_path), info.status.get("started"), len(records), stat, label, name, records
            )
            tab.plotly_chart(fig, theme="streamlit", key=f"tr_tel_{name}_{run_path.name}")
    st.caption(
        f"{len(records)} telemetry record{'s' if len(records) > 1 else ''}, last at step {records[-1]['step']:,}"
        + (f" (redrawn every {TELEMETRY_REDRAW_S:.0f} s while the run trains). " if info.active else ". ")
        + (
            'TensorBoard reads this run too: `tensorboard --logdir "$GNET_RUNS_DIR"` (the runs folder; default `runs`).'
            if tensorboard_available()
            else "Install the `tensorboard` package (`pip install tensorboard`) and new runs also write TensorBoard "
            "event files into their folders."
        )
    )


def show_run(run_path: Path, page_state: str) -> None:
    info = runs.read_run(run_path)
    if info.state == "missing":
        st.warning(f"Run {plain(run_path.name)} no longer exists (it was deleted). Choose another run.")
        return
    if info.state != page_state:
        st.rerun()  # started, ended, stopped or died: refresh the table and the buttons too
    s = info.status
    box = {"finished": st.success, "failed": st.error, "died": st.error, "stopped": st.warning}.get(info.state, st.info)
    box(f"**{plain(info.state)}**" + (f" — {plain(info.message)}" if info.message else ""))
    for note in info.config.get("dataset_notes") or []:
        st.caption(plain(f"Dataset: {note}"))
    epochs = runs.read_metrics(run_path, "epoch", EPOCH_KEYS)
    steps = runs.read_metrics(run_path, "step", STEP_KEYS)
    records = steps + epochs
    total = int(s.get("total_steps") or 0)
    # metrics are appended every record step, the status about once a second: show the newer
    done = max(int(s.get("global_step") or 0), int(steps[-1]["step"]) if steps and info.active else 0)
    spe = int(s.get("steps_per_epoch") or 0)
    if total:
        text = (
            f"epoch {min(done // spe + 1, int(s.get('epochs', 0))) if spe else '?'}/{s.get('epochs')} · "
            f"step {done:,}/{total:,}"
        )
        if info.active and s.get("eta_s") is not None:
            text += f" · ETA {fmt_eta(float(s['eta_s']))}"
        st.progress(min(1.0, done / total), text=text)
    m1, m2, m3, m4 = st.columns(4)
    # the median of the latest records: one window slowed by a checkpoint or a busy machine does not show
    m1.metric(
        "Images/s",
        f"{statistics.median(r['images_per_s'] for r in steps[-10:]):,.0f}" if steps else "–",
        help="Training throughput: the median over the latest logged steps.",
    )
    m2.metric(
        "Test accuracy", f"{epochs[-1]['test_acc']:.2%}" if epochs else "–", help="After the latest finished epoch."
    )
    device = str(s.get("device", "–"))
    m3.metric("Device", plain(device.split(" (")[0]), help=plain(device))
    m4.metric("GPU memory (peak)", f"{steps[-1]['gpu_mem_gb']:.2f} GB" if steps and "gpu_mem_gb" in steps[-1] else "–")
    if s.get("device"):
        world = int(s.get("world_size") or 1)
        st.caption(
            f"Device: {plain(s['device'])}"
            + (f" × {world} processes (DDP)" if world > 1 else "")
            + (f" · {plain(s['precision'])}" if s.get("precision") else "")
        )
    if records:
        # inline SVG: redrawn every poll, where a changed plotly chart is remounted
        show_html(cached_curves(str(run_path), s.get("started"), len(steps), len(epochs), steps, epochs))
    else:
        st.caption("Waiting for the first metrics (loading data and building the network)…")
    show_telemetry(run_path, info)
    ckpt = info.checkpoint("last")
    if ckpt is not None:
        try:
            mtime = ckpt.stat().st_mtime
            # A run with short epochs checkpoints every poll: while it trains, refresh at most every few seconds.
            preds = cached_predictions(str(run_path), mtime - mtime % PREDICTIONS_EVERY_S if info.active else mtime)
        except (CheckpointError, OSError) as e:
            st.caption(plain(f"No predictions: {e}"))
        else:
            st.markdown("**Latest checkpoint's predictions on test images**")
            cols = st.columns(len(preds))
            for col, p in zip(cols, preds):
                mark = "✓" if p.true == p.predicted else "✗"
                col.image(p.image, width="stretch")
                col.caption(f"{mark} {plain(p.predicted)} ({p.confidence:.0%}); true: {plain(p.true)}")


info = runs.read_run(path)
st.subheader(f"Run {plain(selected)}")
st.fragment(watch, run_every=POLL_S if info.active or info.state == "created" else None)(path, info.state)

# -- actions -------------------------------------------------------------------------------------
a1, a2, a3, a4, a5 = st.columns(5)
try:
    if info.active and a1.button("Stop", key="tr_stop", help="Finish the current step, save a checkpoint, stop."):
        runs.request_stop(path, root)
        st.toast("Stop requested; the run saves a checkpoint and stops.")
    if info.state in ("stopped", "died", "failed") and a1.button("Resume", key="tr_resume"):
        runs.resume(root, selected)
        st.rerun()
except USER_ERRORS as e:
    st.error(plain(str(e)))
last = info.checkpoint("last")
if last is not None:
    a2.download_button(
        "Download checkpoint",
        data=lambda: fsio.read_bytes(last),  # no link followed: the file checkpoint() checked
        file_name=f"{selected}-last.pt",
        mime="application/octet-stream",
        key="tr_download",
    )
    best = str(info.checkpoint("best") or last)
    export_buttons(  # the best checkpoint (the last one before a first best exists), exported when clicked
        lambda path=best: checkpoint_exportable(path), f"{selected}-{Path(best).stem}", "tr_export", (a2, a2)
    )
    if a3.button("Open in Feature Maps", key="tr_open_fm"):
        send_checkpoint(best)
        st.switch_page("pages/feature_maps.py")
    if a3.button("Open in Explain", key="tr_open_ex", help="Grad-CAM, grad × act and ablations of every branch"):
        send_checkpoint(best, page="ex")
        st.switch_page("pages/explain.py")


def delete_run(name: str) -> None:
    """A callback: runs before the widgets are drawn, so it may reset them."""
    try:
        runs.delete(root, name)
    except USER_ERRORS as e:
        st.session_state["tr_flash_error"] = str(e)
        return
    st.session_state.pop("tr_selected", None)
    st.session_state["tr_confirm_delete"] = False


if not info.active:
    confirm = a4.checkbox("Confirm delete", key="tr_confirm_delete")
    a5.button("Delete run", key="tr_delete", disabled=not confirm, on_click=delete_run, args=(selected,))
if "tr_flash_error" in st.session_state:
    st.error(plain(st.session_state.pop("tr_flash_error")))

# -- compare -------------------------------------------------------------------------------------
st.subheader("Compare runs")
chosen = st.multiselect("Runs to overlay", names, default=names[: min(2, len(names))], key="tr_compare")
compare = {name: runs.read_metrics(runs.run_dir(root, name), "epoch", EPOCH_KEYS) for name in chosen}
if chosen and not any(compare.values()):
    st.caption("No finished epochs yet in the chosen runs.")
elif chosen:
    st.plotly_chart(compare_runs_fig({n: compare[n] for n in chosen}), theme="streamlit", key="tr_compare_chart")

with_telemetry = [n for n in names if runs.read_telemetry(runs.run_dir(root, n))]
if len(with_telemetry) >= 2:
    st.markdown("**Compare branch telemetry**")
    c1, c2, c3 = st.columns(3)
    run_a = c1.selectbox("Run A", with_telemetry, index=0, key="tr_tel_a")
    run_b = c2.selectbox("Run B", with_telemetry, index=1, key="tr_tel_b")
    with c3:
        stat = telemetry_stat("tr_tel_cmp_stat")
    pair = {n: runs.read_telemetry(runs.run_dir(root, n)) for n in dict.fromkeys((run_a, run_b))}
    st.plotly_chart(
        telemetry_charts.telemetry_compare_fig(pair, stat, runs.TELEMETRY_STATS[stat]),
        theme="streamlit",
        key="tr_tel_compare_chart",
    )
