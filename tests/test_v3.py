"""Inception v3 (gnet.v3, gnet.v3_modules): block kinds A–E against torchvision's own modules and torch/torchinfo
over random channel configurations, JSON round trips and refusals, the preset against torchvision's
inception_v3 (params, mult-adds, logits), per-axis receptive fields against the gradient, and Net's walk."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torchinfo
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models import inception as tvi
from torchvision.models.feature_extraction import create_feature_extractor

from gnet.analysis import plan_report, steps_block_report
from gnet.net import Net
from gnet.spec import SpecError
from gnet.v3 import (
    KIND_SPECS,
    InceptionCSpec,
    InceptionESpec,
    InceptionV3Spec,
    block_plan_steps,
    default_kind,
    inception_v3_imagenet,
    kind_fields,
    kind_from_dict,
    kind_from_json,
    kind_to_json,
    kind_with,
    v3_plan,
)
from gnet.v3_modules import InceptionV3, InceptionV3Block

TORCHVISION = {"A": tvi.InceptionA, "B": tvi.InceptionB, "C": tvi.InceptionC, "D": tvi.InceptionD, "E": tvi.InceptionE}


def _tv_block(kind: str, in_channels: int) -> nn.Module:
    spec = default_kind(kind)
    if kind == "A":
        return tvi.InceptionA(in_channels, pool_features=spec.branch_pool)
    if kind == "C":
        return tvi.InceptionC(in_channels, channels_7x7=spec.c7)
    return TORCHVISION[kind](in_channels)


def _randomise_bn(module: nn.Module, seed: int = 0) -> None:
    """BatchNorm statistics that are not the identity, so equal outputs mean equal BatchNorm handling."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.mark.parametrize("kind", list(KIND_SPECS))
def test_default_kinds_are_torchvisions_blocks(kind):
    """Same state_dict names and shapes, and the same output for the same weights at the block's real input."""
    spec = default_kind(kind)
    c, h, w = spec.DEFAULT_INPUT
    theirs = _tv_block(kind, c).eval()
    _randomise_bn(theirs)
    ours = InceptionV3Block(c, spec).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())  # registration order too
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(x)
        assert torch.allclose(ours(x), expected, atol=1e-5)
    steps, out_shape = block_plan_steps(spec, (c, h, w))
    assert tuple(expected.shape[1:]) == out_shape
    report = steps_block_report(spec, (c, h, w), steps, out_shape)
    assert report.cost.params == sum(p.numel() for p in theirs.parameters())


@st.composite
def kinds(draw):
    """A random kind with 1–6 channels per conv (C: n of 3, 5 or 7) and an input it accepts."""
    kind = draw(st.sampled_from(list(KIND_SPECS)))
    values = {f: draw(st.integers(1, 6)) for f in kind_fields(kind) if f != "n"}
    if kind == "C":
        values["n"] = draw(st.sampled_from((3, 5, 7)))
    lo = 3 if kind in ("B", "D") else 1
    shape = (draw(st.integers(1, 6)), draw(st.integers(lo, 12)), draw(st.integers(lo, 12)))
    return KIND_SPECS[kind](**values), shape


@settings(max_examples=40, deadline=None, database=None)
@given(case=kinds())
def test_random_kinds_match_torch_and_torchinfo(case):
    spec, shape = case
    steps, out_shape = block_plan_steps(spec, shape)
    report = steps_block_report(spec, shape, steps, out_shape)
    block = InceptionV3Block(shape[0], spec).eval()
    out = block(torch.randn(1, *shape))
    assert tuple(out.shape[1:]) == report.output_shape == out_shape
    assert sum(p.numel() for p in block.parameters()) == report.cost.params
    for b in report.branches:  # each branch's own modules
        names = {r.name for r in b.layers}
        own = sum(p.numel() for n, m in block.named_children() if n in names for p in m.parameters())
        assert own == b.cost.params, b.name
    assert sum(b.output_shape[0] for b in report.branches) == out_shape[0]
    info = torchinfo.summary(block, input_size=(1, *shape), verbose=0, mode="eval", device="cpu")
    assert info.total_mult_adds == report.cost.mult_adds
    assert info.total_params == report.cost.params


