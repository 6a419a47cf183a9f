"""Sweeps: one base network, a few design variants, each trained as an ordinary run.

    <runs root>/<sweep>/sweep.json          base spec, variants, the shared training settings
    <runs root>/<sweep>/scheduler.json      the process that starts the runs (gnet.jobs' status schema)
    <runs root>/<sweep>/.scheduler.lock     held by the one scheduler serving the sweep while it runs
    <runs root>/<sweep>/<variant>/          an ordinary run directory (gnet.runs), e.g. "no-reduce"

A sweep folder is a direct child of the runs root, never inside another sweep or a run, so the runs root's
cap counts its runs and the Training page lists them.

Each variant's run is started with gnet.runs.start (a separate `python -m gnet train --run-dir`
process), so it shows up, opens, resumes and deletes on the Training page like any other run
(named "<sweep>/<variant>"). The scheduler (`python -m gnet sweep`, which the app also launches
in the background) starts runs one after another or up to `parallel` at once, never above the
runs root's cap (GNET_MAX_RUNS): a variant waits, queued, until a slot frees. Killed, the
scheduler loses nothing: `--resume` keeps finished runs, resumes a stopped or killed one from its
last checkpoint (the trainer's own --resume) and starts the ones still queued.

Variants (names as the CLI takes them):
    base        the base network as given
    edits       the network edited in the app (the CLI's --edits FILE.json)
    no-reduce   no 1×1 reductions in b2 and b3 (the paper's naive module)
    factorize   b3 as two stacked 3×3 convs (a 5×5 receptive field)
    b3-3x3      b3 as a single 3×3 conv (torchvision's pretrained GoogLeNet)
    width=F     every branch's channels × F (e.g. width=0.5, width=2), at least 1
    aux=on      the paper's auxiliary heads after 4a and 4d (loss weight 0.3); aux=off without them
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnet import fsio, jobs, runs
from gnet.analysis import network_report, validate_network
from gnet.spec import BlockSpec, NetworkSpec, SpecError
from gnet.train import ConfigError, TrainConfig, preflight

VARIANTS: dict[str, str] = {  # name -> what it changes, for help texts
    "base": "the base network as given",
    "edits": "the network as edited in the app (CLI: --edits FILE.json)",
    "no-reduce": "no 1×1 reductions in b2 and b3",
    "factorize": "b3 as two stacked 3×3 convs",
    "b3-3x3": "b3 as one 3×3 conv",
    "width=0.5": "every branch at half width",
    "width=2": "every branch at twice the width",
    "aux=on": "auxiliary heads after 4a and 4d",
    "aux=off": "no auxiliary heads",
}
MAX_WIDTH = 8.0
RESUMABLE = ("stopped", "died", "created")
POLL_S = 0.5
SCHEDULER_FILE = jobs.SCHEDULER.status_file
STOP_FILE = jobs.STOP_FILE
LOCK_FILE = ".scheduler.lock"
LAUNCH_LOCK = ".launch.lock"
STARTING_S = jobs.SCHEDULER.stale_s  # a scheduler launched this long ago that has not written "running" is gone


class SweepError(ValueError):
    """A sweep cannot be made, found or continued; the message says why and what to do."""


# ---------------------------------------------------------------------------
# Variants


def parse_variant(name: str) -> str:
    """The canonical name of a variant ("width=2.0" -> "width=2"); SweepError for an unknown one."""
    text = name.strip() if isinstance(name, str) else ""
    if text.startswith("width="):
        try:
            factor = float(text.removeprefix("width="))
        except ValueError:
            factor = -1.0
        if not 0 < factor <= MAX_WIDTH:
            raise SweepError(
                f"variant {text!r}: width takes a factor above 0 and at most {MAX_WIDTH:g}, e.g. width=0.5 or width=2"
            )
        return f"width={factor:g}"
    if text not in VARIANTS:
        raise SweepError(f"unknown variant {text[:40]!r}; choose from {', '.join(VARIANTS)} (width=F for any factor)")
    return text


def parse_variants(names: str | list[str]) -> list[str]:
    """Comma-separated (or listed) variant names, canonical, each once, in the order given."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in items:
        v = parse_variant(item)
        if v not in out:
            out.append(v)
    if not out:
        raise SweepError("choose at least one variant")
    return out


