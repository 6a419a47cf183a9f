"""The exported code builds the same modules as gnet: same names, shapes, parameter
counts, and (with gnet's weights loaded) the same outputs."""

import dataclasses
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet.analysis import block_report, network_report
from gnet.blocks import InceptionBlock
from gnet.codegen import block_code, network_code
from gnet.network import GoogLeNet
from gnet.spec import CHANNEL_FIELDS, BlockDesign, BlockSpec, block_presets, network_preset, with_input


def _exec(code: str) -> dict:
    namespace: dict = {"__name__": "generated"}
    exec(compile(code, "<generated>", "exec"), namespace)
    return namespace


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _same_block(design: BlockDesign) -> None:
    ns = _exec(block_code(design))
    c, h, w = design.input_shape
    spec = design.block
    generated = ns["Inception"](
        c,
        b1=spec.b1,
        b2=(spec.b2_reduce, spec.b2),
        b3=(spec.b3_reduce, spec.b3),
        b4=spec.b4,
        reduce=spec.reduce,
        b3_kernel=spec.b3_kernel,
        factorize=spec.factorize,
        batch_norm=spec.batch_norm,
    )
    ours = InceptionBlock(c, spec)
    assert _params(generated) == _params(ours) == block_report(spec, design.input_shape).cost.params
    generated.load_state_dict(ours.state_dict(), strict=True)  # same module names and tensor shapes
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        want = ours.eval()(x)
        got = generated.eval()(x)
    assert got.shape == want.shape == (2, *block_report(spec, design.input_shape).output_shape)
    torch.testing.assert_close(got, want)


VARIANTS = [
    dict(),
    dict(reduce=False),
    dict(factorize=True),
    dict(b3_kernel=3),
    dict(batch_norm=True),
    dict(reduce=False, factorize=True, batch_norm=True),
    dict(reduce=False, b3_kernel=3),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_block_code_builds_the_same_module(variant):
    _same_block(BlockDesign(BlockSpec(b1=4, b2_reduce=3, b2=5, b3_reduce=2, b3=6, b4=3, **variant), (7, 6, 5)))


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(1, 12), min_size=7, max_size=7),
    st.integers(1, 9),
    st.sampled_from([(5, False), (5, True), (3, False)]),
    st.booleans(),
    st.booleans(),
)
def test_block_code_random_specs(ch, hw, b3, reduce, bn):
    spec = BlockSpec(
        **dict(zip(CHANNEL_FIELDS, ch[:6])), reduce=reduce, b3_kernel=b3[0], factorize=b3[1], batch_norm=bn
    )
    _same_block(BlockDesign(spec, (ch[6], hw, hw + 1)))


def test_block_code_instantiates_the_design_and_states_the_expected_results():
    design = block_presets()["Ng's example (28×28×192, seed 002)"]
    code = block_code(design)
    report = block_report(design.block, design.input_shape)
    assert "Inception(192, b1=64, b2=(96, 128), b3=(16, 32), b4=32)" in code
    assert f"expected {report.cost.params:,}" in code
    assert report.concat_text() in code
    bn = block_code(BlockDesign(dataclasses.replace(design.block, batch_norm=True, factorize=True), (192, 28, 28)))
    assert "factorize=True, batch_norm=True)" in bn


def test_block_code_runs_as_a_script(tmp_path):
    design = BlockDesign(BlockSpec(b1=4, b2_reduce=3, b2=5, b3_reduce=2, b3=6, b4=3, factorize=True), (7, 6, 5))
    path = tmp_path / "block.py"
    path.write_text(block_code(design))
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=True)
    shape, params = out.stdout.split("\n")[:2]
    report = block_report(design.block, design.input_shape)
    assert shape == str((1, *report.output_shape))
    assert int(params) == report.cost.params


def _same_network(spec) -> None:
    ns = _exec(network_code(spec))
    generated = ns["GoogLeNet"]()
    ours = GoogLeNet(spec)
    assert _params(generated) == _params(ours) == network_report(spec).params_total
    generated.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, spec.in_channels, *spec.input_size)
    with torch.no_grad():
        torch.testing.assert_close(generated.eval()(x), ours.eval()(x))


def test_network_code_mini_and_edited():
    spec = network_preset("mini")
    _same_network(spec)
    edited = spec.with_block(
        "3a", BlockSpec(b1=8, b2_reduce=4, b2=12, b3_reduce=2, b3=6, b4=4, reduce=False, factorize=True)
    )
    _same_network(edited)
    _same_network(with_input(edited, 1, (20, 24)))


def test_network_code_d2l_small_input():
    _same_network(with_input(network_preset("d2l-fashion96"), size=(32, 32)))


def test_network_code_with_aux_heads_matches_in_train_mode():
    spec = with_input(network_preset("googlenet-imagenet-aux"), size=(64, 64))
    ns = _exec(network_code(spec))
    generated, ours = ns["GoogLeNet"](), GoogLeNet(spec)
    generated.load_state_dict(ours.state_dict(), strict=True)
    assert _params(generated) == network_report(spec).params_total
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    # train mode: BatchNorm uses batch statistics and both return (logits, aux1, aux2); dropout off for comparison
    for m in (generated, ours):
        m.train()
        for d in m.modules():
            if isinstance(d, torch.nn.Dropout):
                d.p = 0.0
    with torch.no_grad():
        got, want = generated(x), ours(x)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_network_name_cannot_break_the_code():
    spec = dataclasses.replace(network_preset("mini"), name='evil """; import os #')
    ns = _exec(network_code(spec))
    assert "GoogLeNet" in ns and "os" not in ns


def test_export_carries_gnet_classes_verbatim():
    """The exported classes are the ones that run here (their source text), not a second copy."""
    import inspect

    from gnet.blocks import ConvBlock, Inception
    from gnet.network import AuxClassifier
    from gnet.plan import branch_layers

    code = network_code(network_preset("googlenet-imagenet-aux"))
    for obj in (branch_layers, ConvBlock, Inception, AuxClassifier):
        assert inspect.getsource(obj) in code, obj.__name__
    assert inspect.getsource(AuxClassifier) not in block_code(block_presets()["Paper 3a"])