def test_kind_specs_validate_and_round_trip():
    for kind in KIND_SPECS:
        spec = default_kind(kind)
        assert kind_from_json(kind_to_json(spec)) == spec
        assert kind_from_dict({"kind": kind}) == spec  # missing fields are the defaults
    c = kind_with(default_kind("C"), {"c7": 160.0, "n": 5})  # JSON's 160.0 is the whole number 160
    assert c == InceptionCSpec(c7=160, n=5) and isinstance(c.c7, int)
    with pytest.raises(SpecError, match="c7 must be from 1 to 8,192, got 0"):
        kind_with(default_kind("C"), {"c7": 0})
    with pytest.raises(SpecError, match="n must be odd"):
        kind_with(default_kind("C"), {"n": 4})
    with pytest.raises(SpecError, match="has no field 'c7'; its fields are branch1x1, branch5x5_1"):
        kind_with(default_kind("A"), {"c7": 3})
    with pytest.raises(SpecError, match="unknown block kind 'F'"):
        kind_from_dict({"kind": "F"})
    with pytest.raises(SpecError, match="branch1x1 must be a whole number"):
        kind_from_dict({"kind": "E", "branch1x1": "wide"})
    with pytest.raises(SpecError, match="at least 3×3"):
        block_plan_steps(default_kind("D"), (768, 2, 2))
    spec = inception_v3_imagenet()
    assert InceptionV3Spec.from_json(spec.to_json()) == spec
    with pytest.raises(SpecError, match="30×30 is too small: Mixed_6a would output 0×0"):
        v3_plan(dataclasses.replace(spec, input_size=(30, 30)))
    with pytest.raises(SpecError, match="input 150×150 is too small for the aux head .* got 7×7"):
        v3_plan(dataclasses.replace(spec, input_size=(150, 150)))
    assert v3_plan(dataclasses.replace(inception_v3_imagenet(aux=False), input_size=(75, 75))).step("Mixed_7c")


def test_labels_and_halves():
    e = default_kind("E")
    assert e.branch_labels() == {
        "b1": "1×1",
        "b2": "1×1 → 1×3 ‖ 3×1",
        "b3": "1×1 → 3×3 → 1×3 ‖ 3×1",
        "b4": "3×3 avg-pool → 1×1",
    }
    steps, shape = block_plan_steps(e, e.DEFAULT_INPUT)
    report = steps_block_report(e, e.DEFAULT_INPUT, steps, shape)
    assert [b.output_shape[0] for b in report.branches] == [320, 768, 768, 192]
    assert [r.name for r in report.branch("b2").halves] == ["branch3x3_2a", "branch3x3_2b"]
    assert report.concat_text() == "8×8×(320+768+768+192) = 8×8×2048"
    b = default_kind("B")
    assert b.branch_labels()["b3"] == "3×3/2 max-pool" and b.out_channels_for(288) == 768


def test_preset_is_torchvisions_inception_v3():
    """27,161,264 params with the aux head, 23,834,568 without; torchinfo's mult-adds; the same logits for the
    same weights (torchvision's state_dict loaded into the module built from the spec)."""
    spec = inception_v3_imagenet()
    report = plan_report(v3_plan(spec))
    assert report.params_total == 27_161_264 and report.cost.params == 23_834_568
    assert plan_report(v3_plan(inception_v3_imagenet(aux=False))).params_total == 23_834_568
    theirs = tvi.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True).eval()
    _randomise_bn(theirs)
    ours = InceptionV3(spec).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 299, 299, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-4)
    info = torchinfo.summary(ours, input_size=(1, 3, 299, 299), verbose=0, mode="eval", device="cpu")
    assert info.total_mult_adds == report.cost.mult_adds
    assert info.total_params == report.params_total
    ours.train()
    logits, aux = ours(torch.randn(2, 3, 299, 299))
    assert logits.shape == aux.shape == (2, 1000)


