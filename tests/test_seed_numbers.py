"""Every shape, parameter and mult-add number in design.md "Reference numbers",
reproduced by the project's analysis and by the real modules.

Expected values are copied from the seeds (/work/shared/seeds) and from
torchvision; the analysis and torch/torchinfo must both produce them.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from gnet.analysis import (
    block_report,
    bottleneck_comparison,
    conv_cost,
    factorization_comparison,
    network_report,
)
from gnet.network import GoogLeNet, build, torchinfo_summary
from gnet.spec import BlockSpec, block_presets, network_preset

# Seed 001's torchinfo table (d2l GoogLeNet, 1×96×96, 10 classes), copied row by row:
# block -> (output channels, output H=W, params of channel1..channel4).
SEED_001_BLOCKS = {
    "3a": (256, 12, (12_352, 129_248, 15_920, 6_176)),
    "3b": (480, 12, (32_896, 254_272, 85_120, 16_448)),
    "4a": (512, 6, (92_352, 226_096, 26_944, 30_784)),
    "4b": (512, 6, (82_080, 283_472, 50_776, 32_832)),
    "4c": (512, 6, (65_664, 360_832, 50_776, 32_832)),
    "4d": (528, 6, (57_456, 447_408, 67_680, 32_832)),
    "4e": (832, 6, (135_424, 545_760, 119_456, 67_712)),
    "5a": (832, 3, (213_248, 594_400, 129_184, 106_624)),
    "5b": (1024, 3, (319_872, 823_872, 193_712, 106_624)),
}
# Its non-block rows: name in this project -> (output shape, params).
SEED_001_STEM_HEAD = {
    "conv1": ((64, 48, 48), 3_200),
    "maxpool1": ((64, 24, 24), 0),
    "conv2": ((64, 24, 24), 4_160),
    "conv3": ((192, 24, 24), 110_784),
    "maxpool2": ((192, 12, 12), 0),
    "maxpool3": ((480, 6, 6), 0),
    "maxpool4": ((832, 3, 3), 0),
    "fc": ((10, 1, 1), 10_250),
}
SEED_001_PARAMS = 5_977_530
SEED_001_MULT_ADDS_M = 276.66  # torchinfo's "Total mult-adds (M)"


@pytest.fixture(scope="module")
def d2l_summary():
    spec = network_preset("d2l-fashion96")
    model = build(spec)
    return spec, model, torchinfo_summary(spec, depth=4, model=model)


def test_seed_001_table_analytic():
    report = network_report(network_preset("d2l-fashion96"))
    assert report.params_total == SEED_001_PARAMS
    assert round(report.cost.mult_adds / 1e6, 2) == SEED_001_MULT_ADDS_M
    assert list(report.blocks) == list(SEED_001_BLOCKS)
    for name, (channels, hw, branch_params) in SEED_001_BLOCKS.items():
        block = report.blocks[name]
        assert block.output_shape == (channels, hw, hw), name
        assert tuple(b.cost.params for b in block.branches) == branch_params, name
        assert sum(b.output_shape[0] for b in block.branches) == channels
    for name, (shape, params) in SEED_001_STEM_HEAD.items():
        row = report.row(name)
        assert (row.output_shape, row.cost.params) == (shape, params), name


def _leaf_mult_adds(summary, module: nn.Module) -> int:
    inside = {id(m) for m in module.modules()}
    return sum(layer.macs for layer in summary.summary_list if layer.is_leaf_layer and id(layer.module) in inside)


def test_seed_001_table_torchinfo_on_real_module(d2l_summary):
    """torchinfo on the built d2l-fashion96 module gives the seed's rows, and the
    analysis gives torchinfo's mult-adds, per branch and in total."""
    spec, model, summary = d2l_summary
    report = network_report(spec)
    assert summary.total_params == SEED_001_PARAMS
    assert summary.total_mult_adds == report.cost.mult_adds
    assert round(summary.total_mult_adds / 1e6, 2) == SEED_001_MULT_ADDS_M
    rows = {
        (layer.parent_info.var_name if layer.parent_info else "", layer.var_name): layer
        for layer in summary.summary_list
    }
    for name, (channels, hw, branch_params) in SEED_001_BLOCKS.items():
        block_row = rows[("GoogLeNet", f"inception{name}")]
        assert block_row.output_size == [1, channels, hw, hw]
        module = getattr(model, f"inception{name}")
        for i, params in enumerate(branch_params):
            branch_row = rows[(f"inception{name}", f"branch{i + 1}")]
            assert branch_row.num_params == params, (name, i)
            branch_module = getattr(module, f"branch{i + 1}")
            assert _leaf_mult_adds(summary, branch_module) == report.blocks[name].branches[i].cost.mult_adds


