"""Run directories: create, launch, watch, stop, delete.

A run is a directory (under GNET_RUNS_DIR, default ./runs, when started from the app):

    config.json      the training config, with the network spec and preprocessing
    status.json      state, pid, host, progress; replaced atomically
    heartbeat        touched every few seconds by the training process
    metrics.jsonl    one JSON object per line ("step" and "epoch" records)
    telemetry.jsonl  per-branch statistics every K steps (gnet.telemetry), same reader rules
    events.out.tfevents.*  TensorBoard events, when the tensorboard package is installed
    checkpoints/     last.pt, best.pt (gnet.checkpoints format, written atomically)
    samples.pt       a few test images for the page's predictions
    log.txt          the process's stdout/stderr (tracebacks go here, never to the page)
    STOP             present when a graceful stop was asked for

A sweep (gnet.sweeps) is a directory under the runs root holding sweep.json and one ordinary run
per variant; such a run is named "SWEEP/VARIANT" here, and lists, opens, resumes and deletes like
any other run.

Readers tolerate anything half-written: a torn last metrics line is ignored, a
missing or unparsable status reads as "unknown". A run that was "running" but whose
process is gone (pid dead, or heartbeat stale) reads as "died"; its last checkpoint
is resumable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnet.checkpoints import atomic_write_bytes

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ACTIVE = ("starting", "running", "stopping")
FINAL = ("finished", "stopped", "failed", "died")
HEARTBEAT_EVERY_S = 2.0
HEARTBEAT_STALE_S = 90.0  # no heartbeat for this long (and no pid to check on this host) → died
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SWEEP_FILE = "sweep.json"  # marks a directory of the runs root as a sweep: its subdirectories are runs
TELEMETRY = "telemetry.jsonl"
TELEMETRY_STATS: dict[str, str] = {  # per-branch record key (gnet.telemetry) -> label
    "out_rms": "output RMS",
    "grad_rms": "output-gradient RMS",
    "weight_norm": "weight norm",
    "update_norm": "last update norm",
}


class RunError(ValueError):
    """A run cannot be created, found, started or changed; the message says why."""


def runs_root() -> Path:
    return Path(os.environ.get("GNET_RUNS_DIR", "runs"))


def max_runs() -> int:
    try:
        return max(1, int(os.environ.get("GNET_MAX_RUNS", "2")))
    except ValueError:
        return 2


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or set(name) == {"."} or ".." in name:
        raise RunError("a run name is 1 to 64 letters, digits, '.', '_' or '-' (no '..')")
    return name


def run_dir(root: Path, name: str) -> Path:
    """The directory of run `name`, refusing anything that could leave the runs root.

    "SWEEP/RUN" names a run inside a sweep directory (one that holds sweep.json)."""
    sweep, sep, rest = name.partition("/") if isinstance(name, str) else (name, "", "")
    if sep and (root / validate_name(sweep) / SWEEP_FILE).is_file() and not (root / sweep).is_symlink():
        validate_name(rest)
    else:
        validate_name(name)
    root_resolved = root.resolve()
    path = root / name
    if path.is_symlink():
        raise RunError(f"run {name!r} is a symbolic link; refusing to use it")
    if not path.resolve().is_relative_to(root_resolved) or path.resolve() == root_resolved:
        raise RunError(f"run {name!r} is outside the runs folder")
    return path


# ---------------------------------------------------------------------------
# Writing (the training process, rank 0 only)


def create(path: Path, config: dict[str, Any]) -> Path:
    """Make a new run directory with its config; refuses one that already holds a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        if (path / "config.json").exists() or (path / "status.json").exists():
            raise RunError(f"a run named {path.name!r} already exists; choose another name or resume it") from None
    (path / "checkpoints").mkdir(exist_ok=True)
    write_json(path / "config.json", config)
    write_status(path, "created")
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def write_status(path: Path, state: str, **fields: Any) -> None:
    """Atomic (temp file + rename) but without fsync: it is rewritten often, and after a
    crash the pid and heartbeat, not this file's durability, tell what happened."""
    target = path / "status.json"
    tmp = path / f".status.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps({"state": state, "updated": time.time(), **fields}, indent=1), encoding="utf-8")
    os.replace(tmp, target)