def slug(variant: str) -> str:
    """The run directory's name for a variant ("width=0.5" -> "width-0.5")."""
    return variant.replace("=", "-")


def _map_blocks(spec: NetworkSpec, change: Callable[[BlockSpec], BlockSpec]) -> NetworkSpec:
    return dataclasses.replace(spec, stages=tuple(tuple(change(b) for b in stage) for stage in spec.stages))


def _scaled(n: int, factor: float) -> int:
    return max(1, round(n * factor))


def variant_spec(base: NetworkSpec, variant: str, edits: NetworkSpec | None = None) -> NetworkSpec:
    """The network a variant trains (validated; SweepError naming the variant if it is not a valid network)."""
    v = parse_variant(variant)
    if v == "base":
        spec = base
    elif v == "edits":
        if edits is None:
            raise SweepError(
                "variant edits needs the edited network (in the CLI: --edits FILE.json, "
                "the network as the Network Explorer exports it)"
            )
        spec = edits
    elif v == "no-reduce":
        spec = _map_blocks(base, lambda b: dataclasses.replace(b, reduce=False))
    elif v == "factorize":
        spec = _map_blocks(base, lambda b: dataclasses.replace(b, b3_kernel=5, factorize=True))
    elif v == "b3-3x3":
        spec = _map_blocks(base, lambda b: dataclasses.replace(b, b3_kernel=3, factorize=False))
    elif v.startswith("width="):
        f = float(v.removeprefix("width="))
        fields = ("b1", "b2_reduce", "b2", "b3_reduce", "b3", "b4")
        spec = _map_blocks(base, lambda b: dataclasses.replace(b, **{k: _scaled(getattr(b, k), f) for k in fields}))
    else:
        spec = dataclasses.replace(base, aux=v == "aux=on")
    try:
        return validate_network(spec)
    except SpecError as e:
        raise SweepError(f"variant {v}: {e}") from None


# ---------------------------------------------------------------------------
# The sweep's files


@dataclass(frozen=True)
class Settings:
    """What every variant's run shares (None: the recipe's or the network's own value)."""

    dataset: str = "synthetic"
    recipe: str = "improved"
    epochs: int = 3
    seed: int = 0
    image_size: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    synthetic_train: int | None = None
    synthetic_test: int | None = None
    max_train_samples: int | None = None
    max_test_samples: int | None = None

    @staticmethod
    def from_dict(d: Any) -> Settings:
        known = {f.name for f in dataclasses.fields(Settings)}
        return Settings(**{k: v for k, v in d.items() if k in known}) if isinstance(d, dict) else Settings()


def train_config(spec: NetworkSpec, variant: str, settings: Settings) -> TrainConfig:
    """The run's training config: the shared settings, with aux on or off where the variant says so."""
    overrides = {k: v for k, v in dataclasses.asdict(settings).items() if k != "recipe"}
    aux = {"aux=on": True, "aux=off": False}.get(variant)
    return TrainConfig.from_recipe(settings.recipe, spec, aux=aux, **overrides)


@dataclass(frozen=True)
class Sweep:
    path: Path
    base: NetworkSpec
    variants: tuple[str, ...]
    settings: Settings
    parallel: int
    costs: dict[str, dict[str, int]]  # variant -> params, mult_adds of the network as trained
    configs: dict[str, dict[str, Any]]  # variant -> TrainConfig.to_dict()

    @property
    def name(self) -> str:
        return self.path.name

    def run_path(self, variant: str) -> Path:
        return self.path / slug(variant)

    def run_name(self, variant: str) -> str:
        """The run's name on the Training page (gnet.runs names for runs inside a sweep)."""
        return f"{self.name}/{slug(variant)}"


