"""Network Explorer page under AppTest: expected values come from gnet.analysis, torchinfo and the seeds."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet.analysis import network_report, plan_report
from gnet.spec import BlockSpec, NetworkSpec, network_preset, with_input
from tests.pagetest import html_tables

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "network_explorer.py")


def _run() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def _errors(at: AppTest) -> list[str]:
    """Error texts as rendered (the page escapes markdown in messages that quote user input)."""
    return [e.value.replace("\\", "") for e in at.error]


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _expect(at: AppTest, spec: NetworkSpec) -> None:
    report = network_report(spec)
    m = _metrics(at)
    assert m["Parameters"] == f"{report.params_total:,}"
    assert m["Mult-adds"] == f"{report.cost.mult_adds:,}"
    assert m["Multiplications"] == f"{report.cost.multiplications:,}"
    table = html_tables(at)[0]
    total = table.iloc[-1]
    assert (total["layer"], total["params"], total["mult-adds"]) == (
        "total",
        report.params_total,
        report.cost.mult_adds,
    )
    assert at.session_state["designed_network"] == spec


def _apply(at: AppTest, block: str, **values) -> AppTest:
    at.selectbox(key="ne_block").set_value(block).run()
    for field, value in values.items():
        widget = next(w for w in at.number_input if w.key.startswith(f"ne_f_{field}_{block}_"))
        widget.set_value(value)
    next(b for b in at.button if b.label == f"Apply to {block}").click().run()
    assert not at.exception
    return at


def test_default_is_seed_001_with_its_totals():
    at = _run()
    spec = network_preset("d2l-fashion96")
    _expect(at, spec)
    m = _metrics(at)
    assert m["Parameters"] == "5,977,530"  # seed 001's torchinfo table
    table = html_tables(at)[0].set_index("layer")
    assert table.loc["inception3a", "params"] == 12_352 + 129_248 + 15_920 + 6_176  # seed 001, block 3a branches
    assert len(at.get("plotly_chart")) == 0  # the tabs run lazily: only the open one (the layer table) is built
    for tab in ("Shapes along depth", "Receptive field", "Cost per block", "Where the parameters live"):
        at.session_state["ne_tab"] = tab  # what a click on the tab sets
        at.run()
        assert not at.exception and len(at.get("plotly_chart")) == 1, tab
        assert not html_tables(at)  # the layer table is not built
    assert not at.code  # the code expander is lazy: collapsed, its code is neither built nor sent
    at.session_state["ne_code_open"] = True  # what opening it sets
    at.run()
    assert "class GoogLeNet(nn.Module)" in at.code[0].value


def test_googlenet_with_aux_heads_shows_where_they_attach():
    at = _run()
    at.selectbox(key="ne_preset").set_value("googlenet-imagenet-aux").run()
    assert not at.exception
    spec = network_preset("googlenet-imagenet-aux")
    _expect(at, spec)
    layers = list(html_tables(at)[0]["layer"])
    assert layers[layers.index("inception4a") + 1] == "aux1.pool"
    assert layers[layers.index("inception4d") + 1] == "aux2.pool"
    aux = html_tables(at)[1]
    report = network_report(spec)
    assert list(aux["attaches after"]) == ["4a", "4d"]
    assert int(aux["params"].sum()) == report.aux_cost.params
    assert report.params_total - report.aux_cost.params == 6_624_904  # torchvision's googlenet without aux


def test_input_size_follows_and_invalid_sizes_show_an_error():
    at = _run()
    at.selectbox(key="ne_preset").set_value("googlenet-imagenet").run()
    at.number_input(key="ne_h").set_value(160).run()
    assert not at.exception
    _expect(at, with_input(network_preset("googlenet-imagenet"), size=(160, 224)))
    at.number_input(key="ne_h").set_value(0).run()
    assert not at.exception
    assert "input height" in _errors(at)[0]
    assert "designed_network" not in at.session_state  # nothing invalid is offered for training
    assert at.button(key="ne_open_designer")  # the controls stay usable
    at.number_input(key="ne_h").set_value(224).run()
    assert not at.error
    _expect(at, network_preset("googlenet-imagenet"))


def test_editing_a_block_updates_downstream_and_the_designed_network():
    at = _apply(_run(), "3a", b1=128, b3=64)
    spec = network_preset("d2l-fashion96").with_block(
        "3a", BlockSpec(b1=128, b2_reduce=96, b2=128, b3_reduce=16, b3=64, b4=32)
    )
    _expect(at, spec)
    report = network_report(spec)
    assert report.blocks["3b"].input_shape[0] == 128 + 128 + 64 + 32  # in_channels followed by themselves
    table = html_tables(at)[0].set_index("layer")
    assert table.loc["inception3b", "params"] == report.blocks["3b"].cost.params
    # undo reloads the preset
    at.button(key="ne_reset").click().run()
    _expect(at, network_preset("d2l-fashion96"))


def test_edited_blocks_are_named_in_the_caption():
    at = _apply(_run(), "4c", b4=96)
    assert any(c.value.endswith("**Edited:** 4c.") for c in at.caption)


def test_invalid_block_edit_shows_an_error_and_keeps_the_network():
    at = _apply(_run(), "4b", b2=0)
    assert any("b2 must be from 1" in e and "4b" in e for e in _errors(at))
    _expect(at, network_preset("d2l-fashion96"))


def test_torchinfo_summary_on_request_matches_the_table():
    at = _run()
    at.selectbox(key="ne_preset").set_value("mini").run()
    at.toggle(key="ne_torchinfo").set_value(True).run()
    assert not at.exception
    report = network_report(network_preset("mini"))
    assert at.success[0].value.startswith(f"torchinfo: {report.params_total:,} params, {report.cost.mult_adds:,}")
    assert "Total params" in at.code[0].value


def test_network_json_upload_and_bad_files():
    at = _run()
    spec = network_preset("mini").with_block("4b", BlockSpec(b1=8, b2_reduce=8, b2=8, b3_reduce=8, b3=8, b4=8))
    at.file_uploader(key="ne_upload").set_value(("net.json", spec.to_json().encode(), "application/json")).run()
    assert not at.exception and not at.error
    _expect(at, spec)
    assert "A network loaded from a file." in [c.value for c in at.caption]  # its own description is not rendered
    for content, words in (
        (b"\x00\xff garbage", "UTF-8"),
        (b"{'name': 1", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (spec.to_json().replace('"num_classes": 10', '"num_classes": 0').encode(), "num_classes"),
    ):
        at.file_uploader(key="ne_upload").set_value(("bad.json", content, "application/json")).run()
        assert not at.exception
        assert any(words in e for e in _errors(at)), _errors(at)
        _expect(at, spec)


@pytest.mark.parametrize("preset", ["googlenet-imagenet", "mini"])
def test_presets_render(preset):
    at = _run()
    at.selectbox(key="ne_preset").set_value(preset).run()
    assert not at.exception
    _expect(at, network_preset(preset))
    assert at.number_input(key="ne_h").value == network_preset(preset).input_size[0]


def test_layer_table_expands_to_every_layer_inside_the_blocks():
    from gnet.analysis import network_report
    from gnet.spec import network_preset

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    collapsed = len(html_tables(at)[0])
    at.toggle(key="ne_expand").set_value(True).run()
    assert not at.exception
    table = html_tables(at)[0]
    report = network_report(network_preset("d2l-fashion96"))
    inner = sum(len(br.layers) for b in report.blocks.values() for br in b.branches)
    assert len(table) == collapsed + inner
    assert "inception3a.branch2.1" in set(table["layer"])
    assert "Download the table (CSV)" in [b.proto.label for b in at.get("download_button")]
    # the tabs run lazily: away to a chart and back, the table is still expanded
    at.session_state["ne_tab"] = "Cost per block"
    at.run()
    at.session_state["ne_tab"] = "Layers"
    at.run()
    assert not at.exception and len(html_tables(at)[0]) == collapsed + inner


def test_receptive_field_column_and_chart_come_from_the_plan():
    """The layer table's receptive-field column and the chart (main path + one trace per branch) show
    the plan's fields; torchvision's "5×5" branch, a 3×3, has the 3×3 branch's field."""
    import json

    from gnet.plan import layer_plan

    at = _run()
    at.selectbox(key="ne_preset").set_value("googlenet-imagenet").run()
    assert not at.exception
    plan = layer_plan(network_preset("googlenet-imagenet"))
    table = html_tables(at)[0].set_index("layer")
    for path in ("conv1", "maxpool2", "inception3a", "inception5b", "fc"):
        assert table.loc[path, "receptive field (px)"] == plan.step(path).rf.size
    assert (table.loc["conv1", "receptive field (px)"], table.loc["inception3a", "receptive field (px)"]) == (7, 43)
    at.session_state["ne_tab"] = "Receptive field"  # the tabs run lazily: open the chart's tab
    at.run()
    chart = json.loads(next(c for c in at.get("plotly_chart") if "receptive field" in c.proto.spec).proto.spec)
    traces = {t["name"]: t for t in chart["data"]}
    assert traces["layer output"]["y"] == [plan.step(p).rf.size for p in plan.main_path()]
    for i, branch in enumerate(("b1", "b2", "b3", "b4")):
        trace = next(t for name, t in traces.items() if name.startswith(branch))
        assert trace["y"] == [plan.step(f"{b}.branch{i + 1}").rf.size for b in plan.blocks()]
    assert traces["b3 (1×1 → 3×3)"]["y"] == traces["b2 (1×1 → 3×3)"]["y"]


