"""Explain with the family picker on Inception v3 (torchvision's pretrained file from a temporary torch hub cache:
real format and name, random weights, the real loader): all 11 Mixed blocks × their branches in the grids, a grid
reduction's three branches, the largest drops in words, and the receptive fields of a three-branch block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import inception_v3

from gnet.pretrained import V3_WEIGHTS_FILE
from tests.pagetest import offline_env, run_page, texts
from tests.test_page_explain import grids

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "explain.py")
V3_BLOCKS = ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    return offline_env(tmp_path, monkeypatch)


def test_explain_inception_v3(env):
    torch.manual_seed(0)
    path = env / "torch" / "hub" / "checkpoints" / V3_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    at = run_page(PAGE, None, 600)
    at.radio(key="ex_family").set_value("inception-v3")
    run_page(PAGE, at, 600)
    assert not at.warning, texts(at, "warning")
    assert "torchvision Inception v3, ImageNet weights (IMAGENET1K_V1)" in texts(at, "markdown")
    ablation = next(g for t, g in grids(at).items() if t.startswith("Zeroing one branch"))
    z = ablation["z"]
    assert z.shape == (11, 4)
    missing = [V3_BLOCKS[i] for i in range(11) if not np.isfinite(z[i]).all()]
    assert missing == ["6a", "7a"] and np.isfinite(z[:, :3]).all()  # the grid reductions have three branches
    assert "zeroing " in texts(at, "markdown")
    at.selectbox(key="ex_rf_block").set_value("Mixed_6a")
    run_page(PAGE, at, 600)
    assert at.selectbox(key="ex_rf_branch").options == ["b1 (3×3/2)", "b2 (1×1 → 3×3 → 3×3/2)", "b3 (3×3/2 max-pool)"]
    assert "The three branches of 6a" in texts(at, "markdown")
