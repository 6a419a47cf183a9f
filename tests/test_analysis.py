"""The analytic network report vs the real GoogLeNet module, over random
NetworkSpecs (stems, stages, pools, aux heads, input sizes): invalid ones must
raise SpecError exactly when torch itself would fail, valid ones must build and
match layer by layer (output shapes, params) and in total (torchinfo mult-adds)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gnet.analysis import (
    Cost,
    bottleneck_comparison,
    conv_cost,
    factorization_comparison,
    network_report,
)
from gnet.network import GoogLeNet, build, torchinfo_summary
from gnet.plan import conv_out, pool_out
from gnet.spec import CHANNEL_FIELDS, BlockSpec, ConvSpec, NetworkSpec, PoolSpec, SpecError, network_preset, with_input


@settings(max_examples=300, deadline=None, database=None)
@given(
    size=st.integers(1, 300), kernel=st.integers(1, 15), stride=st.integers(1, 8), ceil=st.booleans(), data=st.data()
)
def test_pool_out_matches_torch(size, kernel, stride, ceil, data):
    padding = data.draw(st.integers(0, kernel // 2))
    try:
        expected = F.max_pool2d(
            torch.zeros(1, 1, size, 1), (kernel, 1), (stride, 1), (padding, 0), ceil_mode=ceil
        ).shape[2]
    except RuntimeError:  # torch refuses: the output would be empty
        expected = 0
    assert pool_out(size, kernel, stride, padding, ceil) == expected


def test_pool_out_ceil_mode_edge_cases():
    # A 2-pixel input through a 3×3/2 ceil-mode pool: one window hanging over the edge.
    assert pool_out(2, 3, 2, 0, True) == 1 == F.max_pool2d(torch.zeros(1, 1, 2, 2), 3, 2, ceil_mode=True).shape[-1]
    assert pool_out(2, 3, 2, 0, False) == 0
    # torchvision's 112 -> 56 -> 28 and d2l's 48 -> 24 (padding 1)
    assert pool_out(112, 3, 2, 0, True) == 56 and pool_out(48, 3, 2, 1, False) == 24


@settings(max_examples=100, deadline=None, database=None)
@given(size=st.integers(1, 64), kernel=st.integers(1, 15), stride=st.integers(1, 8), padding=st.integers(0, 7))
def test_conv_out_matches_torch(size, kernel, stride, padding):
    try:
        expected = F.conv2d(
            torch.zeros(1, 1, size, 1), torch.zeros(1, 1, kernel, 1), stride=(stride, 1), padding=(padding, 0)
        ).shape[2]
    except RuntimeError:
        expected = 0
    assert max(conv_out(size, kernel, stride, padding), 0) == expected


# ---------------------------------------------------------------------------
# Random networks

small = st.integers(1, 6)


@st.composite
def blocks(draw, batch_norm: bool) -> BlockSpec:
    kernel = draw(st.sampled_from((3, 5)))
    return BlockSpec(
        **{f: draw(small) for f in CHANNEL_FIELDS},
        reduce=draw(st.booleans()),
        b3_kernel=kernel,
        factorize=kernel == 5 and draw(st.booleans()),
        batch_norm=batch_norm,
    )


@st.composite
def pools(draw) -> PoolSpec:
    kernel = draw(st.integers(1, 4))
    return PoolSpec(kernel, draw(st.integers(1, 3)), draw(st.integers(0, kernel // 2)), draw(st.booleans()))


@st.composite
def networks(draw) -> NetworkSpec:
    bn = draw(st.booleans())
    stem = draw(
        st.lists(
            st.one_of(st.builds(ConvSpec, small, st.integers(1, 7), st.integers(1, 3), st.integers(0, 3)), pools()),
            max_size=3,
        )
    )
    aux = draw(st.booleans())
    n_stages = draw(st.integers(1, 3))
    # aux heads need blocks 4a..4d; sometimes give too few so the spec must be refused
    counts = [
        draw(st.integers(4 if aux and s == 1 and draw(st.booleans()) else 1, 5 if s == 1 else 2))
        for s in range(n_stages)
    ]
    return NetworkSpec(
        name="random",
        in_channels=draw(st.integers(1, 3)),
        input_size=(draw(st.integers(1, 40)), draw(st.integers(1, 40))),
        num_classes=draw(st.integers(1, 5)),
        stem=tuple(stem),
        stages=tuple(tuple(draw(blocks(draw(st.booleans()))) for _ in range(n)) for n in counts),
        stage_pools=tuple(draw(pools()) for _ in range(n_stages - 1)),
        batch_norm=bn,
        dropout=draw(st.sampled_from((0.0, 0.5))),
        aux=aux,
        aux_pool=draw(st.sampled_from(("paper", "torchvision"))),
    )


def _torch_accepts_sizes(spec: NetworkSpec) -> bool:
    """Walk the spec's spatial ops with torch itself on a 1-channel tensor."""
    x = torch.zeros(1, 1, *spec.input_size)
    try:
        for layer in spec.stem:
            if isinstance(layer, ConvSpec):
                x = F.conv2d(
                    x, torch.zeros(1, 1, layer.kernel, layer.kernel), stride=layer.stride, padding=layer.padding
                )
            else:
                x = F.max_pool2d(x, layer.kernel, layer.stride, layer.padding, ceil_mode=layer.ceil_mode)
        names = iter(spec.block_names())
        for s, stage in enumerate(spec.stages):
            for _ in stage:
                x = F.max_pool2d(x, 3, 1, 1, ceil_mode=True)  # b4's pool; the 'same' convs keep H×W
                if next(names) in spec.aux_blocks() and spec.aux_pool == "paper":
                    F.avg_pool2d(x, 5, 3)
            if s < len(spec.stage_pools):
                p = spec.stage_pools[s]
                x = F.max_pool2d(x, p.kernel, p.stride, p.padding, ceil_mode=p.ceil_mode)
    except RuntimeError:
        return False
    return x.shape[-1] >= 1 and x.shape[-2] >= 1


