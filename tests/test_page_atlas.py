"""pages/atlas.py through streamlit.testing.v1.AppTest: the offline default, a background job from
the button to the cached pictures, a second session seeing them at once, the large view, the
worker cap, bad uploads. Most tests use a tiny project checkpoint so the page runs in seconds."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from gnet import featurevis as fv
from gnet.checkpoints import Checkpoint, save_checkpoint
from gnet.network import build
from tests.pagetest import run_page, texts
from tests.patience import wait_until
from tests.test_featurevis import tiny_spec

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "atlas.py")
LABEL = re.compile(r"^(3a|3b)·b[1-4] ch \d+ \| out \d+$")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty torch hub cache, downloads off; a tiny checkpoint in the runs folder; the cache under it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GNET_OFFLINE", "1")
    monkeypatch.delenv("GNET_WEIGHTS", raising=False)
    monkeypatch.delenv("GNET_CACHE_DIR", raising=False)
    return tmp_path


@pytest.fixture
def ckpt(env):
    """A tiny project checkpoint (random weights) where the page looks for training checkpoints."""
    tmp_path = env
    path = tmp_path / "runs" / "tiny" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    pre = {"image_size": [16, 16], "mean": [0.5] * 3, "std": [0.25] * 3, "in_channels": 3, "resize_mode": "stretch"}
    save_checkpoint(
        path, Checkpoint(tiny_spec(), build(tiny_spec()).state_dict(), [f"c{i}" for i in range(10)], pre, {"epoch": 1})
    )
    return tmp_path


def run(at: AppTest | None = None) -> AppTest:
    return run_page(PAGE, at, 180)


def tiny_page(k: int = 2, steps: int = 16) -> AppTest:
    """The page on the tiny checkpoint with small settings, set before the first run (one run, not four)."""
    at = AppTest.from_file(PAGE, default_timeout=180)
    for key, value in (("at_source", "checkpoint"), ("at_size", 32), ("at_steps", steps), ("at_k", k)):
        at.session_state[key] = value
    return run(at)


def tiles(at: AppTest) -> list[str]:
    return [b.label for b in at.button if LABEL.match(b.label)]


def test_offline_default_shows_the_untrained_network_and_its_atlas(env):
    at = run()
    assert "UNTRAINED" in texts(at, "warning") and "googlenet-1378be20.pth" in texts(at, "warning")
    assert "Block 4b: 512 channels, top 6 per branch" in texts(at, "subheader")
    labels = [b.label for b in at.button]
    tiles_4b = [lab for lab in labels if re.match(r"^4b·b[1-4] ch \d+ \| out \d+$", lab)]
    assert len(tiles_4b) == 24
    b3 = [lab for lab in tiles_4b if lab.startswith("4b·b3")]  # b3's outputs are 384..447 of 4b
    assert all(384 <= int(lab.split("out ")[1]) <= 447 for lab in b3) and len(b3) == 6
    assert "Visualise the 24 missing channels (128×128 px, 256 steps)" in labels
    md = texts(at, "markdown")
    assert "[Back to Feature Maps" in md and "(/feature_maps)" in md
    assert "Branch Specialization" in md and "BatchNorm" in md and "TensorFlow" in md
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]  # the 9×4 chart, one panel per measure
    assert len(traces) == 3 and all(t["type"] == "heatmap" for t in traces)
    for t in traces:
        assert t["y"] == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"] and t["x"] == ["b1", "b2", "b3", "b4"]
        assert len(t["z"]) == 9 and all(len(row) == 4 and all(0 <= v <= 1 for v in row) for row in t["z"])
    strongest = traces[2]["z"]
    assert all(sum(row) == pytest.approx(1.0) for row in strongest)
    assert "colour-selective" in texts(at, "caption")


def test_a_job_fills_the_grid_and_a_second_session_sees_it_at_once(ckpt):
    at = tiny_page()
    assert "Block 3a: 36 channels, top 2 per branch" in texts(at, "subheader")
    assert len(tiles(at)) == 8
    at.button(key="at_start").click()
    run(at)
    assert at.session_state["at_job"]
    wait_until(  # the job is a separate process: poll as the page's fragment does
        lambda: "at_job" not in run(at).session_state, lambda: str(texts(at)), every=0.5
    )
    assert "All 8 pictures are cached for these settings." in texts(at, "caption"), texts(at, "warning")
    jobs = fv.list_jobs(ckpt / "runs" / ".featurevis")
    assert [j.state for j in jobs] == ["finished"]
    # a new session with the same settings: no job, no button, the pictures straight from disk
    other = tiny_page()
    assert "All 8 pictures are cached for these settings." in texts(other, "caption")
    assert not any(b.label.startswith("Visualise the") for b in other.button)
    first = tiles(other)[0]
    next(b for b in other.button if b.label == first).click()
    run(other)
    caps = " ".join(c for i in other.get("image") for c in i.captions)
    assert "what it wants to see: mean activation" in caps and "where it fires on your image" in caps
    assert "its map at its real resolution (8×8)" in caps
    md = texts(other, "markdown")
    assert first in md  # the large view's heading
    other.button(key="at_close").click()
    run(other)
    assert "what it wants to see" not in " ".join(c for i in other.get("image") for c in i.captions)


def test_channel_order_and_block_choice(ckpt):
    at = tiny_page(k=3)
    at.radio(key="at_order").set_value("index")
    at.selectbox(key="at_block").set_value("3b")
    run(at)
    assert "Block 3b: 36 channels, the first 3 of each branch" in texts(at, "subheader")
    assert tiles(at) == [
        f"3b·{b} ch {c} | out {o + c}" for b, o in (("b1", 0), ("b2", 8), ("b3", 20), ("b4", 28)) for c in range(3)
    ]


def test_when_all_workers_are_busy_the_page_says_so(ckpt, monkeypatch):
    monkeypatch.setenv("GNET_MAX_VIS_JOBS", "1")
    root = ckpt / "runs" / ".featurevis"
    other = fv.start_job(
        root,
        {"kind": "untrained", "path": ""},
        "someone-else",
        "inception4b",
        [fv.Target("inception4b", "b1", 0)],
        fv.VisConfig(),
        spawn=False,
    )
    fv.write_job_status(other.path, "running", pid=os.getpid(), host=socket.gethostname())
    at = tiny_page()
    at.button(key="at_start").click()
    run(at)
    assert "all 1 visualisation workers are busy" in texts(at, "warning")
    assert "at_job" not in at.session_state


def test_a_bad_upload_says_what_is_wrong(ckpt):
    at = tiny_page()
    at.file_uploader(key="at_upload").set_value(("x.png", b"this is not a picture", "image/png"))
    run(at)
    assert "Could not use your upload" in texts(at, "error")
    at.file_uploader(key="at_upload").set_value(None)
    run(at)
    assert not at.error and tiles(at)
