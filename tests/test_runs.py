"""Run directories: names that cannot escape, tolerant readers, liveness, caps."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet import jobs, runs
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
    missing = runs.read_run(tmp_path / "nope")
    assert (missing.state, missing.name, missing.path) == ("missing", "nope", tmp_path / "nope")
    runs.create(tmp_path / "g", {})
    (tmp_path / "g" / "status.json").write_text("{torn")
    assert runs.read_run(tmp_path / "g").state == "unknown"
    (tmp_path / "g" / "status.json").write_text("[1, 2]")  # valid JSON, but not an object
    assert runs.read_json(tmp_path / "g" / "status.json") is None
    assert runs.read_run(tmp_path / "g").state == "unknown"


def test_cap_on_concurrent_runs(tmp_path, monkeypatch, fake_python):
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


def _recorded(path: Path, pid: int) -> None:
    """The status a run's own process writes: its pid and start time (gnet.jobs.this_process, for that pid)."""
    runs.create(path, {})
    runs.write_status(path, "running", pid=pid, pid_start=jobs.process_start(pid), host=socket.gethostname())


def test_request_stop_writes_the_stop_file_and_sends_sigterm(tmp_path):
    """The run's own process (recorded with its start time, its command line naming the run) gets SIGTERM."""
    live = tmp_path / "live"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--run-dir", str(live)])
    try:
        _recorded(live, child.pid)
        runs.request_stop(live)
        assert (live / "STOP").read_bytes() == b"stop\n"
        assert child.wait(timeout=10) == -15  # SIGTERM: the trainer's handler finishes the step and stops
    finally:
        child.kill()
        child.wait()
    with pytest.raises(RunError, match="'gone' no longer exists"):
        runs.request_stop(tmp_path / "gone")


# ---------------------------------------------------------------------------
# Launching without training: sys.executable is a shell script that reports how it was started


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    """The trainer's interpreter, replaced by a script: a launch costs milliseconds and trains nothing."""
    script = tmp_path / "fake-python"
    script.write_text(
        "#!/bin/sh\n"
        'echo "args=$*"\n'
        'echo "cwd=$(pwd -P)"\n'
        'echo "stdin=$(readlink /proc/$$/fd/0)"\n'
        'echo "session=$(cut -d" " -f6 /proc/$$/stat)"\n'
        'echo "pid=$$"\n'
        'echo "to stderr" >&2\n'
        "echo end\n"
    )
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))


def _launched(run: Path) -> dict[str, str]:
    """What the fake interpreter reported in the run's log.txt, once it has exited."""
    with contextlib.suppress(ChildProcessError):  # exits at once; read_run's liveness check may have reaped it
        os.waitpid(runs.read_json(run / "launcher.json")["pid"], 0)
    text = (run / "log.txt").read_text() if (run / "log.txt").exists() else ""
    assert text.endswith("end\n"), text
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_spawn_detaches_the_trainer_and_sends_its_output_to_the_log(tmp_path, fake_python, monkeypatch):
    run = runs.create(tmp_path / "r", {})
    (run / "log.txt").write_text("an earlier attempt\n")
    updated = runs.read_json(run / "status.json")["updated"]
    monkeypatch.chdir(tmp_path)  # the page's working directory is not the project's
    read_end, write_end = os.pipe()  # nor is its stdin /dev/null
    saved_stdin = os.dup(0)
    try:
        os.dup2(read_end, 0)
        pid = runs._spawn(run, ["--resume"])
    finally:
        os.dup2(saved_stdin, 0)
        for fd in (saved_stdin, read_end, write_end):
            os.close(fd)
    got = _launched(run)
    assert got["args"] == f"-m gnet train --run-dir {run.resolve()} --resume"
    assert got["cwd"] == str(runs.PROJECT_ROOT)
    assert got["stdin"] == "/dev/null"
    assert got["pid"] == str(pid) and got["session"] == str(pid)  # a session of its own: it outlives the page
    log = (run / "log.txt").read_text()
    assert log.startswith("an earlier attempt\n") and "to stderr" in log  # appended; stderr too
    # read_run's "starting" check matches the launcher's pid to this launch by the status' update time
    launched = runs.read_json(run / "launcher.json")
    assert (launched["pid"], launched["host"], launched["for"]) == (pid, socket.gethostname(), updated)
    assert isinstance(launched["pid_start"], int)  # its start time: a reused pid is never taken for it


