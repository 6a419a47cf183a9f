"""Confinement follows no symbolic link: under the runs root and the visualisation cache, a link at any level
(a run folder, checkpoints/, a checkpoint, a sweep variant, a sweep, a cache entry, a job folder, a run's own
files) pointing outside is never read, listed, served, written through or deleted."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pytest
from PIL import Image

from gnet import featurevis as fv
from gnet import fsio, jobs, runs, sweeps
from gnet.pretrained import find_checkpoints
from gnet.spec import network_preset

SECRET = b"PK\x03\x04 not yours"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the runs root that looks like a finished run with a checkpoint."""
    out = tmp_path / "outside"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.pt").write_bytes(SECRET)
    (out / "config.json").write_text(json.dumps({"train": {"epochs": 1}}))
    (out / "status.json").write_text(json.dumps({"state": "finished", "message": "outside"}))
    (out / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 1, "test_acc": 0.99, "step": 1}) + "\n")
    return out


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "runs"
    r.mkdir()
    return r


def test_confined_refuses_a_link_at_any_level_and_names_no_server_path(tmp_path, outside):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "link").symlink_to(outside)
    assert fsio.confined(root, root / "a" / "b" / "new") == root / "a" / "b" / "new"  # not yet there: fine
    for bad in (root / "a" / "link", root / "a" / "link" / "checkpoints" / "last.pt", root / "..", root, outside):
        with pytest.raises(fsio.ConfinementError) as e:
            fsio.confined(root, bad)
        assert str(tmp_path) not in str(e.value)
    linked_root = tmp_path / "linked-root"
    linked_root.symlink_to(root)  # the root itself may be a link (an operator's choice)
    assert fsio.is_confined(linked_root, linked_root / "a" / "b")


def test_a_linked_run_folder_is_not_opened_listed_or_deleted(root, outside):
    (root / "r").symlink_to(outside)
    with pytest.raises(runs.RunError, match="symbolic link"):
        runs.run_dir(root, "r")
    assert runs.read_run(root / "r").state == "missing"
    assert runs.list_runs(root) == [] and find_checkpoints(root) == []
    with pytest.raises(runs.RunError):
        runs.delete(root, "r")
    assert (outside / "checkpoints" / "last.pt").read_bytes() == SECRET


@pytest.mark.parametrize("level", ["checkpoints", "file"])
def test_a_linked_checkpoint_is_not_served_or_listed(root, outside, level):
    """The Training page's "Download checkpoint" and the model pickers' lists: RunInfo.checkpoint, find_checkpoints."""
    run = runs.create(root / "r", {})
    runs.write_status(run, "finished")
    if level == "checkpoints":
        (run / "checkpoints").rmdir()
        (run / "checkpoints").symlink_to(outside / "checkpoints")
    else:
        (run / "checkpoints" / "last.pt").symlink_to(outside / "checkpoints" / "last.pt")
    info = runs.read_run(run)
    assert info.checkpoint("last") is None
    assert find_checkpoints(root) == []
    if level == "file":
        with pytest.raises(OSError):
            fsio.read_bytes(run / "checkpoints" / "last.pt")  # O_NOFOLLOW: a link swapped in after the check
    (run / "checkpoints" / "best.pt").unlink(missing_ok=True)
    runs.delete(root, "r")  # deleting the run removes the link, never what it points to
    assert (outside / "checkpoints" / "last.pt").read_bytes() == SECRET


def test_a_plain_checkpoint_is_still_served(root):
    run = runs.create(root / "r", {})
    (run / "checkpoints" / "last.pt").write_bytes(b"weights")
    assert runs.read_run(run).checkpoint("last") == run / "checkpoints" / "last.pt"
    assert find_checkpoints(root) == [run / "checkpoints" / "last.pt"]


@pytest.mark.parametrize("name", ["status.json", "config.json", "metrics.jsonl", "telemetry.jsonl"])
def test_a_run_file_that_is_a_link_is_not_read(root, outside, name):
    run = runs.create(root / "r", {"train": {"epochs": 7}})
    runs.write_status(run, "stopped")
    target = outside / name
    if not target.exists():
        target.write_text(json.dumps({"step": 1, "branches": {}}) + "\n")
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(target)
    info = runs.read_run(run)
    assert info.status.get("message") != "outside" and info.setting("epochs", None) != 1
    assert runs.read_metrics(run) == [] and runs.read_telemetry(run) == []
    if name == "metrics.jsonl":  # the trainer appends through no link either
        with pytest.raises(OSError):
            runs.append_metrics(run, [{"kind": "step", "step": 2}])
        assert len(target.read_text().splitlines()) == 1


