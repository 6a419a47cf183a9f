"""gnet.featurevis on Inception v3: the smallest image each Mixed block takes, the redirected objective through the
Net's own branch walk (E's split halves included), the halves of a split branch, a job that records and loads
the network family, and `python -m gnet visualize --model inception-v3` through the same library path."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gnet import featurevis as fv
from gnet.__main__ import main
from gnet.pretrained import ModelSource, load_model
from gnet.v3 import mini_v3
from gnet.v3_modules import build_v3

TINY = fv.VisConfig(size=64, steps=4, jitter=2)


@pytest.fixture(scope="module")
def v3():
    """torchvision's Inception v3 with random weights (seed 0), as the app's untrained source loads it."""
    return load_model(ModelSource("untrained", model="inception-v3"), torch.device("cpu"))


@pytest.fixture(scope="module")
def mini():
    torch.manual_seed(0)
    return fv.as_net(build_v3(mini_v3()).eval().requires_grad_(False))


def test_smallest_image_per_block_follows_the_grid(v3, mini):
    sizes = {b: fv.min_size(v3, b) for b in v3.blocks()}
    assert sizes["Mixed_5b"] == 32 and sizes["Mixed_6e"] == 43 and sizes["Mixed_7c"] == 75  # torchvision's 75×75
    assert all(fv.min_size(mini, b) == 32 for b in mini.blocks())  # mini-v3's stem keeps the input's size
    with pytest.raises(fv.VisError, match=r"7b needs an image of at least 75×75 px"):
        fv.visualize(v3.module, v3.preprocess, [fv.Target("Mixed_7b", "b1", 0)], fv.VisConfig(size=64, steps=1))


def test_split_branch_halves(v3):
    halves = fv.halves(v3, "Mixed_7b", "b2")
    assert [(h.path, h.kernel, h.first, h.width) for h in halves] == [
        ("Mixed_7b.branch3x3_2a", "1×3", 0, 384),
        ("Mixed_7b.branch3x3_2b", "3×1", 384, 384),
    ]
    assert halves[1].holds(384) and not halves[0].holds(384)
    assert fv.halves(v3, "Mixed_7b", "b1") == [] and fv.halves(v3, "Mixed_6b", "b3") == []


def silenced(net: fv.Net, block: str, branch: str, channel: int) -> fv.Net:
    """A copy whose branch output `channel` is below zero everywhere before its last ReLU (BatchNorm shift -1000),
    every earlier layer as it was: the plain ReLU passes that channel no gradient."""
    module = copy.deepcopy(net.module)
    steps = net.plan.branch_layers(block, branch)
    last = [s for s in steps if s.half] or steps[-1:]
    first = 0
    for step in last:
        width = step.out_shape[0]
        if first <= channel < first + width:
            module.get_submodule(step.path).bn.bias[channel - first] = -1000.0
        first += width
    return fv.as_net(module)


@pytest.mark.parametrize(
    "block,branch",
    [("Mixed_7b", "b2"), ("Mixed_7b", "b3"), ("Mixed_6b", "b3"), ("Mixed_6a", "b3"), ("Mixed_5b", "b4")],
)
def test_redirected_objective_has_the_plain_values_and_moves_a_silent_channel(mini, block, branch):
    """Same values as the Net's own branch walk; where the plain ReLU passes no gradient, the redirected one does
    (visualize descends on minus the objective)."""
    h = mini.block_input(block, torch.rand(2, 3, 36, 36))
    r = fv.resolve(mini, fv.Target(block, branch, 1))
    plain = fv.objectives(mini, h, [r, r])
    assert torch.allclose(fv.objectives(mini, h, [r, r], redirect=True), plain)
    expected = mini.branch_outputs(block, h)[branch][:, 1].mean(dim=(1, 2))
    assert torch.allclose(plain, expected)
    if branch == "b3" and block == "Mixed_6a":  # ends in a max-pool: nothing to redirect, still runs
        return
    quiet = silenced(mini, block, branch, 1)
    x = h[:1].clone().requires_grad_(True)
    assert float(fv.objectives(quiet, x, [r]).detach()) == 0.0
    (g_plain,) = torch.autograd.grad(-fv.objectives(quiet, x, [r]).sum(), [x])
    (g_redir,) = torch.autograd.grad(-fv.objectives(quiet, x, [r], redirect=True).sum(), [x])
    assert float(g_plain.abs().sum()) == 0.0 and float(g_redir.abs().sum()) > 0


def test_a_job_records_the_family_and_an_old_job_is_googlenets(v3, tmp_path):
    fp = fv.model_fingerprint(v3)
    targets = [fv.Target("Mixed_6b", "b2", 3)]
    src = {"kind": "untrained", "path": "", "model": "inception-v3"}
    job = fv.start_job(tmp_path, src, fp, "Mixed_6b", targets, TINY, spawn=False)
    assert fv.job_model(job.path) == "inception-v3" and fv.job_source(job.path) == ("untrained", "")
    info = fv.run_job(job.path, v3.module, v3.preprocess)  # in this process: the fingerprint matches the v3
    assert info.state == "finished", info.message
    res = fv.read_result(tmp_path, fv.result_key(fp, targets[0], TINY))
    assert res is not None and res.meta["output_channel"] == 192 + 3 and res.image().size == (64, 64)
    spec = json.loads((job.path / "job.json").read_text())
    del spec["source"]["model"]  # written before the family was recorded
    (job.path / "job.json").write_text(json.dumps(spec))
    assert fv.job_model(job.path) == "googlenet"
    with pytest.raises(fv.VisError, match="unknown network family"):
        fv.start_job(tmp_path, {**src, "model": "alexnet"}, fp, "Mixed_6b", targets, TINY, spawn=False)


def test_cli_visualize_inception_v3(tmp_path, capsys):
    out = tmp_path / "v.png"
    argv = ["visualize", "--model", "inception-v3", "--untrained", "--layer", "7b", "--branch", "b2", "--channel"]
    assert main([*argv, "400", "--size", "96", "--steps", "2", "--device", "cpu", "--out", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["layer"] == "Mixed_7b" and got["output_channel"] == 320 + 400 and out.stat().st_size > 0
    assert main([*argv, "0", "--size", "64", "--steps", "2", "--device", "cpu", "--out", str(out)]) == 2
    assert "at least 75×75 px" in capsys.readouterr().err