def sweep_dir(root: Path, name: str) -> Path:
    """The folder of sweep `name`: a direct child of the runs root (no '/'), reached through no link."""
    try:
        runs.validate_name(name)
    except runs.RunError:
        raise SweepError("a sweep name is 1 to 64 letters, digits, '.', '_' or '-' (no '/' or '..')") from None
    path = root / name
    try:
        return fsio.confined(root, path, "sweep")
    except fsio.ConfinementError as e:
        raise SweepError(str(e)) from None


def _check_place(path: Path) -> None:
    """A sweep is no link, and lives in no other sweep or run (their runs would be counted and listed nowhere)."""
    if path.is_symlink():
        raise SweepError(f"the sweep folder {path.name!r} is a symbolic link; refusing to use it")
    parent = path.parent
    if any(os.path.lexists(parent / f) for f in (runs.SWEEP_FILE, "config.json", "status.json")):
        raise SweepError(
            f"the sweep {path.name!r} would be inside the sweep or run {parent.name!r}; "
            "a sweep folder goes directly in the runs folder"
        )


def create(
    path: Path,
    base: NetworkSpec,
    variants: list[str],
    settings: Settings,
    edits: NetworkSpec | None = None,
    parallel: int = 1,
) -> Sweep:
    """Check every variant (network, training settings, memory) and write sweep.json; starts nothing."""
    runs.validate_name(path.name)
    _check_place(path)
    if os.path.lexists(path / runs.SWEEP_FILE):
        raise SweepError(f"the folder {path.name!r} already holds a sweep; resume it or choose another sweep name")
    if path.exists() and any(path.iterdir()):
        raise SweepError(f"the folder {path.name!r} exists and is not empty; choose a new sweep name")
    names = parse_variants(variants)
    if not 1 <= parallel <= 64:
        raise SweepError("parallel must be from 1 to 64")
    costs, configs = {}, {}
    for v in names:
        try:
            cfg = train_config(variant_spec(base, v, edits), v, settings)
            trained = network_report(preflight(cfg))  # the network as the trainer will build it
        except (ConfigError, SpecError) as e:
            raise SweepError(f"variant {v}: {e}") from None
        costs[v] = {"params": trained.params_total, "mult_adds": trained.cost.mult_adds}
        configs[v] = cfg.to_dict()
    path.mkdir(parents=True, exist_ok=True)
    runs.write_json(
        path / runs.SWEEP_FILE,
        {
            "name": path.name,
            "created": time.time(),
            "base": base.to_dict(),
            "variants": names,
            "settings": dataclasses.asdict(settings),
            "parallel": parallel,
            "costs": costs,
            "configs": configs,
        },
    )
    return read(path)


def read(path: Path) -> Sweep:
    data = runs.read_json(path / runs.SWEEP_FILE)
    if data is None:
        raise SweepError(f"there is no sweep in {path.name!r} (no readable {runs.SWEEP_FILE})")
    try:
        variants = tuple(parse_variants(data["variants"]))
        configs = {v: data["configs"][v] for v in variants}
        costs = {v: {k: int(data["costs"][v][k]) for k in ("params", "mult_adds")} for v in variants}
        base = NetworkSpec.from_dict(data["base"])
        parallel = int(data.get("parallel", 1))
    except (KeyError, TypeError, ValueError) as e:  # SpecError and SweepError are ValueErrors
        raise SweepError(
            f"the sweep file in {path.name!r} is not usable ({type(e).__name__}: {str(e)[:120]})"
        ) from None
    return Sweep(
        path=path,
        base=base,
        variants=variants,
        settings=Settings.from_dict(data.get("settings")),
        parallel=parallel,
        costs=costs,
        configs=configs,
    )


