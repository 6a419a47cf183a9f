"""Compare two designs: every row's Δ is the difference of what each design's own report says,
totals too; receptive fields match torch's gradients; `python -m gnet compare` prints the same."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet.__main__ import main
from gnet.analysis import block_report, network_report
from gnet.blocks import InceptionBlock
from gnet.compare import (
    block_receptive_fields,
    compare,
    compare_blocks,
    compare_networks,
    load_design,
    network_receptive_fields,
)
from gnet.spec import CHANNEL_FIELDS, BlockDesign, BlockSpec, NetworkSpec, SpecError, block_presets, network_preset

small = st.integers(1, 48)


@st.composite
def blocks(draw) -> BlockSpec:
    kernel, factorize = draw(st.sampled_from([(5, False), (5, True), (3, False)]))
    return BlockSpec(
        **{f: draw(small) for f in CHANNEL_FIELDS},
        reduce=draw(st.booleans()),
        b3_kernel=kernel,
        factorize=factorize,
        batch_norm=draw(st.booleans()),
    )


@st.composite
def designs(draw) -> BlockDesign:
    return BlockDesign(draw(blocks()), (draw(small), draw(st.integers(1, 64)), draw(st.integers(1, 64))))


@settings(max_examples=25, deadline=None)
@given(designs(), designs())
def test_block_delta_is_the_difference_of_the_two_reports(a, b):
    c = compare_blocks(a, b)
    ra, rb = block_report(a.block, a.input_shape), block_report(b.block, b.input_shape)
    assert [r.name for r in c.rows] == ["b1", "b2", "b3", "b4"]
    for row in c.rows:
        ba, bb = ra.branch(row.name), rb.branch(row.name)
        assert (row.a.shape, row.b.shape) == (ba.output_shape, bb.output_shape)
        for m in ("params", "mult_adds", "multiplications"):
            assert row.delta(m) == getattr(bb.cost, m) - getattr(ba.cost, m)
    for m in ("params", "mult_adds", "multiplications"):
        assert c.total.delta(m) == getattr(rb.cost, m) - getattr(ra.cost, m)
        assert c.total.delta(m) == sum(r.delta(m) for r in c.rows)
    assert c.total.delta("rf") == block_receptive_fields(b.block)["total"] - block_receptive_fields(a.block)["total"]


@st.composite
def edited_minis(draw) -> NetworkSpec:
    """The mini preset with random edits: channels, variants, a dropped or added block, aux off."""
    base = network_preset("mini")
    stages = [list(s) for s in base.stages]
    for s in stages:
        for i in range(len(s)):
            if draw(st.booleans()):
                s[i] = draw(blocks())
        if draw(st.integers(0, 3)) == 0:
            s.append(draw(blocks()))
        elif len(s) > 1 and draw(st.integers(0, 3)) == 0:
            s.pop(0)
    return dataclasses.replace(base, stages=tuple(tuple(s) for s in stages), input_size=(draw(st.integers(8, 40)),) * 2)


@settings(max_examples=20, deadline=None)
@given(edited_minis(), edited_minis(), st.sampled_from(["layers", "branches"]))
def test_network_delta_is_the_difference_of_the_two_reports(a, b, detail):
    c = compare_networks(a, b, detail)
    ra, rb = network_report(a), network_report(b)

    def costs(report) -> dict:
        out = {r.name: r.cost for r in report.summary_rows()}
        for name, blk in report.blocks.items():
            out |= {f"inception{name}.branch{i + 1}": br.cost for i, br in enumerate(blk.branches)}
        return out

    ca, cb = costs(ra), costs(rb)
    names = [r.name for r in c.rows]
    assert len(names) == len(set(names))
    assert set(names) >= {r.name for r in ra.summary_rows()} | {r.name for r in rb.summary_rows()}
    for row in c.rows:
        for m in ("params", "mult_adds", "multiplications"):
            va = getattr(ca[row.name], m) if row.a else 0
            vb = getattr(cb[row.name], m) if row.b else 0
            assert row.delta(m) == vb - va
    assert c.total.delta("params") == rb.params_total - ra.params_total
    assert c.total.delta("mult_adds") == rb.cost.mult_adds - ra.cost.mult_adds
    top = [r for r in c.rows if "." not in r.name]  # layer rows (not branches) partition the network
    assert c.total.delta("params") == sum(r.delta("params") for r in top)
    assert c.total.delta("mult_adds") == sum(r.delta("mult_adds") for r in top)


def test_d2l_receptive_fields():
    rf = network_receptive_fields(network_preset("d2l-fashion96"))
    # 7×7/2 conv, 3×3/2 pool, 1×1, 3×3, 3×3/2 pool, then a 5×5 branch at jump 8
    assert [rf[k] for k in ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a")] == [
        7,
        11,
        11,
        19,
        27,
        59,
    ]
    assert rf["inception3a.branch1"] == 27 and rf["inception3a.branch2"] == 43
    assert rf["inception5b"] == 715 and rf["avgpool"] == rf["fc"] == 715 + 2 * 32  # a 3×3 global pool at jump 32


@pytest.mark.parametrize("b3", [(5, False), (5, True), (3, False)])
def test_branch_receptive_fields_match_torch_gradients(b3):
    """Pixels of the input that a centre output unit's gradient reaches (convs only: b1 to b3)."""
    torch.manual_seed(0)
    spec = BlockSpec(b1=2, b2_reduce=2, b2=2, b3_reduce=2, b3=2, b4=2, b3_kernel=b3[0], factorize=b3[1])
    block = InceptionBlock(3, spec).eval()
    with torch.no_grad():  # positive weights and inputs: no ReLU cuts a path
        for p in block.parameters():
            p.abs_().add_(0.01)
    x = torch.rand(1, 3, 15, 15, requires_grad=True)
    out = block(x)
    rf = block_receptive_fields(spec)
    offset = 0
    for name in ("b1", "b2", "b3"):
        channels = getattr(spec, name)
        (g,) = torch.autograd.grad(out[0, offset : offset + channels, 7, 7].sum(), x, retain_graph=True)
        offset += channels
        rows = g.abs().sum((0, 1, 3)).nonzero().flatten()
        assert int(rows.max() - rows.min() + 1) == rf[name], name


