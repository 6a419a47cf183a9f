"""Run directories: names that cannot escape, tolerant readers, liveness, caps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet import runs
from gnet.runs import RunError


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "a..b", "x y", "é", "a" * 65, "/abs", "a\\b", "-\n"])
def test_bad_names_refused(tmp_path, name):
    with pytest.raises(RunError):
        runs.run_dir(tmp_path, name)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abcXYZ019._-/\\~ ", min_size=0, max_size=12))
def test_accepted_names_stay_inside_the_root(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("root")
    try:
        path = runs.run_dir(root, name)
    except RunError:
        return
    assert path.resolve().parent == root.resolve()


def test_symlinked_run_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "evil").symlink_to(tmp_path / "outside")
    with pytest.raises(RunError, match="symbolic link"):
        runs.run_dir(tmp_path / "root", "evil")


def test_create_twice_refused(tmp_path):
    runs.create(tmp_path / "r", {"train": {}})
    with pytest.raises(RunError, match="already exists"):
        runs.create(tmp_path / "r", {"train": {}})


def test_metrics_reader_ignores_a_torn_last_line(tmp_path):
    runs.append_metrics(tmp_path, [{"kind": "step", "step": 1, "loss": 2.0}, {"kind": "epoch", "step": 1}])
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "step", "step": 2, "lo')  # a writer killed mid-line
    recs = runs.read_metrics(tmp_path)
    assert [r["step"] for r in recs] == [1, 1]
    assert runs.read_metrics(tmp_path, "epoch") == [{"kind": "epoch", "step": 1}]
    (tmp_path / "metrics.jsonl").write_bytes(b"\xff\xfe garbage\n[1, 2]\n" + json.dumps({"step": 3}).encode() + b"\n")
    assert runs.read_metrics(tmp_path) == [{"step": 3}]
    assert runs.read_metrics(tmp_path / "missing") == []


def test_truncate_metrics_keeps_records_up_to_a_step(tmp_path):
    runs.append_metrics(tmp_path, [{"kind": "step", "step": s} for s in range(1, 6)])
    runs.truncate_metrics(tmp_path, 3)
    assert [r["step"] for r in runs.read_metrics(tmp_path)] == [1, 2, 3]


def _fake_running(path, pid: int) -> None:
    runs.create(path, {"train": {"network": {"name": "x"}}})
    runs.write_status(path, "running", pid=pid, host=socket.gethostname(), started=1.0)


def test_dead_process_reads_as_died(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    _fake_running(tmp_path / "r", proc.pid)
    info = runs.read_run(tmp_path / "r")
    assert info.state == "died" and "resume" in info.message


def test_live_process_reads_as_running(tmp_path):
    _fake_running(tmp_path / "r", os.getpid())
    assert runs.read_run(tmp_path / "r").state == "running"


def test_unreaped_child_zombie_reads_as_died(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Wait until it has exited, without reaping it (WNOWAIT): a zombie, which kill(pid, 0) still finds.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    os.kill(child.pid, 0)  # no error: the naive liveness check would say "running"
    _fake_running(tmp_path / "z", child.pid)
    assert runs.read_run(tmp_path / "z").state == "died"
    child.wait()


def test_missing_and_garbled_status(tmp_path):
    assert runs.read_run(tmp_path / "nope").state == "missing"
    runs.create(tmp_path / "g", {})
    (tmp_path / "g" / "status.json").write_text("{torn")
    assert runs.read_run(tmp_path / "g").state == "unknown"


def test_cap_on_concurrent_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_MAX_RUNS", "1")
    _fake_running(tmp_path / "busy", os.getpid())
    with pytest.raises(RunError, match="at most 1 at once"):
        runs.start(tmp_path, "second", {"train": {}})
    assert not (tmp_path / "second").exists()


def test_delete_and_stop_rules(tmp_path):
    _fake_running(tmp_path / "busy", os.getpid())
    with pytest.raises(RunError, match="stop it before deleting"):
        runs.delete(tmp_path, "busy")
    runs.create(tmp_path / "done", {})
    runs.write_status(tmp_path / "done", "finished")
    with pytest.raises(RunError, match="not running"):
        runs.request_stop(tmp_path / "done")
    runs.delete(tmp_path, "done")
    assert not (tmp_path / "done").exists()
    with pytest.raises(RunError, match="no longer exists"):
        runs.delete(tmp_path, "done")


def test_list_runs_ignores_symlinks_and_strays(tmp_path):
    runs.create(tmp_path / "a", {})
    (tmp_path / "stray").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert [r.name for r in runs.list_runs(tmp_path)] == ["a"]
    assert runs.list_runs(tmp_path / "none") == []


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8),
    cut=st.integers(0, 10_000),
)
def test_reader_returns_a_prefix_whatever_the_tear(tmp_path_factory, values, cut):
    """A writer killed anywhere leaves complete lines then at most one partial: the reader returns them."""
    d = tmp_path_factory.mktemp("m")
    records = [{"kind": "step", "step": i, "loss": v} for i, v in enumerate(values)]
    text = "".join(json.dumps(r) + "\n" for r in records).encode()
    (d / "metrics.jsonl").write_bytes(text[: cut % (len(text) + 1)])
    got = runs.read_metrics(d, "step", require=("loss",))
    assert got == records[: len(got)]
    assert len(got) >= text[: cut % (len(text) + 1)].count(b"\n")  # every complete line is read


def test_cap_on_runs_reads_its_variable_with_a_safe_default(monkeypatch):
    monkeypatch.delenv("GNET_MAX_RUNS", raising=False)
    assert runs.max_runs() == 2
    for value, expected in (("5", 5), ("0", 1), ("-3", 1), ("many", 2)):
        monkeypatch.setenv("GNET_MAX_RUNS", value)
        assert runs.max_runs() == expected, value


def test_a_nan_loss_is_recorded_and_read_back(tmp_path):
    """The record of a diverged step is written (the page shows 'loss became NaN'), not an exception."""
    runs.create(tmp_path / "r", {})
    runs.append_metrics(tmp_path / "r", [{"kind": "step", "step": 1, "loss": float("nan")}])
    [rec] = runs.read_metrics(tmp_path / "r")
    assert rec["step"] == 1 and rec["loss"] != rec["loss"]


def test_truncation_keeps_records_without_a_step(tmp_path):
    run = runs.create(tmp_path / "r", {})
    runs.append_metrics(run, [{"kind": "note"}, {"kind": "step", "step": 1}, {"kind": "step", "step": 2}])
    runs.truncate_metrics(run, 0)
    assert runs.read_metrics(run) == [{"kind": "note"}]


def test_runs_are_listed_newest_first_by_start_then_update_time(tmp_path):
    for name, fields in (("a", {"started": 1.0}), ("b", {"started": 3.0}), ("c", {"started": 2.0}), ("d", {})):
        runs.create(tmp_path / name, {})
        runs.write_status(tmp_path / name, "finished", **fields)
    # "d" never started: its status' own update time (now) places it, so it comes first
    assert [r.name for r in runs.list_runs(tmp_path)] == ["d", "b", "c", "a"]


def test_request_stop_writes_the_stop_file_and_sends_sigterm(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _fake_running(tmp_path / "live", child.pid)
        runs.request_stop(tmp_path / "live")
        assert (tmp_path / "live" / "STOP").read_bytes() == b"stop\n"
        assert child.wait(timeout=60) == -15  # SIGTERM: the trainer's handler finishes the step and stops
    finally:
        child.kill()
        child.wait()
    with pytest.raises(RunError, match="'gone' no longer exists"):
        runs.request_stop(tmp_path / "gone")
