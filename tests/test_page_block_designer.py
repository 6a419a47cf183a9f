"""Block Designer page under AppTest: expected values come from gnet.analysis and the seeds."""

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet.analysis import block_report
from gnet.spec import CHANNEL_FIELDS, PAPER_BLOCK_INPUTS, PAPER_BLOCKS, BlockDesign, BlockSpec, block_presets
from gnet.urlstate import design_to_query
from ui.handoff import BLOCK_HANDOFF, EXPLORER_NETWORK, BlockHandoff

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "block_designer.py")
NG = block_presets()["Ng's example (28×28×192, seed 002)"]


def _run(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if query:
        at.query_params.update(query)
    at.run()
    assert not at.exception
    return at


def _open_tab(at: AppTest, label: str) -> None:
    """What a click on the tab does: the tabs run lazily (on_change="rerun"), only the open one's content."""
    at.session_state["bd_tab"] = label
    at.run()
    assert not at.exception


def _query(at: AppTest) -> dict[str, str]:
    """The page's URL query (older AppTest releases hold each value as a one-item list)."""
    return {k: v[-1] if isinstance(v, list) else v for k, v in at.query_params.items()}


def _output(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("### Output"))


def _errors(at: AppTest) -> list[str]:
    """Error texts as rendered (the page escapes markdown in messages that quote user input)."""
    return [e.value.replace("\\", "") for e in at.error]


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def _expect(at: AppTest, design: BlockDesign) -> None:
    report = block_report(design.block, design.input_shape)
    assert _output(at) == f"### Output {report.concat_text()}"
    assert _metrics(at) == {
        "Parameters": f"{report.cost.params:,}",
        "Mult-adds": f"{report.cost.mult_adds:,}",
        "Multiplications": f"{report.cost.multiplications:,}",
    }
    assert any(f"FLOPs = 2 × multiplications = {report.cost.flops:,}." in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["params"]) == [b.cost.params for b in report.branches] + [report.cost.params]
    assert _query(at) == design_to_query(design)  # the link reproduces what is shown


def test_default_render_is_seed_002_with_the_seed_numbers():
    at = _run()
    _expect(at, NG)
    assert _output(at) == "### Output 28×28×(64+128+32+32) = 28×28×256"
    drawings = [
        m.value for m in at.markdown if m.value.startswith("<svg")
    ]  # the open tab's; the others run when opened
    assert len(drawings) == 2 and all(d.startswith("<svg") for d in drawings)
    assert "28×28×256" in drawings[0] and "Each branch's share" in drawings[1]
    assert not at.code and "221,184" not in _text(at)
    _open_tab(at, "What the bottleneck buys")
    text = _text(at)
    for number in ("221,184", "129,024", "120,422,400", "12,443,648", "102,400", "73,728"):
        assert f"{number}" in text, number
    assert not [m for m in at.markdown if m.value.startswith("<svg")]
    _open_tab(at, "Export")
    assert at.code[0].value.count("Inception(192, b1=64, b2=(96, 128), b3=(16, 32), b4=32)") == 1
    _expect(at, NG)  # the shapes and counts above the tabs stay


def test_widget_changes_update_shapes_and_totals():
    at = _run()
    at.number_input(key="bd_b1").set_value(100).run()
    at.number_input(key="bd_b3").set_value(48).run()
    at.radio(key="bd_b3v").set_value("two 3×3 (factorized 5×5)").run()
    at.radio(key="bd_bn").set_value("BatchNorm + ReLU (torchvision)").run()
    assert not at.exception
    design = BlockDesign(dataclasses.replace(NG.block, b1=100, b3=48, factorize=True, batch_norm=True), NG.input_shape)
    _expect(at, design)
    assert _output(at) == "### Output 28×28×(100+128+48+32) = 28×28×308"
    assert at.dataframe[0].value["path"][2] == "1×1 → 3×3 → 3×3"


def test_naive_module_disables_the_reductions():
    at = _run()
    at.toggle(key="bd_reduce").set_value(False).run()
    assert not at.exception
    assert at.number_input(key="bd_b2r").disabled and at.number_input(key="bd_b3r").disabled
    _expect(at, BlockDesign(dataclasses.replace(NG.block, reduce=False), NG.input_shape))


@pytest.mark.parametrize("name", ["3a", "4d", "5b"])
def test_presets_load_the_papers_numbers(name):
    at = _run()
    at.selectbox(key="bd_preset").set_value(f"Paper {name}").run()
    assert not at.exception
    c, h, w = PAPER_BLOCK_INPUTS[name]
    assert (at.number_input(key="bd_c").value, at.number_input(key="bd_h").value) == (c, h)
    _expect(at, BlockDesign(BlockSpec(**dict(zip(CHANNEL_FIELDS, PAPER_BLOCKS[name]))), (c, h, w)))


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("bd_b1", 0, "b1 must be from 1"),
        ("bd_b2", 9000, "b2 must be from 1 to 8,192"),
        ("bd_h", 5000, "input height"),
        ("bd_c", 0, "input channels"),
    ],
)
def test_invalid_input_shows_an_error_naming_the_field(key, value, words):
    at = _run()
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert len(at.error) == 1 and words in _errors(at)[0]
    assert len(at.number_input) == 9  # the inputs stay usable
    at.number_input(key=key).set_value(64).run()  # and fixing the field brings the results back
    assert not at.exception and not at.error and at.metric


