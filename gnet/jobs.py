"""One supervisor for the app's background jobs: training runs (gnet.runs), feature-visualisation jobs
(gnet.featurevis) and sweep schedulers (gnet.sweeps).

A job is a folder holding, whatever its kind:

    status file     {"state", "updated", "pid", "pid_start", "host", "message", ...the kind's own fields},
                    replaced atomically; written by the job's process (and "starting" by the launcher)
    launcher file   {"pid", "pid_start", "host", "updated", "for"}: the process the launcher spawned, for the
                    launch whose "starting" status was stamped `for` (an earlier launch's record never counts)
    log file        the process' stdout and stderr
    STOP            present when a graceful stop was asked for; the job checks it every step

Liveness. A job's process is identified by its pid *and* its start time (/proc/PID/stat field 22, clock ticks
after boot), recorded when it started: a pid the kernel has since given to another process never reads as
alive. A record without a start time (written by an older version) counts only for a process that had
started by the time the record was written. Elsewhere (another host sharing the folder), or before any pid is
recorded, the last sign of life decides: a status or heartbeat older than the kind's staleness means gone.

Which pid may be signalled (the one rule). Only a process that the job itself recorded (pid and start time
match /proc now, on this host), whose job folder lies under the root it is asked about with no symbolic link
on the way, and whose command line names that very folder (`--run-dir`, `--job-dir`, `--sweep-dir`). A forged
or stale status file naming another process, or a reused pid, gets no signal: the STOP file is all it gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnet import fsio

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACTIVE = ("starting", "running", "stopping")
STOP_FILE = "STOP"
# Background jobs yield the CPU to the app's pages, which then stay live beside a run that uses every core; a
# machine with nothing else to do still gives the job all of it.
BACKGROUND_NICE = 10


@dataclass(frozen=True)
class Kind:
    """What differs between job kinds: the command, its folder flag, file names and staleness."""

    command: str  # `python -m gnet COMMAND`
    dir_flag: str  # the flag naming the job's folder on its command line
    stale_s: float  # no sign of life for this long (and no pid to check on this host) → gone
    status_file: str = "status.json"
    launcher_file: str = "launcher.json"
    log_file: str = "log.txt"


TRAINING = Kind(command="train", dir_flag="--run-dir", stale_s=90.0)
VISUALISATION = Kind(command="visualize", dir_flag="--job-dir", stale_s=120.0)
SCHEDULER = Kind(
    command="sweep",
    dir_flag="--sweep-dir",
    stale_s=60.0,
    status_file="scheduler.json",
    launcher_file="scheduler.launch.json",
    log_file="scheduler.log",
)


class Busy(RuntimeError):
    """Another process holds a job's lock."""


# ---------------------------------------------------------------------------
# Processes: pid + start time


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 on (the command name, field 2, may hold spaces and ')': split after the last)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rpartition(")")[2].split()
    return fields if len(fields) >= 20 else None


def process_start(pid: Any) -> int | None:
    """The process' start time in clock ticks after boot (/proc/PID/stat field 22); None if there is none."""
    if not _is_pid(pid):
        return None
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except ValueError:
        return None


@functools.cache
def _boot_time() -> float | None:
    with contextlib.suppress(OSError, ValueError, StopIteration):
        text = Path("/proc/stat").read_text()
        return float(next(line.split()[1] for line in text.splitlines() if line.startswith("btime ")))
    return None


def _started_at(pid: int) -> float | None:
    """The process' start as wall-clock time (boot time + field 22), None where /proc cannot say."""
    ticks, boot = process_start(pid), _boot_time()
    if ticks is None or boot is None:
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _is_pid(pid: Any) -> bool:
    """A number that can be a pid (a pid_t: os.kill and waitpid overflow on a bigger one from a file)."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31


def pid_alive(pid: Any) -> bool:
    """A process with this pid exists and has not exited (a zombie is dead). Probes only (signal 0)."""
    if not _is_pid(pid):
        return False  # 0 and -1 would probe a whole process group / every process
    with contextlib.suppress(ChildProcessError, OSError):
        # Our own child that has exited stays a zombie (kill(pid, 0) succeeds) until reaped.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return not (fields and fields[0] in ("Z", "X"))


def this_process() -> dict[str, Any]:
    """The record a job's process writes about itself (merged into its status)."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start(pid), "host": socket.gethostname()}


