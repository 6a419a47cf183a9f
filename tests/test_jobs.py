"""gnet.jobs, the one supervisor of training runs, visualisation jobs and sweep schedulers: liveness by pid and
start time, the one rule for which pid may be signalled, one scheduler per sweep, sweeps only at the top of
the runs root, the cap over everything under it, and a scheduler killed anywhere."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gnet import featurevis as fv
from gnet import fsio, jobs, runs, sweeps
from gnet.spec import network_preset

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = sweeps.Settings(epochs=1, image_size=12)


@pytest.fixture
def bystander():
    """A real process that belongs to no job: nothing a job does may signal it."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def _survives(proc: subprocess.Popen) -> bool:
    time.sleep(0.3)  # a SIGTERM would have been delivered by now
    return proc.poll() is None


def _forgeries(pid: int) -> list[dict]:
    """Status records naming someone else's process: bare pid, its true start time, a wrong start time."""
    here = {"host": socket.gethostname()}
    start = jobs.process_start(pid)
    return [
        {"pid": pid, **here},
        {"pid": pid, "pid_start": start, **here},
        {"pid": pid, "pid_start": start + 1, **here},
    ]


def _sweep(root: Path, name: str = "s", variants: tuple[str, ...] = ("base",)) -> sweeps.Sweep:
    return sweeps.create(root / name, network_preset("mini"), list(variants), SETTINGS)


# ---------------------------------------------------------------------------
# Process identity


def test_start_time_is_field_22_of_proc_stat_and_tells_processes_apart(bystander):
    fields = Path(f"/proc/{bystander.pid}/stat").read_text().rpartition(")")[2].split()
    assert jobs.process_start(bystander.pid) == int(fields[19])  # field 22 = the 20th after "(comm)"
    assert jobs.process_start(os.getpid()) != jobs.process_start(bystander.pid) or os.getpid() == bystander.pid
    for nonsense in (None, 0, -1, True, "12", 1.5, 2**31, 2**70):  # from a file: a pid_t or nothing
        assert jobs.process_start(nonsense) is None and not jobs.pid_alive(nonsense)
        assert not jobs.recorded_alive({"pid": nonsense, "pid_start": 1})
    me = jobs.this_process()
    assert me["pid"] == os.getpid() and me["host"] == socket.gethostname()
    assert jobs.recorded_alive(me)
    assert not jobs.recorded_alive({**me, "pid_start": me["pid_start"] + 1})  # the pid, reused by another process


def test_a_reused_pid_never_reads_as_alive_for_any_kind_of_job(tmp_path, bystander):
    """The status names a live pid, but the process with that pid started at another time: gone."""
    reused = {"pid": bystander.pid, "pid_start": jobs.process_start(bystander.pid) - 1, "host": socket.gethostname()}
    run = runs.create(tmp_path / "r", {})
    runs.write_status(run, "running", **reused)
    assert runs.read_run(run).state == "died"
    runs.write_status(run, "running", **{**reused, "pid_start": reused["pid_start"] + 1})
    assert runs.read_run(run).state == "running"  # the same record with the true start time: alive
    job = tmp_path / "cache" / "jobs" / "abc"
    job.mkdir(parents=True)
    fv.write_job_status(job, "running", **reused)
    assert fv.read_job(job).state == "died"
    # a status time from the future (or "Infinity") does not keep a job on another host alive for ever
    for forever in (float("inf"), 1e300, 10**400):
        runs.write_status(run, "running", host="another-host", pid=4321, updated=forever)
        assert runs.read_run(run).state == "died"
    # an older record without a start time counts only for a process that had started when it was written
    runs.write_status(run, "running", pid=bystander.pid, host=socket.gethostname(), updated=time.time() - 3600)
    assert runs.read_run(run).state == "died"


# ---------------------------------------------------------------------------
# The signal rule


def test_stop_never_signals_a_process_named_by_a_forged_status(tmp_path, bystander):
    """For each kind of job: a status naming an unrelated live process (with or without its true start time)
    gets that job a STOP file, and the process nothing."""
    run = runs.create(tmp_path / "r", {})
    job = tmp_path / ".featurevis" / "jobs" / "abc"
    job.mkdir(parents=True)
    sweep = _sweep(tmp_path)
    for record in _forgeries(bystander.pid):
        runs.write_status(run, "running", **record)
        with contextlib.suppress(runs.RunError):  # a wrong start time: the run reads died, not running
            runs.request_stop(run, tmp_path)
        fv.write_job_status(job, "running", **record)
        fv.cancel_job(job)
        jobs.write_status(sweep.path, jobs.SCHEDULER, "running", **record)
        sweeps.request_stop(sweep)
        assert _survives(bystander), record
        assert all((p / "STOP").exists() for p in (run, job, sweep.path))
    assert not jobs.signalable(tmp_path, run, jobs.TRAINING, _forgeries(bystander.pid)[1])