def test_large_block_reports_without_building_it():
    at = _run()
    at.number_input(key="bd_c").set_value(4096).run()
    at.number_input(key="bd_h").set_value(224).run()
    at.number_input(key="bd_w").set_value(224).run()
    at.number_input(key="bd_b2").set_value(4096).run()
    assert not at.exception
    _expect(at, BlockDesign(dataclasses.replace(NG.block, b2=4096), (4096, 224, 224)))


def test_query_string_round_trip():
    design = BlockDesign(
        BlockSpec(b1=10, b2_reduce=20, b2=30, b3_reduce=5, b3=64, b4=7, b3_kernel=3, batch_norm=True), (48, 17, 9)
    )
    at = _run(design_to_query(design))
    assert not at.error
    _expect(at, design)
    at.number_input(key="bd_b4").set_value(11).run()
    assert _query(at)["b4"] == "11"


def test_bad_link_shows_an_error_and_the_default():
    at = _run({**design_to_query(NG), "b2": "lots"})
    assert "b2" in _errors(at)[0]
    _expect(at, NG)


def test_seed_004_factorization_reads_as_in_the_seed():
    at = _run()
    at.number_input(key="bd_b3r").set_value(64).run()
    at.number_input(key="bd_b3").set_value(64).run()
    assert not at.exception
    _open_tab(at, "What the bottleneck buys")
    md = next(m.value for m in at.markdown if "conv alone" in m.value)
    assert "one 5×5 conv 64→64 vs two 3×3 convs 64→64→64: weights **102,400** vs **73,728**" in md


def test_json_upload_round_trip_and_bad_files():
    design = BlockDesign(BlockSpec(b1=12, b2_reduce=8, b2=16, b3_reduce=4, b3=24, b4=6, factorize=True), (32, 10, 10))
    at = _run()
    at.file_uploader(key="bd_upload").set_value(("block.json", design.to_json().encode(), "application/json")).run()
    assert not at.exception and not at.error
    _expect(at, design)
    for content, words in (
        (b"{not json", "not valid JSON"),
        (b'{"input_shape": [1, 2, 3]}', "block"),
        (design.to_json().replace('"b1": 12', '"b1": -5').encode(), "b1"),
    ):
        at.file_uploader(key="bd_upload").set_value(("bad.json", content, "application/json")).run()
        assert not at.exception
        assert any(words in e for e in _errors(at)), _errors(at)
        _expect(at, design)  # the previous design stays


def test_user_text_in_messages_is_not_rendered_as_markdown():
    at = _run()
    evil = b'{"input_shape": [8, 8, 8], "block": {"![x](http://example.invalid/t.png)": 1}}'
    at.file_uploader(key="bd_upload").set_value(("x.json", evil, "application/json")).run()
    assert not at.exception
    assert r"\!\[x\]\(http" in at.error[0].value  # escaped: shown as typed, no image fetched
    assert "![x](http" in _errors(at)[0]


def test_download_buttons_offer_code_and_json():
    at = _run()
    _open_tab(at, "Export")
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download PyTorch code (.py)", "Download design (.json)", "Download ONNX", "Download .pt2"]


def _editing_notes(at: AppTest) -> list[str]:
    """The page's "editing block X of the Network Explorer's network" notes (the compare section has its own hint)."""
    return [i.value for i in at.info if "Network Explorer's network" in i.value]


def test_handoff_from_the_network_explorer():
    at = AppTest.from_file(PAGE, default_timeout=60)
    design = BlockDesign(BlockSpec(**dict(zip(CHANNEL_FIELDS, PAPER_BLOCKS["4a"]))), PAPER_BLOCK_INPUTS["4a"])
    at.session_state[BLOCK_HANDOFF] = BlockHandoff("4a", design)
    at.run()
    assert not at.exception
    _expect(at, design)
    assert not _editing_notes(at)  # no network in this session: nothing to apply back to


def test_apply_back_offers_the_network_block():
    from gnet.spec import network_preset

    at = AppTest.from_file(PAGE, default_timeout=60)
    network = network_preset("d2l-fashion96")
    at.session_state[EXPLORER_NETWORK] = network
    at.session_state[BLOCK_HANDOFF] = BlockHandoff("4a", BlockDesign(network.block("4a"), PAPER_BLOCK_INPUTS["4a"]))
    at.run()
    assert not at.exception
    assert "Editing block 4a" in _editing_notes(at)[0]
    assert at.button(key="bd_apply").label == "Apply to 4a and return to the Network Explorer"
    at.button(key="bd_detach").click().run()
    assert not at.exception and not _editing_notes(at)


def test_a_stale_handoff_of_the_wrong_type_is_ignored():
    """A value left under the handoff key by an older page version (a bare tuple) is not used."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[BLOCK_HANDOFF] = ("4a", "not a design")
    at.run()
    assert not at.exception and not _editing_notes(at)
    _expect(at, block_presets()["Ng's example (28×28×192, seed 002)"])  # the default design