def test_plan_names_blocks_and_branches_as_torchvision():
    plan = v3_plan(inception_v3_imagenet())
    assert plan.blocks() == [f"Mixed_{n}" for n in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")]
    assert plan.aux_after() == {"Mixed_6e": "AuxLogits"}
    assert plan.branch_paths("Mixed_6a") == {
        "b1": "Mixed_6a.branch3x3",
        "b2": "Mixed_6a.branch3x3dbl",
        "b3": "Mixed_6a.max_pool2d",
    }
    assert plan.branch_paths("Mixed_5b")["b4"] == "Mixed_5b.branch_pool"
    assert [s.path for s in plan.branch_layers("Mixed_5b", "b4")] == ["Mixed_5b.avg_pool2d", "Mixed_5b.branch_pool"]
    last = plan.step("Mixed_7c")
    assert (last.size_hw, last.jump_hw) == ((1311, 1311), (32, 32)) and last.rf.size == 1311
    one_by_seven = plan.step("Mixed_6b.branch7x7_2")
    assert one_by_seven.size_hw[1] - one_by_seven.size_hw[0] == 6 * 16  # a 1×7 at jump 16 widens the width only
    tv_names = {n for n, _ in tvi.inception_v3(weights=None, aux_logits=True, init_weights=False).named_modules()}
    convs = {s.path for s in plan.steps if s.kind == "conv"}
    assert convs <= tv_names and not any(s.path in tv_names for s in plan.steps if s.virtual)


def _positive(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                m.weight.copy_(torch.rand_like(m.weight) * 0.5 + 0.5).div_(m.weight[0].numel())
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.bias.fill_(0.1)
    return module.eval()


def test_receptive_fields_per_axis_match_the_gradient():
    """Branches of C and E blocks, E's two halves apart (channels of the 1×3 half, then of the 3×1), and C's
    1×7 conv alone: the input pixels one central unit's gradient reaches are its field, per axis."""
    spec = InceptionV3Spec(
        name="thin",
        in_channels=1,
        input_size=(41, 41),
        num_classes=2,
        stem=(),
        blocks=(
            ("Mixed_6b", InceptionCSpec(*(1,) * 5, n=5)),
            ("Mixed_7b", InceptionESpec(*(1,) * 9)),
        ),
        aux=False,
    )
    net = Net.of(_positive(InceptionV3(spec)))
    plan = net.plan
    checked = 0

    def check(field_step, out: torch.Tensor, channel: int, x: torch.Tensor) -> None:
        nonlocal checked
        i = j = out.shape[-1] // 2
        (grad,) = torch.autograd.grad(out[0, channel, i, j], x, retain_graph=True)
        seen = grad[0].abs().sum(0) > 0
        rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
        fh, fw = field_step.rf_hw
        assert (int(rows.min()), int(rows.max())) == fh.span(i), field_step.path
        assert (int(cols.min()), int(cols.max())) == fw.span(j), field_step.path
        checked += 1

    for block in net.blocks():
        x = torch.ones(1, 1, 41, 41, requires_grad=True)
        with torch.enable_grad():
            h = net.block_input(block, x)
            for b, out in net.branch_outputs(block, h).items():
                step = plan.step(plan.branch_paths(block)[b])
                halves = [s for s in plan.branch_layers(block, b) if s.half]
                if halves:  # a unit of the output sees one half's field, not the union
                    check(halves[0], out, 0, x)  # the 1×3 half's channel
                    check(halves[1], out, out.shape[1] - 1, x)  # the 3×1 half's
                else:
                    check(step, out, 0, x)
    # C's 1×5 conv on its own (the layer inside branch b2): run its two modules by their plan paths
    x = torch.ones(1, 1, 41, 41, requires_grad=True)
    with torch.enable_grad():
        first, second = plan.branch_layers("Mixed_6b", "b2")[:2]
        out = net.submodule(second.path)(net.submodule(first.path)(x))
        assert second.size_hw == (1, 5)
        check(second, out, 0, x)
    assert checked == 4 + 2 + 2 * 2 + 1


# torchvision notes that eval-mode tracing drops the aux head's nodes: the walk is compared in eval mode, as the app runs
@pytest.mark.filterwarnings("ignore:NOTE. The nodes obtained by tracing the model in eval mode")
def test_net_walk_of_torchvisions_inception_v3():
    """Net reads torchvision's Inception3 through the preset's plan: its walk gives the module's logits, every
    main-path output, and each branch as torchvision computes it (E's halves concatenated)."""
    torch.manual_seed(0)
    module = tvi.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True).eval()
    _randomise_bn(module)
    net = Net.of(copy.deepcopy(module))
    assert net.blocks()[0] == "Mixed_5b" and len(net.blocks()) == 11
    x = torch.randn(1, 3, 139, 139, generator=torch.Generator().manual_seed(3))
    leaves = {p: p for b in net.blocks() for s in net.plan.branch_layers(b, "b2") if not s.virtual for p in [s.path]}
    refs = create_feature_extractor(module, {**{p: p for p in net.main_path()}, **leaves})(x)
    with torch.no_grad():
        assert torch.allclose(net.logits(x), module(x), atol=1e-4)
        for p in net.main_path():
            assert torch.allclose(net.run_to(p, x), refs[p], atol=1e-4), p
        for b in net.blocks():
            parts = net.branch_outputs(b, net.block_input(b, x))
            assert torch.allclose(torch.cat(list(parts.values()), 1), refs[b], atol=1e-4), b
            layers = net.plan.branch_layers(b, "b2")
            halves = [refs[s.path] for s in layers if s.half]
            expected = torch.cat(halves, 1) if halves else refs[layers[-1].path]
            assert torch.allclose(parts["b2"], expected, atol=1e-4), b


def test_kind_links_round_trip_and_refusals_name_the_parameter():
    from gnet.v3 import kind_from_query, kind_to_query

    for kind in KIND_SPECS:
        spec = kind_with(default_kind(kind), {kind_fields(kind)[0]: 7})
        assert kind_from_query(kind_to_query(spec, spec.DEFAULT_INPUT)) == (spec, spec.DEFAULT_INPUT)
    assert kind_to_query(default_kind("A"), (192, 35, 35)) == {"kind": "A", "in": "192,35,35"}  # defaults left out
    assert kind_from_query({"b1": "64"}) is None and kind_from_query({"kind": "v1"}) is None
    for params, message in [
        ({"kind": "Z"}, "unknown block kind 'Z'"),
        ({"kind": "A", "branch1x1": "６４"}, "link parameter branch1x1 must be a whole number"),
        ({"kind": "A", "in": "1,2"}, "link parameter in must be C,H,W"),
        ({"kind": "D", "in": "768,2,2"}, "at least 3×3"),
        ({"kind": "C", "n": "6"}, "n must be odd"),
    ]:
        with pytest.raises(SpecError, match=message):
            kind_from_query(params)
