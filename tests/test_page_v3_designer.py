"""The Block Designer's Inception v3 kinds under AppTest: the kind picker, live shapes and costs, and what each
factorisation buys, all checked against gnet.v3 (which tests/test_v3.py holds to torch and torchvision)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet.v3 import InceptionCSpec, default_kind, factorisation_savings, kind_report

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "block_designer.py")


def _run(kind: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    at.radio(key="block_kind").set_value(kind).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def _frames(at: AppTest) -> list:
    return [d.value for d in at.dataframe]


@pytest.mark.parametrize(
    "kind, headline",
    [("A", "28%"), ("B", "84%"), ("C", "71%"), ("D", "89%"), ("E", "33%")],
)
def test_each_kind_shows_its_block_and_savings(kind, headline):
    at = _run(kind)
    spec = default_kind(kind)
    report = kind_report(spec, spec.DEFAULT_INPUT)
    text = _text(at)
    assert f"### Output {report.concat_text()}" in text
    assert {m.label: m.value for m in at.metric}["Parameters"] == f"{report.cost.params:,}"
    branches = _frames(at)[0]
    assert list(branches["branch"][: len(report.branches)])[0] == "b1"
    assert sum(branches["params"][~branches["branch"].str.endswith("half")]) == report.cost.params
    savings = factorisation_savings(spec, spec.DEFAULT_INPUT)
    for s in savings:
        assert f"**{s.title}**" in text
    assert f"Saves **{headline}**" in text
    assert ("keeps a 5×5" in text) == (kind == "A")  # where torchvision differs from the paper's figure, it says so
    shown = _frames(at)[1:]
    assert [list(f["multiplications"]) for f in shown] == [[o.cost.multiplications for o in s.options] for s in savings]


def test_grid_reduction_shows_the_three_ways():
    at = _run("B")
    options = list(_frames(at)[1]["option"])
    assert options[0].startswith("convolve first") and options[1].startswith("pool first")
    assert options[2].startswith("v3's parallel stride-2 branches")
    assert "representational bottleneck" in " ".join(_frames(at)[1]["note"])


def test_editing_c_updates_everything_and_bad_input_is_named():
    at = _run("C")
    at.number_input(key="v3_C_c7").set_value(160).run()
    at.number_input(key="v3_C_n").set_value(3).run()
    assert not at.exception
    spec = InceptionCSpec(c7=160, n=3)
    report = kind_report(spec, (768, 17, 17))
    assert {m.label: m.value for m in at.metric}["Parameters"] == f"{report.cost.params:,}"
    assert "Saves **33%**" in _text(at)  # 3×3 against 1×3 + 3×1
    at.number_input(key="v3_C_n").set_value(4).run()
    assert [e.value.replace("\\", "") for e in at.error] == [
        "Invalid input: n must be odd (a 1×n conv keeps the size with padding (n−1)/2), got 4"
    ]
    at.button(key="v3_C_reset").click().run()
    assert {m.label: m.value for m in at.metric}[
        "Parameters"
    ] == f"{kind_report(default_kind('C'), (768, 17, 17)).cost.params:,}"


def test_e_lists_its_halves_and_v1_is_unchanged():
    at = _run("E")
    rows = _frames(at)[0]
    assert list(rows["modules"][rows["branch"] == "b2 half"]) == ["branch3x3_2a", "branch3x3_2b"]
    at.radio(key="block_kind").set_value("v1").run()
    assert not at.exception
    assert any(m.value.startswith("### Output 28×28×(64+128+32+32)") for m in at.markdown)


def _query(at: AppTest) -> dict[str, str]:
    return {k: v[-1] if isinstance(v, list) else v for k, v in at.query_params.items()}


def test_the_link_reproduces_a_v3_design_and_v1_links_stay_as_they_were():
    at = _run("C")
    at.number_input(key="v3_C_c7").set_value(160).run()
    assert _query(at) == {"kind": "C", "in": "768,17,17", "c7": "160"}
    link = _query(at)
    fresh = AppTest.from_file(PAGE, default_timeout=60)
    fresh.query_params.update(link)
    fresh.run()
    assert not fresh.exception and fresh.radio(key="block_kind").value == "C"
    assert fresh.number_input(key="v3_C_c7").value == 160
    report = kind_report(InceptionCSpec(c7=160), (768, 17, 17))
    assert {m.label: m.value for m in fresh.metric}["Parameters"] == f"{report.cost.params:,}"
    fresh.radio(key="block_kind").set_value("v1").run()  # back to v1: its own link, no v3 key left
    assert not set(_query(fresh)) & {"kind", "in", "c7"} and "b1" in _query(fresh)
    bad = AppTest.from_file(PAGE, default_timeout=60)
    bad.query_params.update({"kind": "C", "n": "4"})
    bad.run()
    assert not bad.exception
    assert any("n must be odd" in e.value for e in bad.error) and bad.radio(key="block_kind").value == "v1"
