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
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from gnet import fsio, jobs
from gnet.fsio import atomic_write_bytes
from gnet.metrics import EpochRecord, MetricRecord, StepRecord

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ACTIVE = jobs.ACTIVE
HEARTBEAT_EVERY_S = 2.0
HEARTBEAT_STALE_S = jobs.TRAINING.stale_s  # no heartbeat for this long (and no pid to check on this host) → died
PROJECT_ROOT = jobs.PROJECT_ROOT
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
    """The directory of run `name`, refusing anything that could leave the runs root or pass a symbolic link.

    A run is a direct child of the root, or "SWEEP/RUN": a run inside a sweep directory (one that holds
    sweep.json), itself a direct child of the root."""
    sweep, sep, rest = name.partition("/") if isinstance(name, str) else (name, "", "")
    if sep and fsio.is_plain_file(root / validate_name(sweep) / SWEEP_FILE):
        validate_name(rest)
    else:
        validate_name(name)
    path = root / name
    try:
        fsio.confined(root, path, "run")
    except fsio.ConfinementError as e:
        raise RunError(str(e)) from None
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
    fsio.write_json(path, data)


def write_status(path: Path, state: str, **fields: Any) -> None:
    """The run's status.json (gnet.jobs' schema), replaced atomically."""
    jobs.write_status(path, jobs.TRAINING, state, **fields)