def list_sweeps(root: Path | None = None) -> list[Sweep]:
    """Readable sweeps under the runs root, newest first."""
    root = root or runs.runs_root()
    found = []
    for p in fsio.plain_children(root):
        if runs.NAME_RE.fullmatch(p.name) and fsio.is_plain_file(p / runs.SWEEP_FILE):
            with contextlib.suppress(SweepError):
                found.append(read(p))
    return sorted(found, key=lambda s: _mtime(s.path / runs.SWEEP_FILE), reverse=True)


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Row:
    variant: str
    run_dir: str
    state: str  # a run state, or "queued" (no run yet)
    params: int
    mult_adds: int
    best_test_acc: float | None
    images_per_s: float | None
    seconds: float | None  # training time (evaluation excluded), from the run's status
    epochs_done: int = 0
    message: str = ""  # the run's status message (why it failed or died)

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "run_dir": self.run_dir,
            "params": self.params,
            "mult_adds": self.mult_adds,
            "best_test_acc": self.best_test_acc,
            "images_per_s": self.images_per_s,
            "seconds": self.seconds,
            "state": self.state,
        }


EPOCH_KEYS = ("epoch", "test_acc", "images_per_s")


def rows(sweep: Sweep) -> list[Row]:
    """One row per variant, read from its run's files now (tolerates half-written ones). A variant whose folder
    is a symbolic link is not read ("failed", saying so); one the scheduler refused says why."""
    out = []
    refused = refusals(sweep)
    for v in sweep.variants:
        path = sweep.run_path(v)
        cost = sweep.costs[v]
        if not fsio.is_confined(sweep.path, path):
            out.append(
                Row(
                    variant=v,
                    run_dir=str(path),
                    state="failed",
                    params=cost["params"],
                    mult_adds=cost["mult_adds"],
                    best_test_acc=None,
                    images_per_s=None,
                    seconds=None,
                    message=f"its folder {path.name!r} is a symbolic link; it is not read",
                )
            )
            continue
        info = runs.read_run(path)
        if info.state == "missing" and v in refused:
            info = dataclasses.replace(info, state="failed", status={"message": refused[v]})
        params, mult_adds = cost["params"], cost["mult_adds"]
        trained = info.config.get("spec")  # written by the trainer: the exact network it built
        if isinstance(trained, dict):
            with contextlib.suppress(SpecError):
                rep = network_report(NetworkSpec.from_dict(trained))
                params, mult_adds = rep.params_total, rep.cost.mult_adds
        epochs = runs.read_metrics(path, "epoch", EPOCH_KEYS)
        elapsed = info.status.get("elapsed_s")
        out.append(
            Row(
                variant=v,
                run_dir=str(path),
                state="queued" if info.state == "missing" else info.state,
                params=params,
                mult_adds=mult_adds,
                best_test_acc=max(r["test_acc"] for r in epochs) if epochs else None,
                images_per_s=statistics.median(r["images_per_s"] for r in epochs) if epochs else None,
                seconds=float(elapsed) if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) else None,
                epochs_done=len(epochs),
                message=info.message,
            )
        )
    return out


def refusals(sweep: Sweep) -> dict[str, str]:
    """Variants the scheduler refused to start, with why (from scheduler.json; a garbled entry is dropped)."""
    data = jobs.read_status(sweep.path, jobs.SCHEDULER).get("refused")
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v)[:500] for k, v in data.items() if isinstance(v, str)}


# ---------------------------------------------------------------------------
# The scheduler


def scheduler_state(sweep: Sweep) -> str:
    """'running' while a scheduler serves this sweep (on this host: while one holds its lock), 'starting' just
    after a launch, else what it last wrote (or 'none'). A scheduler.json naming some other live process
    never reads as running: the lock, not a pid in a file, says who serves the sweep."""
    data = jobs.read_status(sweep.path, jobs.SCHEDULER)
    state = str(data.get("state", "none"))
    if jobs.held(sweep.path / LOCK_FILE):
        return "running"
    same_host = data.get("host") == socket.gethostname()
    if state == "running" and same_host:
        return "ended"
    if state == "starting":
        launched = jobs.launch_record(sweep.path, jobs.SCHEDULER, data)
        if launched and jobs.recorded_alive(launched):
            return "starting"  # alive, just slow to begin (at nice 10 on a busy machine that takes a minute)
        if launched or jobs.is_stale_start(data, STARTING_S):
            return "ended"  # launched but never got going (see scheduler.log)
    return state


