"""Faults: SIGKILL a real training process at random points, many times; SIGTERM stops gracefully.

Every checkpoint on disk must be loadable or absent (never corrupt), every kill must read as
"died", resume must continue from the last good checkpoint, the metrics reader never fails, and
the run's records and final weights equal those of the same run trained without a kill.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gnet import runs
from gnet.checkpoints import load_checkpoint
from gnet.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def launch():
    """Start `python -m gnet train ...`; every process still alive at the end is killed."""
    procs: list[subprocess.Popen] = []

    def start(args: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as f:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gnet", "train", *args],
                    cwd=ROOT,
                    env=ENV,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                )
            )
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_running(run: Path, proc: subprocess.Popen, min_step: int, timeout: float = 90) -> dict:
    """Until the process itself reports 'running' past min_step."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, (run.parent / "log.txt").read_text()[-2000:]
        status = runs.read_json(run / "status.json") or {}
        if (
            status.get("pid") == proc.pid
            and status.get("state") == "running"
            and status.get("global_step", 0) > min_step
        ):
            return status
        time.sleep(0.05)
    raise AssertionError(f"no progress within {timeout} s: {status}")


def checkpoints_ok(run: Path) -> int:
    """Every checkpoint present loads; returns the last one's step (0 if none yet)."""
    step = 0
    for name in ("last", "best"):
        path = run / "checkpoints" / f"{name}.pt"
        if path.exists():
            ck = load_checkpoint(path)  # raises CheckpointError if torn
            ck.build_model()
            if name == "last":
                step = int(ck.extra["global_step"])
    return step


def test_random_sigkills_never_corrupt_anything_and_resume_continues(tmp_path, launch):
    run, log = tmp_path / "run", tmp_path / "log.txt"
    rng = random.Random(1234)
    first = [
        "--preset",
        "mini",
        "--image-size",
        "12",
        "--synthetic-train",
        "200",
        "--synthetic-test",
        "20",
        "--batch-size",
        "20",
        "--epochs",
        "100",
        "--device",
        "cpu",
        "--checkpoint-every",
        "0",
        "--run-dir",
        str(run),
    ]
    proc = launch(first, log)
    last_step, kills = 0, 0
    while kills < 8:
        wait_running(run, proc, last_step)
        time.sleep(rng.uniform(0.0, 0.5))  # anywhere: mid-step, mid-metrics line, mid-checkpoint write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert runs.read_run(run).state == "died"
        step = checkpoints_ok(run)
        assert step >= last_step  # never goes back past a good checkpoint
        last_step = step
        recs = runs.read_metrics(run)  # tolerant of a torn last line
        assert all(isinstance(r, dict) for r in recs)
        proc = launch(["--resume", "--run-dir", str(run)], log)
    # After the last resume: a graceful stop (SIGTERM) finishes the step, checkpoints and says "stopped".
    status = wait_running(run, proc, last_step)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    info = runs.read_run(run)
    assert info.state == "stopped", info.status
    assert checkpoints_ok(run) >= status["global_step"]
    steps = [r["step"] for r in runs.read_metrics(run, "step")]
    assert steps == sorted(set(steps)), "resume replays no step twice in the metrics"
    # The oracle: the same config trained without a kill, stopped at the same step, in this process
    # (one thread, as the launched ones). Kills and resumes must change nothing but the clock.
    stopped_at = int(info.status["global_step"])
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["train"])
    cfg = dataclasses.replace(cfg, checkpoint_every_s=3600.0)  # fewer saves, same arithmetic
    ref = runs.create(tmp_path / "uninterrupted", {"train": cfg.to_dict()})
    assert train(cfg, ref, should_stop=lambda s: s == stopped_at) == "stopped"
    clock = ("time", "images_per_s", "elapsed_s")
    rows = [[{k: v for k, v in r.items() if k not in clock} for r in runs.read_metrics(d)] for d in (run, ref)]
    assert rows[0] == rows[1], "the killed and resumed run's records differ from an uninterrupted run's"
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (run, ref))
    assert a.model_state.keys() == b.model_state.keys()
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state), "final weights differ"
    for key in ("global_step", "epoch", "step_in_epoch", "best_acc", "epoch_sums"):
        assert a.extra[key] == b.extra[key], key
    # temp files of writes cut short by a kill are removed when the next process starts
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_stop_file_is_seen_by_a_running_process(tmp_path, launch):
    run, log = tmp_path / "run", tmp_path / "log.txt"
    proc = launch(
        [
            "--preset",
            "mini",
            "--image-size",
            "12",
            "--synthetic-train",
            "100",
            "--synthetic-test",
            "20",
            "--batch-size",
            "20",
            "--epochs",
            "500",
            "--device",
            "cpu",
            "--run-dir",
            str(run),
        ],
        log,
    )
    wait_running(run, proc, 0)
    runs.request_stop(run)  # STOP file + SIGTERM, as the page does
    assert proc.wait(timeout=60) == 0
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped" and "resume" in status["message"]
    assert not (run / "STOP").exists()
    assert load_checkpoint(run / "checkpoints" / "last.pt").extra["global_step"] == status["global_step"]
