"""The Training page (AppTest): start a tiny run, watch it, stop, resume, delete; errors stay on the page."""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet import runs
from gnet.spec import network_preset
from tests.patience import BACKGROUND_S, wait_until
from ui.common import WORD_JOINER

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the run's subprocess shares 2 cores with the suite
    yield tmp_path / "runs"
    for info in runs.list_runs(tmp_path / "runs"):  # never leave a training process behind a failed test
        pid = info.status.get("pid")
        if info.active and isinstance(pid, int) and pid != os.getpid() and runs.pid_alive(pid):
            os.kill(pid, 9)


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    """The messages as the browser shows them: names from files and users arrive escaped (ui.common.plain)."""
    raw = " ".join(
        str(e.value) for kind in ("info", "success", "warning", "error", "caption", "markdown") for e in at.get(kind)
    )
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", raw).replace(WORD_JOINER, "")


def shows_state(at: AppTest, state: str) -> bool:
    """The watched run's status box says `state` (other text, e.g. "No finished epochs yet", does not count)."""
    return any(
        str(e.value).startswith(f"**{state}**")
        for kind in ("info", "success", "warning", "error")
        for e in at.get(kind)
    )


def start_tiny(at: AppTest, name: str, epochs: int) -> None:
    at.selectbox(key="tr_network").set_value("mini")
    at.number_input(key="tr_size_mini").set_value(12)
    at.number_input(key="tr_max_train_synthetic").set_value(100)
    at.number_input(key="tr_epochs_improved").set_value(epochs)
    at.number_input(key="tr_batch_improved").set_value(20)
    at.selectbox(key="tr_device").set_value("cpu")
    at.text_input(key="tr_name").set_value(name)
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert f"Started run {name}" in texts(at), texts(at)


def poll(at: AppTest, until, timeout: float = BACKGROUND_S) -> None:
    """Rerun the page as its fragment does until `until` holds (the run is a process of its own)."""

    def shown() -> bool:
        at.run()
        assert not at.exception
        return bool(until(at))

    wait_until(shown, lambda: f"page shows: {texts(at)[:1500]}", timeout, every=0.5)


def test_empty_runs_folder(root):
    at = page()
    assert "No runs yet" in texts(at)
    assert at.button(key="tr_start")


def test_start_watch_and_finish_a_tiny_run(root):
    at = page()
    start_tiny(at, "tiny", epochs=2)
    poll(at, lambda a: shows_state(a, "finished") and any("training curves" in m.value[:300] for m in a.markdown))
    assert at.get("progress")[0].value == 100
    assert "epoch 2/2" in at.get("progress")[0].proto.text
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Device"] == "cpu" and metrics["Test accuracy"].endswith("%")
    # throughput: the median of the latest logged steps, so one slow window (a checkpoint write) does not show
    steps = runs.read_metrics(runs.run_dir(root, "tiny"), "step")
    assert metrics["Images/s"] == f"{statistics.median(r['images_per_s'] for r in steps[-10:]):,.0f}"
    # predictions of the latest checkpoint on test images
    poll(at, lambda a: "true:" in texts(a))
    assert "Latest checkpoint's predictions" in texts(at)
    assert at.button(key="tr_open_fm") and at.get("download_button")
    # the runs table and the comparison chart
    assert at.dataframe[0].value["run"].tolist() == ["tiny"]
    assert at.multiselect(key="tr_compare").value == ["tiny"]


def test_stop_resume_and_delete(root):
    at = page()
    start_tiny(at, "long", epochs=1000)  # far longer than the test: stopped early on any machine
    poll(at, lambda a: shows_state(a, "running") and a.get("progress"))
    at.button(key="tr_stop").click().run()
    assert not at.exception
    poll(at, lambda a: shows_state(a, "stopped") and a.button(key="tr_resume"))
    at.button(key="tr_resume").click().run()
    poll(at, lambda a: shows_state(a, "running"))
    runs.request_stop(runs.run_dir(root, "long"))
    poll(at, lambda a: shows_state(a, "stopped") and a.checkbox(key="tr_confirm_delete"))
    assert at.button(key="tr_delete").disabled  # needs the confirmation first
    at.checkbox(key="tr_confirm_delete").check().run()
    at.button(key="tr_delete").click().run()
    assert not at.exception
    assert not (root / "long").exists()
    assert "No runs yet" in texts(at)


def test_run_deleted_while_watched_and_cap_message(root, monkeypatch):
    runs.create(root / "gone", {"train": {"network": {"name": "mini"}}})
    runs.write_status(root / "gone", "finished", message="done")
    busy = runs.create(root / "busy", {"train": {"network": {"name": "mini"}}})
    runs.write_status(busy, "running", pid=os.getpid(), host=socket.gethostname(), started=time.time())
    monkeypatch.setenv("GNET_MAX_RUNS", "1")
    at = page()
    at.selectbox(key="tr_selected").set_value("gone").run()
    shutil.rmtree(root / "gone")
    at.run()
    assert not at.exception
    assert "busy" in at.dataframe[0].value["run"].tolist()
    # the concurrent-run cap: a clear message, nothing created
    at.text_input(key="tr_name").set_value("third")
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert "at most 1 at once" in texts(at)
    assert not (root / "third").exists()
    # a bad name is refused with a message, not a traceback
    at.text_input(key="tr_name").set_value("../escape")
    at.button(key="tr_start").click().run()
    assert not at.exception and "run name" in texts(at)


def test_designed_network_is_offered(root):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["designed_network"] = network_preset("mini")
    at.run()
    assert not at.exception
    assert at.selectbox(key="tr_network").options[0] == "Designed in Network Explorer"


def test_garbled_run_files_give_a_message_not_a_traceback(root):
    bad = runs.create(root / "bad", {"train": {"network": "not a spec", "epochs": {"x": 1}}})
    runs.write_status(bad, "finished", total_steps="lots", global_step=[1], steps_per_epoch=None, started="soon")
    odd = runs.create(root / "odd", {"train": [1, 2]})
    runs.write_status(odd, "running", pid="x", host=socket.gethostname(), updated="late")
    (bad / "metrics.jsonl").write_text('{"kind": "step", "step": "x"}\n{"kind": "epoch", "epoch": 1}\n[]\n{"torn')
    at = page()
    at.selectbox(key="tr_selected").set_value("bad").run()
    assert not at.exception
    assert "not readable as a run" in texts(at)
    assert sorted(at.dataframe[0].value["run"].tolist()) == ["bad", "odd"]
