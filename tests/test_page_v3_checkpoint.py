"""A training checkpoint of the small Inception v3 (mini-v3) in the views, through AppTest: Feature Maps,
Explain and Block Anatomy open it from the Training page's hand-off like a GoogLeNet checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from gnet.checkpoints import Checkpoint, save_checkpoint
from gnet.v3 import mini_v3
from gnet.v3_modules import build_v3
from tests.pagetest import offline_env, run_page, texts
from tests.test_checkpoint_loading import CLASSES

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
    assert at.radio(key=f"{prefix}_source").value == "checkpoint"
    assert "checkpoint v3run/last.pt (mini-v3, epoch 2)" in texts(at, "markdown") + texts(at, "caption")
    assert not at.error, texts(at, "error")
    assert shown in texts(at, "subheader")