def _free_slots(root: Path) -> int:
    """Free places under the runs root's cap: every active run under the root counts (gnet.runs.active_runs)."""
    return runs.max_runs() - len(runs.active_runs(root))


def check_config(config: Any) -> str | None:
    """Why the trainer would refuse a variant's stored config (hand-edited or from an older version), or None."""
    try:
        preflight(TrainConfig.from_dict(config))
    except (ConfigError, SpecError, TypeError, KeyError, AttributeError) as e:
        return f"its training config is not valid: {str(e)[:300]}"
    return None


def _write_scheduler(sweep: Sweep, state: str, **fields: Any) -> None:
    jobs.write_status(sweep.path, jobs.SCHEDULER, state, **jobs.this_process(), **fields)


def run(
    sweep: Sweep,
    resume: bool = False,
    parallel: int | None = None,
    poll_s: float = POLL_S,
    on_update: Callable[[list[Row]], None] | None = None,
    install_signals: bool = True,
) -> list[Row]:
    """Start the variants' runs (at most `parallel` at once, within the cap) and wait until all have ended.

    resume=True also resumes stopped or killed runs from their checkpoints (once each), and a run a killed
    scheduler left "starting" once it reads died. A STOP file in the sweep directory, SIGTERM or SIGINT stops
    the active runs gracefully (they checkpoint) and returns.
    At most one scheduler serves a sweep: SweepError when another holds its lock."""
    _check_place(sweep.path)
    try:
        with jobs.exclusive(sweep.path / LOCK_FILE):
            return _run_locked(sweep, resume, parallel, poll_s, on_update, install_signals)
    except jobs.Busy:
        other = jobs.read_status(sweep.path, jobs.SCHEDULER).get("pid")
        by = f" (process {other})" if isinstance(other, int) else ""
        raise SweepError(
            f"sweep {sweep.name!r} is already being run by another scheduler{by}; wait for it, or stop it first"
        ) from None


