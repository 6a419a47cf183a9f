import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet.spec import CHANNEL_FIELDS, MAX_CHANNELS, BlockDesign, BlockSpec, SpecError, block_presets
from gnet.urlstate import B3_VARIANTS, KEYS, b3_variant, design_from_query, design_to_query, with_b3_variant
from tests.fuzzing import fuzz_settings

channels = st.integers(1, MAX_CHANNELS)
variants = st.sampled_from(list(B3_VARIANTS.values()))


@st.composite
def designs(draw) -> BlockDesign:
    kernel, factorize = draw(variants)
    block = BlockSpec(
        **{f: draw(channels) for f in CHANNEL_FIELDS},
        reduce=draw(st.booleans()),
        b3_kernel=kernel,
        factorize=factorize,
        batch_norm=draw(st.booleans()),
    )
    return BlockDesign(block, (draw(channels), draw(st.integers(1, 4096)), draw(st.integers(1, 4096)))).validate()


@settings(max_examples=60, deadline=None)
@given(designs())
def test_round_trip(design):
    query = design_to_query(design)
    assert set(query) == set(KEYS)
    assert all(isinstance(v, str) for v in query.values())
    assert design_from_query(query) == design
    # a raw parse (urllib.parse.parse_qs) gives lists; the last value counts, as in st.query_params
    assert design_from_query({k: ["999", v] for k, v in query.items()}) == design


def test_presets_round_trip():
    for design in block_presets().values():
        assert design_from_query(design_to_query(design)) == design


def test_no_keys_means_no_design():
    assert design_from_query({}) is None
    assert design_from_query({"embed": "true", "other": "1"}) is None


def test_unrelated_keys_are_ignored():
    design = block_presets()["Paper 3a"]
    assert design_from_query({**design_to_query(design), "embed": "true"}) == design


def test_variant_keys_default_to_the_paper_block():
    query = {k: v for k, v in design_to_query(block_presets()["Paper 3a"]).items() if k not in ("reduce", "b3v", "bn")}
    d = design_from_query(query)
    assert (d.block.reduce, d.block.b3_kernel, d.block.factorize, d.block.batch_norm) == (True, 5, False, False)


GOOD = design_to_query(block_presets()["Paper 3a"])


@pytest.mark.parametrize(
    "change, words",
    [
        ({"b1": "abc"}, "b1"),
        ({"b1": "-3"}, "b1"),
        ({"b2": "1.5"}, "b2"),
        ({"h": "9" * 40}, "input height"),
        ({"b1": "0"}, "b1 must be from 1"),
        ({"b3": str(MAX_CHANNELS + 1)}, "b3 must be from 1"),
        ({"w": "5000"}, "input width"),
        ({"reduce": "yes"}, "reduce"),
        ({"bn": "2"}, "bn"),
        ({"b3v": "7"}, "b3v"),
        ({"c": ""}, "input channels"),
    ],
)
def test_bad_values_raise_spec_error_naming_the_field(change, words):
    with pytest.raises(SpecError, match=words):
        design_from_query({**GOOD, **change})


def test_missing_keys_are_named():
    query = dict(GOOD)
    del query["b4"], query["h"]
    with pytest.raises(SpecError, match="input height, b4"):
        design_from_query(query)


def test_b3_variants_map_to_spec_fields():
    base = BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=1, b3=1, b4=1)
    for label, (kernel, factorize) in B3_VARIANTS.items():
        spec = with_b3_variant(base, label)
        assert (spec.b3_kernel, spec.factorize) == (kernel, factorize)
        assert b3_variant(spec) == label
        spec.validate()
    with pytest.raises(SpecError):
        with_b3_variant(base, "7×7")


@fuzz_settings(200)
@given(
    st.dictionaries(
        st.sampled_from([*KEYS, "x", ""]) | st.text(max_size=6),
        st.text(max_size=12) | st.lists(st.text(max_size=6), max_size=3),
        max_size=14,
    )
)
def test_fuzz_query_strings_give_a_design_none_or_spec_error(params):
    try:
        design = design_from_query(params)
    except SpecError as e:
        assert str(e)
    else:
        assert design is None or design == design.validate()
