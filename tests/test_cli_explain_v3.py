"""`python -m gnet explain|visualize --model inception-v3`: the pretrained file in a temporary torch hub cache
(torchvision's file name and format, random weights, read through the real loader), Mixed blocks keyed by their
module paths, branches b1..bN in concatenation order (three in the grid reductions), and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.models import inception_v3

from gnet.__main__ import main
from gnet.pretrained import V3_WEIGHTS_FILE
from tests.test_cli_explain import CAT

BLOCKS = [f"Mixed_{n}" for n in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_OFFLINE", "1")
    return tmp_path


def test_explain_inception_v3_from_the_hub_cache(home, capsys):
    torch.manual_seed(0)
    path = home / "torch" / "hub" / "checkpoints" / V3_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    assert main(["explain", str(CAT), "--model", "inception-v3", "--target", "281", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == 281 and out["label"] == "tabby" and 0 <= out["prob"] <= 1
    assert list(out["blocks"]) == BLOCKS
    assert {b: len(out["blocks"][b]) for b in ("Mixed_5b", "Mixed_6a", "Mixed_7a", "Mixed_7c")} == {
        "Mixed_5b": 4,
        "Mixed_6a": 3,
        "Mixed_7a": 3,
        "Mixed_7c": 4,
    }
    assert np.array(out["blocks"]["Mixed_5b"]["b1"]["gradcam"]).shape == (35, 35)  # 299×299 input
    assert np.array(out["blocks"]["Mixed_7c"]["b2"]["gradcam"]).shape == (8, 8)


def test_visualize_inception_v3_and_refusals(home, tmp_path, capsys):
    png = tmp_path / "v.png"
    argv = ["visualize", "--model", "inception-v3", "--untrained", "--size", "64", "--steps", "2", "--device", "cpu"]
    assert main([*argv, "--layer", "6a", "--branch", "b3", "--channel", "5", "--out", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["layer"], out["branch"], out["output_channel"]) == ("Mixed_6a", "b3", 384 + 96 + 5)
    assert png.stat().st_size > 0
    assert main([*argv, "--layer", "Mixed_6a", "--branch", "b4", "--out", str(png)]) == 2
    assert "no branch 'b4'; choose one of b1, b2, b3" in capsys.readouterr().err
    assert main(["explain", str(CAT), "--model", "inception-v3", "--checkpoint", "x.pt"]) == 2
    assert "--model inception-v3 takes --weights FILE" in capsys.readouterr().err
    assert main(["explain", str(CAT), "--model", "inception-v3"]) == 2  # offline, nothing cached
    assert "could not get the pretrained Inception v3 weights" in capsys.readouterr().err
