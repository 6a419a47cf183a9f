"""Sweeps: variant specs, the Pareto front, the scheduler's queue (fake trainer), a real 2-variant
1-epoch sweep through the CLI, and a sweep killed and resumed."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet import runs, sweeps
from gnet.__main__ import main
from gnet.analysis import network_report
from gnet.checkpoints import load_checkpoint
from gnet.compare import pareto_front
from gnet.spec import NetworkSpec, network_preset
from tests.patience import wait_until

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--preset",
    "mini",
    "--dataset",
    "synthetic",
    "--image-size",
    "12",
    "--synthetic-train",
    "200",
    "--synthetic-test",
    "40",
    "--batch-size",
    "40",
    "--device",
    "cpu",
    "--seed",
    "0",
]


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "GNET_RUNS_DIR": str(root), "OMP_NUM_THREADS": "1", "GNET_MAX_RUNS": "2"}


def _kill_leftovers(root: Path) -> None:
    for info in runs.list_runs(root):  # never leave a training process behind a failed test
        pid = info.status.get("pid")
        if info.active and isinstance(pid, int) and pid != os.getpid() and runs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- variants --------------------------------------------------------------------------------------


def test_variant_names_are_canonical_and_unknown_ones_refused():
    assert sweeps.parse_variants("base, width=2.0,width=0.50,no-reduce,base") == [
        "base",
        "width=2",
        "width=0.5",
        "no-reduce",
    ]
    assert sweeps.slug("width=0.5") == "width-0.5" and runs.NAME_RE.fullmatch(sweeps.slug("aux=on"))
    for bad in ("wide", "width=0", "width=-1", "width=x", "width=99", ""):
        with pytest.raises(sweeps.SweepError):
            sweeps.parse_variants(bad)


def test_variant_specs():
    base = network_preset("mini")
    blocks = lambda spec: [b for _, b in spec.blocks()]  # noqa: E731
    assert sweeps.variant_spec(base, "base") == base
    assert all(not b.reduce for b in blocks(sweeps.variant_spec(base, "no-reduce")))
    assert all(b.factorize and b.b3_kernel == 5 for b in blocks(sweeps.variant_spec(base, "factorize")))
    assert all(b.b3_kernel == 3 and not b.factorize for b in blocks(sweeps.variant_spec(base, "b3-3x3")))
    half, double = sweeps.variant_spec(base, "width=0.5"), sweeps.variant_spec(base, "width=2")
    for b, h, d in zip(blocks(base), blocks(half), blocks(double)):
        assert (h.b1, h.b3_reduce, d.b2, d.b4) == (
            max(1, round(b.b1 / 2)),
            max(1, round(b.b3_reduce / 2)),
            2 * b.b2,
            2 * b.b4,
        )
    assert half.stem == base.stem  # the stem is not a branch
    d2l = network_preset("d2l-fashion96")
    assert sweeps.variant_spec(d2l, "aux=on").aux and not sweeps.variant_spec(d2l, "aux=off").aux
    with pytest.raises(sweeps.SweepError, match="aux=on: auxiliary heads"):  # mini has 2 blocks in stage 4
        sweeps.variant_spec(base, "aux=on")
    with pytest.raises(sweeps.SweepError, match="--edits"):
        sweeps.variant_spec(base, "edits")
    edited = base.with_block("3a", dataclasses.replace(base.block("3a"), b1=5))
    assert sweeps.variant_spec(base, "edits", edited) == edited


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.integers(0, 20)), max_size=12))
def test_pareto_front_is_exactly_the_undominated_points(points):
    front = pareto_front(points)
    for (c, a), on in zip(points, front):
        dominated = any(c2 <= c and a2 >= a and (c2, a2) != (c, a) for c2, a2 in points)
        assert on == (not dominated)
    if points:  # the cheapest of the most accurate is always on it
        best = max(a for _, a in points)
        assert front[points.index((min(c for c, a in points if a == best), best))]


# -- the scheduler, with a fake trainer ------------------------------------------------------------


def test_scheduler_queues_at_the_cap_and_stops_on_request(tmp_path, monkeypatch):
    """GNET_MAX_RUNS=1 with another run active: every variant waits; once it ends they run one at a time."""
    monkeypatch.setenv("GNET_MAX_RUNS", "1")
    spawned, peak = [], []

    def fake_spawn(path: Path, extra: list[str]) -> int:  # a trainer that finishes at once
        peak.append(sum(r.active for r in runs.list_runs(tmp_path)))
        spawned.append((path.name, extra))
        runs.write_status(path, "finished", pid=os.getpid(), host=socket.gethostname(), elapsed_s=1.0)
        return os.getpid()

    monkeypatch.setattr(runs, "_spawn", fake_spawn)
    other = tmp_path / "someone-elses"
    runs.create(other, {"train": {}})
    runs.write_status(other, "running", pid=os.getpid(), host=socket.gethostname())
    sweep = sweeps.create(
        tmp_path / "s",
        network_preset("mini"),
        ["base", "no-reduce"],
        sweeps.Settings(epochs=1, image_size=12),
        parallel=2,
    )
    seen: list[list[str]] = []
    worker = threading.Thread(
        target=lambda: sweeps.run(
            sweep, poll_s=0.05, install_signals=False, on_update=lambda rs: seen.append([r.state for r in rs])
        )
    )
    worker.start()
    time.sleep(0.6)
    assert spawned == [] and seen and seen[-1] == ["queued", "queued"]
    assert sweeps.scheduler_state(sweep) == "running"
    runs.write_status(other, "finished")
    worker.join(10)
    assert not worker.is_alive()
    assert [n for n, _ in spawned] == ["base", "no-reduce"] and max(peak) <= 1
    assert [r.state for r in sweeps.rows(sweep)] == ["finished", "finished"]
    assert {r.name for r in runs.list_runs(tmp_path)} == {"someone-elses", "s/base", "s/no-reduce"}
    assert sweeps.scheduler_state(sweep) == "done"

    # a STOP file (the page's "Stop sweep") ends a scheduler without starting what is left
    sweep2 = sweeps.create(tmp_path / "s2", network_preset("mini"), ["base"], sweeps.Settings(epochs=1, image_size=12))
    sweeps.request_stop(sweep2)
    sweeps.run(sweep2, poll_s=0.05, install_signals=False)
    assert [r.state for r in sweeps.rows(sweep2)] == ["queued"] and sweeps.scheduler_state(sweep2) == "stopped"


def test_runs_inside_a_sweep_are_named_and_guarded(tmp_path):
    runs.create(tmp_path / "s" / "base", {"train": {}})
    with pytest.raises(runs.RunError):  # no sweep.json: not a sweep, "s/base" is no run name
        runs.run_dir(tmp_path, "s/base")
    (tmp_path / "s" / runs.SWEEP_FILE).write_text("{}")
    assert runs.run_dir(tmp_path, "s/base") == tmp_path / "s" / "base"
    for bad in ("s/..", "s/a/b", "s/", "../s/base"):
        with pytest.raises(runs.RunError):
            runs.run_dir(tmp_path, bad)


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--variants", "base,wider"], "unknown variant 'wider'"),
        (["--variants", "width=0"], "width takes a factor"),
        (["--variants", "aux=on"], "aux=on: auxiliary heads"),
        (["--variants", "edits"], "--edits"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--recipe", "fast"], "recipe must be one of"),
        (["--epochs", "0"], "epochs"),
    ],
)
def test_cli_sweep_bad_input_exits_2(tmp_path, capsys, argv, words):
    assert main(["sweep", *TINY, "--sweep-dir", str(tmp_path / "s"), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s" / runs.SWEEP_FILE).exists()


def test_cli_sweep_resume_needs_a_sweep(tmp_path, capsys):
    assert main(["sweep", "--resume", "--sweep-dir", str(tmp_path / "none")]) == 2
    assert "there is no sweep" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """A real 2-variant, 1-epoch sweep on the synthetic set, through `python -m gnet sweep --json`."""
    root = tmp_path_factory.mktemp("sweep_runs")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gnet",
            "sweep",
            *TINY,
            "--variants",
            "base,no-reduce",
            "--epochs",
            "1",
            "--sweep-dir",
            str(root / "s1"),
            "--json",
        ],
        cwd=ROOT,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=240,
    )
    _kill_leftovers(root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, json.loads(proc.stdout)


def test_two_variant_sweep_writes_two_valid_runs_and_the_json(finished_sweep):
    root, out = finished_sweep
    assert [r["variant"] for r in out["rows"]] == ["base", "no-reduce"]
    for row in out["rows"]:
        assert {"variant", "run_dir", "params", "mult_adds", "best_test_acc", "images_per_s", "seconds"} <= set(row)
        run = Path(row["run_dir"])
        info = runs.read_run(run)
        assert info.state == "finished" and info.config["sweep"] == {"name": "s1", "variant": row["variant"]}
        epochs = runs.read_metrics(run, "epoch")
        assert len(epochs) == 1 and row["best_test_acc"] == epochs[0]["test_acc"]
        assert row["images_per_s"] == epochs[0]["images_per_s"] and row["seconds"] > 0
        ck = load_checkpoint(run / "checkpoints" / "best.pt")
        trained = network_report(NetworkSpec.from_dict(info.config["spec"]))
        assert ck.spec == NetworkSpec.from_dict(info.config["spec"])
        assert (row["params"], row["mult_adds"]) == (trained.params_total, trained.cost.mult_adds)
    base, naive = out["rows"]
    assert naive["params"] > base["params"] and naive["mult_adds"] > base["mult_adds"]  # no 1×1 bottlenecks
    assert all(
        not b.reduce for _, b in NetworkSpec.from_dict(runs.read_run(Path(naive["run_dir"])).config["spec"]).blocks()
    )
    # like any other run: listed under the runs root as SWEEP/VARIANT, found by its name
    names = {r.name for r in runs.list_runs(root)}
    assert names == {"s1/base", "s1/no-reduce"}
    assert runs.run_dir(root, "s1/no-reduce") == Path(naive["run_dir"])


def test_killed_sweep_resumes(tmp_path):
    """Kill the scheduler and the run it started mid-training; --resume keeps the finished run as it was
    and continues the killed one from its checkpoint."""
    env = _env(tmp_path)
    sweep_dir = tmp_path / "s"
    argv = [
        sys.executable,
        "-m",
        "gnet",
        "sweep",
        *TINY,
        "--variants",
        "base,factorize",
        "--epochs",
        "4",
        "--sweep-dir",
        str(sweep_dir),
        "--quiet",
    ]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = sweep_dir / "factorize"
    try:

        def checkpointed() -> bool:  # the second run has checkpointed an epoch
            assert proc.poll() is None, "the sweep ended before it could be killed"
            return (second / "checkpoints" / "last.pt").is_file()

        wait_until(checkpointed, lambda: str(runs.read_json(second / "status.json")), every=0.05)
        proc.kill()
        pid = runs.read_run(second).status.get("pid")
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(10)
        for _ in range(100):
            if not runs.pid_alive(pid):
                break
            time.sleep(0.05)
        assert runs.read_run(second).state == "died"
        first_metrics = (sweep_dir / "base" / "metrics.jsonl").read_bytes()
        first_status = runs.read_json(sweep_dir / "base" / "status.json")
        assert first_status["state"] == "finished"
        resumed = subprocess.run(
            [sys.executable, "-m", "gnet", "sweep", "--resume", "--sweep-dir", str(sweep_dir), "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        proc.kill()
        _kill_leftovers(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    out = json.loads(resumed.stdout)
    assert [r["state"] for r in out["rows"]] == ["finished", "finished"]
    assert (sweep_dir / "base" / "metrics.jsonl").read_bytes() == first_metrics  # kept, not retrained
    assert runs.read_json(sweep_dir / "base" / "status.json") == first_status
    epochs = runs.read_metrics(second, "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert epochs[0]["time"] < killed_at < epochs[-1]["time"]  # epoch 1 from before the kill: resumed, not redone


def test_network_explorer_shows_the_sweeps_runs(finished_sweep, monkeypatch):
    """The page's charts (accuracy vs mult-adds and vs params, Pareto front marked) and table show the runs."""
    from streamlit.testing.v1 import AppTest

    root, out = finished_sweep
    monkeypatch.setenv("GNET_RUNS_DIR", str(root))
    at = AppTest.from_file(str(ROOT / "pages" / "network_explorer.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.selectbox(key="sw_selected").value == "s1"
    table = next(d.value for d in at.dataframe if "Pareto" in d.value.columns).set_index("variant")
    for row in out["rows"]:
        assert table.loc[row["variant"], "params"] == row["params"]
        assert table.loc[row["variant"], "mult-adds"] == row["mult_adds"]
        assert table.loc[row["variant"], "best test acc"] == pytest.approx(row["best_test_acc"])
        assert table.loc[row["variant"], "state"] == "finished"
    front = pareto_front([(r["mult_adds"], r["best_test_acc"]) for r in out["rows"]])
    assert [table.loc[r["variant"], "Pareto"] == "✓" for r in out["rows"]] == front
    figs = {}
    for chart in at.get("plotly_chart"):
        fig = json.loads(chart.proto.spec)
        title = fig["layout"].get("title", {}).get("text", "")
        if title.startswith("Test accuracy vs"):
            figs[title] = fig
    assert set(figs) == {"Test accuracy vs mult-adds per image", "Test accuracy vs parameters"}
    for title, cost in (
        ("Test accuracy vs mult-adds per image", "mult_adds"),
        ("Test accuracy vs parameters", "params"),
    ):
        points = {
            (x, y): t
            for tr in figs[title]["data"]
            if tr.get("mode") == "markers+text"
            for x, y, t in zip(tr["x"], tr["y"], tr["text"])
        }
        assert points == {(r[cost], r["best_test_acc"]): r["variant"] for r in out["rows"]}
        assert any(tr.get("name") == "Pareto front" for tr in figs[title]["data"])
    # a bad sweep name is refused on the page, nothing is started
    at.text_input(key="sw_name").set_value("no spaces please")
    next(b for b in at.button if b.label == "Start sweep").click().run()
    assert not at.exception and any("The sweep was not started" in e.value for e in at.error)
    assert [s.name for s in sweeps.list_sweeps(root)] == ["s1"]


def test_sweep_runs_open_on_the_training_page_and_in_feature_maps(finished_sweep, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from gnet.pretrained import find_checkpoints

    root, out = finished_sweep
    monkeypatch.setenv("GNET_RUNS_DIR", str(root))
    found = find_checkpoints(root)
    assert {p.parent.parent.name for p in found} == {"base", "no-reduce"} and len(found) == 4  # last.pt, best.pt
    at = AppTest.from_file(str(ROOT / "pages" / "training.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert set(at.selectbox(key="tr_selected").options) == {"s1/base", "s1/no-reduce"}
    at.selectbox(key="tr_selected").set_value("s1/no-reduce").run()
    assert not at.exception
    assert any(str(e.value).startswith("**finished**") for e in at.success)
    at.button(key="tr_open_fm").click().run()
    assert at.session_state["fm_checkpoint"].startswith(str(Path(out["rows"][1]["run_dir"])))
    at = AppTest.from_file(str(ROOT / "pages" / "training.py"), default_timeout=60)
    at.run()
    at.selectbox(key="tr_selected").set_value("s1/no-reduce").run()
    at.button(key="tr_open_ex").click().run()  # the same checkpoint, for Explain
    assert at.session_state["ex_checkpoint"].startswith(str(Path(out["rows"][1]["run_dir"])))


def test_page_says_why_a_variant_died_and_offers_resume(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path))
    sweep = sweeps.create(
        tmp_path / "s", network_preset("mini"), ["base", "no-reduce"], sweeps.Settings(epochs=1, image_size=12)
    )
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    runs.create(sweep.run_path("base"), {"train": sweep.configs["base"]})
    runs.write_status(sweep.run_path("base"), "running", pid=gone.pid, host=socket.gethostname())
    at = AppTest.from_file(str(ROOT / "pages" / "network_explorer.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("base: died" in w.value.replace("\\", "") and "resume" in w.value for w in at.warning)
    table = next(d.value for d in at.dataframe if "Pareto" in d.value.columns).set_index("variant")
    assert list(table["state"]) == ["died", "not started"]
    assert any(b.label == "Resume sweep" for b in at.button)
    assert not any(b.label == "Stop sweep" for b in at.button)


def test_cli_sweep_with_spec_and_edits_files(tmp_path, capsys, monkeypatch):
    """--spec and --edits (the app's JSON exports), --parallel, --json; a fake trainer that finishes at once."""
    monkeypatch.setenv("GNET_MAX_RUNS", "2")

    def fake_spawn(path: Path, extra: list[str]) -> int:
        runs.append_metrics(path, [{"kind": "epoch", "epoch": 1, "test_acc": 0.5, "images_per_s": 100.0, "step": 1}])
        runs.write_status(path, "finished", pid=os.getpid(), host=socket.gethostname(), elapsed_s=2.0)
        return os.getpid()

    monkeypatch.setattr(runs, "_spawn", fake_spawn)
    base = network_preset("mini")
    edited = base.with_block("4b", dataclasses.replace(base.block("4b"), b1=8))
    (tmp_path / "base.json").write_text(base.to_json())
    (tmp_path / "edited.json").write_text(edited.to_json())
    argv = [
        "sweep",
        "--spec",
        str(tmp_path / "base.json"),
        "--edits",
        str(tmp_path / "edited.json"),
        "--variants",
        "base,edits,b3-3x3",
        "--epochs",
        "1",
        "--image-size",
        "12",
        "--parallel",
        "2",
        "--sweep-dir",
        str(tmp_path / "s"),
        "--json",
        "--quiet",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["variant"]: r for r in out["rows"]}
    assert list(rows) == ["base", "edits", "b3-3x3"] and all(r["state"] == "finished" for r in rows.values())
    assert rows["edits"]["params"] < rows["base"]["params"] and rows["base"]["best_test_acc"] == 0.5
    sweep = sweeps.read(tmp_path / "s")
    assert NetworkSpec.from_dict(sweep.configs["edits"]["network"]) == edited
    assert main(argv) == 2  # the folder already holds a sweep
    assert "already holds a sweep" in capsys.readouterr().err
