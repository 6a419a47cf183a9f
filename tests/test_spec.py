"""Specs: validation messages, variant semantics, presets, JSON round trips, and a
fuzz over malformed JSON-like data that must only ever raise SpecError."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet.analysis import block_report, network_report, validate_network
from gnet.spec import (
    BLOCK_NAMES,
    CHANNEL_FIELDS,
    MAX_CHANNELS,
    NETWORK_PRESETS,
    BlockDesign,
    BlockSpec,
    ConvSpec,
    NetworkSpec,
    PoolSpec,
    SpecError,
    block_from_dict,
    block_presets,
    network_preset,
    paper_block,
    with_input,
)
from tests.fuzzing import fuzz_settings

OK = dict(b1=1, b2_reduce=1, b2=1, b3_reduce=1, b3=1, b4=1)


@pytest.mark.parametrize("field", ["b1", "b2_reduce", "b2", "b3_reduce", "b3", "b4"])
@pytest.mark.parametrize(
    "value, words",
    [
        (0, "must be from 1 to 8,192, got 0"),
        (-5, "must be from 1 to 8,192, got -5"),
        (MAX_CHANNELS + 1, "must be from 1 to 8,192, got 8,193"),
        (2.5, "must be a whole number from 1 to 8,192, got 2.5"),
        ("64", "must be a whole number from 1 to 8,192, got '64'"),
        (True, "must be a whole number from 1 to 8,192, got True"),
        (None, "must be a whole number from 1 to 8,192, got None"),
        pytest.param(10**5000, "must be from 1 to 8,192, got a number with over 30 digits", id="5000-digits"),
    ],
)
def test_block_field_errors_name_field_and_range(field, value, words):
    with pytest.raises(SpecError) as err:
        BlockSpec(**{**OK, field: value}).validate()
    assert str(err.value) == f"{field} {words}"


def test_variant_rules():
    with pytest.raises(SpecError, match="b3_kernel must be 3 or 5, got 7"):
        BlockSpec(**OK, b3_kernel=7).validate()
    with pytest.raises(SpecError, match="needs b3_kernel 5"):
        BlockSpec(**OK, b3_kernel=3, factorize=True).validate()
    with pytest.raises(SpecError, match="batch_norm must be true or false"):
        BlockSpec(**OK, batch_norm="yes").validate()
    BlockSpec(**OK, b3_kernel=5, factorize=True).validate()


def test_naive_block_keeps_pool_projection_and_ignores_reduce_fields():
    spec = BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, reduce=False)
    report = block_report(spec, (192, 28, 28))
    assert [len(b.layers) for b in report.branches] == [1, 1, 1, 2]  # b4: pool then 1×1 projection
    assert report.output_shape == (256, 28, 28)  # same shape as the reduced block
    assert report.branch("b2").layers[0].cost.weights == 3 * 3 * 192 * 128
    other_reduce = dataclasses.replace(spec, b2_reduce=7, b3_reduce=9)
    assert block_report(other_reduce, (192, 28, 28)).cost == report.cost
    assert spec.branch_labels() == {"b1": "1×1", "b2": "3×3", "b3": "5×5", "b4": "3×3 max-pool → 1×1"}
    assert "naive" in BlockSpec.__doc__ and "b4's projection" in BlockSpec.__doc__


def test_whole_number_floats_and_numpy_ints_are_normalised():
    spec = BlockSpec(b1=64.0, b2_reduce=np.int64(96), b2=128, b3_reduce=16, b3=32, b4=32, b3_kernel=3.0)
    assert spec == paper_block("3a", b3_kernel=3)
    assert all(type(getattr(spec, f)) is int for f in ("b1", "b2_reduce", "b3_kernel"))
    design = BlockDesign(spec, [192.0, 28, np.int32(28)])
    assert design.input_shape == (192, 28, 28) and hash(design)
    net = NetworkSpec("n", 3.0, [32, 32], 10.0, [ConvSpec(8.0, 3)], [[spec]], [])
    assert net.input_size == (32, 32) and net.stages == ((spec,),) and hash(net)
    network_report(net)


@pytest.mark.parametrize(
    "shape, words",
    [
        ((0, 28, 28), "input channels must be from 1 to 8,192, got 0"),
        ((3, 0, 28), "input height must be from 1 to 4,096, got 0"),
        ((3, 28, 5000), "input width must be from 1 to 4,096, got 5,000"),
        ((3, 28), "input shape must be (channels, height, width)"),
    ],
)
def test_block_design_input_errors(shape, words):
    with pytest.raises(SpecError) as err:
        block_report(paper_block("3a"), shape)
    assert words in str(err.value)


def _mini_with(**changes) -> NetworkSpec:
    return dataclasses.replace(network_preset("mini"), **changes)


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(in_channels=0), "in_channels must be from 1 to 8,192"),
        (dict(num_classes=0), "num_classes must be from 1 to 100,000"),
        (dict(input_size=(32,)), "input_size must be [height, width]"),
        (dict(input_size=(99999, 32)), "input height must be from 1 to 4,096, got 99,999"),
        (dict(name=""), "name must be 1 to 80 characters"),
        (dict(dropout=1.0), "dropout must be a number from 0 up to (not including) 1"),
        (dict(aux_pool="avg"), "aux_pool must be 'paper' or 'torchvision'"),
        (dict(aux=True), "stage 4 needs at least 4 blocks"),
        (dict(stage_pools=()), "2 stages need 1 pools between them"),
        (dict(stages=()), "number of stages must be from 1 to 6"),
        (dict(stem=(ConvSpec(0, 3),)), "stem layer 1 out_channels must be from 1 to 8,192"),
        (dict(stem=(PoolSpec(3, 2, padding=2),)), "stem layer 1 padding must be from 0 to 1"),
        (dict(stem=(ConvSpec(8, 3, stride=9),)), "stem layer 1 stride must be from 1 to 8"),
        (dict(stage_pools=(PoolSpec(0, 2),)), "pool after stage 3 kernel must be from 1 to 15"),
        (dict(description=7), "description must be text"),
    ],
)
def test_network_field_errors(changes, words):
    with pytest.raises(SpecError) as err:
        validate_network(_mini_with(**changes))
    assert words in str(err.value)


def test_block_error_inside_network_names_the_block():
    spec = network_preset("d2l-fashion96")
    bad = spec.with_block("4c", dataclasses.replace(spec.block("4c"), b2=0))
    with pytest.raises(SpecError, match="block 4c: b2 must be from 1 to 8,192, got 0"):
        validate_network(bad)
    with pytest.raises(SpecError, match="no block '9z'; this network has 3a, 3b, 4a"):
        spec.block("9z")


def test_with_block_changes_downstream_in_channels():
    spec = network_preset("d2l-fashion96")
    wider = spec.with_block("3b", dataclasses.replace(spec.block("3b"), b1=200))
    report = network_report(wider)
    assert report.blocks["3b"].output_shape[0] == 480 + 72
    assert report.blocks["4a"].input_shape[0] == 552


def test_presets():
    assert list(BLOCK_NAMES) == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    presets = block_presets()
    assert [f"Paper {n}" for n in BLOCK_NAMES] == list(presets)[:9]
    for design in presets.values():
        design.validate()
    # each paper block's input channels are the previous block's output (pools keep channels)
    designs = [presets[f"Paper {n}"] for n in BLOCK_NAMES]
    for before, after in zip(designs, designs[1:]):
        assert after.input_shape[0] == before.block.out_channels
    for name in NETWORK_PRESETS:
        spec = validate_network(network_preset(name))
        assert spec.name == name.removesuffix("-aux")
    d2l = network_preset("d2l-fashion96")
    assert (d2l.in_channels, d2l.input_size, d2l.num_classes, d2l.aux, d2l.batch_norm) == (
        1,
        (96, 96),
        10,
        False,
        False,
    )
    assert network_preset("googlenet-imagenet-aux").aux_blocks() == ("4a", "4d")
    assert network_report(network_preset("mini")).output_shape == (10, 1, 1)
    with pytest.raises(SpecError, match="unknown preset 'vgg'; choose one of d2l-fashion96"):
        network_preset("vgg")


@pytest.mark.parametrize("name", list(NETWORK_PRESETS))
def test_network_json_round_trip(name):
    spec = network_preset(name)
    assert NetworkSpec.from_json(spec.to_json()) == spec
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    assert NetworkSpec.from_json(spec.to_json().encode()) == spec


def test_block_design_json_round_trip():
    for design in block_presets().values():
        for variant in (dict(reduce=False), dict(factorize=True, batch_norm=True), dict(b3_kernel=3)):
            d = BlockDesign(dataclasses.replace(design.block, **variant), design.input_shape)
            assert BlockDesign.from_json(d.to_json()) == d
            assert BlockDesign.from_dict(d.to_dict()) == d


@pytest.mark.parametrize(
    "text, words",
    [
        ("{", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        pytest.param("[" * 100_000 + "]" * 100_000, "nested too deeply", id="deep"),
        pytest.param("[" + "9" * 5000 + "]", "not valid JSON", id="5000-digits"),
        pytest.param("x" * 1_000_001, "larger than 1 MB", id="over-1MB"),
        ("[]", "must be a JSON object"),
        ('{"name": "x"}', "missing the field(s) in_channels"),
    ],
)
def test_malformed_network_json(text, words):
    with pytest.raises(SpecError) as err:
        NetworkSpec.from_json(text)
    assert words in str(err.value)
    assert len(str(err.value)) < 300


def test_json_with_byte_order_mark_and_non_utf8():
    spec = network_preset("mini")
    assert NetworkSpec.from_json(b"\xef\xbb\xbf" + spec.to_json().encode()) == spec
    assert NetworkSpec.from_json("\ufeff" + spec.to_json()) == spec
    with pytest.raises(SpecError, match="not UTF-8 text"):
        NetworkSpec.from_json(spec.to_json().encode("utf-16"))
    with pytest.raises(SpecError, match="must be JSON text"):
        NetworkSpec.from_json(None)


def test_unknown_paper_block():
    with pytest.raises(SpecError, match="the paper has no block '6a'; its blocks are 3a, 3b"):
        paper_block("6a")


def test_malformed_dicts_name_what_is_wrong():
    good = network_preset("mini").to_dict()
    cases = [
        ({**good, "extra": 1}, "unknown network spec field(s): 'extra'"),
        ({**good, "stem": [{"type": "conv", "kernel": 3}]}, "stem layer 1 is missing the field(s) out_channels"),
        ({**good, "stem": [{"type": "avgpool"}]}, 'stem layer 1 must be an object with "type": "conv" or "maxpool"'),
        ({**good, "stages": [[{**OK, "b9": 1}]]}, "unknown block spec field(s): 'b9'"),
        ({**good, "stages": "abc"}, "stages must be a JSON list"),
        ({**good, "stage_pools": [3]}, "pool after stage 3 must be a JSON object"),
    ]
    for d, words in cases:
        with pytest.raises(SpecError) as err:
            NetworkSpec.from_dict(d)
        assert words in str(err.value), d
    with pytest.raises(SpecError, match="missing the field"):
        block_from_dict({"b1": 1})
    with pytest.raises(SpecError, match='"input_shape" and "block"'):
        BlockDesign.from_dict({"block": OK})


# ---------------------------------------------------------------------------
# Fuzz: random JSON-like values, and valid specs with random parts replaced

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | st.sampled_from(["conv", "maxpool", "paper", "torchvision", "type"])
)
json_like = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["type", "b1", "stem", "kernel", "block"]), inner, max_size=5
        )
    ),
    max_leaves=16,
)
VALID = [
    network_preset("mini").to_dict(),
    network_preset("googlenet-imagenet-aux").to_dict(),
    block_presets()["Paper 3a"].to_dict(),
    dataclasses.asdict(paper_block("4a")),
]


def _paths(x, path=()):
    yield path
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _paths(v, (*path, i))


@st.composite
def mutated_specs(draw):
    d = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    paths = list(_paths(d))[1:]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent = d
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = draw(json_like)
        except (KeyError, IndexError, TypeError):  # an earlier replacement removed this path
            pass
    return d


@fuzz_settings(200)
@given(data=st.one_of(json_like, mutated_specs()))
def test_fuzz_parsers_raise_only_spec_error(data):
    for parse in (
        NetworkSpec.from_dict,
        block_from_dict,
        BlockDesign.from_dict,
        lambda d: NetworkSpec.from_json(json.dumps(d)),
        lambda d: BlockDesign.from_json(json.dumps(d)),
    ):
        try:
            parsed = parse(data)
        except SpecError as e:
            assert str(e)
        else:  # whatever parses is valid and round-trips
            if isinstance(parsed, BlockSpec):
                assert block_from_dict(dataclasses.asdict(parsed)) == parsed.validate()
            else:
                assert type(parsed).from_json(parsed.to_json()) == parsed


def test_a_valid_block_dict_parses_and_round_trips():
    """The case the fuzzer found: a plain block dict is valid for block_from_dict."""
    d = dict(zip(("b1", "b2_reduce", "b2", "b3_reduce", "b3", "b4"), (1, 96, 208, 16, 48, 64)))
    spec = block_from_dict(d)
    assert block_from_dict(dataclasses.asdict(spec)) == spec and spec.out_channels == 1 + 208 + 48 + 64


@st.composite
def block_designs(draw) -> BlockDesign:
    kernel = draw(st.sampled_from((3, 5)))
    block = BlockSpec(
        **{f: draw(st.integers(1, MAX_CHANNELS)) for f in CHANNEL_FIELDS},
        reduce=draw(st.booleans()),
        b3_kernel=kernel,
        factorize=kernel == 5 and draw(st.booleans()),
        batch_norm=draw(st.booleans()),
    )
    return BlockDesign(
        block, (draw(st.integers(1, MAX_CHANNELS)), draw(st.integers(1, 4096)), draw(st.integers(1, 4096)))
    )


@settings(max_examples=100, deadline=None, database=None)
@given(design=block_designs())
def test_block_design_round_trip_any_valid(design):
    assert BlockDesign.from_json(design.to_json()) == design.validate()
    assert block_report(design.block, list(design.input_shape)).input_shape == design.input_shape


def test_with_input_changes_only_the_input():
    spec = with_input(network_preset("mini"), 1, (64, 48))
    assert (spec.in_channels, spec.input_size) == (1, (64, 48))
    assert spec.stages == network_preset("mini").stages