# Reports its own nice value from /proc (the kernel's), once the launcher has returned (it waits for the go file).
NICE_REPORTER = (  # gives up after about 30 s, so a failing test leaves no process behind
    '#!/bin/sh\nn=0\nwhile [ ! -e "$GO" ] && [ $n -lt 3000 ]; do sleep 0.01; n=$((n + 1)); done\n'
    'echo "nice=$(cut -d" " -f19 /proc/$$/stat)"\n'
    '[ -e /proc/$$/autogroup ] && echo "group=$(cat /proc/$$/autogroup)"\n'
)

# In a fresh interpreter (its niceness cannot be undone): run at nice 15, launch, print what the child reported.
LAUNCH_AT_15 = """
import os, sys
from pathlib import Path
from gnet import jobs, runs
os.nice(15 - os.getpriority(os.PRIO_PROCESS, 0))
sys.executable = sys.argv[1]
log = Path(sys.argv[2])
pid = runs.spawn_background(["train"], log)
Path(os.environ["GO"]).touch()
os.waitpid(pid, 0)
print(log.read_text().strip())
"""


@pytest.fixture
def nice_reporter(tmp_path, monkeypatch) -> Path:
    script = tmp_path / "fake-python"
    script.write_text(NICE_REPORTER)
    script.chmod(0o755)
    monkeypatch.setenv("GO", str(tmp_path / "go"))
    return script


def test_background_jobs_run_at_a_lower_cpu_priority(tmp_path, monkeypatch, nice_reporter):
    """Runs, sweep schedulers and visualisations yield the CPU to the pages (nice 10 from an app at 0)."""
    monkeypatch.setattr(sys, "executable", str(nice_reporter))
    pid = runs.spawn_background(["train"], tmp_path / "log.txt")
    (tmp_path / "go").touch()
    os.waitpid(pid, 0)
    expected = max(runs.BACKGROUND_NICE, os.getpriority(os.PRIO_PROCESS, 0))
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0] == f"nice={expected}"
    # Linux's autogroup: the job's own session yields too (where the kernel has autogroups)
    if Path("/proc/self/autogroup").exists():
        assert lines[1].startswith("group=/autogroup-") and lines[1].endswith(f" nice {expected}")