def test_the_block_editor_is_the_block_designer_s_and_edits_every_setting():
    """One block-editor form for both design pages: the same widgets (labels, choices, caps); here inside a form,
    so the reductions stay editable until Apply, and every field and setting reaches the network."""
    at = _run()
    bd = AppTest.from_file(str(Path(PAGE).parent / "block_designer.py"), default_timeout=60)
    bd.run()

    def editor(app: AppTest, prefix: str) -> list[tuple]:
        return [
            (kind, w.label, getattr(w, "max", None), tuple(getattr(w, "options", ())))
            for kind in ("number_input", "toggle", "radio")
            for w in app.get(kind)
            if w.key.startswith(prefix) and "_cmp_" not in w.key and w.label not in ("C", "H", "W")
        ]

    ne_widgets = editor(at, "ne_f_")
    assert sorted(ne_widgets) == sorted(editor(bd, "bd_")) and len(ne_widgets) == 9
    at.toggle(key=next(w.key for w in at.toggle if w.key.startswith("ne_f_reduce_3a_"))).set_value(False)
    assert not any(w.disabled for w in at.number_input if w.key.startswith("ne_f_"))
    for key, value in (("b3v", "two 3×3 (factorized 5×5)"), ("bn", "BatchNorm + ReLU (torchvision)")):
        at.radio(key=next(w.key for w in at.radio if w.key.startswith(f"ne_f_{key}_3a_"))).set_value(value)
    next(w for w in at.number_input if w.key.startswith("ne_f_b2_reduce_3a_")).set_value(50)
    next(b for b in at.button if b.label == "Apply to 3a").click().run()
    assert not at.exception
    block = network_preset("d2l-fashion96").block("3a")
    edited = BlockSpec(
        b1=block.b1, b2_reduce=50, b2=block.b2, b3_reduce=block.b3_reduce, b3=block.b3, b4=block.b4,
        reduce=False, factorize=True, batch_norm=True,
    )  # fmt: skip
    assert at.session_state["ne_network"].block("3a") == edited
    source = "\n".join((Path(PAGE).parent / p).read_text() for p in ("block_designer.py", "network_explorer.py"))
    assert "BN_CHOICES =" not in source and "MAX_TYPED =" not in source and 'number_input("b1' not in source


