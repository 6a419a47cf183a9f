"""Project checkpoints in the Feature Maps loader: a real tiny checkpoint (mini preset,
saved with gnet.checkpoints.save_checkpoint) loads and runs; everything else is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from gnet import features as F
from gnet.analysis import network_report
from gnet.checkpoints import Checkpoint, CheckpointError, save_checkpoint
from gnet.images import load, preprocess
from gnet.network import build
from gnet.pretrained import ModelSource, load_model
from gnet.spec import BlockSpec, mini, with_input
from tests.test_pretrained import write_malicious

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "samples" / "cat.jpg"
CLASSES = [f"thing {i}" for i in range(10)]
PRE = {"image_size": [32, 32], "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "in_channels": 3}


def write_checkpoint(path: Path, spec=None, pre=None, state=None, epoch: int = 3) -> torch.nn.Module:
    spec = spec or mini()
    torch.manual_seed(1)
    model = build(spec)
    save_checkpoint(path, Checkpoint(spec, state or model.state_dict(), CLASSES, pre or PRE, {"epoch": epoch}))
    return model


def test_tiny_checkpoint_loads_and_runs(tmp_path):
    path = tmp_path / "run1" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    original = write_checkpoint(path)
    lm = load_model(ModelSource("checkpoint", str(path)))
    assert lm.trained and list(lm.classes) == CLASSES and "run1/best.pt" in lm.label and "epoch 3" in lm.label
    assert lm.preprocess.crop == (32, 32) and lm.preprocess.mean == tuple(PRE["mean"])
    assert [l.label for l in F.layers(lm.module)] == ["conv1 (stem)", "maxpool1 (stem)", "3a", "3b", "4a", "4b"]
    _, x = preprocess(load(SAMPLE.read_bytes()).image, lm.preprocess)
    assert x.shape == (1, 3, 32, 32)
    report = network_report(mini())
    for block in ("3a", "4b"):
        ex = F.extract(lm.module, x, block)
        spec = mini().block(block)
        assert {g: a.shape[0] for g, a in ex.groups.items()} == {
            "b1": spec.b1,
            "b2": spec.b2,
            "b3": spec.b3,
            "b4": spec.b4,
        }
        assert ex.output.shape == tuple(report.row(f"inception{block}").output_shape)
        assert ex.kernel_labels["b3"] == "1×1 → 5×5"  # the mini preset keeps the paper's 5×5
        original.eval()
        with torch.no_grad():
            assert torch.allclose(ex.logits, original(x)[0], atol=1e-5)  # same weights as saved
    assert F.top_k(ex.logits, lm.classes)[0].label in CLASSES


def test_grayscale_checkpoint(tmp_path):
    path = tmp_path / "gray.pt"
    spec = dataclasses.replace(with_input(mini(), in_channels=1), name="mini-gray")
    write_checkpoint(path, spec=spec, pre={"image_size": [32, 32], "mean": [0.5], "std": [0.5], "in_channels": 1})
    lm = load_model(ModelSource("checkpoint", str(path)))
    cropped, x = preprocess(load(SAMPLE.read_bytes()).image, lm.preprocess)
    assert cropped.mode == "L" and x.shape == (1, 1, 32, 32)
    assert F.extract(lm.module, x, "3b").groups["b1"].shape[0] == spec.block("3b").b1


def test_a_checkpoint_given_as_weights_file_is_recognised(tmp_path):
    path = tmp_path / "ck.pt"
    write_checkpoint(path)
    assert list(load_model(ModelSource("weights", str(path))).classes) == CLASSES


def test_rejections(tmp_path):
    def refused(path: Path, match: str) -> None:
        with pytest.raises(CheckpointError, match=match):
            load_model(ModelSource("checkpoint", str(path)))

    refused(tmp_path / "missing.pt", "no checkpoint file")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00\x01 this is not a checkpoint at all")
    refused(junk, "not a PyTorch file")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    refused(other, "not an Inception Explorer checkpoint")
    # weights from a different network than the spec stored with them
    wrong = tmp_path / "wrong.pt"
    other_state = build(
        mini().with_block("3a", BlockSpec(b1=8, b2_reduce=8, b2=8, b3_reduce=4, b3=8, b4=8, batch_norm=True))
    ).state_dict()
    write_checkpoint(wrong, state=other_state)
    refused(wrong, "do not fit the network spec")
    good = tmp_path / "good.pt"
    write_checkpoint(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    refused(truncated, "truncated or corrupt")
    bad_pre = tmp_path / "bad_pre.pt"
    write_checkpoint(bad_pre, pre={"image_size": "big", "mean": [0.5], "std": [0.5]})
    refused(bad_pre, "preprocessing settings are malformed")
    zero_std = tmp_path / "zero_std.pt"
    write_checkpoint(zero_std, pre={**PRE, "std": [0.0, 0.2, 0.2]})
    refused(zero_std, "does not fit a 3-channel network")


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker-created-by-pickle"
    evil = tmp_path / "evil.pt"
    write_malicious(evil, marker)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(ModelSource("checkpoint", str(evil)))
    assert not marker.exists()


def test_project_checkpoints_see_the_whole_image_as_in_training():
    """The trainer resizes whole images (no crop); its checkpoints say so, and Feature Maps
    preprocesses the same way, so a wide photo's edges are not cut off."""
    from PIL import Image

    from gnet.images import preprocess
    from gnet.pretrained import checkpoint_preprocess

    img = Image.new("RGB", (64, 32), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 16, 32))  # the left quarter is red
    base = {"image_size": [32, 32], "mean": [0.0] * 3, "std": [1.0] * 3, "in_channels": 3}
    stretched, x = preprocess(img, checkpoint_preprocess({**base, "resize_mode": "stretch"}, 3))
    cropped, _ = preprocess(img, checkpoint_preprocess(base, 3))
    assert stretched.size == cropped.size == (32, 32)
    assert stretched.getpixel((2, 16))[0] > 200 and x[0, 0, 16, 2] > 0.8  # red kept at the left edge
    assert cropped.getpixel((2, 16))[0] < 50  # a centre crop would have cut it off