def test_a_background_job_never_runs_above_the_apps_own_priority(tmp_path, nice_reporter):
    """An app already at nice 15 launches its jobs at 15, never back up at 10."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCH_AT_15, str(nice_reporter), str(tmp_path / "log.txt")],
        cwd=runs.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "nice=15"


def test_a_priority_that_cannot_be_set_does_not_fail_the_launch(tmp_path, monkeypatch, nice_reporter):
    """The child may be gone (or the system may refuse) before its priority is set: the launch still returns it."""

    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sys, "executable", str(nice_reporter))
    monkeypatch.setattr(os, "setpriority", refuse)
    pid = runs.spawn_background(["train"], tmp_path / "log.txt")
    (tmp_path / "go").touch()
    os.waitpid(pid, 0)
    assert (tmp_path / "log.txt").read_text().splitlines()[0] == f"nice={os.getpriority(os.PRIO_PROCESS, 0)}"


def test_start_creates_the_run_marks_it_starting_and_launches_it(tmp_path, fake_python):
    before = time.time()
    info = runs.start(tmp_path, "new", {"train": {"epochs": 3}})
    run = tmp_path / "new"
    assert (info.name, info.path, info.config) == ("new", run, {"train": {"epochs": 3}})
    assert _launched(run)["args"] == f"-m gnet train --run-dir {run.resolve()}"
    assert runs.read_json(run / "config.json") == {"train": {"epochs": 3}}
    status = runs.read_json(run / "status.json")  # the fake never writes its own
    assert status["state"] == "starting" and status["host"] == socket.gethostname()
    assert before <= status["started"] <= time.time()


def test_resume_clears_stop_keeps_the_start_time_and_launches_with_resume(tmp_path, fake_python):
    run = runs.create(tmp_path / "r", {})
    runs.write_status(run, "stopped", started=5.0)
    (run / "STOP").write_text("stop\n")
    before = time.time()
    runs.resume(tmp_path, "r")
    assert _launched(run)["args"] == f"-m gnet train --run-dir {run.resolve()} --resume"
    assert not (run / "STOP").exists()
    status = runs.read_json(run / "status.json")
    assert status["state"] == "starting" and status["host"] == socket.gethostname()
    assert status["started"] == 5.0 and before <= status["resumed"] <= time.time()
    # a run that never recorded a start time gets one now
    other = runs.create(tmp_path / "o", {})
    runs.write_status(other, "failed")
    before = time.time()
    runs.resume(tmp_path, "o")
    assert before <= runs.read_json(other / "status.json")["started"] <= time.time()
    _launched(other)


def test_resume_refuses_missing_active_finished_and_over_cap_runs(tmp_path, monkeypatch, fake_python):
    with pytest.raises(RunError, match="'gone' no longer exists"):
        runs.resume(tmp_path, "gone")
    _fake_running(tmp_path / "busy", os.getpid())
    with pytest.raises(RunError, match="'busy' is still running"):
        runs.resume(tmp_path, "busy")
    runs.create(tmp_path / "done", {})
    runs.write_status(tmp_path / "done", "finished")
    with pytest.raises(RunError, match="'done' has finished all its epochs"):
        runs.resume(tmp_path, "done")
    runs.create(tmp_path / "halted", {})
    runs.write_status(tmp_path / "halted", "stopped")
    monkeypatch.setenv("GNET_MAX_RUNS", "1")  # "busy" takes the one slot
    with pytest.raises(RunError, match="at most 1 at once"):
        runs.resume(tmp_path, "halted")
    assert runs.read_run(tmp_path / "halted").state == "stopped" and not (tmp_path / "halted" / "log.txt").exists()


def test_cap_message_names_the_active_runs_and_the_variable(tmp_path, monkeypatch, fake_python):
    monkeypatch.setenv("GNET_MAX_RUNS", "2")
    _fake_running(tmp_path / "a", os.getpid())
    _fake_running(tmp_path / "b", os.getpid())
    with pytest.raises(
        RunError, match=r"^2 run\(s\) are already training \((a, b|b, a)\); at most 2 at once \(GNET_MAX_RUNS\)"
    ):
        runs.start(tmp_path, "c", {})


# ---------------------------------------------------------------------------
# Liveness: pid on this host, heartbeat or status time elsewhere, the launcher's pid while starting


@pytest.fixture
def kills(monkeypatch):
    """os.kill, recorded: signal 0 (a liveness probe) still asks the kernel, any other signal is only recorded."""
    calls: list[tuple[int, int]] = []
    real = os.kill

    def kill(pid, sig):
        calls.append((pid, sig))
        if sig == 0:
            real(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    return calls


def test_pid_alive_only_probes_and_refuses_what_is_no_pid(kills):
    for pid in (None, "12", 1.5, 0, -1):  # 0 and -1 would probe a whole process group / every process
        assert not runs.pid_alive(pid), pid
    assert runs.pid_alive(1) and runs.pid_alive(os.getpid())
    assert kills and {sig for _, sig in kills} == {0}  # a liveness check never sends a real signal


def test_a_process_we_may_not_signal_is_alive(monkeypatch):
    def denied(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", denied)
    assert runs.pid_alive(os.getpid())


def test_a_process_whose_proc_entry_cannot_be_read_is_taken_as_alive(monkeypatch):
    """kill(pid, 0) found it; /proc/PID/stat then unreadable (it exited in between, or no /proc): no error."""

    class Unreadable:
        def __init__(self, path):
            pass

        def read_text(self):
            raise FileNotFoundError

    monkeypatch.setattr(jobs, "Path", Unreadable)
    assert runs.pid_alive(os.getpid())


def test_a_zombie_that_is_not_our_child_reads_as_dead(tmp_path):
    """We cannot reap someone else's child: /proc says it is a zombie. Its command name holds ") ", which
    /proc/PID/stat prints unescaped inside its parentheses."""
    exe = tmp_path / "z) 1"
    exe.symlink_to(shutil.which("true"))
    parent_code = "import os, sys, time\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n"
    parent_code += "print(pid, flush=True)\ntime.sleep(60)\n"  # and never reaps it
    parent = subprocess.Popen([sys.executable, "-c", parent_code, str(exe)], stdout=subprocess.PIPE, text=True)
    try:
        zombie = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while "State:\tZ" not in Path(f"/proc/{zombie}/status").read_text():  # the oracle: /proc's other file
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert "(z) 1)" in Path(f"/proc/{zombie}/stat").read_text()
        os.kill(zombie, 0)  # no error: the kernel still has it
        assert not runs.pid_alive(zombie)
    finally:
        parent.kill()
        parent.wait()


def test_a_run_elsewhere_lives_by_its_heartbeat_or_its_status_time(tmp_path):
    run = runs.create(tmp_path / "r", {})
    now = time.time()
    old = now - 10 * runs.HEARTBEAT_STALE_S
    runs.write_status(run, "running", host="another-host", pid=4321, updated=old)  # its pid is not ours to check
    assert runs.read_run(run).state == "died"  # no heartbeat, status long unchanged
    runs.touch_heartbeat(run)
    assert runs.read_run(run).state == "running"
    os.utime(run / "heartbeat", (old, old))
    assert runs.read_run(run).state == "died"
    runs.touch_heartbeat(run)  # an existing heartbeat is refreshed
    assert now - 1 <= (run / "heartbeat").stat().st_mtime and runs.read_run(run).state == "running"
    os.utime(run / "heartbeat", (old, old))
    runs.write_status(run, "running", host="another-host", pid=4321, updated=now - runs.HEARTBEAT_STALE_S / 2)
    assert runs.read_run(run).state == "running"  # the status is recent enough
    runs.touch_heartbeat(tmp_path / "deleted")  # a run folder removed under the trainer: no error


def test_a_live_pid_on_this_host_outweighs_an_old_heartbeat(tmp_path):
    run = runs.create(tmp_path / "r", {})
    old = time.time() - 10 * runs.HEARTBEAT_STALE_S
    me = jobs.this_process()  # pid and start time, as the trainer records itself
    runs.write_status(run, "running", **me, updated=old)
    assert runs.read_run(run).state == "running"  # a long validation pass, not a death
    # An older record without a start time: the process must predate the record. A process started now does
    # not predate a record from long ago (this test's own process may: a long suite runs for many minutes).
    young = subprocess.Popen(["sleep", "30"])
    try:
        runs.write_status(run, "running", pid=young.pid, host=socket.gethostname(), updated=old)
        assert runs.read_run(run).state == "died"
    finally:
        young.kill()
        young.wait()
    runs.write_status(run, "running", host=socket.gethostname(), updated=old)  # no pid: time decides
    assert runs.read_run(run).state == "died"
    runs.write_status(run, "running", host=socket.gethostname())
    assert runs.read_run(run).state == "running"


def test_a_starting_run_is_judged_by_the_launchers_pid_from_the_same_launch(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    run = runs.create(tmp_path / "r", {})
    runs.write_status(run, "starting", host=socket.gethostname(), started=1.0)
    updated = runs.read_json(run / "status.json")["updated"]
    runs.write_json(run / "launcher.json", {"pid": dead.pid, "started": updated - 1})  # an earlier launch's
    assert runs.read_run(run).state == "starting"
    runs.write_json(run / "launcher.json", {"pid": dead.pid, "started": updated})
    assert runs.read_run(run).state == "died"
    runs.write_json(run / "launcher.json", {"pid": os.getpid(), "started": updated})
    assert runs.read_run(run).state == "starting"
    runs.write_status(run, "starting", host=socket.gethostname(), pid=os.getpid())  # the child's own pid wins
    runs.write_json(run / "launcher.json", {"pid": dead.pid, "started": runs.read_json(run / "status.json")["updated"]})
    assert runs.read_run(run).state == "starting"


def test_stop_signals_only_a_live_process_on_this_host(tmp_path, kills):
    run = runs.create(tmp_path / "r", {})
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "--run-dir", str(run)]
    child = subprocess.Popen(argv, start_new_session=True)  # killpg: os.kill only records here
    try:
        record = {"pid": child.pid, "pid_start": jobs.process_start(child.pid)}
        runs.write_status(run, "running", host="another-host", **record)  # that pid is another machine's process
        runs.request_stop(run)
        assert (run / "STOP").exists() and (child.pid, signal.SIGTERM) not in kills
        runs.write_status(run, "running", host=socket.gethostname(), **record)
        runs.request_stop(run)
        assert kills[-1] == (child.pid, signal.SIGTERM)  # recorded, not delivered
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


@pytest.mark.parametrize("error", [ProcessLookupError, PermissionError])
def test_stop_tolerates_a_process_that_vanished_or_is_not_ours(tmp_path, monkeypatch, error):
    real = os.kill

    def kill(pid, sig):
        if sig:
            raise error
        real(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    _fake_running(tmp_path / "r", os.getpid())
    runs.request_stop(tmp_path / "r")
    assert (tmp_path / "r" / "STOP").exists()


# ---------------------------------------------------------------------------
# Names, folders, readers


def test_runs_root_comes_from_its_variable(monkeypatch):
    monkeypatch.delenv("GNET_RUNS_DIR", raising=False)
    assert runs.runs_root() == Path("runs")
    monkeypatch.setenv("GNET_RUNS_DIR", "/some/where")
    assert runs.runs_root() == Path("/some/where")


def test_validate_name_alone_refuses_dot_names_and_says_the_rule():
    for name in (".", "...", "a..b", None):
        with pytest.raises(RunError, match="1 to 64 letters, digits"):
            runs.validate_name(name)  # type: ignore[arg-type]
    assert runs.validate_name("a.b_C-1") == "a.b_C-1"


def test_sweep_runs_are_addressed_as_sweep_slash_variant(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / runs.SWEEP_FILE).write_text("{}")
    assert runs.run_dir(tmp_path, "sw/v1") == tmp_path / "sw" / "v1"
    (tmp_path / "plain").mkdir()
    (tmp_path / "swlink").symlink_to(tmp_path / "sw")
    for name in ("plain/v1", "swlink/v1", "sw/../x", "sw/a/b", "sw/", None, 5):  # not a sweep; a link; escapes
        with pytest.raises(RunError):
            runs.run_dir(tmp_path, name)  # type: ignore[arg-type]


def test_list_runs_includes_sweep_variants_and_nothing_else(tmp_path, monkeypatch):
    sw = tmp_path / "sw"
    sw.mkdir()
    (sw / runs.SWEEP_FILE).write_text("{}")
    runs.create(sw / "v1", {"train": {"epochs": 2}})
    (sw / "stray").mkdir()  # no config.json
    (sw / "bad name").mkdir()
    (sw / "bad name" / "config.json").write_text("{}")
    (sw / "link").symlink_to(sw / "v1")
    (tmp_path / "swlink").symlink_to(sw)
    (tmp_path / "plain" / "inner").mkdir(parents=True)  # not a sweep: no sweep.json
    (tmp_path / "plain" / "inner" / "config.json").write_text("{}")
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path))
    [info] = runs.list_runs()
    assert (info.name, info.path, info.state, info.config) == ("sw/v1", sw / "v1", "created", {"train": {"epochs": 2}})


def test_create_makes_missing_parents_and_reuses_a_folder_without_a_run(tmp_path):
    run = runs.create(tmp_path / "deep" / "er" / "r", {"train": {"epochs": 1}})
    info = runs.read_run(run)
    assert (info.name, info.path, info.state) == ("r", run, "created")
    assert info.config == runs.read_json(run / "config.json") == {"train": {"epochs": 1}}
    assert (run / "checkpoints").is_dir()
    leftover = tmp_path / "left"
    (leftover / "checkpoints").mkdir(parents=True)  # an attempt that failed before writing any run file
    assert runs.read_run(runs.create(leftover, {})).state == "created"


@pytest.mark.parametrize("file", ["config.json", "status.json"])
def test_create_refuses_a_folder_holding_either_run_file(tmp_path, file):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / file).write_text("{}")
    with pytest.raises(RunError, match="'r' already exists"):
        runs.create(tmp_path / "r", {})


def test_run_info_settings_and_checkpoints(tmp_path):
    run = runs.create(tmp_path / "r", {"train": {"epochs": 3}})
    info = runs.read_run(run)
    assert info.setting("epochs") == 3 and info.setting("dataset") == "" and info.setting("dataset", "?") == "?"
    assert info.checkpoint() is None
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    (run / "checkpoints" / "best.pt").mkdir()  # not a file
    assert info.checkpoint() == run / "checkpoints" / "last.pt" and info.checkpoint("best") is None
    runs.write_json(run / "config.json", {"train": ["not", "a", "dict"]})
    assert runs.read_run(run).setting("epochs", 7) == 7


def test_required_metric_keys_must_hold_real_numbers(tmp_path):
    values = [1, 2.5, "3", None, True, [4]]
    runs.append_metrics(tmp_path, [{"step": i, "loss": v} for i, v in enumerate(values)] + [{"step": 9}])
    assert [r["loss"] for r in runs.read_metrics(tmp_path, require=("loss",))] == [1, 2.5]
    assert len(runs.read_metrics(tmp_path)) == 7


def test_metrics_are_parsed_again_whenever_the_file_changes(tmp_path):
    f = tmp_path / "metrics.jsonl"
    t1, t2 = 10**18, 2 * 10**18
    f.write_text('{"step": 1}\n')
    os.utime(f, ns=(t1, t1))
    assert [r["step"] for r in runs.read_metrics(tmp_path)] == [1]
    f.write_text('{"step": 2}\n')  # same size, new time
    os.utime(f, ns=(t2, t2))
    assert [r["step"] for r in runs.read_metrics(tmp_path)] == [2]
    f.write_text('{"step": 3}\n{"step": 4}\n')  # same time, new size
    os.utime(f, ns=(t2, t2))
    assert [r["step"] for r in runs.read_metrics(tmp_path)] == [3, 4]


def test_telemetry_records_need_an_integer_step_and_branches_and_come_sorted(tmp_path):
    recs = [{"step": 3, "branches": {}}, {"step": 1, "branches": {"b": 1}}, {"step": 2.0, "branches": {}}]
    recs += [{"step": True, "branches": {}}, {"step": 4, "branches": []}, {"branches": {}}]
    runs.append_jsonl(tmp_path / runs.TELEMETRY, recs)
    assert runs.read_telemetry(tmp_path) == [{"step": 1, "branches": {"b": 1}}, {"step": 3, "branches": {}}]