def _check_module_matches(spec: NetworkSpec) -> None:
    report = network_report(spec)
    model = build(spec)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        model.get_submodule(r.name).register_forward_hook(
            lambda m, i, o, name=r.name: shapes.__setitem__(name, tuple(o.shape))
        )
        for r in report.rows
    ]
    model.train()  # runs the aux heads too; batch 2 so BatchNorm accepts 1×1 maps
    out = model(torch.randn(2, spec.in_channels, *spec.input_size))
    for h in hooks:
        h.remove()
    for r in report.rows:
        got = shapes[r.name]
        assert got[1:] == (r.output_shape if len(got) == 4 else (r.output_shape[0],)), r.name
        assert r.output_shape[1:] == (1, 1) or len(got) == 4, r.name
        assert sum(p.numel() for p in model.get_submodule(r.name).parameters()) == r.cost.params, r.name
    outputs = out if isinstance(out, tuple) else (out,)
    assert len(outputs) == 1 + len(spec.aux_blocks())
    assert all(o.shape == (2, spec.num_classes) for o in outputs)
    assert sum(p.numel() for p in model.parameters()) == report.params_total
    assert tuple(report.blocks) == tuple(spec.block_names())
    for name, block in report.blocks.items():
        assert shapes[f"inception{name}.branch1"][2:] == block.output_shape[1:]
    with torch.no_grad():  # inference: the aux heads do not run, only the logits come back
        assert model.eval()(torch.zeros(1, spec.in_channels, *spec.input_size)).shape == (1, spec.num_classes)
    summary = torchinfo_summary(spec, model=model)
    assert summary.total_mult_adds == report.cost.mult_adds
    assert summary.total_params == report.params_total


@settings(max_examples=50, deadline=None, database=None)
@given(spec=networks())
def test_random_networks_match_or_are_refused(spec: NetworkSpec):
    too_few_blocks = spec.aux and len(spec.stages) < 2 or spec.aux and len(spec.stages[1]) < 4
    if too_few_blocks:
        event("refused: aux without blocks 4a..4d")
        with pytest.raises(SpecError, match="stage 4 needs at least 4 blocks"):
            GoogLeNet(spec)
        return
    if not _torch_accepts_sizes(spec):
        event("refused: input too small")
        with pytest.raises(SpecError, match="too small") as err:
            GoogLeNet(spec)
        hint = re.search(r"smallest square input it accepts is (\d+)×", str(err.value))
        if hint:  # the hint is exact: that size works, one less does not
            n = int(hint.group(1))
            assert _torch_accepts_sizes(with_input(spec, size=(n, n)))
            network_report(with_input(spec, size=(n, n)))
            if n > 1:
                assert not _torch_accepts_sizes(with_input(spec, size=(n - 1, n - 1)))
        return
    event(f"valid, aux={spec.aux_pool if spec.aux else 'none'}")
    _check_module_matches(spec)


def test_presets_match_torchinfo():
    spec = network_preset("googlenet-imagenet-aux")
    report = network_report(spec)
    summary = torchinfo_summary(spec)
    assert summary.total_mult_adds == report.cost.mult_adds
    assert summary.total_params == report.params_total
    assert report.cost.params == 6_624_904  # inference part: torchvision's count without aux heads
    _check_module_matches(network_preset("mini"))