def test_only_the_recorded_process_serving_this_folder_under_this_root_is_signalled(tmp_path):
    run = runs.create(tmp_path / "runs" / "r", {})
    other = runs.create(tmp_path / "runs" / "other", {})
    argv = [sys.executable, "-c", "import time; time.sleep(120)", "--run-dir", str(run)]
    child = subprocess.Popen(argv)
    try:
        record = {"pid": child.pid, "pid_start": jobs.process_start(child.pid), "host": socket.gethostname()}
        assert jobs.signalable(tmp_path / "runs", run, jobs.TRAINING, record) == child.pid
        assert jobs.signalable(tmp_path / "runs", other, jobs.TRAINING, record) is None  # it serves another run
        assert jobs.signalable(tmp_path / "elsewhere", run, jobs.TRAINING, record) is None  # not under that root
        assert jobs.signalable(tmp_path / "runs", run, jobs.VISUALISATION, record) is None  # not a --job-dir
        assert jobs.signalable(tmp_path / "runs", run, jobs.TRAINING, {**record, "host": "elsewhere"}) is None
        link = tmp_path / "runs" / "link"
        link.symlink_to(run)  # the same folder through a link: refused
        assert jobs.signalable(tmp_path / "runs", link, jobs.TRAINING, record) is None
        runs.write_status(other, "running", **record)  # a forged copy in another run: stopping it spares ours
        runs.request_stop(other, tmp_path / "runs")
        assert _survives(child)
        runs.write_status(run, "running", **record)
        runs.request_stop(run, tmp_path / "runs")
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_a_relative_run_dir_is_resolved_from_the_process_own_folder(tmp_path):
    """A run launched by hand (`python -m gnet train --run-dir runs/r` from the project folder) is recognised."""
    run = runs.create(tmp_path / "runs" / "r", {})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--run-dir=runs/r"], cwd=tmp_path)
    try:
        record = {"pid": child.pid, "pid_start": jobs.process_start(child.pid), "host": socket.gethostname()}
        assert jobs.signalable(tmp_path / "runs", run, jobs.TRAINING, record) == child.pid
    finally:
        child.kill()
        child.wait()


def test_a_starting_job_is_stopped_through_its_launch_record(tmp_path, monkeypatch):
    """Before the job's process has written its own pid, the launcher's record of this launch is the one."""
    script = tmp_path / "fake-python"  # sleeps, its command line still "... -m gnet train --run-dir DIR"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -c "import time; time.sleep(120)" "$@"\n')
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))
    run = runs.create(tmp_path / "r", {})
    runs.write_status(run, "starting", host=socket.gethostname(), started=time.time())
    pid = runs._spawn(run, [])
    try:
        assert runs.read_run(run).state == "starting"
        runs.request_stop(run, tmp_path)
        deadline = time.monotonic() + 10
        while jobs.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not jobs.pid_alive(pid)  # SIGTERM'd (pid_alive reaps our exited child)
    finally:
        if jobs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


# ---------------------------------------------------------------------------
# Sweeps: one scheduler, at the top of the runs root


