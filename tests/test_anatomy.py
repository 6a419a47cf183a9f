"""gnet.anatomy: every step's `out` is the module's own activation, and the arithmetic shown reproduces it.

The expected values are captured here independently of gnet.anatomy: each layer of the branch is run through its own
module (the ConvBlock or pool as a whole, its `.conv` and `.bn` for the parts), the branch module and the block module
as wholes; the steps are then checked against those tensors at the step's (channel, position), and the numbers each
step shows (Σ contributions + bias, scale·x + shift, max(0, x), the pool's max or mean) against its `out`.
Presets (mini, d2l-fashion96, googlenet-imagenet as this project builds it and as torchvision does), every branch kind
(1×1, 1×1 → 3×3, 1×1 → 5×5 / factorised / naive, pool → 1×1), random networks (hypothesis), the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnet import anatomy as A
from gnet.__main__ import main
from gnet.net import Net
from gnet.network import build
from gnet.plan import CONV
from gnet.spec import BlockSpec, NetworkSpec, d2l_fashion96, googlenet_imagenet, mini, with_input
from tests.test_checkpoint_loading import write_checkpoint
from tests.test_plan import geometries

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "assets" / "samples" / "cat.jpg"


def randomise_bn(module: torch.nn.Module, seed: int = 0) -> None:
    """BatchNorm with non-trivial statistics, so scale and shift are tested (a fresh BN is the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def net_of(spec: NetworkSpec, seed: int = 0) -> Net:
    torch.manual_seed(seed)
    module = build(spec)
    randomise_bn(module, seed)
    return Net.of(module)


def image(net: Net, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, *net.plan.input_shape, generator=torch.Generator().manual_seed(seed))


def captured(net: Net, x: torch.Tensor, block: str, branch: str) -> dict[str, dict[str, torch.Tensor]]:
    """Each layer of the branch run through its own modules: {"input", "conv", "bn", "out"} per layer path. A pool
    torchvision calls as a function (Inception v3) is called here as torchvision's forward calls it."""
    with torch.no_grad():
        h = net.block_input(block, x)
        out = {}
        for s in net.plan.branch_layers(block, branch):
            got = {"input": h}
            if s.kind == CONV:
                got["conv"] = net.submodule(f"{s.path}.conv")(h)
                if s.batch_norm:
                    got["bn"] = net.submodule(f"{s.path}.bn")(got["conv"].clone())
                y = net.submodule(s.path)(h)
            elif s.path in dict(net.module.named_modules()):
                y = net.submodule(s.path)(h)
            elif s.kind == "avgpool":
                y = torch.nn.functional.avg_pool2d(h, kernel_size=3, stride=1, padding=1)
            else:
                y = torch.nn.functional.max_pool2d(h, kernel_size=3, stride=2)
            got["out"] = y
            out[s.path] = got
            if not s.half:
                h = y
        return out


def check(net: Net, x: torch.Tensor, block: str, branch: str, channel: int, row: int, col: int) -> A.Anatomy:
    a = A.anatomy(net, x, block, branch, channel, row, col)
    layers = captured(net, x, block, branch)
    with torch.no_grad():
        h = net.block_input(block, x)
        branch_out = net.branch_outputs(block, h)[branch][0]
        block_out = net.submodule(block)(h)[0]
    tol = dict(rel=1e-4, abs=1e-4)
    assert a.value == a.steps[-1].out == pytest.approx(float(branch_out[channel, row, col]), **tol)
    assert a.at == (row, col) and a.channel == channel and a.steps[-1].channel == channel - a.layers[-1].offset
    assert float(block_out[a.concat_channel, row, col]) == pytest.approx(a.value, **tol)
    names = {f"{s.path}.conv" for s in net.plan.branch_layers(block, branch) if s.kind == CONV}
    by_layer = {run.path: i for i, run in enumerate(a.layers)}
    for s in a.steps:
        path = s.layer if s.layer in by_layer else s.layer.rpartition(".")[0]
        cap, (r, c) = layers[path], s.at
        part = {"conv": "conv", "bn": "bn"}.get(s.kind, "out")
        assert s.out == pytest.approx(float(cap[part][0, s.channel, r, c]), **tol), (s.layer, s.kind)
        if isinstance(s, A.ConvStep):
            assert s.layer in names
            assert s.contributions.sum() == pytest.approx(s.dot, rel=1e-9, abs=1e-9)  # they sum to dot exactly
            assert s.dot + (s.bias or 0.0) == pytest.approx(s.out, **tol)
            assert s.contributions.shape == (cap["input"].shape[1],)
            top = s.top_inputs()
            assert [abs(v) for _, v in top] == sorted((abs(v) for _, v in top), reverse=True)
            assert abs(top[0][1]) == pytest.approx(float(np.abs(s.contributions).max()))
        elif isinstance(s, A.BatchNormStep):
            assert s.input * s.scale + s.shift == pytest.approx(s.out, **tol)
        elif isinstance(s, A.ReluStep):
            assert max(0.0, s.input) == pytest.approx(s.out, **tol)
        elif isinstance(s, A.PoolStep):
            finite = s.values[np.isfinite(s.values)]
            if s.kind == "maxpool":
                assert float(finite.max()) == pytest.approx(s.out, **tol)
                r0, c0 = s.window[:2]
                assert float(s.values[s.argmax[0] - r0, s.argmax[1] - c0]) == pytest.approx(s.out, **tol)
            else:
                assert float(finite.sum()) / s.count == pytest.approx(s.out, **tol)
    # the chain back: an earlier layer's position is the centre of the next window, its channel the strongest input
    layer_last = [a.layer_steps(run.path) for run in a.layers]
    for i in range(len(layer_last) - 1):
        nxt = layer_last[i + 1][0]
        here = layer_last[i][-1]
        r0, c0, r1, c1 = nxt.window
        assert here.at == ((r0 + r1) // 2, (c0 + c1) // 2)
        if isinstance(nxt, A.ConvStep):
            assert here.channel == nxt.top_inputs(1)[0][0]
        else:
            assert here.channel == nxt.channel
    return a


def test_mini_every_block_and_branch():
    net = net_of(mini())
    x = image(net)
    for block in net.blocks():
        for branch in net.branch_paths(block):
            c, h, w = net.plan.step(net.branch_paths(block)[branch]).out_shape
            for channel, row, col in ((0, 0, 0), (c - 1, h - 1, w - 1), (c // 2, h // 2, w // 3)):
                check(net, x, block, branch, channel, row, col)


def test_d2l_conv_bias_no_batchnorm():
    net = net_of(d2l_fashion96())
    x = image(net)
    for block in ("inception3a", "inception5b"):
        for branch in ("b1", "b2", "b3", "b4"):
            a = check(net, x, block, branch, 3, 1, 2)
            assert all(s.kind != "bn" for s in a.steps)
            assert all(s.bias is not None for s in a.steps if isinstance(s, A.ConvStep))
    a = A.anatomy(net, x, "inception3a", "b3", 0, 5, 5)
    assert [s.kind for s in a.steps] == ["conv", "relu", "conv", "relu"]
    assert a.steps[2].kernel.shape == (16, 5, 5)  # the paper's 5×5 over the 1×1's 16 channels


def test_googlenet_imagenet_small_input_and_branch_kinds():
    """torchvision's architecture at 96×96 (ceil-mode pools still fit), plus naive and factorised blocks."""
    spec = with_input(googlenet_imagenet(), size=(96, 96))
    net = net_of(spec)
    x = image(net)
    for block, branch in (("inception3a", "b3"), ("inception4e", "b4"), ("inception5b", "b2"), ("inception5b", "b1")):
        check(net, x, block, branch, 7, 2, 1)
    stages = (
        (
            BlockSpec(b1=4, b2_reduce=3, b2=5, b3_reduce=2, b3=3, b4=2, reduce=False),
            BlockSpec(b1=3, b2_reduce=2, b2=4, b3_reduce=2, b3=3, b4=2, factorize=True),
        ),
    )
    odd = NetworkSpec(
        name="kinds", in_channels=3, input_size=(12, 12), num_classes=2, stem=(), stages=stages, stage_pools=()
    )
    net = net_of(odd)
    a = check(net, image(net), "inception3a", "b3", 1, 0, 11)  # naive: the 5×5 reads the block input
    assert [s.kind for s in a.steps] == ["conv", "relu"] and a.steps[0].kernel.shape == (3, 5, 5)
    a = check(net, image(net), "inception3b", "b3", 1, 11, 0)  # factorised: 1×1 → 3×3 → 3×3
    assert [s.kind for s in a.steps] == ["conv", "relu"] * 3


def test_torchvision_module_and_transform_input():
    """torchvision's own GoogLeNet (BasicConv2d has no ReLU module; transform_input remaps the input)."""
    from torchvision.models import googlenet

    torch.manual_seed(0)
    module = googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    randomise_bn(module)
    net = Net.of(module)
    x = image(net)
    for branch in ("b1", "b2", "b3", "b4"):
        check(net, x, "inception4a", branch, 5, 13, 0)
    a = A.anatomy(net, x, "inception4a", "b4", 0, 0, 0)
    assert a.steps[0].kind == "maxpool" and a.steps[0].window == (-1, -1, 1, 1)  # the corner reaches the padding


def test_torchvision_inception_v3():
    """Inception v3 as torchvision builds it: functional pools (no module), 1×7 / 7×1 kernels, stride-2 grid
    reductions, a pool-only branch, and E's two halves (a unit of the second half is computed by that half alone)."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    module = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    randomise_bn(module)
    net = Net.of(module)
    x = torch.randn(1, 3, 107, 107, generator=torch.Generator().manual_seed(0))  # small: Mixed_7 maps are 1×1
    a = check(net, x, "Mixed_5b", "b4", 3, 0, 4)
    assert [s.kind for s in a.steps] == ["avgpool", "conv", "bn", "relu"] and a.steps[0].count == 9
    a = check(net, x, "Mixed_6a", "b3", 7, 1, 2)  # the max-pool alone, stride 2
    assert [s.kind for s in a.steps] == ["maxpool"] and a.steps[0].window == (2, 4, 4, 6)
    check(net, x, "Mixed_6a", "b1", 7, 2, 0)
    a = check(net, x, "Mixed_6b", "b2", 11, 1, 1)
    assert [st.kernel.shape[1:] for st in a.steps if isinstance(st, A.ConvStep)] == [(1, 1), (1, 7), (7, 1)]
    for channel in (5, 384 + 5):  # b2 of Mixed_7b: 1×1, then 1×3 (channels 0–383) beside 3×1 (384–767)
        a = check(net, x, "Mixed_7b", "b2", channel, 0, 0)
        assert a.layers[-1].path.endswith("_2a" if channel < 384 else "_2b") and a.steps[-1].channel == 5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=geometries(), data=st.data())
def test_random_networks(spec, data):
    net = net_of(spec, seed=data.draw(st.integers(0, 3)))
    x = image(net, 1)
    block = data.draw(st.sampled_from(net.blocks()))
    branch = data.draw(st.sampled_from(list(net.branch_paths(block))))
    c, h, w = net.plan.step(net.branch_paths(block)[branch]).out_shape
    check(
        net,
        x,
        block,
        branch,
        data.draw(st.integers(0, c - 1)),
        data.draw(st.integers(0, h - 1)),
        data.draw(st.integers(0, w - 1)),
    )


def test_the_shared_module_is_left_untouched():
    net = net_of(mini())
    before = {k: v.clone() for k, v in net.module.state_dict().items()}
    a = A.anatomy(net, image(net), "inception4a", "b2", 1, 2, 3)
    A.animation(a, a.trace.layers[0].path)
    assert not net.module.training and all(not m.training for m in net.module.modules())
    for m in net.module.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert all(p.grad is None and not p.requires_grad for p in net.module.parameters())
    after = net.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_errors_name_the_valid_range():
    net = net_of(mini())
    x = image(net)
    with pytest.raises(A.AnatomyError, match=r"choose 0–15"):
        A.anatomy(net, x, "inception3a", "b1", 16, 0, 0)
    with pytest.raises(A.AnatomyError, match=r"row 0–15, column 0–15"):
        A.anatomy(net, x, "inception3a", "b1", 0, 16, 0)
    with pytest.raises(A.AnatomyError, match=r"choose one of b1, b2, b3, b4"):
        A.anatomy(net, x, "inception3a", "b7", 0, 0, 0)
    with pytest.raises(A.AnatomyError, match=r"choose one of inception3a"):
        A.anatomy(net, x, "inception9z", "b1", 0, 0, 0)
    training = build(mini()).train()
    with pytest.raises(A.AnatomyError, match="training mode"):
        A.anatomy(Net.of(training, share=False), x, "inception3a", "b1", 0, 0, 0)


def test_animation_frames():
    net = net_of(mini())
    a = A.anatomy(net, image(net), "inception3b", "b4", 2, 3, 4)
    pool, conv = (run.path for run in a.trace.layers)
    an = A.animation(a, conv)
    h, w = an.output_map.shape
    assert len(an.frames) == h * w and an.frames[3 * w + 4][:2] == (3, 4)
    assert an.frames[3 * w + 4][6] == pytest.approx(a.value) and an.out_channel == 2
    assert all(f[6] == an.output_map[f[0], f[1]] for f in an.frames)
    weights = a.trace.layers[1].weight[2]
    assert an.in_channel == int(np.argmax(np.abs(weights).sum(axis=(1, 2))))
    other = A.unit(a.trace, 2, 0, 0)  # another unit of the same channel: the same animation
    assert A.animation(other, conv).frames == an.frames and A.animation(other, conv).in_channel == an.in_channel
    p = A.animation(a, pool)
    assert p.frames[0][2:6] == (-1, -1, 1, 1) and p.in_channel == p.out_channel == a.steps[0].channel
    with pytest.raises(A.AnatomyError, match="choose one of"):
        A.animation(a, "inception3b.branch9")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_OFFLINE", "1")
    return tmp_path


def test_cli_json_on_a_checkpoint(home, capsys):
    path = home / "run" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    argv = ["anatomy", str(CAT), "--block", "3b", "--branch", "b2", "--channel", "5", "--at", "2,3"]
    assert main([*argv, "--checkpoint", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"block", "branch", "channel", "at", "concat_channel", "value", "steps"}
    assert (out["block"], out["branch"], out["channel"], out["at"]) == ("inception3b", "b2", 5, [2, 3])
    assert out["concat_channel"] == 24 + 5  # after b1's 24 channels
    assert [s["kind"] for s in out["steps"]] == ["conv", "bn", "relu", "conv", "bn", "relu"]
    assert [s["layer"] for s in out["steps"]][:3] == [
        "inception3b.branch2.0.conv",
        "inception3b.branch2.0.bn",
        "inception3b.branch2.0",
    ]
    assert out["value"] == out["steps"][-1]["out"]
    conv = out["steps"][3]
    assert {"layer", "kind", "at", "channel", "window", "out", "dot", "bias", "top_inputs"} <= set(conv)
    assert conv["window"] == [1, 2, 3, 4] and conv["bias"] is None
    assert out["steps"][0]["channel"] == conv["top_inputs"][0]["channel"]
    assert main([*argv, "--checkpoint", str(path)]) == 0
    assert "3b·b2 channel 5 at (2, 3) = block output channel 29" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--block", "9z", "--branch", "b1", "--channel", "0", "--at", "0,0"], "no block '9z'; choose one of 3a"),
        (["--block", "3a", "--branch", "b5", "--channel", "0", "--at", "0,0"], "choose one of b1, b2, b3, b4"),
        (["--block", "3a", "--branch", "b1", "--channel", "99", "--at", "0,0"], "choose 0–15"),
        (["--block", "3a", "--branch", "b1", "--channel", "0", "--at", "0,16"], "row 0–15, column 0–15"),
        (["--block", "3a", "--branch", "b1", "--channel", "0", "--at", "x"], "--at takes 2 comma-separated"),
    ],
)
def test_cli_bad_input_exits_2(home, capsys, extra, message):
    path = home / "best.pt"
    write_checkpoint(path)
    assert main(["anatomy", str(CAT), *extra, "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_offline_default_source_says_what_to_do(home, capsys):
    argv = ["anatomy", str(CAT), "--block", "3a", "--branch", "b1", "--channel", "0", "--at", "0,0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "use --weights FILE, --checkpoint FILE or --untrained" in err and err.count("\n") == 1


def test_cli_inception_v3_untrained(home, capsys):
    argv = ["anatomy", str(CAT), "--model", "inception-v3", "--untrained", "--block", "7b", "--branch", "b2"]
    assert main([*argv, "--channel", "400", "--at", "3,4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["block"], out["concat_channel"]) == ("Mixed_7b", 320 + 400)  # after b1's 320 channels
    assert [s["layer"] for s in out["steps"] if s["kind"] == "conv"] == [
        "Mixed_7b.branch3x3_1.conv",
        "Mixed_7b.branch3x3_2b.conv",  # channel 400 is the 3×1 half's channel 16
    ]
    assert out["steps"][-1]["channel"] == 16 and out["steps"][-1]["out"] == out["value"]
    assert main([*argv, "--channel", "768", "--at", "0,0"]) == 2
    assert "choose 0–767" in capsys.readouterr().err