def test_paper_aux_heads():
    """The paper's aux head at 224×224: 14×14×512 at 4a -> 5×5/3 avg-pool -> 4×4 -> 1×1 conv 128 -> FC 1024."""
    spec = with_input(network_preset("googlenet-imagenet-aux"), size=(224, 224))
    paper = dataclasses.replace(spec, aux_pool="paper")
    report = network_report(paper)
    assert report.row("aux1.pool").output_shape == (512, 4, 4)
    assert report.row("aux2.pool").output_shape == (528, 4, 4)
    assert report.row("aux1.fc1").cost.params == 128 * 4 * 4 * 1024 + 1024
    # same shapes as torchvision's adaptive pool at 14×14, so the same parameter count
    assert report.params_total == network_report(spec).params_total
    # at 160×160, 4a is 10×10: the paper pool gives 2×2, torchvision's adaptive pool still 4×4
    small_paper = network_report(with_input(paper, size=(160, 160)))
    assert small_paper.row("aux1.pool").output_shape == (512, 2, 2)
    assert network_report(with_input(spec, size=(160, 160))).row("aux1.pool").output_shape == (512, 4, 4)
    with pytest.raises(SpecError, match="aux1's 5×5/3 average pool needs at least 5×5"):
        network_report(with_input(paper, size=(64, 64)))


def test_too_small_input_names_layer_and_min_size():
    with pytest.raises(SpecError) as err:
        network_report(with_input(network_preset("googlenet-imagenet"), size=(8, 8)))
    msg = str(err.value)
    assert "input 8×8 is too small" in msg and "maxpool" in msg
    n = int(re.search(r"accepts is (\d+)×\1", msg).group(1))
    network_report(with_input(network_preset("googlenet-imagenet"), size=(n, n)))
    with pytest.raises(SpecError):
        network_report(with_input(network_preset("googlenet-imagenet"), size=(n - 1, n - 1)))


def test_param_cap_refuses_before_building():
    wide = BlockSpec(b1=8192, b2_reduce=8192, b2=8192, b3_reduce=8192, b3=8192, b4=8192, reduce=False)
    spec = NetworkSpec("huge", 8192, (32, 32), 10, (), ((wide,),), ())
    with pytest.raises(SpecError, match="parameters; the cap is 500,000,000"):
        GoogLeNet(spec)


def test_comparisons_and_cost_arithmetic():
    spec = BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32)
    whole = bottleneck_comparison(spec, (192, 28, 28))
    assert whole.b.params < whole.a.params and whole.label_a == "without 1×1 reductions"
    per_branch = [bottleneck_comparison(spec, (192, 28, 28), b) for b in ("b1", "b2", "b3", "b4")]
    assert sum((c.a for c in per_branch), Cost()) == whole.a
    # b1 and b4 do not change with the reductions
    assert per_branch[0].a == per_branch[0].b and per_branch[3].a == per_branch[3].b
    fact = factorization_comparison(
        BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=16, b3=32, b4=1, b3_kernel=3), (8, 10, 10)
    )
    assert fact.a.weights == 16 * 8 + 32 * 16 * 25 and fact.b.weights == 16 * 8 + 32 * 16 * 9 + 32 * 32 * 9
    with pytest.raises(SpecError, match="no branch 'b9'"):
        bottleneck_comparison(spec, (192, 28, 28), "b9")
    c = conv_cost(3, 4, 3, (5, 5), bias=True, batch_norm=False)
    assert c.as_dict() == {"params": 112, "weights": 108, "mult_adds": 112 * 25, "multiplications": 108 * 25}
    assert c.flops == 2 * 108 * 25


def test_block_report_rows_are_the_real_modules_paths_and_params():
    """A block on its own: row names are InceptionBlock submodule paths (prefix ""), with their parameter counts;
    a prefix puts them under that path."""
    from gnet.analysis import block_report
    from gnet.blocks import InceptionBlock

    spec = BlockSpec(b1=4, b2_reduce=3, b2=5, b3_reduce=2, b3=3, b4=2, batch_norm=True)
    module = InceptionBlock(6, spec)
    report = block_report(spec, (6, 7, 7))
    rows = [r for b in report.branches for r in b.layers]
    assert rows and all(
        sum(p.numel() for p in module.get_submodule(r.name).parameters()) == r.cost.params for r in rows
    )
    assert report.cost.params == sum(p.numel() for p in module.parameters())
    assert [r.name for b in block_report(spec, (6, 7, 7), "inception3a.").branches for r in b.layers] == [
        f"inception3a.{r.name}" for r in rows
    ]