HOLD_LOCK = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(120)
    """
)


def test_a_second_scheduler_finds_the_lock_and_says_so(tmp_path):
    sweep = _sweep(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(sweep.path / sweeps.LOCK_FILE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert sweeps.scheduler_state(sweep) == "running"
        with pytest.raises(sweeps.SweepError, match="already being run by another scheduler"):
            sweeps.run(sweep, install_signals=False)
        with pytest.raises(sweeps.SweepError, match="already running"):
            sweeps.launch(sweep)
        assert [r.state for r in sweeps.rows(sweep)] == ["queued"]  # nothing was started
    finally:
        holder.kill()
        holder.wait()
    assert sweeps.scheduler_state(sweep) == "none"  # the kernel dropped the lock with its holder


def test_a_double_clicked_resume_launches_one_scheduler(tmp_path, monkeypatch):
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\nexec sleep 30\n")  # a scheduler that is still importing torch
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))
    sweep = _sweep(tmp_path)
    pid = sweeps.launch(sweep)
    try:
        assert sweeps.scheduler_state(sweep) == "starting"
        with pytest.raises(sweeps.SweepError, match="already starting"):
            sweeps.launch(sweep)
        # Slow to begin (nice 10 on a busy machine) is not dead: past the starting allowance, still "starting",
        # so the page keeps watching the sweep instead of reading "scheduler ended" for good.
        monkeypatch.setattr(sweeps, "STARTING_S", 0.0)
        time.sleep(0.05)
        assert sweeps.scheduler_state(sweep) == "starting"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert sweeps.scheduler_state(sweep) == "ended"  # its process is gone: Resume is offered again


def test_a_scheduler_file_naming_a_live_foreign_pid_does_not_block_resume(tmp_path, bystander, monkeypatch):
    sweep = _sweep(tmp_path)
    for record in [*_forgeries(bystander.pid), {"pid": 1, "host": socket.gethostname()}]:
        jobs.write_status(sweep.path, jobs.SCHEDULER, "running", **record)
        assert sweeps.scheduler_state(sweep) == "ended", record

    def fake_spawn(path: Path, extra: list[str]) -> int:
        runs.write_status(path, "finished", **jobs.this_process())
        return os.getpid()

    monkeypatch.setattr(runs, "_spawn", fake_spawn)
    assert [r.state for r in sweeps.run(sweep, resume=True, poll_s=0.05, install_signals=False)] == ["finished"]
    assert _survives(bystander)


def test_a_sweep_lives_only_directly_in_the_runs_root(tmp_path):
    good = _sweep(tmp_path, "good")
    with pytest.raises(sweeps.SweepError, match="directly in the runs folder"):
        _sweep(tmp_path, "good/nested")
    runs.create(tmp_path / "r", {})
    with pytest.raises(sweeps.SweepError, match="inside the sweep or run 'r'"):
        _sweep(tmp_path, "r/nested")
    with pytest.raises(sweeps.SweepError, match="no '/'"):
        sweeps.sweep_dir(tmp_path, "good/nested")
    assert sweeps.sweep_dir(tmp_path, "fine") == tmp_path / "fine"
    # one made by an older version is not run either
    (good.path / "nested").mkdir()
    (good.path / "nested" / runs.SWEEP_FILE).write_text((good.path / runs.SWEEP_FILE).read_text())
    with pytest.raises(sweeps.SweepError, match="directly in the runs folder"):
        sweeps.run(sweeps.read(good.path / "nested"), install_signals=False)


def test_the_cap_counts_every_active_run_under_the_root(tmp_path, monkeypatch):
    """A run nested by hand (or by an older version) inside a sweep's folder still takes a place."""
    monkeypatch.setenv("GNET_MAX_RUNS", "1")
    _sweep(tmp_path, "good")
    hidden = runs.create(tmp_path / "good" / "nested" / "base", {})
    runs.write_status(hidden, "running", **jobs.this_process())
    assert [r.name for r in runs.list_runs(tmp_path)] == []  # not listed: it is no run the app shows
    assert runs.active_runs(tmp_path) == ["good/nested/base"]
    with pytest.raises(runs.RunError, match="good/nested/base"):
        runs.start(tmp_path, "second", {"train": {}})
    assert sweeps._free_slots(tmp_path) == 0


def test_sweep_messages_name_the_folder_not_the_server_path(tmp_path):
    _sweep(tmp_path, "good")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / runs.SWEEP_FILE).write_text('{"variants": ["base"]}')
    attempts = {
        "good": lambda: _sweep(tmp_path, "good"),
        "full": lambda: _sweep(tmp_path, "full"),
        "none": lambda: sweeps.read(tmp_path / "none"),
        "torn": lambda: sweeps.read(tmp_path / "torn"),
    }
    for name, attempt in attempts.items():
        with pytest.raises(sweeps.SweepError) as e:
            attempt()
        assert str(tmp_path) not in str(e.value) and f"'{name}'" in str(e.value), str(e.value)


def test_an_invalid_variant_config_says_why_instead_of_starting_then_dying(tmp_path, monkeypatch):
    sweep = _sweep(tmp_path, variants=("base", "no-reduce"))
    data = json.loads((sweep.path / runs.SWEEP_FILE).read_text())
    data["configs"]["base"]["epochs"] = -3  # hand-edited
    (sweep.path / runs.SWEEP_FILE).write_text(json.dumps(data))
    started = []

    def fake_spawn(path: Path, extra: list[str]) -> int:
        started.append(path.name)
        runs.write_status(path, "finished", **jobs.this_process())
        return os.getpid()

    monkeypatch.setattr(runs, "_spawn", fake_spawn)
    rows = sweeps.run(sweeps.read(sweep.path), poll_s=0.05, install_signals=False)
    assert started == ["no-reduce"]
    assert [r.state for r in rows] == ["failed", "finished"]
    assert "training config is not valid" in rows[0].message and "epochs" in rows[0].message