def test_heartbeat_through_a_link_touches_nothing(root, outside):
    run = runs.create(root / "r", {})
    (run / "heartbeat").symlink_to(outside / "status.json")
    before = os.stat(outside / "status.json").st_mtime_ns
    os.utime(outside / "status.json", ns=(before - 10**10, before - 10**10))
    runs.touch_heartbeat(run)
    assert os.stat(outside / "status.json").st_mtime_ns == before - 10**10


def test_a_linked_sweep_variant_is_not_read(root, outside):
    sweep = sweeps.create(root / "s", network_preset("mini"), ["base", "no-reduce"], sweeps.Settings(epochs=1))
    (sweep.path / "base").symlink_to(outside)
    rows = sweeps.rows(sweep)
    assert rows[0].state == "failed" and "symbolic link" in rows[0].message and rows[0].best_test_acc is None
    assert rows[1].state == "queued"
    assert runs.list_runs(root) == []
    with pytest.raises(runs.RunError, match="symbolic link"):
        runs.run_dir(root, "s/base")


def test_a_linked_sweep_is_not_listed_run_or_stopped(tmp_path, root):
    real = sweeps.create(tmp_path / "elsewhere", network_preset("mini"), ["base"], sweeps.Settings(epochs=1))
    (root / "s").symlink_to(real.path)
    assert sweeps.list_sweeps(root) == []
    with pytest.raises(sweeps.SweepError, match="symbolic link"):
        sweeps.sweep_dir(root, "s")
    with pytest.raises(sweeps.SweepError, match="symbolic link"):
        sweeps.create(root / "s", network_preset("mini"), ["base"], sweeps.Settings(epochs=1))
    with pytest.raises(runs.RunError):
        runs.run_dir(root, "s/base")


# ---------------------------------------------------------------------------
# The visualisation cache and its jobs