def test_summary_rows_sum_each_block_once_and_match_the_module():
    spec = network_preset("mini")
    report = network_report(spec)
    model = build(spec)
    summary = report.summary_rows()
    names = [r.name for r in summary]
    assert len(names) == len(set(names))
    blocks = [r for r in summary if r.name.startswith("inception")]
    assert [r.name for r in blocks] == [f"inception{b}" for b in spec.block_names()]
    for r in blocks:
        assert (r.kind, r.group, r.output_shape) == (
            "inception",
            r.name[len("inception") :],
            report.blocks[r.group].output_shape,
        )
    for r in summary:  # the oracle: the built module's own parameter counts
        assert sum(p.numel() for p in model.get_submodule(r.name).parameters()) == r.cost.params, r.name
    assert sum(r.cost.params for r in summary) == report.params_total
    assert report.row("inception3a") == blocks[0]
    with pytest.raises(KeyError, match="'no-such-row'"):
        report.row("no-such-row")


def test_linear_cost_and_comparison_ratios():
    from gnet.analysis import Comparison, linear_cost

    fc = torch.nn.Linear(10, 4)
    c = linear_cost(10, 4)
    assert (c.params, c.weights, c.multiplications) == (sum(p.numel() for p in fc.parameters()), fc.weight.numel(), 40)
    one, three, zero = Cost(params=1), Cost(params=3), Cost()
    assert Comparison("a", "b", one, three).ratio("params") == 3.0
    assert Comparison("a", "b", zero, three).ratio("params") == 3.0  # nothing to compare with: no division by 0
    assert Comparison("a", "b", three, one).saved("params") == 2


def test_comparisons_set_the_switch_they_compare_whatever_the_spec_says():
    base = BlockSpec(b1=8, b2_reduce=6, b2=12, b3_reduce=3, b3=6, b4=4, b3_kernel=5)
    shape = (16, 6, 6)
    for reduce in (False, True):
        cmp = bottleneck_comparison(dataclasses.replace(base, reduce=reduce), shape)
        assert cmp == bottleneck_comparison(base, shape)
        assert cmp.label_a.startswith("without 1×1") and cmp.label_b.startswith("with 1×1")
    for factorize in (False, True):
        cmp = factorization_comparison(dataclasses.replace(base, factorize=factorize), shape)
        assert cmp == factorization_comparison(base, shape) and cmp.a != cmp.b
        assert "5×5" in cmp.label_a and "two 3×3" in cmp.label_b


