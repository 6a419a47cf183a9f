"""Inception v3's model sources (gnet.pretrained): torchvision's IMAGENET1K_V1 file in a temporary torch hub cache,
read through torchvision's weights API with weights_only=True (a real state_dict in torchvision's format, random
values; no mock), a weights file, random weights, and the refusals."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import Inception3, inception_v3

from gnet.checkpoints import CheckpointError
from gnet.pretrained import (
    V3_WEIGHTS_FILE,
    ModelSource,
    ensure_v3_weights,
    load_model,
    v3_hub_weights_path,
)
from gnet.v3_modules import InceptionV3
from tests.test_pretrained import Marker, torch_home  # noqa: F401 (the fixture)

PRETRAINED = ModelSource("pretrained", model="inception-v3")


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()


def _write(torch_home, state) -> None:  # noqa: F811
    path = torch_home / "hub" / "checkpoints" / V3_WEIGHTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def test_pretrained_v3_loads_from_the_hub_cache_through_torchvision(torch_home):  # noqa: F811
    state = _state()
    _write(torch_home, state)
    assert v3_hub_weights_path() == torch_home / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    assert ensure_v3_weights(url="http://127.0.0.1:9/never-used").ok  # cached: no network at all
    net = load_model(PRETRAINED)
    assert isinstance(net.module, Inception3) and net.trained and net.module.transform_input
    got = net.module.state_dict()
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_6b.branch7x7_2.conv.weight", "AuxLogits.fc.weight", "fc.bias"):
        assert torch.equal(got[key], state[key]), key
    assert (net.preprocess.resize, net.preprocess.crop) == (342, (299, 299))  # the weights' own transforms
    assert len(net.classes) == 1000 and net.classes[0] == "tench"
    assert net.blocks() == [f"Mixed_{n}" for n in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")]
    assert list(net.branch_paths("Mixed_7b")) == ["b1", "b2", "b3", "b4"]
    x = torch.randn(1, 3, 299, 299, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(net.logits(x), net.module(x), atol=1e-4)
        ours = InceptionV3(net.plan.spec).eval()
        ours.load_state_dict(state)  # the module built from the plan's spec: the same logits for the same weights
        assert torch.allclose(ours(x), net.module(x), atol=1e-4)


def test_v3_weights_file_untrained_and_refusals(torch_home, tmp_path):  # noqa: F811
    state = _state()
    f = tmp_path / "v3.pth"
    torch.save(state, f)
    net = load_model(ModelSource("weights", str(f), model="inception-v3"))
    assert torch.equal(
        net.module.state_dict()["Mixed_5b.branch5x5_2.conv.weight"], state["Mixed_5b.branch5x5_2.conv.weight"]
    )
    untrained = load_model(ModelSource("untrained", model="inception-v3"))
    assert isinstance(untrained.module, InceptionV3) and not untrained.trained
    with pytest.raises(CheckpointError, match="inception_v3_google-0cc3c7bd.pth"):
        load_model(PRETRAINED)  # not in the cache
    marker = tmp_path / "pwned"
    torch.save({"fc.weight": Marker(marker)}, f)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_model(ModelSource("weights", str(f), model="inception-v3"))
    assert not marker.exists()
    torch.save({k: v for k, v in state.items() if not k.startswith("Mixed_7c")}, f)
    with pytest.raises(CheckpointError, match="do not fit torchvision's Inception v3"):
        load_model(ModelSource("weights", str(f), model="inception-v3"))
    with pytest.raises(CheckpointError, match="unknown model 'resnet'; choose one of googlenet, inception-v3"):
        load_model(ModelSource("pretrained", model="resnet"))


def test_v3_download_off_and_mirror_check(torch_home, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GNET_OFFLINE", "1")
    status = ensure_v3_weights()
    assert status.state == "off" and V3_WEIGHTS_FILE in status.message and "Inception v3" in status.message
    monkeypatch.delenv("GNET_OFFLINE")
    monkeypatch.setenv("GNET_V3_WEIGHTS_SHA256", "not-a-hash")
    status = ensure_v3_weights()
    assert status.state == "failed" and "GNET_V3_WEIGHTS_SHA256" in status.message
