"""Feature Maps with the family picker on Inception v3: torchvision's pretrained file from a temporary torch hub
cache (real format and name, random weights, the real loader), the offline fallback, and a grid-reduction block's
three branches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import inception_v3

from gnet.pretrained import V3_WEIGHTS_FILE
from tests.pagetest import offline_env, run_page, texts
from tests.test_page_feature_maps import share_bars

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "feature_maps.py")


@pytest.fixture
def env(tmp_path, monkeypatch):
    return offline_env(tmp_path, monkeypatch)


def _v3(at=None):
    at = run_page(PAGE, at, 240)
    at.radio(key="fm_family").set_value("inception-v3")
    return run_page(PAGE, at, 240)


def test_v3_offline_falls_back_to_an_untrained_inception_v3(env):
    at = _v3()
    warning = texts(at, "warning")
    assert V3_WEIGHTS_FILE in warning and "UNTRAINED Inception v3" in warning and "GNET_V3_WEIGHTS_URL" in warning
    assert "Layer 5b: 256 channels, 35×35 maps" in texts(at, "subheader")
    md = texts(at, "markdown")
    for chip in ("b1: 1×1", "b2: 1×1 → 5×5", "b3: 1×1 → 3×3 → 3×3", "b4: 3×3 avg-pool → 1×1"):
        assert chip in md
    assert "299×299 (H×W)" in " ".join(c for i in at.get("image") for c in i.captions)


def test_v3_pretrained_from_the_hub_cache_and_a_grid_reduction(env):
    torch.manual_seed(0)
    path = env / "torch" / "hub" / "checkpoints" / V3_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    at = _v3()
    assert not at.warning, texts(at, "warning")
    assert "torchvision Inception v3, ImageNet weights (IMAGENET1K_V1)" in texts(at, "markdown")
    at.selectbox(key="fm_layer").set_value("6a")
    run_page(PAGE, at, 240)
    assert "Layer 6a: 768 channels, 17×17 maps" in texts(at, "subheader")
    assert [g for g, _ in share_bars(at)] == ["b1", "b2", "b3"]
    assert "b3: 3×3/2 max-pool" in texts(at, "markdown")