def recorded_alive(record: Mapping[str, Any]) -> bool:
    """Whether the process a record names is still that process: its pid alive and its start time the one
    recorded (an older record without one: a process that had started by the record's "updated" time)."""
    pid = record.get("pid")
    if not pid_alive(pid):
        return False
    start = record.get("pid_start")
    if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
        now = process_start(pid)
        return now is None or now == start  # None: no /proc to ask, the probe is all there is
    started, stamp = _started_at(pid), record.get("updated")
    if started is None or not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        return True
    return started <= stamp


def _serves(pid: int, kind: Kind, path: Path) -> bool:
    """The process' command line names this job's folder with the kind's flag (relative to its own cwd)."""
    try:
        for _ in range(50):  # empty for a moment while the process is exec'ing (just spawned)
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            if raw:
                break
            time.sleep(0.01)
        argv = [a.decode(errors="replace") for a in raw.split(b"\0")]
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    named = [b for a, b in zip(argv, argv[1:]) if a == kind.dir_flag]
    named += [a.split("=", 1)[1] for a in argv if a.startswith(kind.dir_flag + "=")]
    target = os.path.realpath(path)
    return any(os.path.realpath(os.path.join(cwd, n)) == target for n in named if n)


def signalable(root: Path, path: Path, kind: Kind, record: Mapping[str, Any]) -> int | None:
    """The pid that stopping this job may signal, or None (see the module's rule)."""
    pid, start = record.get("pid"), record.get("pid_start")
    if record.get("host") != socket.gethostname() or not _is_pid(pid) or not isinstance(start, int):
        return None
    if not fsio.is_confined(root, path) or not fsio.is_plain_dir(path):
        return None
    if process_start(pid) != start or not pid_alive(pid) or not _serves(pid, kind, path):
        return None
    return pid


# ---------------------------------------------------------------------------
# Status files


def read_status(path: Path, kind: Kind) -> dict[str, Any]:
    """The job's status ({} for a missing, torn, linked or wrong-shaped file)."""
    return fsio.read_json(path / kind.status_file) or {}


def write_status(path: Path, kind: Kind, state: str, merge: bool = False, **fields: Any) -> None:
    """Replace the status atomically; `fields` may override "updated". merge=True keeps the old fields.
    Not synced: it is rewritten often, and after a crash the pid, not this file's durability, tells."""
    old = read_status(path, kind) if merge else {}
    fsio.write_json(path / kind.status_file, {**old, "state": state, "updated": time.time(), **fields}, sync=False)


def _num(value: Any, default: float = 0.0) -> float:
    """A time from a file someone may have edited: anything but a finite number is the default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    try:
        value = float(value)
    except OverflowError:
        return default
    return value if math.isfinite(value) else default


def launch_record(path: Path, kind: Kind, status: Mapping[str, Any]) -> dict[str, Any]:
    """The launcher's record of the process it spawned for the launch that wrote this status, else {}."""
    rec = fsio.read_json(path / kind.launcher_file) or {}
    launch = rec.get("for", rec.get("started"))  # "started": the key of records written by older versions
    return rec if launch is not None and launch == status.get("updated") else {}


def launched_this_process(path: Path, kind: Kind, status: Mapping[str, Any]) -> bool:
    """This process is the one the launcher spawned for the launch on disk (so it may report that launch's end)."""
    rec = launch_record(path, kind, status)
    return rec.get("pid") == os.getpid() and rec.get("pid_start") in (None, process_start(os.getpid()))