def _entry(folder: Path, key: str) -> None:
    """A complete cache entry (PNG + its JSON with the PNG's hash), as write_result leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{key}.png"
    Image.new("RGB", (4, 4), "red").save(png)
    meta = {"layer": "inception3a", "branch": "b1", "channel": 0, "output_channel": 0, "steps": 4, "seconds": 0.1}
    meta |= {"activation_start": 0.1, "activation_end": 0.9, "png_sha256": hashlib.sha256(png.read_bytes()).hexdigest()}
    (folder / f"{key}.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("level", ["results", "prefix", "png", "json"])
def test_a_linked_cache_entry_is_not_served_or_written_through(tmp_path, level):
    cache, out = tmp_path / "cache", tmp_path / "outside"
    key = "ab" + "0" * 22
    _entry(out / "ab", key)
    if level == "results":
        cache.mkdir()
        (cache / "results").symlink_to(out)
    elif level == "prefix":
        (cache / "results").mkdir(parents=True)
        (cache / "results" / "ab").symlink_to(out / "ab")
    else:
        _entry(cache / "results" / "ab", key)
        name = f"{key}.{level}"
        (cache / "results" / "ab" / name).unlink()
        (cache / "results" / "ab" / name).symlink_to(out / "ab" / name)
    assert fv.read_result(cache, key) is None
    if level in ("results", "prefix"):
        with pytest.raises(fv.VisError, match="symbolic link"):
            fv.write_result(cache, key, None)  # refused before anything is made or written
    _entry(cache / "plain" / "results" / "ab", key)
    assert fv.read_result(cache / "plain", key) is not None  # the same entry, no link: served


def test_a_linked_job_folder_is_not_read_started_or_cancelled(tmp_path, monkeypatch):
    cache, out = tmp_path / "cache", tmp_path / "outside"
    out.mkdir()
    fsio.write_json(out / "status.json", {"state": "running", **jobs.this_process()})
    (cache / "jobs").mkdir(parents=True)
    (cache / "jobs" / "abc").symlink_to(out)
    assert fv.read_job(cache / "jobs" / "abc").state == "missing"
    assert fv.list_jobs(cache) == []
    fv.cancel_job(cache / "jobs" / "abc")
    assert not (out / "STOP").exists()
    with pytest.raises(fv.VisError, match="symbolic link"):
        fv.read_request(cache / "jobs" / "abc")
    # jobs/ itself a link: a new job is refused instead of written outside the cache
    linked = tmp_path / "cache2"
    linked.mkdir()
    (linked / "jobs").symlink_to(out)
    with pytest.raises(fv.VisError, match="symbolic link"):
        fv.start_job(
            linked, {"kind": "untrained"}, "fp", "inception3a", [fv.Target("inception3a", "b1", 0)], fv.VisConfig()
        )
    assert sorted(p.name for p in out.iterdir()) == ["status.json"]


def test_a_job_model_path_through_a_link_under_the_runs_root_is_refused(tmp_path, monkeypatch, outside):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("GNET_RUNS_DIR", str(root))
    (root / "r").symlink_to(outside)  # resolves outside the runs root
    (root / "inside").mkdir()
    (root / "inside" / "checkpoints").symlink_to(root / "elsewhere")  # resolves inside it, but a link
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "last.pt").write_bytes(SECRET)
    job = tmp_path / "cache" / "jobs" / "abc"
    job.mkdir(parents=True)
    for path, why in [
        (root / "r" / "checkpoints" / "last.pt", "for safety"),
        (root / "inside" / "checkpoints" / "last.pt", "symbolic link"),
        ("/etc/hostname", "for safety"),
    ]:
        fsio.write_json(
            job / "job.json",
            {
                "source": {"kind": "checkpoint", "path": str(path)},
                "fingerprint": "fp",
                "layer": "inception3a",
                "targets": [["b1", 0]],
                "config": {},
            },
        )
        with pytest.raises(fv.VisError, match=why):
            fv.job_source(job)
    (root / "plain" / "checkpoints").mkdir(parents=True)
    ok = root / "plain" / "checkpoints" / "last.pt"
    ok.write_bytes(SECRET)
    data = fsio.read_json(job / "job.json")
    fsio.write_json(job / "job.json", {**data, "source": {"kind": "checkpoint", "path": str(ok)}})
    assert fv.job_source(job) == ("checkpoint", str(ok))


def test_stop_of_a_linked_run_signals_nothing_and_writes_nothing(root, outside):
    """request_stop on a run reached through a link: refused before the STOP file is written outside."""
    fsio.write_json(outside / "status.json", {"state": "running", "host": socket.gethostname(), "pid": os.getpid()})
    (root / "r").symlink_to(outside)
    with pytest.raises(runs.RunError):
        runs.request_stop(runs.run_dir(root, "r"), root)
    with pytest.raises(fsio.ConfinementError):
        jobs.request_stop(root, root / "r", jobs.TRAINING)
    assert not (outside / "STOP").exists()


def test_a_log_that_is_a_link_is_not_written_through(root, outside):
    """The job's log (stdout and stderr of the spawned process) is opened with O_NOFOLLOW: the launch fails with
    a message and the run reads "failed" instead of "starting"; the file outside is untouched."""
    target = outside / "status.json"
    before = target.read_bytes()
    (root / "r").mkdir()
    (root / "r" / "log.txt").symlink_to(target)
    with pytest.raises(runs.RunError, match="could not start the training process"):
        runs.start(root, "r", {"train": {}})
    assert runs.read_run(root / "r").state == "failed" and target.read_bytes() == before
    sweep = sweeps.create(root / "s", network_preset("mini"), ["base"], sweeps.Settings(epochs=1))
    (sweep.path / "scheduler.log").symlink_to(target)
    with pytest.raises(sweeps.SweepError, match="could not start the sweep's scheduler"):
        sweeps.launch(sweep)
    assert sweeps.scheduler_state(sweep) == "ended" and target.read_bytes() == before


@pytest.mark.parametrize("level", ["checkpoints", "checkpoint", "samples"])
def test_the_training_pages_predictions_follow_no_link(root, outside, level):
    """The sample predictions load a checkpoint and samples.pt from the run: a link there is refused by name."""
    from gnet.checkpoints import CheckpointError
    from gnet.train import predictions

    run = runs.create(root / "r", {})
    (outside / "samples.pt").write_bytes(SECRET)
    if level == "checkpoints":
        (run / "checkpoints").rmdir()
        (run / "checkpoints").symlink_to(outside / "checkpoints")
    elif level == "checkpoint":
        (run / "checkpoints" / "last.pt").symlink_to(outside / "checkpoints" / "last.pt")
    else:
        (run / "checkpoints" / "last.pt").write_bytes(b"not read: the samples are checked first")
        (run / "samples.pt").symlink_to(outside / "samples.pt")
    with pytest.raises(CheckpointError, match="symbolic link") as e:
        predictions(run)
    assert str(outside) not in str(e.value)