def touch_heartbeat(path: Path) -> None:
    """Create or touch the heartbeat file; a link in its place is neither followed nor touched."""
    hb = path / "heartbeat"
    with contextlib.suppress(OSError):
        os.close(os.open(hb, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        os.utime(hb, follow_symlinks=False)


def append_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    """Append whole lines in one write, so a crash tears at most the last line."""
    append_jsonl(path / "metrics.jsonl", records)


def append_jsonl(file: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    fsio.append_text(file, "".join(json.dumps(r, allow_nan=True) + "\n" for r in records))


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
    """The JSON object in a file, None for anything else (gnet.fsio.read_json: links are not followed)."""
    return fsio.read_json(path)


@overload
def read_metrics(path: Path, kind: Literal["step"], require: tuple[str, ...] = ()) -> list[StepRecord]: ...
@overload
def read_metrics(path: Path, kind: Literal["epoch"], require: tuple[str, ...] = ()) -> list[EpochRecord]: ...
@overload
def read_metrics(path: Path, kind: None = None, require: tuple[str, ...] = ()) -> list[MetricRecord]: ...
def read_metrics(path: Path, kind: str | None = None, require: tuple[str, ...] = ()) -> list[Any]:
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
        st = os.lstat(file)
    except OSError:
        return ()
    if not stat.S_ISREG(st.st_mode):  # a link or a FIFO is no metrics file
        return ()
    return _parsed_metrics(str(file), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _parsed_metrics(file: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], ...]:
    try:
        text = fsio.read_text(Path(file))
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
        """checkpoints/WHICH.pt, a regular file reached through no symbolic link (the run folder is confined
        by run_dir / list_runs; `checkpoints/` and the file must not be links either), else None."""
        p = self.path / "checkpoints" / f"{which}.pt"
        ok = fsio.is_plain_dir(self.path) and fsio.is_confined(self.path, p) and fsio.is_plain_file(p)
        return p if ok else None


pid_alive = jobs.pid_alive


def _num(value: Any, default: float = 0.0) -> float:
    """A number from a file someone may have edited: anything else is the default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def read_run(path: Path) -> RunInfo:
    """The run's state as seen now, with 'died' for a run whose process is gone (gnet.jobs' liveness rule:
    the recorded pid and start time on this host, the heartbeat's age elsewhere or before a pid is known)."""
    has_status = os.path.lexists(path / "status.json")
    if not fsio.is_plain_dir(path) or not (has_status or os.path.lexists(path / "config.json")):
        return RunInfo(name=path.name, path=path, state="missing")  # no run (yet): create() cut short, or none
    status = read_json(path / "status.json") or {}
    config = read_json(path / "config.json") or {}
    # create() writes config.json, then status.json: a config with no status at all is a creation cut short
    cut = not has_status and fsio.is_plain_file(path / "config.json")
    state = "created" if cut else str(status.get("state", "unknown"))
    if state in ACTIVE:
        try:
            beat = os.lstat(path / "heartbeat").st_mtime
        except OSError:
            beat = None
        if not jobs.alive(path, jobs.TRAINING, status, beat):
            state = "died"
            status = {
                **status,
                "message": "the training process ended without saying so (killed or crashed); "
                "resume continues from the last checkpoint",
            }
    return RunInfo(name=path.name, path=path, state=state, status=status, config=config)


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Runs under the root, newest first; symlinks and odd names are ignored."""
    root = root or runs_root()
    runs = []
    for p in fsio.plain_children(root):
        if NAME_RE.fullmatch(p.name) and fsio.is_plain_file(p / "config.json"):
            runs.append(read_run(p))
        elif NAME_RE.fullmatch(p.name) and fsio.is_plain_file(p / SWEEP_FILE):
            for q in fsio.plain_children(p):  # a sweep's variants: ordinary runs one level down
                if NAME_RE.fullmatch(q.name) and fsio.is_plain_file(q / "config.json"):
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


CAP_DEPTH = 4  # how deep active_runs looks: a run inside a folder inside a sweep inside ... (made by hand)


def active_runs(root: Path) -> list[str]:
    """Every active run under the root, however it got there (within CAP_DEPTH folders; links and hidden
    folders skipped): the cap counts runs that list_runs does not show too, e.g. one nested by hand."""
    found: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        for p in fsio.plain_children(folder):
            if p.name.startswith(".") or p.name == "checkpoints":
                continue
            if fsio.is_plain_file(p / "status.json") and read_run(p).active:
                found.append(p.relative_to(root).as_posix())
            if depth < CAP_DEPTH:
                walk(p, depth + 1)

    walk(root, 1)
    return sorted(found)


def _check_cap(root: Path) -> None:
    active = active_runs(root)
    if len(active) >= max_runs():
        raise RunError(
            f"{len(active)} run(s) are already training ({', '.join(active)}); at most {max_runs()} at once "
            "(GNET_MAX_RUNS). Stop one or wait for it to finish."
        )


BACKGROUND_NICE = jobs.BACKGROUND_NICE
spawn_background = jobs.spawn  # training runs, sweep schedulers and visualisations: one spawn (gnet.jobs)


def _spawn(path: Path, extra_args: list[str]) -> int:
    return jobs.launch(path, jobs.TRAINING, ["train", "--run-dir", str(path.resolve()), *extra_args])


def _launch(path: Path, extra_args: list[str]) -> None:
    """Spawn the trainer; a spawn the system refuses (no processes left, a link as log.txt) fails the run with
    the reason instead of leaving it "starting"."""
    try:
        _spawn(path, extra_args)
    except OSError as e:
        write_status(path, "failed", message=f"could not start the training process ({e.strerror or e})")
        raise RunError(f"could not start the training process ({e.strerror or e})") from None


def start(root: Path, name: str, config: dict[str, Any]) -> RunInfo:
    """Create run `name` with this config and start training it in a separate process."""
    path = run_dir(root, name)
    with _launch_lock(root):
        _check_cap(root)
        create(path, config)
        # "starting" is written before the spawn: the child replaces it with its own pid and state,
        # and a parent writing after the spawn could overwrite a quick child's "finished".
        write_status(path, "starting", host=socket.gethostname(), started=time.time())
        _launch(path, [])
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
        jobs.clear_stop(path)
        write_status(
            path,
            "starting",
            host=socket.gethostname(),
            started=info.status.get("started", time.time()),
            resumed=time.time(),
        )
        _launch(path, ["--resume"])
    return read_run(path)


def run_root(path: Path) -> Path:
    """The runs root a run folder belongs to: its parent, or its sweep's parent for a sweep's run."""
    return path.parent.parent if fsio.is_plain_file(path.parent / SWEEP_FILE) else path.parent


def request_stop(path: Path, root: Path | None = None) -> None:
    """Ask for a graceful stop: a STOP file (seen by every rank, any host), and SIGTERM to the process the run
    recorded, only if gnet.jobs' rule allows it (pid + start time, this host, its command names this folder)."""
    info = read_run(path)
    if info.state == "missing":
        raise RunError(f"run {path.name!r} no longer exists")
    if not info.active:
        raise RunError(f"run {path.name!r} is not running ({info.state})")
    try:
        jobs.request_stop(run_root(path) if root is None else root, path, jobs.TRAINING)
    except fsio.ConfinementError as e:
        raise RunError(str(e)) from None


def delete(root: Path, name: str) -> None:
    path = run_dir(root, name)
    info = read_run(path)
    if info.state == "missing":
        raise RunError(f"run {name!r} no longer exists")
    if info.active:
        raise RunError(f"run {name!r} is {info.state}; stop it before deleting it")
    shutil.rmtree(path)