def alive(path: Path, kind: Kind, status: Mapping[str, Any], last_sign: float | None = None) -> bool:
    """Whether an active-looking status is still served by a process (see the module's liveness rule).

    last_sign: the latest time the job showed life (e.g. a heartbeat); the status' "updated" counts too."""
    record: Mapping[str, Any] = status if _is_pid(status.get("pid")) else launch_record(path, kind, status)
    now = time.time()
    # a sign from further in the future than clocks drift apart was written by hand: it is no sign of life
    signs = [t for t in (_num(last_sign), _num(status.get("updated"))) if t <= now + kind.stale_s]
    if status.get("host") == socket.gethostname() and _is_pid(record.get("pid")):
        return recorded_alive(record)
    return bool(signs) and now - max(signs) <= kind.stale_s


def is_stale_start(status: Mapping[str, Any], within_s: float) -> bool:
    """A "starting" written this long ago with nothing since: the launch never got going."""
    return time.time() - _num(status.get("updated"), _num(status.get("started"))) > within_s


# ---------------------------------------------------------------------------
# Spawning, stopping


def spawn(argv: list[str], log: Path) -> int:
    """`python -m gnet ARGV` in its own session (so it outlives the page) at a lower CPU priority; its pid."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gnet", *argv],
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # The child is still starting Python: the threads torch makes later inherit its priority. Only ever lower it.
    nice = max(BACKGROUND_NICE, os.getpriority(os.PRIO_PROCESS, 0))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
    # Linux shares the CPU between sessions first (autogroup) and applies nice only inside each: the job's new
    # session needs the lower priority too, or the pages' session still gets only half the CPU beside it.
    with contextlib.suppress(OSError):
        Path(f"/proc/{proc.pid}/autogroup").write_text(f"{nice}\n")
    return proc.pid


def launch(path: Path, kind: Kind, argv: list[str]) -> int:
    """Spawn the job's process and record it (pid + start time) for the launch whose "starting" status is on
    disk now. The caller writes that status first: a quick child may replace it with its own."""
    starting = read_status(path, kind)
    pid = spawn(argv, path / kind.log_file)
    fsio.write_json(
        path / kind.launcher_file,
        {
            "pid": pid,
            "pid_start": process_start(pid),
            "host": socket.gethostname(),
            "updated": time.time(),
            "for": starting.get("updated"),
        },
    )
    return pid


def request_stop(root: Path, path: Path, kind: Kind) -> bool:
    """Ask a job to stop: the STOP file (seen by every rank, on any host), and SIGTERM to its process when the
    rule allows (see the module). True when a signal was sent."""
    fsio.confined(root, path, "job folder")
    if not fsio.is_plain_dir(path):
        return False
    fsio.atomic_write_bytes(path / STOP_FILE, b"stop\n")
    status = read_status(path, kind)
    for record in (status, launch_record(path, kind, status)):
        pid = signalable(root, path, kind, record)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
                return True
    return False


def clear_stop(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (path / STOP_FILE).unlink()


def stop_requested(path: Path) -> bool:
    return os.path.lexists(path / STOP_FILE)


class StopSignal:
    """SIGTERM / SIGINT set a flag the job checks every step (with the STOP file); installed only from the
    main thread (elsewhere the STOP file alone works)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.requested = False

    def install(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> StopSignal:
        def handler(signum: int, frame: Any) -> None:
            self.requested = True

        with contextlib.suppress(ValueError):  # not the main thread
            for sig in signals:
                signal.signal(sig, handler)
        return self

    def __call__(self) -> bool:
        return self.requested or (self.path is not None and stop_requested(self.path))


# ---------------------------------------------------------------------------
# Locks: at most one process serves a job (a sweep has at most one scheduler)


@contextlib.contextmanager
def exclusive(lock: Path, wait_s: float = 1.0) -> Iterator[None]:
    """Hold the lock file for the block; Busy if another process holds it. The kernel drops the lock with the
    process, so a killed holder never leaves it stale. `wait_s` covers another process' brief `held` probe."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(str(lock)) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def held(lock: Path) -> bool:
    """Whether some process holds the lock now (a probe: takes and drops a shared lock at once)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
