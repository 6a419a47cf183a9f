"""gnet.net.Net: its walk against the modules' own forward and torchvision's feature extractor, its content
key, the labels, and the shared-model rule (a request leaves no hooks, no .grad, no train mode)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.feature_extraction import create_feature_extractor

from gnet import attribution as A
from gnet import features as F
from gnet.images import Preprocess
from gnet.net import Net, NetError, as_net, content_key
from gnet.network import build
from gnet.plan import layer_plan, parse_label, short_label
from gnet.pretrained import ModelSource, load_model
from gnet.spec import SpecError, d2l_fashion96, googlenet_imagenet, mini, with_input
from tests.test_plan import geometries


def tv(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True).eval()


def assert_untouched(module: torch.nn.Module) -> None:
    assert not module.training
    for m in module.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks, m
    assert all(p.grad is None for p in module.parameters())


@pytest.mark.parametrize("which", ["torchvision", "mini", "d2l"])
def test_walk_equals_the_module_and_torchvision_feature_extractor(which):
    module = {"torchvision": tv, "mini": lambda: build(mini()).eval(), "d2l": lambda: build(d2l_fashion96()).eval()}[
        which
    ]()
    net = Net.of(module)
    c, h, w = net.plan.input_shape
    x = torch.randn(2, c, min(h, 96), min(w, 96), generator=torch.Generator().manual_seed(1))
    paths = net.main_path()
    blocks = net.blocks()
    branch_paths = [p for b in blocks for p in net.branch_paths(b).values()]
    refs = create_feature_extractor(copy.deepcopy(module), {p: p for p in paths + branch_paths})(x)
    with torch.no_grad():
        assert torch.allclose(net.logits(x), module(x), atol=1e-5)
        for p in paths:
            assert torch.allclose(net.run_to(p, x), refs[p], atol=1e-5), p
        for b in blocks:
            h_in = net.block_input(b, x)
            parts = net.branch_outputs(b, h_in)
            assert list(parts) == ["b1", "b2", "b3", "b4"]
            for k, p in net.branch_paths(b).items():
                assert torch.allclose(parts[k], refs[p], atol=1e-5), p
            out = torch.cat(list(parts.values()), 1)
            assert torch.allclose(net.head(b, out), module(x), atol=1e-5), b
        last, kept = net.forward_blocks(net.input(x))
        assert list(kept) == blocks and torch.allclose(net.head(paths[-1], last), module(x), atol=1e-5)
    assert_untouched(module)


@settings(max_examples=8, deadline=None, database=None)
@given(spec=geometries(), seed=st.integers(0, 2**16))
def test_walk_of_random_networks_equals_forward(spec, seed):
    """Random stems, blocks and pools: the Net's logits and every block input are the module's."""
    try:
        layer_plan(spec)
    except SpecError:
        return
    torch.manual_seed(seed)
    module = build(spec).eval()
    net = Net.of(module)
    x = torch.randn(1, *net.plan.input_shape)
    with torch.no_grad():
        assert torch.allclose(net.logits(x), module(x), atol=1e-5)
        for b in net.blocks():
            h = net.block_input(b, x)
            out = torch.cat(list(net.branch_outputs(b, h).values()), 1)
            assert torch.allclose(out, net.submodule(b)(h), atol=1e-6)
            assert tuple(out.shape[1:]) == net.plan.step(b).out_shape


def test_every_source_returns_a_shared_net(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    net = load_model(ModelSource("untrained"))
    assert isinstance(net, Net) and not net.module.training and not net.trained
    assert all(not p.requires_grad for p in net.module.parameters())
    assert net.plan.spec == googlenet_imagenet() and net.source == ModelSource("untrained")
    x = torch.randn(1, 3, 96, 96)
    F.extract(net, x, "4a")
    A.explain(net, x, ablation=False)
    A.receptive_fields(net, x, "inception3b", 0, 0)
    assert_untouched(net.module)


def test_content_key_is_the_weights_spec_and_preprocessing():
    a, b = tv(0), tv(0)
    pre = Preprocess(256, (224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    key = Net.of(a, pre).content
    assert Net.of(b, pre).content == key  # the same weights from another object (or file, or process)
    assert Net.of(a, pre).key == f"{key}@cpu"
    assert Net.of(tv(1), pre).content != key  # other weights
    assert Net.of(a, Preprocess(256, (224, 224), (0.5,) * 3, (0.5,) * 3)).content != key  # other preprocessing
    with torch.no_grad():
        b.inception4a.branch2[1].bn.running_mean[0] += 1  # a buffer counts as weights too
    assert Net.of(b, pre).content != key
    b = copy.deepcopy(a)
    b.transform_input = False  # no state_dict holds it, but it changes every output
    assert content_key(b, googlenet_imagenet(), pre) != content_key(a, googlenet_imagenet(), pre)


def test_as_net_leaves_a_bare_module_as_it_is():
    module = build(mini()).train()
    net = as_net(module)
    assert module.training and as_net(net) is net
    with pytest.raises(NetError, match="no layer plan"):
        as_net(torch.nn.Linear(2, 2))
    with pytest.raises(NetError, match="no block 'conv1'"):
        net.branch_paths("conv1")
    with pytest.raises(NetError, match="no layer 'inception9z'"):
        net.run_to("inception9z", torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("spec", [googlenet_imagenet(), d2l_fashion96(), mini()], ids=lambda s: s.name)
def test_labels_round_trip(spec):
    plan = layer_plan(with_input(spec, size=(224, 224)) if spec.name == "mini" else spec)
    for block in plan.blocks():
        assert parse_label(plan, short_label(block)) == (block, None)
        assert parse_label(plan, block) == (block, None)
        for branch, path in plan.branch_paths(block).items():
            assert parse_label(plan, short_label(block, branch)) == (block, branch)
            assert parse_label(plan, path) == (block, branch)
    assert short_label("inception4e", "b3") == "4e·b3" and short_label("Mixed_6b") == "6b"
    assert short_label("conv1") == "conv1"
    with pytest.raises(KeyError, match="no block '6z'; choose one of 3a"):
        parse_label(plan, "6z")
    with pytest.raises(KeyError, match="no branch 'b7' in 3a; choose one of b1, b2, b3, b4"):
        parse_label(plan, "3a·b7")
