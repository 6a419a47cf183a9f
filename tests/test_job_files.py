"""Every file a job writes is untrusted input when read back: garbage, truncated and wrong-shaped status,
launcher, metrics, job and sweep files, for each kind of job (training run, visualisation job, sweep
scheduler). Readers never raise; actions raise only the kind's own error, with a message."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnet import featurevis as fv
from gnet import fsio, jobs, runs, sweeps
from gnet.spec import network_preset

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
STATUS_KEYS = ("state", "updated", "pid", "pid_start", "host", "message", "started", "for", "done", "total")
STATUS_KEYS += ("step", "steps", "batch", "refused", "elapsed_s")
STATES = st.sampled_from(["starting", "running", "stopping", "finished", "died", "done", "created", "weird"])


@st.composite
def file_bytes(draw, good: dict) -> bytes:
    """Garbage, a torn copy of a good file, a good file with wrong-shaped values, or JSON that is no object."""
    kind = draw(st.sampled_from(["garbage", "torn", "shaped", "not-object", "huge-number"]))
    text = json.dumps(good)
    if kind == "garbage":
        return draw(st.binary(max_size=64))
    if kind == "torn":
        return text.encode()[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "not-object":
        return json.dumps(draw(JSON)).encode()
    if kind == "huge-number":
        return b'{"state": "running", "pid": 1' + b"0" * 5000 + b', "updated": 1e999}'
    bad = dict(good)
    for key in draw(st.lists(st.sampled_from(STATUS_KEYS), max_size=5)):
        bad[key] = draw(JSON | STATES)
    return json.dumps(bad, allow_nan=True).encode()


def _good_status() -> dict:
    return {"state": "running", "updated": 1.0, **jobs.this_process(), "message": "", "done": 1, "total": 2}


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(status=file_bytes(_good_status()), launcher=file_bytes(_good_status()), metrics=st.binary(max_size=200))
def test_training_run_files_of_any_shape(tmp_path_factory, status, launcher, metrics):
    root = tmp_path_factory.mktemp("runs")
    run = runs.create(root / "r", {"train": {"epochs": 2}})
    (run / "status.json").write_bytes(status)
    (run / "launcher.json").write_bytes(launcher)
    (run / "metrics.jsonl").write_bytes(metrics)
    (run / "telemetry.jsonl").write_bytes(metrics)
    info = runs.read_run(run)
    assert isinstance(info.state, str) and isinstance(info.message, str)
    assert [r.name for r in runs.list_runs(root)] == ["r"]
    assert runs.active_runs(root) in ([], ["r"])
    runs.read_metrics(run, "epoch", ("epoch", "test_acc"))
    runs.read_telemetry(run)
    info.setting("epochs")
    try:
        runs.request_stop(run, root)
    except runs.RunError as e:
        assert "not running" in str(e)
    try:
        runs.delete(root, "r")
    except runs.RunError as e:
        assert "stop it before deleting" in str(e)


def test_a_heartbeat_that_is_a_folder_and_a_config_that_is_a_list(tmp_path):
    run = runs.create(tmp_path / "r", {})
    runs.write_status(run, "running", host="another-host", updated=1.0)
    (run / "heartbeat").mkdir()
    (run / "config.json").write_text("[1, 2, 3]")
    info = runs.read_run(run)
    assert info.state in ("died", "running") and info.setting("epochs", "-") == "-"
    runs.touch_heartbeat(run)  # no error


def _job(root: Path) -> Path:
    path = root / "jobs" / "abc"
    path.mkdir(parents=True)
    return path


GOOD_JOB = {
    "source": {"kind": "untrained", "path": ""},
    "fingerprint": "fp",
    "layer": "inception3a",
    "targets": [["b1", 0], ["b2", 3]],
    "config": {"size": 64, "steps": 4},
}


@FUZZ
@given(status=file_bytes(_good_status()), launcher=file_bytes(_good_status()), job=st.binary(max_size=100) | JSON)
def test_visualisation_job_files_of_any_shape(tmp_path_factory, status, launcher, job):
    root = tmp_path_factory.mktemp("cache")
    path = _job(root)
    (path / "status.json").write_bytes(status)
    (path / "launcher.json").write_bytes(launcher)
    (path / "job.json").write_bytes(
        job if isinstance(job, bytes) else json.dumps({**GOOD_JOB, "targets": job}).encode()
    )
    info = fv.read_job(path)
    assert isinstance(info.state, str) and 0.0 <= info.fraction <= 1.0
    assert info.done >= 0 and info.total >= 0 and isinstance(info.message, str)
    assert [j.id for j in fv.list_jobs(root)] == ["abc"]
    fv.cancel_job(path)
    try:
        fv.read_request(path)
    except fv.VisError as e:
        assert "job.json" in str(e) or "must be" in str(e) or "settings" in str(e)
    try:
        fv.run_job(path, None, None)  # a job.json it cannot use fails before the network is touched
    except fv.VisError:
        pass
    except (AttributeError, TypeError):  # got past read_request: a usable job, and no network given
        fv.read_request(path)


def test_wrong_shaped_job_files_fail_with_a_message_not_a_crash(tmp_path):
    path = _job(tmp_path)
    shapes = [
        {**GOOD_JOB, "targets": "b1"},
        {**GOOD_JOB, "targets": [["b1"]]},
        {**GOOD_JOB, "targets": [["b1", "0"]]},
        {**GOOD_JOB, "targets": []},
        {**GOOD_JOB, "layer": 3},
        {**GOOD_JOB, "source": "untrained"},
        {**GOOD_JOB, "config": [1]},
        {**GOOD_JOB, "config": {"steps": -1}},
    ]
    for shape in shapes:
        fsio.write_json(path / "job.json", shape)
        try:
            fv.run_job(path, None, None)
        except fv.VisError as e:
            assert str(e)
        else:
            raise AssertionError(shape)
    fsio.write_json(path / "status.json", {"state": "running", "done": "x", "total": [2], "steps": "s", "step": None})
    info = fv.read_job(path)
    assert (info.done, info.total, info.fraction) == (0, 0, 0.0)


@FUZZ
@given(
    scheduler=file_bytes(_good_status()),
    launch=file_bytes(_good_status()),
    cut=st.integers(0, 4000),
    sweep_value=JSON,
    sweep_key=st.sampled_from(["variants", "configs", "costs", "base", "parallel", "settings"]),
)
def test_sweep_scheduler_files_of_any_shape(tmp_path_factory, scheduler, launch, cut, sweep_value, sweep_key):
    root = tmp_path_factory.mktemp("runs")
    sweep = sweeps.create(root / "s", network_preset("mini"), ["base"], sweeps.Settings(epochs=1, image_size=12))
    (sweep.path / sweeps.SCHEDULER_FILE).write_bytes(scheduler)
    (sweep.path / jobs.SCHEDULER.launcher_file).write_bytes(launch)
    assert isinstance(sweeps.scheduler_state(sweep), str)
    assert [r.state for r in sweeps.rows(sweep)] in (["queued"], ["failed"])
    assert isinstance(sweeps.refusals(sweep), dict)
    sweeps.request_stop(sweep)
    good = (sweep.path / runs.SWEEP_FILE).read_bytes()
    for bad in (good[:cut], json.dumps({**json.loads(good), sweep_key: sweep_value}).encode()):
        (sweep.path / runs.SWEEP_FILE).write_bytes(bad)
        try:
            sweeps.read(sweep.path)
        except sweeps.SweepError as e:
            assert "'s'" in str(e) and str(root) not in str(e)
        sweeps.list_sweeps(root)


def test_a_refused_entry_of_the_wrong_shape_is_dropped(tmp_path):
    sweep = sweeps.create(tmp_path / "s", network_preset("mini"), ["base"], sweeps.Settings(epochs=1))
    fsio.write_json(
        sweep.path / sweeps.SCHEDULER_FILE,
        {"state": "done", "host": socket.gethostname(), "pid": os.getpid(), "refused": {"base": [1], "x": "y"}},
    )
    assert sweeps.refusals(sweep) == {"x": "y"}
    assert [r.state for r in sweeps.rows(sweep)] == ["queued"]