def _run_locked(
    sweep: Sweep,
    resume: bool,
    parallel: int | None,
    poll_s: float,
    on_update: Callable[[list[Row]], None] | None,
    install_signals: bool,
) -> list[Row]:
    root, limit = sweep.path.parent, max(1, parallel or sweep.parallel)
    stop = jobs.StopSignal(sweep.path)
    if install_signals and threading.current_thread() is threading.main_thread():
        stop.install()
    if resume:
        jobs.clear_stop(sweep.path)
    refused: dict[str, str] = {}
    for v in sweep.variants:  # a config the trainer would refuse: say why now, not "starting" then "died"
        if runs.read_run(sweep.run_path(v)).state == "missing" and (why := check_config(sweep.configs[v])):
            refused[v] = why
    _write_scheduler(sweep, "running", started=time.time(), refused=refused)
    first = {v: runs.read_run(sweep.run_path(v)) for v in sweep.variants} if resume else {}
    to_resume = {v for v, i in first.items() if i.state in RESUMABLE}
    # Still active when this scheduler began: launched by a scheduler killed since (it may have died before its
    # trainer wrote a pid, so the run reads "starting" until stale). If it then reads died, resume it too, once.
    orphans = {v for v, i in first.items() if i.active}
    final_state = "done"
    last: list[Row] | None = None
    while True:
        infos = {
            v: runs.read_run(sweep.run_path(v))
            for v in sweep.variants
            if fsio.is_confined(sweep.path, sweep.run_path(v))
        }
        mine = [v for v, i in infos.items() if i.active]
        for v in [v for v in orphans if v in infos and not infos[v].active]:
            orphans.discard(v)
            if infos[v].state == "died":
                to_resume.add(v)
        if stop():
            for v in mine:
                with contextlib.suppress(runs.RunError):
                    runs.request_stop(sweep.run_path(v), root)
            final_state = "stopped"
            break
        todo = [
            v
            for v, i in infos.items()
            if v not in refused and (i.state == "missing" or (v in to_resume and i.state in RESUMABLE))
        ]
        if not mine and not todo:
            break
        for v in todo:
            if len(mine) >= limit or _free_slots(root) <= 0:
                break  # queued until a slot frees
            try:
                if infos[v].state == "missing":
                    runs.start(
                        root,
                        sweep.run_name(v),
                        {"train": sweep.configs[v], "sweep": {"name": sweep.name, "variant": v}},
                    )
                else:
                    runs.resume(root, sweep.run_name(v))
                    to_resume.discard(v)
                mine.append(v)
            except runs.RunError as e:
                if _free_slots(root) > 0:  # not the cap (another session took the slot): a real refusal
                    refused[v] = str(e)
                    _write_scheduler(sweep, "running", merge=True, refused=refused)
                break
        current = rows(sweep)
        if on_update is not None and current != last:
            on_update(current)
        last = current
        _wait(stop, poll_s)
    _write_scheduler(sweep, final_state, ended=time.time(), refused=refused)
    current = rows(sweep)
    if on_update is not None and current != last:
        on_update(current)
    return current


def _wait(stop: jobs.StopSignal, seconds: float) -> None:
    """Sleep up to `seconds`, waking early when a stop is asked for."""
    end = time.monotonic() + seconds
    while not stop() and time.monotonic() < end:
        time.sleep(min(0.05, seconds))


def launch(sweep: Sweep) -> int:
    """Run the scheduler in the background (`python -m gnet sweep --resume --sweep-dir DIR`), for the app:
    it keeps starting queued variants after the page is closed. Returns its pid. SweepError when a scheduler
    already serves the sweep or was launched moments ago (a double-clicked Resume starts one, not two)."""
    _check_place(sweep.path)
    try:
        with jobs.exclusive(sweep.path / LAUNCH_LOCK, wait_s=5.0):  # two sessions' clicks, one at a time
            state = scheduler_state(sweep)
            if state in ("running", "starting"):
                raise SweepError(f"sweep {sweep.name!r} is already {state}; wait for it, or stop it first")
            jobs.clear_stop(sweep.path)
            jobs.write_status(sweep.path, jobs.SCHEDULER, "starting", host=socket.gethostname(), started=time.time())
            argv = ["sweep", "--resume", "--sweep-dir", str(sweep.path.resolve()), "--quiet"]
            try:
                return jobs.launch(sweep.path, jobs.SCHEDULER, argv)
            except OSError as e:  # no processes left, a link as scheduler.log: say so, not "starting"
                jobs.write_status(sweep.path, jobs.SCHEDULER, "ended", message=str(e.strerror or e))
                raise SweepError(f"could not start the sweep's scheduler ({e.strerror or e})") from None
    except jobs.Busy:
        raise SweepError(f"sweep {sweep.name!r} is being started from another session") from None


def request_stop(sweep: Sweep) -> None:
    """Stop the sweep: no more runs start, and the active ones checkpoint and stop. The scheduler sees the
    STOP file (and gets SIGTERM under gnet.jobs' rule)."""
    root = sweep.path.parent
    try:
        jobs.request_stop(root, sweep.path, jobs.SCHEDULER)
    except fsio.ConfinementError as e:
        raise SweepError(str(e)) from None
    for v in sweep.variants:
        path = sweep.run_path(v)
        with contextlib.suppress(runs.RunError):
            if fsio.is_confined(sweep.path, path) and runs.read_run(path).active:
                runs.request_stop(path, root)
