"""A/B compare on the Block Designer and the Network Explorer (AppTest): pin A, edit B, read the
A/B/Δ table; A from a preset or a JSON file; the link carries both designs and reopens them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet import urlstate
from gnet.analysis import block_report, network_report
from gnet.spec import block_presets, network_preset

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture(autouse=True)
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))


def app(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    return at


def compare_table(at: AppTest):
    frames = [d.value for d in at.dataframe if "Δ params" in d.value.columns]
    assert len(frames) == 1
    return frames[0].set_index("row")


def query(at: AppTest) -> dict[str, str]:
    return {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def test_block_designer_pin_edit_and_link():
    at = app("block_designer.py")
    assert not [d for d in at.dataframe if "Δ params" in d.value.columns]  # nothing pinned yet
    a = block_presets()["Ng's example (28×28×192, seed 002)"]
    at.button(key="bd_cmp_pin").click().run()
    at.toggle(key="bd_reduce").set_value(False).run()  # B: the naive module
    assert not at.exception
    t = compare_table(at)
    ra = block_report(a.block, a.input_shape)
    rb = block_report(dataclasses.replace(a.block, reduce=False), a.input_shape)
    assert t.loc["b3", "Δ mult-adds"] == rb.branch("b3").cost.mult_adds - ra.branch("b3").cost.mult_adds
    assert t.loc["total", "Δ params"] == rb.cost.params - ra.cost.params
    assert t.loc["b1", "Δ params"] == 0 and t.loc["b3", "RF A"] == 5
    q = query(at)
    assert urlstate.design_from_query(q, prefix="a") == a  # the link: A under "a", B as the page's own keys
    assert urlstate.design_from_query(q).block.reduce is False

    # the link reopens both
    again = app("block_designer.py", q)
    t2 = compare_table(again)
    assert t2.loc["total", "Δ params"] == t.loc["total", "Δ params"]

    at.button(key="bd_cmp_clear").click().run()
    assert not urlstate.has_design(query(at), prefix="a")


def test_block_designer_a_from_a_file_and_a_preset():
    at = app("block_designer.py")
    at.radio(key="bd_cmp_source").set_value("a JSON file").run()
    paper = block_presets()["Paper 3a"]
    at.file_uploader(key="bd_cmp_file").set_value(("a.json", paper.to_json().encode(), "application/json")).run()
    t = compare_table(at)
    assert t.loc["total", "params A"] == block_report(paper.block, paper.input_shape).cost.params
    at.file_uploader(key="bd_cmp_file").set_value(
        ("net.json", network_preset("mini").to_json().encode(), "application/json")
    ).run()
    assert not at.exception and any("compare networks on the Network Explorer" in e.value for e in at.error)
    at.radio(key="bd_cmp_source").set_value("a preset").run()
    at.selectbox(key="bd_cmp_preset").set_value("Paper 5b").run()
    assert compare_table(at).loc["b1", "A (C×H×W)"] == "384×7×7"


def test_network_explorer_pin_edit_overlay_and_link():
    at = app("network_explorer.py")
    at.selectbox(key="ne_preset").set_value("mini").run()
    at.button(key="ne_cmp_pin").click().run()
    v = at.session_state["ne_version"]
    at.toggle(key=f"ne_f_reduce_3a_{v}").set_value(False)
    next(b for b in at.button if b.label == "Apply to 3a").click().run()
    assert not at.exception
    a = network_preset("mini")
    b = a.with_block("3a", dataclasses.replace(a.block("3a"), reduce=False))
    t = compare_table(at)
    ra, rb = network_report(a), network_report(b)
    assert t.loc["inception3a", "Δ params"] == rb.blocks["3a"].cost.params - ra.blocks["3a"].cost.params
    assert t.loc["total", "Δ mult-adds"] == rb.cost.mult_adds - ra.cost.mult_adds
    assert t.loc["inception4a", "Δ params"] == 0  # 3a's output channels are unchanged, so is 4a
    assert [m.value for m in at.metric if m.label == "Params, B"] == [f"{rb.params_total:,}"]
    figs = [c for c in at.get("plotly_chart") if c.key == "ne_cmp_depth"]
    assert len(figs) == 1 and "receptive field" in figs[0].proto.spec  # the depth plots of A and B, overlaid
    q = query(at)
    assert q["na"] == "mini" and urlstate.network_from_query(q["nb"]) == b

    again = app("network_explorer.py", q)  # the link reopens both networks
    assert compare_table(again).loc["total", "Δ params"] == rb.params_total - ra.params_total

    at.toggle(key="ne_cmp_branches").set_value(True).run()
    t = compare_table(at)
    assert t.loc["inception3a.branch3", "Δ params"] == (
        rb.blocks["3a"].branch("b3").cost.params - ra.blocks["3a"].branch("b3").cost.params
    )


def test_network_explorer_a_from_preset_and_bad_link():
    at = app("network_explorer.py", {"na": "mini", "nb": "z.garbage"})
    assert any("link's comparison was not loaded" in e.value.replace("\\", "") for e in at.error)
    at.radio(key="ne_cmp_source").set_value("a preset").run()
    at.selectbox(key="ne_cmp_preset").set_value("mini").run()
    t = compare_table(at)  # A mini vs B d2l-fashion96: rows only one side has show '–'
    assert t.loc["conv2", "A (C×H×W)"] == "–" and t.loc["conv2", "Δ params"] == t.loc["conv2", "params B"]
