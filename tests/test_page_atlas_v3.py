"""pages/atlas.py on Inception v3 through AppTest: the family picker, v3's eleven Mixed blocks, E's split branches
named by half, the sizes a deep block takes, a background job from the button to the finished pictures, the
specialisation chart over v3's blocks; and a mini-v3 training checkpoint in the Atlas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from gnet import featurevis as fv
from gnet.checkpoints import Checkpoint, save_checkpoint
from gnet.v3 import mini_v3
from gnet.v3_modules import build_v3
from tests.pagetest import offline_env, run_page, texts
from tests.patience import wait_until
from tests.test_checkpoint_loading import CLASSES

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "atlas.py")
V3_BLOCKS = ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.delenv("GNET_CACHE_DIR", raising=False)
    return offline_env(tmp_path, monkeypatch)


def run(at: AppTest) -> AppTest:
    return run_page(PAGE, at, 300)


def page(settings: dict[str, object]) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=300)
    for key, value in settings.items():
        at.session_state[key] = value
    return run(at)


def tiles(at: AppTest, block: str) -> list[str]:
    return [b.label for b in at.button if re.match(rf"^{block}·b[1-4] ch \d+ \| out \d+$", b.label)]


def run_job(at: AppTest) -> None:
    """Start the page's visualisation job and rerun every 0.5 s until the page has no job running."""
    at.button(key="at_start").click()
    run(at)
    assert at.session_state["at_job"]
    wait_until(lambda: "at_job" not in run(at).session_state, lambda: str(texts(at)), every=0.5)


def test_untrained_inception_v3_blocks_halves_and_a_finished_job(env):
    at = page({"at_family": "inception-v3", "at_v3_source": "untrained", "at_size": 64, "at_steps": 16, "at_k": 1})
    assert "UNTRAINED Inception v3" in texts(at, "warning") or "Inception v3, random weights" in texts(at, "warning")
    assert at.selectbox(key="at_block").options == V3_BLOCKS and at.selectbox(key="at_block").value == "6b"
    assert "Block 6b: 768 channels, top 1 per branch" in texts(at, "subheader")
    six_b = tiles(at, "6b")
    assert len(six_b) == 4 and [t.split("·")[1][:2] for t in six_b] == ["b1", "b2", "b3", "b4"]
    assert all(192 * i <= int(t.split("out ")[1]) < 192 * (i + 1) for i, t in enumerate(six_b))  # 192 each
    assert "Inception v3 takes 299×299 photos" in texts(at, "caption")
    md = texts(at, "markdown")
    assert "Inception v3 was not part of that study" in md and "pytorch/vision#798" in md
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert all(t["y"] == V3_BLOCKS for t in traces)
    strongest = dict(zip(V3_BLOCKS, traces[2]["z"]))
    assert len(strongest["6a"]) == 3 and len(strongest["7a"]) == 3 and len(strongest["7b"]) == 4  # B, D, E
    assert all(sum(row) == pytest.approx(1.0) for row in strongest.values())

    run_job(at)  # a separate process loads the untrained v3 and optimises the four channels
    assert "All 4 pictures are cached for these settings." in texts(at, "caption"), texts(at, "warning")
    [job] = fv.list_jobs(env / "runs" / ".featurevis")
    assert job.state == "finished" and fv.job_model(job.path) == "inception-v3"
    next(b for b in at.button if b.label == six_b[1]).click()
    run(at)
    caps = " ".join(c for i in at.get("image") for c in i.captions)
    assert "what it wants to see: mean activation" in caps and "after 16 steps" in caps
    assert "its map at its real resolution (17×17)" in caps

    # E: the split branches' halves; 7b has no output below 75 px, so its sizes start at 96
    at.selectbox(key="at_block").set_value("7b")
    run(at)
    assert at.select_slider(key="at_size").options == ["96", "128", "160", "224"]
    assert "needs at least 75×75 px" in at.select_slider(key="at_size").help
    halves = [c for c in texts(at, "caption").split("\n") if c.startswith("Two halves side by side")]
    assert halves == [
        "Two halves side by side, concatenated: ch 0–383: 1×3 (Mixed_7b.branch3x3_2a) ‖ "
        "ch 384–767: 3×1 (Mixed_7b.branch3x3_2b)",
        "Two halves side by side, concatenated: ch 0–383: 1×3 (Mixed_7b.branch3x3dbl_3a) ‖ "
        "ch 384–767: 3×1 (Mixed_7b.branch3x3dbl_3b)",
    ]
    b2 = next(t for t in tiles(at, "7b") if t.startswith("7b·b2"))
    next(b for b in at.button if b.label == b2).click()
    run(at)
    ch = int(b2.split("ch ")[1].split(" |")[0])
    half, within = ("1×3", ch) if ch < 384 else ("3×1", ch - 384)
    assert f"channel {within} of the {half} half" in texts(at, "markdown")


def test_a_mini_v3_checkpoint_in_the_atlas_and_its_job(env):
    path = env / "runs" / "v3run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    pre = {"image_size": [36, 36], "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "in_channels": 3}
    save_checkpoint(path, Checkpoint(mini_v3(), build_v3(mini_v3()).state_dict(), CLASSES, pre, {"epoch": 2}))
    settings = {"at_family": "inception-v3", "at_v3_source": "checkpoint", "at_size": 32, "at_steps": 16, "at_k": 2}
    at = page(settings)
    assert "checkpoint v3run/last.pt (mini-v3, epoch 2)" in texts(at, "markdown")
    assert at.selectbox(key="at_block").options == ["5b", "6a", "6b", "7a", "7b"]
    assert "Block 6b: 192 channels, top 2 per branch" in texts(at, "subheader")  # mini-v3's C: 48 per branch
    assert len(tiles(at, "6b")) == 8
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert traces[0]["y"] == ["5b", "6a", "6b", "7a", "7b"]
    run_job(at)  # the job process loads the checkpoint as an Inception v3
    assert "All 8 pictures are cached for these settings." in texts(at, "caption"), texts(at, "warning")
    [job] = fv.list_jobs(env / "runs" / ".featurevis")
    assert job.state == "finished" and fv.job_source(job.path) == ("checkpoint", str(path))