@pytest.mark.parametrize("reduce, batch_norm", [(True, False), (False, True)])
def test_factorized_conv_comparison_counts_the_convs_alone(reduce, batch_norm):
    """b3's large conv (after its reduction, if any): one 5×5 vs two 3×3, against torch's own parameter counts and
    the hand count k×k×C_in×C_out×H×W of multiplications."""
    from gnet.analysis import factorized_conv_comparison

    spec = BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=6, b3=10, b4=1, reduce=reduce, batch_norm=batch_norm)
    c_in = 6 if reduce else 7
    cmp = factorized_conv_comparison(spec, (7, 5, 4))

    def conv(i: int, o: int, k: int) -> torch.nn.Module:
        layers = [torch.nn.Conv2d(i, o, k, bias=not batch_norm)] + ([torch.nn.BatchNorm2d(o)] if batch_norm else [])
        return torch.nn.Sequential(*layers)

    def params(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert cmp.a.params == params(conv(c_in, 10, 5)) and cmp.b.params == params(conv(c_in, 10, 3)) + params(
        conv(10, 10, 3)
    )
    assert cmp.a.weights == 25 * c_in * 10 and cmp.b.weights == 9 * c_in * 10 + 9 * 10 * 10
    assert cmp.a.multiplications == 25 * c_in * 10 * 20 and cmp.b.multiplications == (9 * c_in * 10 + 900) * 20
    assert f"{c_in}→10" in cmp.label_a and "5×5" in cmp.label_a and f"{c_in}→10→10" in cmp.label_b


def test_validate_network_returns_the_spec_or_refuses_it():
    from gnet.analysis import validate_network

    spec = network_preset("mini")
    assert validate_network(spec) is spec
    with pytest.raises(SpecError, match="too small"):
        validate_network(with_input(network_preset("googlenet-imagenet"), size=(8, 8)))


def test_rows_are_grouped_as_the_layer_plan_reads():
    """LayerRow.group, from each row's module path in torchvision's GoogLeNet layout: "stem" up to the first block,
    the block's name inside one, "after stage N" for the pool closing stage N, "head" for avg-pool and fc, "aux1"/"aux2"."""
    spec = network_preset("googlenet-imagenet-aux")
    report = network_report(spec)
    assert report.spec is spec and report.plan is not None and report.plan.spec is spec
    assert report.input_shape == (spec.in_channels, *spec.input_size)
    assert report.output_shape == (spec.num_classes, 1, 1)  # the logits, not an aux head's or a pool's

    def expected(name: str) -> str:
        top = name.split(".")[0]
        if top.startswith("inception"):
            return top.removeprefix("inception")
        if top.startswith("aux"):
            return top
        if top in ("avgpool", "fc"):
            return "head"
        return {"maxpool3": "after stage 3", "maxpool4": "after stage 4"}.get(top, "stem")

    assert {r.name.split(".")[0] for r in report.rows} >= {"conv1", "maxpool3", "maxpool4", "avgpool", "fc", "aux2"}
    assert [(r.name, r.group) for r in report.rows] == [(r.name, expected(r.name)) for r in report.rows]


def test_activation_cap_refuses_with_the_size_in_gib():
    from gnet.spec import MAX_ACTIVATION_BYTES

    mini = network_preset("mini")
    near = network_report(with_input(mini, size=(2600, 2600)))  # about 95% of the cap: accepted
    assert 0.8 * MAX_ACTIVATION_BYTES < 4 * near.activation_elements <= MAX_ACTIVATION_BYTES
    with pytest.raises(SpecError) as err:
        network_report(with_input(mini, size=(2900, 2900)))
    found = re.search(r"makes ([\d.]+) GiB of activations; the cap is (\d+) GiB", str(err.value))
    assert found, str(err.value)
    gib, cap = map(float, found.groups())
    assert cap == MAX_ACTIVATION_BYTES / 2**30
    quarter = network_report(with_input(mini, size=(1450, 1450)))  # a quarter of the pixels: about a quarter
    assert gib == pytest.approx(4 * 4 * quarter.activation_elements / 2**30, rel=0.02)


@pytest.mark.parametrize("aux_pool", ["torchvision", "paper"])
def test_row_labels_name_each_layers_kernel_and_stride_as_the_module_has_them(aux_pool):
    """step_label's documented forms ("conv 7×7/2", "max-pool 3×3/1", "adaptive avg-pool 4×4", "global avg-pool"),
    with the numbers read from the built torch module."""
    spec = dataclasses.replace(with_input(network_preset("googlenet-imagenet-aux"), size=(224, 224)), aux_pool=aux_pool)
    model = build(spec)

    def label(m: torch.nn.Module) -> str | None:
        conv = next((x for x in m.modules() if isinstance(x, torch.nn.Conv2d)), None)
        if conv is not None:
            k, s = conv.kernel_size[0], conv.stride[0]
            return f"conv {k}×{k}" + (f"/{s}" if s > 1 else "")
        if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            kind = "max" if isinstance(m, torch.nn.MaxPool2d) else "avg"
            return f"{kind}-pool {m.kernel_size}×{m.kernel_size}/{m.stride}"
        if isinstance(m, torch.nn.AdaptiveAvgPool2d):
            h, w = (m.output_size, m.output_size) if isinstance(m.output_size, int) else m.output_size
            return "global avg-pool" if (h, w) == (1, 1) else f"adaptive avg-pool {h}×{w}"
        return None  # linear layers: their kind

    rows = network_report(spec).rows
    kinds = set()
    for r in rows:
        expected = label(model.get_submodule(r.name))
        assert r.kind == (expected if expected is not None else "linear"), r.name
        kinds.add(r.kind.split(" ")[0])
    assert {"conv", "max-pool", "linear"} <= kinds and ("avg-pool" in kinds) == (aux_pool == "paper")


def test_block_report_keeps_its_inputs_and_names_each_rows_branch():
    from gnet.analysis import block_report

    spec = BlockSpec(b1=4, b2_reduce=3, b2=5, b3_reduce=2, b3=3, b4=2)
    report = block_report(spec, (6, 7, 7))
    assert report.spec is spec and report.input_shape == (6, 7, 7)
    assert [(b.name, b.label) for b in report.branches] == list(spec.branch_labels().items())
    assert all(r.branch == b.name for b in report.branches for r in b.layers)
    rows = network_report(network_preset("mini")).rows
    assert {r.branch for r in rows if not r.name.startswith("inception")} == {""}  # stem, head, aux: no branch
    conv = torch.nn.Conv2d(3, 4, 3)  # bias by default, as torch's
    assert conv_cost(3, 4, 3, (5, 5)).params == sum(p.numel() for p in conv.parameters())