def touch_heartbeat(path: Path) -> None:
    hb = path / "heartbeat"
    with contextlib.suppress(OSError):
        hb.touch()
        os.utime(hb)


def append_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    """Append whole lines in one write, so a crash tears at most the last line."""
    append_jsonl(path / "metrics.jsonl", records)


def append_jsonl(file: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    with open(file, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, allow_nan=True) + "\n" for r in records))
        f.flush()


def truncate_metrics(path: Path, max_step: int) -> None:
    """Keep only records up to a checkpoint's step (resume replays what came after it)."""
    truncate_jsonl(path / "metrics.jsonl", max_step)


def truncate_jsonl(file: Path, max_step: int) -> None:
    if not file.exists():
        return
    kept = [r for r in _read_jsonl(file) if _num(r.get("step")) <= max_step]
    atomic_write_bytes(file, "".join(json.dumps(r) + "\n" for r in kept).encode())


# ---------------------------------------------------------------------------
# Reading (the page, tests, anyone): never raises on half-written files


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_metrics(path: Path, kind: str | None = None, require: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """All complete metric records; a torn or garbled line is skipped, a missing file is [].

    require: keys that must hold numbers (records without them are skipped, so a chart never fails).
    The page polls this every second or two: a file is parsed again only when it has changed.
    Treat the records as read-only (they are shared between callers)."""
    return [
        rec
        for rec in _read_jsonl(path / "metrics.jsonl")
        if (kind is None or rec.get("kind") == kind)
        and all(isinstance(rec.get(k), (int, float)) and not isinstance(rec.get(k), bool) for k in require)
    ]


def read_telemetry(path: Path) -> list[dict[str, Any]]:
    """The run's telemetry records (gnet.telemetry), by step; the same tolerance as read_metrics, and a
    record is kept only with a numeric step and a dict of branches (a hand-edited line cannot break a chart)."""
    out = [
        r
        for r in _read_jsonl(path / TELEMETRY)
        if isinstance(r.get("step"), int)
        and not isinstance(r.get("step"), bool)
        and isinstance(r.get("branches"), dict)
    ]
    return sorted(out, key=lambda r: r["step"])


def _read_jsonl(file: Path) -> tuple[dict[str, Any], ...]:
    try:
        st = file.stat()
    except OSError:
        return ()
    return _parsed_metrics(str(file), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _parsed_metrics(file: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], ...]:
    try:
        text = Path(file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return tuple(out)


@dataclass
class RunInfo:
    name: str
    path: Path
    state: str  # created starting running stopping finished stopped failed died missing unknown
    status: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def message(self) -> str:
        return str(self.status.get("message", ""))

    def setting(self, key: str, default: Any = "") -> Any:
        """A training setting from config.json (tolerates a garbled file)."""
        train = self.config.get("train")
        return train.get(key, default) if isinstance(train, dict) else default

    def checkpoint(self, which: str = "last") -> Path | None:
        p = self.path / "checkpoints" / f"{which}.pt"
        return p if p.is_file() else None


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
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
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X"):
            return False
    return True


def _num(value: Any, default: float = 0.0) -> float:
    """A number from a file someone may have edited: anything else is the default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def read_run(path: Path) -> RunInfo:
    """The run's state as seen now, with 'died' for a run whose process is gone."""
    if not path.is_dir():
        return RunInfo(path.name, path, "missing")
    status = read_json(path / "status.json") or {}
    config = read_json(path / "config.json") or {}
    state = str(status.get("state", "unknown"))
    if state in ACTIVE:
        same_host = status.get("host") == socket.gethostname()
        try:
            beat = (path / "heartbeat").stat().st_mtime
        except OSError:
            beat = _num(status.get("updated"))
        stale = time.time() - max(beat, _num(status.get("updated"))) > HEARTBEAT_STALE_S
        pid = status.get("pid")
        if not isinstance(pid, int) and state == "starting":  # the child has not written its own yet
            launched = read_json(path / "launcher.json") or {}
            pid = launched.get("pid") if launched.get("started") == status.get("updated") else None
        has_pid = isinstance(pid, int)
        if (same_host and has_pid and not pid_alive(pid)) or ((not same_host or not has_pid) and stale):
            state = "died"
            status = {
                **status,
                "message": "the training process ended without saying so (killed or crashed); "
                "resume continues from the last checkpoint",
            }
    return RunInfo(path.name, path, state, status, config)


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Runs under the root, newest first; symlinks and odd names are ignored."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        if p.is_dir() and not p.is_symlink() and NAME_RE.fullmatch(p.name) and (p / "config.json").exists():
            runs.append(read_run(p))
        elif p.is_dir() and not p.is_symlink() and NAME_RE.fullmatch(p.name) and (p / SWEEP_FILE).is_file():
            for q in p.iterdir():  # a sweep's variants: ordinary runs one level down
                if q.is_dir() and not q.is_symlink() and NAME_RE.fullmatch(q.name) and (q / "config.json").exists():
                    runs.append(dataclasses.replace(read_run(q), name=f"{p.name}/{q.name}"))
    return sorted(runs, key=lambda r: _num(r.status.get("started"), _num(r.status.get("updated"))), reverse=True)


# ---------------------------------------------------------------------------
# Launching and controlling (the page)


@contextlib.contextmanager
def _launch_lock(root: Path) -> Iterator[None]:
    """Serialise cap check + launch across sessions and processes."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".launch.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_cap(root: Path) -> None:
    active = [r.name for r in list_runs(root) if r.active]
    if len(active) >= max_runs():
        raise RunError(
            f"{len(active)} run(s) are already training ({', '.join(active)}); at most {max_runs()} at once "
            "(GNET_MAX_RUNS). Stop one or wait for it to finish."
        )


# Background jobs (training runs, sweep schedulers, feature visualisations) yield the CPU to the app's pages,
# which then stay live beside a run that uses every core; a machine with nothing else to do still gives the job
# all of it.
BACKGROUND_NICE = 10


def spawn_background(argv: list[str], log: Path) -> int:
    """`python -m gnet ARGV` in its own session (so it outlives the page) at a lower CPU priority; returns its pid."""
    with open(log, "ab") as out:
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


def _spawn(path: Path, extra_args: list[str]) -> int:
    starting = read_json(path / "status.json") or {}
    pid = spawn_background(["train", "--run-dir", str(path.resolve()), *extra_args], path / "log.txt")
    write_json(path / "launcher.json", {"pid": pid, "started": starting.get("updated")})
    return pid


def start(root: Path, name: str, config: dict[str, Any]) -> RunInfo:
    """Create run `name` with this config and start training it in a separate process."""
    path = run_dir(root, name)
    with _launch_lock(root):
        _check_cap(root)
        create(path, config)
        # "starting" is written before the spawn: the child replaces it with its own pid and state,
        # and a parent writing after the spawn could overwrite a quick child's "finished".
        write_status(path, "starting", host=socket.gethostname(), started=time.time())
        _spawn(path, [])
    return read_run(path)


def resume(root: Path, name: str) -> RunInfo:
    path = run_dir(root, name)
    info = read_run(path)
    if info.state == "missing":
        raise RunError(f"run {name!r} no longer exists")
    if info.active:
        raise RunError(f"run {name!r} is still {info.state}")
    if info.state == "finished":
        raise RunError(f"run {name!r} has finished all its epochs")
    with _launch_lock(root):
        _check_cap(root)
        with contextlib.suppress(FileNotFoundError):
            (path / "STOP").unlink()
        write_status(
            path,
            "starting",
            host=socket.gethostname(),
            started=info.status.get("started", time.time()),
            resumed=time.time(),
        )
        _spawn(path, ["--resume"])
    return read_run(path)


def request_stop(path: Path) -> None:
    """Ask for a graceful stop: a STOP file (seen by every rank, any host) and SIGTERM to the pid."""
    info = read_run(path)
    if info.state == "missing":
        raise RunError(f"run {path.name!r} no longer exists")
    if not info.active:
        raise RunError(f"run {path.name!r} is not running ({info.state})")
    atomic_write_bytes(path / "STOP", b"stop\n")
    pid = info.status.get("pid")
    if info.status.get("host") == socket.gethostname() and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


def delete(root: Path, name: str) -> None:
    path = run_dir(root, name)
    info = read_run(path)
    if info.state == "missing":
        raise RunError(f"run {name!r} no longer exists")
    if info.active:
        raise RunError(f"run {name!r} is {info.state}; stop it before deleting it")
    shutil.rmtree(path)
