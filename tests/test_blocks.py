"""InceptionBlock modules vs the analytic block report, over random valid specs
of every variant (naive, 5×5 / 3×3 kernel, factorized, BatchNorm / bias)."""

from __future__ import annotations

import pytest
import torch
import torchinfo
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gnet.analysis import block_report
from gnet.blocks import BRANCH_ATTRS, InceptionBlock, branch_kernel_labels
from gnet.spec import BRANCHES, CHANNEL_FIELDS, BlockSpec, SpecError, paper_block

channels = st.integers(1, 6)


@st.composite
def block_specs(draw) -> BlockSpec:
    kernel = draw(st.sampled_from((3, 5)))
    return BlockSpec(
        **{f: draw(channels) for f in CHANNEL_FIELDS},
        reduce=draw(st.booleans()),
        b3_kernel=kernel,
        factorize=kernel == 5 and draw(st.booleans()),
        batch_norm=draw(st.booleans()),
    )


def _leaf_mult_adds(summary, module: nn.Module) -> int:
    inside = {id(m) for m in module.modules()}
    return sum(layer.macs for layer in summary.summary_list if layer.is_leaf_layer and id(layer.module) in inside)


@settings(max_examples=50, deadline=None, database=None)
@given(spec=block_specs(), c=channels, h=st.integers(1, 9), w=st.integers(1, 9))
def test_block_module_matches_report(spec: BlockSpec, c: int, h: int, w: int):
    report = block_report(spec, (c, h, w))
    block = InceptionBlock(c, spec).eval()
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        out = block(x)
        for name, attr, branch in zip(BRANCHES, BRANCH_ATTRS, report.branches):
            assert branch.name == name
            assert tuple(getattr(block, attr)(x).shape[1:]) == branch.output_shape
            assert sum(p.numel() for p in getattr(block, attr).parameters()) == branch.cost.params
    assert tuple(out.shape) == (2, *report.output_shape) == (2, spec.out_channels, h, w)
    assert sum(p.numel() for p in block.parameters()) == report.cost.params
    weights = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert weights == report.cost.weights
    # multiplications: every conv weight is used once per output pixel
    assert report.cost.multiplications == weights * h * w
    summary = torchinfo.summary(block, input_size=(1, c, h, w), verbose=0, mode="eval", device="cpu")
    assert summary.total_mult_adds == report.cost.mult_adds
    for attr, branch in zip(BRANCH_ATTRS, report.branches):
        assert _leaf_mult_adds(summary, getattr(block, attr)) == branch.cost.mult_adds


@settings(max_examples=20, deadline=None, database=None)
@given(spec=block_specs())
def test_kernel_labels_read_from_module_match_spec_labels(spec: BlockSpec):
    assert branch_kernel_labels(InceptionBlock(3, spec)) == spec.branch_labels()


def test_variants_have_the_documented_layers():
    naive = InceptionBlock(8, BlockSpec(b1=1, b2_reduce=2, b2=3, b3_reduce=4, b3=5, b4=6, reduce=False))
    # naive: b2/b3 convolve the input directly, b4 keeps its pool projection
    assert naive.branch2.conv.in_channels == 8 and naive.branch3.conv.in_channels == 8
    assert [type(m) for m in naive.branch4] == [nn.MaxPool2d, type(naive.branch1)]
    assert naive.branch4[1].conv.out_channels == 6
    fact = InceptionBlock(8, BlockSpec(b1=1, b2_reduce=2, b2=3, b3_reduce=4, b3=5, b4=6, factorize=True))
    assert [m.conv.kernel_size for m in fact.branch3] == [(1, 1), (3, 3), (3, 3)]
    assert [(m.conv.in_channels, m.conv.out_channels) for m in fact.branch3] == [(8, 4), (4, 5), (5, 5)]
    bn = InceptionBlock(8, BlockSpec(b1=1, b2_reduce=2, b2=3, b3_reduce=4, b3=5, b4=6, batch_norm=True))
    assert bn.branch1.conv.bias is None and bn.branch1.bn.eps == 1e-3
    plain = InceptionBlock(8, BlockSpec(b1=1, b2_reduce=2, b2=3, b3_reduce=4, b3=5, b4=6))
    assert plain.branch1.conv.bias is not None and plain.branch1.bn is None


def test_kernel_labels_of_torchvision_inception_say_3x3():
    """torchvision's "5×5" branch is really 3×3 (pytorch/vision#906): labels come from the weights' module."""
    tv_block = torchvision.models.googlenet(weights=None, init_weights=False, aux_logits=False).inception3a
    assert branch_kernel_labels(tv_block) == {
        "b1": "1×1",
        "b2": "1×1 → 3×3",
        "b3": "1×1 → 3×3",
        "b4": "3×3 max-pool → 1×1",
    }
    ours = InceptionBlock(192, paper_block("3a", b3_kernel=3, batch_norm=True))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in tv_block.state_dict().items()}


def test_invalid_blocks_refused_before_allocation():
    with pytest.raises(SpecError, match="input channels must be from 1 to 8,192"):
        InceptionBlock(0, BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=1, b3=1, b4=1))
    with pytest.raises(SpecError, match="b3_kernel 5"):
        InceptionBlock(4, BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=1, b3=1, b4=1, b3_kernel=3, factorize=True))
    # 8192 channels everywhere with naive 5×5 convs: ~2.4 billion parameters, refused analytically
    with pytest.raises(SpecError, match="the cap is 500,000,000"):
        InceptionBlock(8192, BlockSpec(**dict(zip(CHANNEL_FIELDS, [8192] * 6)), reduce=False))