def test_inception_v3_preset_shows_its_layers_fields_per_axis_and_torchinfo():
    """inception-v3-imagenet: totals and rows from its plan (torchvision's 27,161,264 params), the field per axis
    (a 1×7 widens only the width), the per-axis chart, torchinfo equal to the table; the GoogLeNet block editor
    is replaced by a message, and the Training page is not offered a network it cannot train."""
    import json

    from gnet.v3 import inception_v3_imagenet, v3_plan

    at = _run()
    at.selectbox(key="ne_preset").set_value("inception-v3-imagenet").run()
    assert not at.exception
    plan = v3_plan(inception_v3_imagenet())
    report = plan_report(plan)
    m = _metrics(at)
    assert m["Parameters"] == "27,161,264" == f"{report.params_total:,}"
    assert m["Mult-adds"] == f"{report.cost.mult_adds:,}"
    assert (at.number_input(key="ne_h").value, at.number_input(key="ne_w").value) == (299, 299)
    table = html_tables(at)[0].set_index("layer")
    assert (
        table.loc["total", "params"] == report.params_total
        and table.loc["Mixed_6a", "note"] == "b1 384 | b2 96 | b3 288"
    )
    assert table.loc["Mixed_5b", "receptive field (px, H×W)"] == plan.step("Mixed_5b").size_hw[0] == 63
    assert "AuxLogits.conv1" in table.index  # the aux head's layers, after Mixed_6e
    assert not any(b.label.startswith("Apply to") for b in at.button) and "designed_network" not in at.session_state
    assert any("Block editing here is for GoogLeNet" in i.value for i in at.info)
    at.toggle(key="ne_expand").set_value(True).run()
    table = html_tables(at)[0].set_index("layer")
    h, w = plan.step("Mixed_6b.branch7x7_2").size_hw
    assert h < w and table.loc["Mixed_6b.branch7x7_2", "receptive field (px, H×W)"] == f"{h}×{w}"
    h, w = plan.step("Mixed_6b.branch7x7_3").size_hw
    assert h == w and table.loc["Mixed_6b.branch7x7_3", "receptive field (px, H×W)"] == h
    at.session_state["ne_tab_v3"] = "Receptive field"
    at.run()
    assert not at.exception
    chart = json.loads(next(c for c in at.get("plotly_chart") if "receptive field" in c.proto.spec).proto.spec)
    traces = {t["name"]: t for t in chart["data"]}
    b2h, b2w = traces["b2 (height)"], traces["b2 (width)"]
    assert b2h["x"] == b2w["x"] == plan.blocks()
    assert [b2h["y"], b2w["y"]] == [[plan.branch_steps(b)["b2"].size_hw[i] for b in plan.blocks()] for i in (0, 1)]
    assert b2h["y"] == b2w["y"]  # a C branch is square again at its end (1×7 then 7×1): the table shows inside it
    at.session_state["ne_tab_v3"] = "Layers"
    at.run()
    at.toggle(key="ne_torchinfo").set_value(True).run()
    assert not at.exception
    assert at.success[0].value.startswith(f"torchinfo: {report.params_total:,} params, {report.cost.mult_adds:,}")
    assert "the same as the table" in at.success[0].value and "Mixed_7c" in at.code[0].value
    at.selectbox(key="ne_preset").set_value("googlenet-imagenet").run()  # back to GoogLeNet: everything as before
    assert not at.exception
    _expect(at, network_preset("googlenet-imagenet"))
    assert any(b.label == "Apply to 3a" for b in at.button)
