"""`python -m gnet explain`: the pretrained source from a temporary torch hub cache (real
torchvision-format file, random weights), weights files, checkpoints, --target, --json, and
one-line exit-2 messages for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gnet import attribution as A
from gnet.__main__ import main
from gnet.images import load, preprocess
from gnet.pretrained import ModelSource, load_model
from tests.test_attribution import write_d2l_checkpoint
from tests.test_checkpoint_loading import CLASSES, write_checkpoint
from tests.test_pretrained import write_hub_weights

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "assets" / "samples" / "cat.jpg"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_OFFLINE", "1")
    return tmp_path


def run_json(capsys, argv: list[str]) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_pretrained_json_matches_the_library(home, capsys):
    write_hub_weights(home / "torch")
    out = run_json(capsys, ["explain", str(CAT), "--target", "tabby"])
    assert set(out) == {"target", "label", "logit", "prob", "seconds", "blocks"}
    assert out["target"] == 281 and out["label"] == "tabby"
    assert list(out["blocks"]) == [f"inception{b}" for b in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
    cell = out["blocks"]["inception3a"]["b2"]
    assert set(cell) == {"gradcam", "grad_x_act", "ablation_delta_logit", "ablation_delta_prob"}
    assert np.array(cell["gradcam"]).shape == (28, 28)  # the branch's resolution at 224×224
    assert np.array(out["blocks"]["inception5b"]["b4"]["gradcam"]).shape == (7, 7)
    # the same numbers as the library on the same model and image (torchvision's preprocessing)
    lm = load_model(ModelSource("pretrained"))
    _, x = preprocess(load(CAT.read_bytes()).image, lm.preprocess)
    ex = A.explain(lm.module, x, 281, lm.classes)
    assert out["logit"] == pytest.approx(ex.logit, rel=1e-5)
    assert out["prob"] == pytest.approx(ex.prob, rel=1e-5)
    for b in ex.blocks:
        for r in A.BRANCHES:
            got, want = out["blocks"][b][r], ex.blocks[b][r]
            np.testing.assert_allclose(np.array(got["gradcam"]), want.gradcam, rtol=1e-5, atol=1e-7)
            assert got["ablation_delta_prob"] == pytest.approx(want.delta_prob, abs=1e-6)
            assert got["ablation_delta_logit"] == pytest.approx(want.delta_logit, abs=1e-4)

    # the same file as a weights file: the same path as Feature Maps (transform_input, torchvision's preprocessing)
    weights = home / "torch" / "hub" / "checkpoints" / "googlenet-1378be20.pth"
    assert main(["explain", str(CAT), "--weights", str(weights), "--target", "281"]) == 0
    text = capsys.readouterr().out
    assert "torchvision GoogLeNet, weights file googlenet-1378be20.pth" in text
    assert "target 281 'tabby'" in text and "largest drops:" in text and "zeroing " in text


def test_checkpoints_including_the_one_channel_d2l(home, capsys):
    mini = home / "mini.pt"
    write_checkpoint(mini)
    out = run_json(capsys, ["explain", str(CAT), "--checkpoint", str(mini), "--target", CLASSES[2]])
    assert out["target"] == 2 and out["label"] == CLASSES[2] and len(out["blocks"]) == 4
    assert np.array(out["blocks"]["inception4b"]["b1"]["gradcam"]).shape == (8, 8)
    d2l = home / "d2l.pt"
    write_d2l_checkpoint(d2l)
    out = run_json(capsys, ["explain", str(CAT), "--checkpoint", str(d2l)])
    assert len(out["blocks"]) == 9 and 0 <= out["prob"] <= 1


def test_untrained_is_labelled(home, capsys):
    assert main(["explain", str(CAT), "--untrained", "--target", "0"]) == 0
    assert "UNTRAINED" in capsys.readouterr().out


def bad_weights(home: Path) -> Path:
    p = home / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, p)
    return p


@pytest.mark.parametrize(
    "argv,words",
    [
        (["explain", "{home}/missing.jpg", "--untrained"], "cannot read the image"),
        (["explain", "{home}/text.jpg", "--untrained"], "not a supported image"),
        (["explain", "{cat}", "--weights", "{home}/bad.pth"], "are not GoogLeNet weights"),
        (["explain", "{cat}", "--weights", "{home}/nothing.pth"], "no weights file"),
        (["explain", "{cat}", "--checkpoint", "{home}/text.jpg"], "is not a PyTorch file"),
        (["explain", "{cat}", "--checkpoint", "{home}/mini.pt", "--target", "tabby"], "unknown class 'tabby'"),
        (["explain", "{cat}", "--checkpoint", "{home}/mini.pt", "--target", "10"], "out of range"),
        (["explain", "{cat}", "--checkpoint", "{home}/mini.pt", "--target", ""], "the target is empty"),
        (["explain", "{cat}"], "use --weights FILE, --checkpoint FILE or --untrained"),
        (["explain", "{cat}", "--untrained", "--weights", "x.pth"], "not allowed with"),
    ],
)
def test_bad_input_exits_2_with_one_line(home, capsys, argv, words):
    (home / "text.jpg").write_text("not an image")
    bad_weights(home)
    write_checkpoint(home / "mini.pt")
    argv = [a.format(home=home, cat=CAT) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("error: ") and err.count("\n") == 1, err


def test_subprocess_offline_default(home):
    p = subprocess.run(
        [sys.executable, "-m", "gnet", "explain", str(CAT)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert "googlenet-1378be20.pth" in p.stderr and "--untrained" in p.stderr
