"""A training checkpoint of the small Inception v3 (mini-v3) in the views, through AppTest: Feature Maps,
Explain and Block Anatomy open it from the Training page's hand-off on the Inception v3 picker, and that picker
lists the v3 runs' checkpoints only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from gnet.checkpoints import Checkpoint, save_checkpoint
from gnet.pretrained import checkpoint_family, find_checkpoints, find_v3_checkpoints
from gnet.v3 import mini_v3
from gnet.v3_modules import build_v3
from tests.pagetest import offline_env, run_page, texts
from tests.test_checkpoint_loading import CLASSES, write_checkpoint

PAGES = Path(__file__).resolve().parent.parent / "pages"
PRE = {"image_size": [36, 36], "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "in_channels": 3}


@pytest.fixture
def checkpoint(tmp_path, monkeypatch) -> Path:
    env = offline_env(tmp_path, monkeypatch)
    path = env / "runs" / "v3run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    model = build_v3(mini_v3())
    save_checkpoint(path, Checkpoint(mini_v3(), model.state_dict(), CLASSES, PRE, {"epoch": 2}))
    return path


@pytest.mark.parametrize(
    "page,prefix,shown",
    [
        ("feature_maps", "fm", "Layer 5b: 80 channels, 36×36 maps"),  # mini-v3's A block: 16+24+24+16 at 36×36
        ("explain", "ex", "Zeroing one branch at a time"),
        ("anatomy", "an", "How 5b·b2"),
    ],
)
def test_a_mini_v3_checkpoint_opens_in_the_view(checkpoint, page, prefix, shown):
    at = AppTest.from_file(str(PAGES / f"{page}.py"), default_timeout=240)
    at.session_state[f"{prefix}_checkpoint"] = str(checkpoint)
    run_page(str(PAGES / f"{page}.py"), at, 240)
    assert not at.exception
    # the hand-off lands on the checkpoint's own family, the checkpoint selected
    assert at.radio(key=f"{prefix}_family").value == "inception-v3"
    assert at.radio(key=f"{prefix}_v3_source").value == "checkpoint"
    assert at.selectbox(key=f"{prefix}_v3_ckpt_path").value == str(checkpoint)
    assert "checkpoint v3run/last.pt (mini-v3, epoch 2)" in texts(at, "markdown") + texts(at, "caption")
    assert not at.error, texts(at, "error")
    assert shown in texts(at, "subheader")


FEATURE_MAPS = str(PAGES / "feature_maps.py")


def _v3_checkpoints(at: AppTest | None = None) -> AppTest:
    at = run_page(FEATURE_MAPS, at, 240)
    at.radio(key="fm_family").set_value("inception-v3")
    at = run_page(FEATURE_MAPS, at, 240)
    at.radio(key="fm_v3_source").set_value("checkpoint")
    return run_page(FEATURE_MAPS, at, 240)


def test_the_v3_picker_lists_only_v3_checkpoints_and_opens_one(checkpoint):
    googlenet = checkpoint.parents[2] / "g1" / "checkpoints" / "last.pt"
    googlenet.parent.mkdir(parents=True)
    write_checkpoint(googlenet)  # the GoogLeNet "mini": not an Inception v3
    (checkpoint.parent / "broken.pt").write_bytes(b"PK\x03\x04 not a zip")  # unreadable: listed nowhere as v3
    assert (checkpoint_family(checkpoint), checkpoint_family(googlenet)) == ("inception-v3", "googlenet")
    assert checkpoint_family(checkpoint.parent / "broken.pt") is None
    assert find_v3_checkpoints() == [checkpoint]
    at = _v3_checkpoints()
    assert at.selectbox(key="fm_v3_ckpt_path").options == ["v3run/last.pt"]
    assert not at.error, texts(at, "error")
    assert "checkpoint v3run/last.pt (mini-v3, epoch 2)" in texts(at, "markdown") + texts(at, "caption")
    assert "Layer 5b: 80 channels, 36×36 maps" in texts(at, "subheader")
    # the GoogLeNet family's checkpoint list is every checkpoint, as before
    at.radio(key="fm_family").set_value("googlenet")
    at = run_page(FEATURE_MAPS, at, 240)
    at.radio(key="fm_source").set_value("checkpoint")
    at = run_page(FEATURE_MAPS, at, 240)
    assert len(at.selectbox(key="fm_ckpt_path").options) == len(find_checkpoints()) == 3


def test_without_a_v3_checkpoint_the_picker_says_how_to_get_one(tmp_path, monkeypatch):
    env = offline_env(tmp_path, monkeypatch)
    googlenet = env / "runs" / "g1" / "checkpoints" / "last.pt"
    googlenet.parent.mkdir(parents=True)
    write_checkpoint(googlenet)
    at = _v3_checkpoints()
    assert "No Inception v3 training checkpoints yet" in texts(at, "info")
    assert "mini-v3 preset on the Training page" in texts(at, "info")
    assert not at.selectbox and not at.error