def test_the_trainer_says_why_it_refused_a_run_the_app_launched(tmp_path, capsys):
    """The same for any run: a config the trainer refuses at start-up reads "failed" with the reason."""
    from gnet.__main__ import main
    from gnet.train import TrainConfig

    config = TrainConfig.from_recipe("improved", network_preset("mini"), dataset="synthetic").to_dict()
    run = runs.create(tmp_path / "r", {"train": {**config, "epochs": -3}})
    runs.write_status(run, "starting", host=socket.gethostname(), started=time.time())
    stamp = runs.read_json(run / "status.json")["updated"]
    fsio.write_json(run / "launcher.json", {**jobs.this_process(), "updated": time.time(), "for": stamp})
    assert main(["train", "--run-dir", str(run)]) == 2
    info = runs.read_run(run)
    assert info.state == "failed" and "epochs" in info.message
    # run by hand on someone else's run, the same refusal leaves that run's status alone
    runs.write_status(run, "starting", host=socket.gethostname(), started=time.time())
    assert main(["train", "--run-dir", str(run)]) == 2
    assert runs.read_run(run).state == "starting"
    capsys.readouterr()


# ---------------------------------------------------------------------------
# Kill anywhere: the sweep scheduler


SCHEDULER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from gnet import jobs, runs, sweeps

    def fake_spawn(path, extra):  # a trainer that runs in this process' name, then finishes a moment later
        runs.write_status(path, "running", **jobs.this_process())
        time.sleep(0.05)
        runs.append_metrics(path, [{"kind": "epoch", "epoch": 1, "step": 1, "test_acc": 0.5, "images_per_s": 9.0}])
        runs.write_status(path, "finished", **jobs.this_process(), elapsed_s=1.0)
        return os.getpid()

    runs._spawn = fake_spawn
    print("go", flush=True)
    sweeps.run(sweeps.read(Path(sys.argv[1])), resume=True, poll_s=0.01)
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.07, 0.12, 0.2, 0.35])
def test_a_scheduler_killed_anywhere_leaves_readable_files_and_resumes(tmp_path, delay, monkeypatch):
    monkeypatch.setenv("GNET_MAX_RUNS", "4")
    sweep = _sweep(tmp_path, variants=("base", "no-reduce", "factorize", "b3-3x3"))
    proc = subprocess.Popen(
        [sys.executable, "-c", SCHEDULER, str(sweep.path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "GNET_MAX_RUNS": "4"},
    )
    assert proc.stdout.readline().strip() == "go"
    time.sleep(delay)
    proc.kill()
    proc.wait()
    for f in [sweep.path / sweeps.SCHEDULER_FILE, *sweep.path.glob("*/status.json")]:
        if f.exists():
            assert fsio.read_json(f) is not None, f  # whole: every write is a rename
    state = sweeps.scheduler_state(sweep)
    # the lock died with it; on a quiet machine the latest kills may land after the sweep finished
    assert state in ("ended", "none") or (state == "done" and all(r.state == "finished" for r in sweeps.rows(sweep)))
    assert all(r.state != "running" for r in sweeps.rows(sweep))  # a run in its name reads died, not running

    def fake_spawn(path: Path, extra: list[str]) -> int:
        runs.write_status(path, "finished", **jobs.this_process())
        return os.getpid()

    monkeypatch.setattr(runs, "_spawn", fake_spawn)
    rows = sweeps.run(sweeps.read(sweep.path), resume=True, poll_s=0.02, install_signals=False)
    assert [r.state for r in rows] == ["finished"] * 4
    assert sweeps.scheduler_state(sweep) == "done"


def test_a_run_left_starting_by_a_killed_scheduler_is_resumed_once_it_reads_died(tmp_path, monkeypatch):
    """The scheduler died between writing a run's "starting" and its trainer's first status (no pid anywhere):
    the run reads active until stale, then died; the next scheduler waits for that, then resumes it."""
    sweep = _sweep(tmp_path, variants=("base", "no-reduce"))
    orphan = sweep.run_path("no-reduce")
    runs.create(orphan, {"train": sweep.configs["no-reduce"]})
    stale_in = 1.0
    runs.write_status(
        orphan, "starting", host=socket.gethostname(), updated=time.time() - jobs.TRAINING.stale_s + stale_in
    )
    assert runs.read_run(orphan).active
    resumed: list[str] = []

    def fake_spawn(path: Path, extra: list[str]) -> int:
        resumed.append(path.name) if extra == ["--resume"] else None
        runs.write_status(path, "finished", **jobs.this_process())
        return os.getpid()

    monkeypatch.setattr(runs, "_spawn", fake_spawn)
    t0 = time.monotonic()
    rows = sweeps.run(sweeps.read(sweep.path), resume=True, poll_s=0.02, install_signals=False)
    assert [r.state for r in rows] == ["finished", "finished"]
    assert resumed == [orphan.name]  # resumed, and only the orphan
    assert time.monotonic() - t0 >= stale_in * 0.9  # it waited for the staleness rule, not guessed
