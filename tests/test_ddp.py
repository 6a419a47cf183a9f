"""torchrun with 2 gloo processes on the CPU: sharded data, all-reduced metrics and telemetry, rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gnet import runs
from gnet.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def test_torchrun_two_gloo_processes(tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "gnet",
        "train",
        "--preset",
        "mini",
        "--image-size",
        "12",
        "--synthetic-train",
        "120",
        "--synthetic-test",
        "40",
        "--batch-size",
        "40",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--telemetry-every",
        "2",
        "--run-dir",
        str(run),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    assert status["steps_per_epoch"] == 3  # 60 images per rank, 20 per rank per step
    steps = runs.read_metrics(run, "step")
    assert [r["step"] for r in steps] == list(range(1, 7))  # written once (rank 0), not once per rank
    epochs = runs.read_metrics(run, "epoch")
    # Sums are all-reduced: the records count every image of both shards, as a single process would.
    assert [(r["train_n"], r["test_n"]) for r in epochs] == [(120, 40), (120, 40)]
    for r in epochs:
        assert abs(r["test_acc"] * 40 - round(r["test_acc"] * 40)) < 1e-9
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ck.extra["global_step"] == 6 and ck.build_model() is not None
    assert not any(p.name.endswith(".tmp") for p in (run / "checkpoints").iterdir())
    # One telemetry stream (rank 0), its losses all-reduced over both shards: the step record's mean loss
    # over all 40 images of the step equals the telemetry's (every step is a record step here).
    tel = runs.read_telemetry(run)
    assert [r["step"] for r in tel] == [1, 2, 4, 6]
    loss_at = {r["step"]: r["loss"] for r in steps}
    for r in tel:
        assert abs(r["loss"] - loss_at[r["step"]]) < 1e-5 * loss_at[r["step"]]
        stats = [v for blk in r["branches"].values() for b in blk.values() for v in b.values()]
        assert len(r["branches"]) == 4 and len(stats) == 4 * 4 * 4 and all(v == v and v >= 0 for v in stats)
