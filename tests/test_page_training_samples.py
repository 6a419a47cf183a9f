"""A broken samples.pt costs the Training page its predictions only: one message in that section, and the run's
controls (Resume, Delete, Download, Open in ...) and the Compare section are still drawn."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from gnet import runs
from gnet.checkpoints import Checkpoint, CheckpointError, atomic_write_bytes, save_checkpoint
from gnet.network import build
from gnet.spec import mini
from gnet.train import predictions

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")
PRE = {"image_size": [32, 32], "mean": [0.5] * 3, "std": [0.25] * 3, "in_channels": 3}
CLASSES = [f"c{i}" for i in range(10)]


class RunsACommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def images(n: int = 8, c: int = 3, h: int = 32) -> torch.Tensor:
    return torch.randint(0, 255, (n, c, h, h), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


GOOD = {"x": images(), "y": torch.arange(8), "classes": CLASSES}
BAD_SAMPLES = {
    "random bytes": os.urandom(4096),
    "random bytes after PK": b"PK" + os.urandom(4094),
    "truncated": saved(GOOD)[:300],
    "label out of range": saved({**GOOD, "y": torch.tensor([0, 1, 2, 3, 4, 5, 6, 10])}),
    "negative label": saved({**GOOD, "y": torch.tensor([-1] * 8)}),
    "fewer labels than images": saved({**GOOD, "y": torch.arange(3)}),
    "float labels": saved({**GOOD, "y": torch.zeros(8)}),
    "labels a matrix": saved({**GOOD, "y": torch.zeros(8, 2, dtype=torch.long)}),
    "images one channel": saved({**GOOD, "x": images(c=1)}),
    "images 3-D": saved({**GOOD, "x": images()[0]}),
    "images float": saved({**GOOD, "x": images().float()}),
    "no images": saved({**GOOD, "x": images(n=0), "y": torch.arange(0)}),
    "not a dict": saved([1, 2, 3]),
    "no x": saved({"y": torch.arange(8)}),
    "a malicious pickle": saved({"x": RunsACommand("touch /nonexistent-gnet-marker")}),
}


def make_run(root: Path, samples: bytes, state: str = "stopped") -> Path:
    run = runs.create(root / "r1", {"train": {"network": {"name": "mini"}, "dataset": "synthetic", "epochs": 1}})
    torch.manual_seed(0)
    spec = mini()
    save_checkpoint(run / "checkpoints" / "last.pt", Checkpoint(spec, build(spec).state_dict(), CLASSES, PRE, {}))
    atomic_write_bytes(run / "samples.pt", samples)
    runs.write_status(run, state, message="stopped by the test")
    return run


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "runs"


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
def test_a_bad_samples_file_is_a_checkpoint_error(root, case):
    run = make_run(root, BAD_SAMPLES[case])
    with pytest.raises(CheckpointError, match="the run's sample"):
        predictions(run)


def test_good_samples_still_predict(root):
    preds = predictions(make_run(root, saved(GOOD)))
    assert len(preds) == 8 and all(p.true in CLASSES and p.predicted in CLASSES for p in preds)


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
def test_a_bad_samples_file_costs_only_its_section(root, case):
    make_run(root, BAD_SAMPLES[case])
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "No predictions: the run's sample" in captions
    assert [b.label for b in at.button if b.key in ("tr_resume", "tr_delete", "tr_open_fm", "tr_open_ex")] == [
        "Resume",
        "Open in Feature Maps",
        "Open in Explain",
        "Delete run",
    ]
    assert at.get("download_button") and any(c.key == "tr_confirm_delete" for c in at.checkbox)
    assert "Compare runs" in [h.value for h in at.subheader]
    assert not any("not readable as a run" in e.value for e in at.error)
