"""GoogLeNet against Inception v3 (and v3 against v3): every number is what each side's own plan_report says,
the totals match the built modules' parameter counts, the CLI reads the Network Explorer's v3 JSON export,
and the Network Explorer's comparison offers the v3 presets on either side."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet import urlstate
from gnet.__main__ import main
from gnet.analysis import plan_report
from gnet.compare import compare, compare_networks, load_design, report_of
from gnet.network import build
from gnet.plan import layer_plan
from gnet.spec import SpecError, network_preset
from gnet.v3 import inception_v3_imagenet, mini_v3, v3_plan
from gnet.v3_modules import build_v3

PAGES = Path(__file__).resolve().parent.parent / "pages"


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_googlenet_against_v3_totals_are_each_sides_plan_report_and_module():
    g, v = network_preset("googlenet-imagenet"), inception_v3_imagenet()
    c = compare(g, v, label_a="googlenet", label_b="v3")
    rg, rv = plan_report(layer_plan(g)), plan_report(v3_plan(v))
    t = c.total
    assert (t.a.params, t.a.mult_adds, t.a.multiplications) == (
        rg.params_total,
        rg.cost.mult_adds,
        rg.cost.multiplications,
    )
    assert (t.b.params, t.b.mult_adds, t.b.multiplications) == (
        rv.params_total,
        rv.cost.mult_adds,
        rv.cost.multiplications,
    )
    assert t.b.params == 27_161_264 and t.b.mult_adds == 5_713_251_528 and t.a.params == 6_624_904  # design.md
    assert t.delta("params") == 27_161_264 - 6_624_904
    assert t.a.shape == t.b.shape == (1000, 1, 1)
    assert params(build(g)) == t.a.params and params(build_v3(v)) == t.b.params


def test_googlenet_against_v3_rows_are_stages_summing_to_the_totals():
    g, v = network_preset("googlenet-imagenet"), inception_v3_imagenet()
    c = compare_networks(g, v, "layers")  # no shared layer names: stages, whatever detail was asked for
    rows = {r.name: r for r in c.rows}
    assert list(rows) == ["stem", "grid 1", "grid 2", "grid 3", "head", "aux"]
    assert rows["grid 1"].kind == "3a–3b at 28×28 vs 5b–5d at 35×35"
    assert rows["grid 2"].kind == "4a–4e + 1 pool at 14×14 vs 6a–6e at 17×17"  # v3's grid reduction is block 6a
    assert rows["grid 3"].b.shape == (2048, 8, 8) and rows["grid 3"].a.shape == (1024, 7, 7)
    assert rows["grid 3"].b.rf == 1311  # Mixed_7c's receptive field (design.md)
    assert rows["aux"].a is None and rows["aux"].b is not None  # the googlenet-imagenet preset has no aux heads
    rg, rv = report_of(g), report_of(v)
    for side, report in (("a", rg), ("b", rv)):
        assert sum(r.value(side, "params") for r in c.rows) == report.params_total
        main_rows = [r for r in c.rows if r.name != "aux"]
        assert sum(r.value(side, "mult_adds") for r in main_rows) == report.cost.mult_adds
    stage = sum(rv.blocks[b].cost.params for b in ("6a", "6b", "6c", "6d", "6e"))
    assert rows["grid 2"].b.params == stage
    assert rows["stem"].b.params == sum(r.cost.params for r in rv.summary_rows() if r.group == "stem")


def test_v3_against_v3_rows_by_module_path_with_branches():
    m, v = mini_v3(), inception_v3_imagenet()
    c = compare_networks(m, v, "branches")
    rows = {r.name: r for r in c.rows}
    rm, rv = report_of(m), report_of(v)
    assert rows["Mixed_6b"].kind == "inception C"
    assert (
        rows["Mixed_6b"].a.params == rm.blocks["6b"].cost.params
        and rows["Mixed_6b"].b.params == rv.blocks["6b"].cost.params
    )
    b2 = rows["Mixed_7b.branch3x3"]  # E's split branch, named by its torchvision module path
    assert b2.b.params == rv.blocks["7b"].branch("b2").cost.params and b2.b.shape == (768, 8, 8)
    assert rows["Mixed_5c"].a is None and rows["Mixed_5c"].b is not None  # mini-v3 has one block of each kind
    assert c.total.a.params == rm.params_total == params(build_v3(m))


def test_load_design_reads_a_v3_export_and_the_cli_compares_it(tmp_path, capsys):
    (tmp_path / "g.json").write_text(network_preset("googlenet-imagenet").to_json())
    (tmp_path / "v3.json").write_text(inception_v3_imagenet().to_json())
    assert load_design((tmp_path / "v3.json").read_text()) == inception_v3_imagenet()
    assert main(["compare", str(tmp_path / "g.json"), str(tmp_path / "v3.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "network" and [r["name"] for r in out["rows"]][:2] == ["stem", "grid 1"]
    assert out["total"]["b"]["params"] == 27_161_264 and out["total"]["delta"]["params"] == 27_161_264 - 6_624_904
    assert main(["compare", str(tmp_path / "g.json"), str(tmp_path / "v3.json")]) == 0
    text = capsys.readouterr().out
    assert "grid 2" in text and "27,161,264" in text and "4a–4e + 1 pool at 14×14 vs 6a–6e at 17×17" in text
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**inception_v3_imagenet().to_dict(), "dropout": 2}))
    assert main(["compare", str(tmp_path / "g.json"), str(bad)]) == 2
    assert "dropout" in capsys.readouterr().err


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))


def compare_table(at: AppTest):
    frames = [d.value for d in at.dataframe if "Δ params" in d.value.columns]
    assert len(frames) == 1
    return frames[0].set_index("row")


def test_network_explorer_compares_googlenet_against_a_v3_preset_and_back(runs_root):
    at = AppTest.from_file(str(PAGES / "network_explorer.py"), default_timeout=120)
    at.run()
    at.selectbox(key="ne_preset").set_value("googlenet-imagenet").run()
    at.radio(key="ne_cmp_source").set_value("a preset").run()
    assert "inception-v3-imagenet" in at.selectbox(key="ne_cmp_preset").options
    at.selectbox(key="ne_cmp_preset").set_value("inception-v3-imagenet").run()
    assert not at.exception
    t = compare_table(at)
    rv, rg = report_of(inception_v3_imagenet()), report_of(network_preset("googlenet-imagenet"))
    assert t.loc["total", "params A"] == rv.params_total and t.loc["total", "params B"] == rg.params_total
    assert t.loc["grid 3", "A (C×H×W)"] == "2048×8×8" and t.loc["grid 3", "B (C×H×W)"] == "1024×7×7"
    assert any("share no layer names" in i.value for i in at.info)
    assert "nb" not in at.query_params  # a comparison with a v3 is not written into the link
    # the page's own network a v3: its comparison is there too, with a GoogLeNet preset as A
    at.selectbox(key="ne_preset").set_value("mini-v3").run()
    at.selectbox(key="ne_cmp_preset").set_value("mini").run()
    assert not at.exception
    t = compare_table(at)
    assert t.loc["total", "params B"] == report_of(mini_v3()).params_total
    assert t.loc["total", "params A"] == report_of(network_preset("mini")).params_total
    figs = [c for c in at.get("plotly_chart") if c.key == "ne_cmp_depth"]
    assert len(figs) == 1 and "depth (layers along the main path)" in figs[0].proto.spec


def test_a_v3_network_round_trips_through_a_link():
    """A link value names a v3 preset, or carries an edited v3 (its JSON's family tells it from a GoogLeNet)."""
    assert urlstate.network_to_query(mini_v3()) == "mini-v3"
    assert urlstate.network_from_query("inception-v3-imagenet") == inception_v3_imagenet()
    edited = dataclasses.replace(mini_v3(), num_classes=7, dropout=0.2)
    value = urlstate.network_to_query(edited)
    assert value.startswith("z.") and urlstate.network_from_query(value) == edited
    too_small = dataclasses.replace(mini_v3(), input_size=(20, 20))  # its grids shrink to nothing
    with pytest.raises(SpecError, match="link parameter nb: "):
        urlstate.network_from_query(urlstate.network_to_query(too_small))


def test_a_pinned_v3_comparison_is_in_the_link_and_the_link_reopens_it(runs_root):
    at = AppTest.from_file(str(PAGES / "network_explorer.py"), default_timeout=120)
    at.run()
    at.selectbox(key="ne_preset").set_value("mini-v3").run()
    at.button(key="ne_cmp_pin").click().run()  # A: mini-v3
    at.selectbox(key="ne_preset").set_value("mini").run()  # B: a GoogLeNet
    assert not at.exception
    q = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items() if k in urlstate.NETWORK_KEYS}
    assert q == {"na": "mini-v3", "nb": "mini"}
    assert any("link now holds both networks" in c.value for c in at.caption)
    want = compare_table(at).loc["total", "params A"]
    assert want == report_of(mini_v3()).params_total

    again = AppTest.from_file(str(PAGES / "network_explorer.py"), default_timeout=120)
    for k, v in q.items():
        again.query_params[k] = v
    again.run()
    assert not again.exception
    t = compare_table(again)
    assert (
        t.loc["total", "params A"] == want
        and t.loc["total", "params B"] == report_of(network_preset("mini")).params_total
    )