def test_seed_000_003_direct_conv_vs_bottleneck():
    # 28×28×192 -> 28×28×128 by one 3×3 conv, or a 1×1 to 96 then the 3×3 (no bias).
    assert conv_cost(192, 128, 3, (28, 28), bias=False).params == 221_184
    assert conv_cost(192, 96, 1, (28, 28), bias=False).params == 18_432
    assert conv_cost(96, 128, 3, (28, 28), bias=False).params == 110_592
    spec = BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32)
    cmp = bottleneck_comparison(spec, (192, 28, 28), branch="b2")
    assert (cmp.a.weights, cmp.b.weights) == (221_184, 129_024)
    assert cmp.saved("weights") == 92_160
    assert round(cmp.ratio("weights") * 100, 1) == 58.3
    rows = block_report(spec, (192, 28, 28)).branch("b2").layers
    assert [r.cost.weights for r in rows] == [18_432, 110_592]
    assert rows[0].output_shape == (96, 28, 28)
    # The same counts from the real modules (bias off so torch counts what the seed counts).
    assert nn.Conv2d(192, 128, 3, bias=False).weight.numel() == 221_184
    assert sum(nn.Conv2d(*a, bias=False).weight.numel() for a in ((192, 96, 1), (96, 128, 3))) == 129_024


def test_seed_002_multiplications():
    design = block_presets()["Ng's example (28×28×192, seed 002)"]
    cmp = bottleneck_comparison(design.block, design.input_shape, branch="b3")
    assert cmp.a.multiplications == 120_422_400
    assert cmp.b.multiplications == 12_443_648
    assert cmp.a.flops == 2 * 120_422_400
    report = block_report(design.block, design.input_shape)
    assert report.output_shape == (256, 28, 28)
    assert report.concat_text() == "28×28×(64+128+32+32) = 28×28×256"


def test_seed_004_factorized_5x5():
    spec = BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=1, b3=64, b4=1, reduce=False)
    cmp = factorization_comparison(spec, (64, 224, 224))
    assert (cmp.a.weights, cmp.b.weights) == (102_400, 73_728)
    assert 1 - cmp.ratio("weights") == pytest.approx(0.28)
    five = nn.Conv2d(64, 64, 5, padding=2, bias=False)
    two = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.Conv2d(64, 64, 3, padding=1, bias=False))
    assert sum(p.numel() for p in five.parameters()) == 102_400
    assert sum(p.numel() for p in two.parameters()) == 73_728


@pytest.fixture(scope="module")
def torchvision_googlenet():
    torch.manual_seed(0)
    return torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=False, init_weights=True)


def test_googlenet_imagenet_loads_torchvision_weights(torchvision_googlenet):
    tv = torchvision_googlenet.eval()
    main_state = {k: v for k, v in tv.state_dict().items() if not k.startswith("aux")}
    model = GoogLeNet(network_preset("googlenet-imagenet"))
    model.load_state_dict(main_state, strict=True)
    model.eval()
    assert sum(p.numel() for p in model.parameters()) == 6_624_904
    assert network_report(model.spec).params_total == 6_624_904
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), tv(x))


def test_googlenet_imagenet_aux_matches_torchvision_in_training(torchvision_googlenet):
    """With aux heads the whole torchvision state_dict loads, and training-mode
    outputs agree; torchvision returns (logits, aux2, aux1), we return (logits, aux1, aux2)."""
    tv = torchvision_googlenet.train()
    model = GoogLeNet(network_preset("googlenet-imagenet-aux"))
    model.load_state_dict(tv.state_dict(), strict=True)
    model.train()
    assert sum(p.numel() for p in model.parameters()) == network_report(model.spec).params_total
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    ours = model(x)
    torch.manual_seed(3)
    theirs = tv(x)
    assert torch.allclose(ours[0], theirs.logits, atol=1e-5)
    assert torch.allclose(ours[1], theirs.aux_logits1, atol=1e-5)
    assert torch.allclose(ours[2], theirs.aux_logits2, atol=1e-5)