def test_mixed_kinds_are_refused():
    with pytest.raises(SpecError, match="block design and B is a network"):
        compare(block_presets()["Paper 3a"], network_preset("mini"))


def test_load_design_tells_blocks_from_networks():
    d = block_presets()["Paper 3a"]
    assert load_design(d.to_json()) == d
    assert load_design(network_preset("mini").to_json().encode()) == network_preset("mini")
    for bad in (b"[]", b'{"x": 1}', b"not json"):
        with pytest.raises(SpecError):
            load_design(bad)


def test_cli_compare_json_and_text(tmp_path, capsys):
    a = network_preset("mini")
    b = dataclasses.replace(a, stages=tuple(tuple(dataclasses.replace(x, reduce=False) for x in s) for s in a.stages))
    (tmp_path / "a.json").write_text(a.to_json())
    (tmp_path / "b.json").write_text(b.to_json())
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ra, rb = network_report(a), network_report(b)
    assert out["kind"] == "network"
    assert out["total"]["delta"]["params"] == rb.params_total - ra.params_total
    assert out["total"]["delta"]["mult_adds"] == rb.cost.mult_adds - ra.cost.mult_adds
    row = next(r for r in out["rows"] if r["name"] == "inception3a")
    assert row["delta"]["params"] == rb.blocks["3a"].cost.params - ra.blocks["3a"].cost.params
    assert row["a"]["shape"] == list(ra.blocks["3a"].output_shape) and row["a"]["rf"] == 13
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    text = capsys.readouterr().out
    assert "Δ params" in text and f"{rb.params_total - ra.params_total:+,}" in text


@pytest.mark.parametrize(
    "files, words",
    [
        (("missing.json", "a.json"), "cannot read"),
        (("bad.json", "a.json"), "not valid JSON"),
        (("block.json", "a.json"), "block design and B is a network"),
    ],
)
def test_cli_compare_bad_input_exits_2(tmp_path, capsys, monkeypatch, files, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(network_preset("mini").to_json())
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "block.json").write_text(block_presets()["Paper 3a"].to_json())
    assert main(["compare", *files]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["compare", "a.json", "a.json", "--bogus"]) == 2


# -- links that carry both designs -----------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(edited_minis())
def test_network_link_round_trips(spec):
    from gnet import urlstate

    value = urlstate.network_to_query(spec)
    assert urlstate.network_from_query(value) == spec and len(value) < 4000
    assert urlstate.network_to_query(network_preset("mini")) == "mini"


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=40) | st.just("z.") | st.binary(max_size=60).map(lambda b: "z." + b.hex()))
def test_bad_network_links_raise_spec_error(text):
    from gnet import urlstate

    try:
        urlstate.network_from_query(text, "na")
    except SpecError as e:
        assert "na" in str(e)


def test_zip_bomb_link_refused():
    import base64
    import zlib

    from gnet import urlstate

    bomb = "z." + base64.urlsafe_b64encode(zlib.compress(b" " * 5_000_000, 9)).decode()
    with pytest.raises(SpecError, match="more than"):
        urlstate.network_from_query(bomb)


@settings(max_examples=15, deadline=None)
@given(designs(), designs())
def test_two_block_designs_share_one_query(a, b):
    from gnet import urlstate

    a, b = a.validate(), b.validate()
    query = {**urlstate.design_to_query(b), **urlstate.design_to_query(a, prefix="a")}
    assert urlstate.design_from_query(query) == b and urlstate.design_from_query(query, prefix="a") == a
    assert urlstate.design_from_query(urlstate.design_to_query(b), prefix="a") is None
