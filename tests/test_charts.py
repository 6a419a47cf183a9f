"""Figures and tables: built from the analysis, in the branch colours, totals that add up."""

import dataclasses
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet.analysis import block_report, bottleneck_comparison, factorized_conv_comparison, network_report
from gnet.charts import block as block_charts
from gnet.charts import explain as explain_charts
from gnet.charts import network as network_charts
from gnet.charts import tables
from gnet.charts import training as training_charts
from gnet.charts.branches import Bar, Grid, Segment, share_bars_svg
from gnet.colors import BRANCH_COLORS
from gnet.network import torchinfo_summary
from gnet.spec import BRANCHES, CHANNEL_FIELDS, NETWORK_PRESETS, BlockSpec, block_presets, network_preset

NG = block_presets()["Ng's example (28×28×192, seed 002)"]


def test_shape_notation():
    assert tables.hwc((256, 28, 14)) == "28×14×256"
    assert tables.chw((256, 28, 14)) == "256×28×14"


def test_branch_rows_add_up_to_the_report():
    report = block_report(NG.block, NG.input_shape)
    rows = block_charts.branch_rows(report)
    assert [r["branch"] for r in rows] == [*BRANCHES, "total"]
    for key, field in (
        ("params", "params"),
        ("weights", "weights"),
        ("mult-adds", "mult_adds"),
        ("multiplications", "multiplications"),
    ):
        assert sum(r[key] for r in rows[:4]) == rows[4][key] == getattr(report.cost, field)
    assert rows[4]["FLOPs"] == 2 * report.cost.multiplications
    assert sum(r["share of params"] for r in rows[:4]) == pytest.approx(1.0)
    assert rows[4]["output (H×W×C)"] == "28×28×256"
    assert rows[1]["output (H×W×C)"] == "28×28×128"


def test_seed_numbers_in_the_comparisons():
    b2 = bottleneck_comparison(NG.block, NG.input_shape, "b2")
    b3 = bottleneck_comparison(NG.block, NG.input_shape, "b3")
    rows = block_charts.comparison_rows({"b2 path": b2, "b3 path": b3})
    by = {(r["part"], r["metric"]): r for r in rows}
    assert by[("b2 path", block_charts.METRICS["weights"])][b2.label_a] == 221_184  # seed 000 / 003
    assert by[("b2 path", block_charts.METRICS["weights"])][b2.label_b] == 129_024
    b3_mult = by[("b3 path", block_charts.METRICS["multiplications"])]
    assert (b3_mult[b3.label_a], b3_mult[b3.label_b]) == (120_422_400, 12_443_648)  # seed 002
    assert b3_mult["saved"] == 120_422_400 - 12_443_648
    assert b3_mult["ratio"] == pytest.approx(12_443_648 / 120_422_400)


def test_factorized_conv_comparison_seed_004():
    comp = factorized_conv_comparison(BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=64, b3=64, b4=1), (3, 8, 8))
    assert (comp.a.weights, comp.b.weights) == (102_400, 73_728)
    assert comp.a.multiplications == 102_400 * 64
    naive = factorized_conv_comparison(
        BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=5, b3=64, b4=1, reduce=False), (64, 8, 8)
    )
    assert (naive.a.weights, naive.b.weights) == (102_400, 73_728)  # without reduction the input feeds the conv


SVG = "{http://www.w3.org/2000/svg}"


def _svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # well-formed XML, or this raises


def test_branch_share_svg_uses_branch_colours_and_sums_to_100():
    report = block_report(NG.block, NG.input_shape)
    svg = _svg(block_charts.branch_share_svg(report))
    groups = svg.findall(f"{SVG}g")
    metrics = {g.get("data-metric") for g in groups}
    assert metrics == {"output channels", "params", "mult-adds", "multiplications"}
    for m in metrics:  # each metric's shares add to 100 %, drawn in branch order and colour
        row = [g for g in groups if g.get("data-metric") == m]
        assert [g.get("data-branch") for g in row] == list(BRANCHES)
        assert [g.find(f"{SVG}rect").get("fill") for g in row] == [BRANCH_COLORS[b] for b in BRANCHES]
        assert sum(float(g.get("data-percent")) for g in row) == pytest.approx(100.0)
        widths = [float(g.find(f"{SVG}rect").get("width")) for g in row]
        assert widths == pytest.approx([sum(widths) * float(g.get("data-percent")) / 100 for g in row], abs=0.02)
    b1_channels = next(g for g in groups if g.get("data-metric") == "output channels")
    assert float(b1_channels.get("data-percent")) == pytest.approx(100 * 64 / 256)  # b1's share of the channels
    assert "64" in b1_channels.find(f"{SVG}title").text


def _edges(svg: ET.Element) -> list[ET.Element]:
    return svg.findall(f"{SVG}polyline")


def test_block_diagram_edges_carry_shapes_and_channel_widths():
    report = block_report(NG.block, NG.input_shape)
    svg = _svg(block_charts.block_diagram_svg(report))
    edges = _edges(svg)
    # input→layer and layer→layer/concat edges: b1 2, b2 3, b3 3, b4 3, plus concat→output
    assert len(edges) == 12
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    for shape in ("28×28×96", "28×28×16", "28×28×128", "28×28×32", "28×28×64", "28×28×192"):
        assert shape in texts
    assert "28×28×256" in texts  # the output box
    width = {e.find(f"{SVG}title").text: float(e.get("stroke-width")) for e in edges}
    assert width["28×28×256 (256 channels)"] > width["28×28×128 (128 channels)"] > width["28×28×16 (16 channels)"]
    colours = {e.get("stroke") for e in edges}
    assert set(BRANCH_COLORS.values()) <= colours


def test_block_diagram_escapes_its_text():
    report = block_report(NG.block, NG.input_shape)
    assert "<b>" not in block_charts.block_diagram_svg(report)  # labels are text nodes, never markup


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 4096), min_size=7, max_size=7), st.booleans(), st.booleans())
def test_block_diagram_any_block(ch, reduce, factorize):
    spec = BlockSpec(**dict(zip(CHANNEL_FIELDS, ch[:6])), reduce=reduce, factorize=factorize)
    report = block_report(spec, (ch[6], 224, 224))
    svg = _svg(block_charts.block_diagram_svg(report))
    layers = sum(len(b.layers) for b in report.branches)
    assert len(_edges(svg)) == layers + 4 + 1
    assert all(float(e.get("stroke-width")) > 0 for e in _edges(svg))
    assert sorted(int(e.get("data-channels")) for e in _edges(svg)) == sorted(
        [report.input_shape[0]] * 4
        + [layer.output_shape[0] for b in report.branches for layer in b.layers]
        + [report.output_shape[0]]
    )


@pytest.mark.parametrize("preset", list(NETWORK_PRESETS))
def test_network_tables_and_figures_add_up(preset):
    report = network_report(network_preset(preset))
    rows = network_charts.layer_rows(report)
    assert sum(r["params"] for r in rows) == report.params_total
    names = [r["layer"] for r in rows]
    for i, block in enumerate(report.spec.aux_blocks(), start=1):  # aux heads listed right after their block
        assert names[names.index(f"inception{block}") + 1] == f"aux{i}.pool"
    t = network_charts.totals(report)
    assert t["params"] == report.params_total and t["mult_adds"] == report.cost.mult_adds

    sun = network_charts.params_sunburst_fig(report).data[0]
    value = dict(zip(sun.ids, sun.values))
    assert value["network"] == report.params_total
    children: dict[str, int] = {}
    for parent, v in zip(sun.parents, sun.values):
        if parent:
            children[parent] = children.get(parent, 0) + v
    for parent, s in children.items():  # branchvalues="total": a parent is the sum of its children
        assert s == value[parent], parent
    for block, rep in report.blocks.items():
        assert value[f"{block}/b2"] == rep.branch("b2").cost.params

    bars = network_charts.block_cost_fig(report).data
    for j, block in enumerate(report.blocks):
        params = sum(t.y[j] for t in bars if t.xaxis == "x")
        mult_adds = sum(t.y[j] for t in bars if t.xaxis == "x2")
        assert (params, mult_adds) == (report.blocks[block].cost.params, report.blocks[block].cost.mult_adds)
    assert {t.marker.color for t in bars} == set(BRANCH_COLORS.values())

    depth = network_charts.depth_fig(report).data
    assert depth[0].y[0] == report.input_shape[1] and depth[1].y[-1] == report.spec.num_classes
    assert list(depth[1].y[1:]) == [r.output_shape[0] for r in report.summary_rows() if not r.group.startswith("aux")]


def test_aux_rows_name_where_they_attach():
    report = network_report(network_preset("googlenet-imagenet-aux"))
    rows = network_charts.aux_rows(report)
    assert [(r["head"], r["attaches after"]) for r in rows] == [("aux1", "4a"), ("aux2", "4d")]
    assert sum(r["params"] for r in rows) == report.aux_cost.params
    assert report.params_total - sum(r["params"] for r in rows) == 6_624_904  # torchvision, no aux heads


def test_totals_equal_torchinfo():
    spec = network_preset("mini").with_block(
        "3b", BlockSpec(b1=20, b2_reduce=8, b2=24, b3_reduce=4, b3=12, b4=8, factorize=True, batch_norm=True)
    )
    report = network_report(spec)
    info = torchinfo_summary(spec)
    t = network_charts.totals(report)
    assert (t["params"], t["mult_adds"]) == (info.total_params, info.total_mult_adds)
    assert dataclasses.asdict(report.cost)["mult_adds"] == info.total_mult_adds


@pytest.mark.parametrize("name", ["d2l-fashion96", "googlenet-imagenet-aux"])
def test_expanded_layer_rows_list_every_branch_layer_and_sum_to_the_blocks(name):
    report = network_report(network_preset(name))
    rows = network_charts.layer_rows(report, expand=True)
    inner = [r for r in rows if r["layer"].count(".branch")]
    assert {r["layer"] for r in inner} == {
        l.name for b in report.blocks.values() for br in b.branches for l in br.layers
    }
    for block_name, block in report.blocks.items():
        mine = [r for r in inner if r["layer"].startswith(f"inception{block_name}.")]
        assert sum(r["params"] for r in mine) == block.cost.params
        assert sum(r["mult-adds"] for r in mine) == block.cost.mult_adds
    assert len(network_charts.layer_rows(report)) == len(rows) - len(inner)


def test_feature_maps_figures_carry_the_values_and_branch_colours():
    svg = _svg(
        explain_charts.branch_activation_share_svg(
            ["b1", "b2", "b3", "b4"], [0.1, 0.4, 0.2, 0.3], ["1×1"] * 4, [8, 16, 4, 4]
        )
    )
    bars = svg.findall(f"{SVG}g")
    assert [float(b.get("data-share")) for b in bars] == [0.1, 0.4, 0.2, 0.3]
    assert [b.find(f"{SVG}rect").get("fill") for b in bars] == [BRANCH_COLORS[b] for b in BRANCHES]
    heights = [float(b.find(f"{SVG}rect").get("height")) for b in bars]
    assert heights == pytest.approx([heights[1] * v / 0.4 for v in (0.1, 0.4, 0.2, 0.3)], abs=0.1)  # ∝ the share
    assert bars[1].find(f"{SVG}title").text == "b2: 40.0% (1×1, 16 channels)"
    fig = explain_charts.ablation_bars_fig(["cat", "dog"], [0.6, 0.3], [0.2, 0.5], ["b2", "b3"])
    assert [t.name for t in fig.data] == ["before", "without b2, b3"]
    assert list(fig.data[0].y) == [0.6, 0.3] and list(fig.data[1].y) == [0.2, 0.5]


def test_table_html_escapes_aligns_numbers_and_reads_back_as_shown():
    from tests.pagetest import _TableParser

    rows = [
        {"layer": "<b>x</b>", "params": 12_352, "rf": None, "note": "a & b"},
        {"layer": "inception3a.branch2.1", "params": 5, "rf": 7, "note": ""},
    ]
    html = tables.table_html(rows, help={"rf": 'pixels "seen"'}, row_color=tables.layer_branch_color)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'title="pixels &quot;seen&quot;"' in html
    parser = _TableParser()
    parser.feed(html)
    assert parser.tables == [
        [
            ["layer", "params", "rf", "note"],
            ["<b>x</b>", "12,352", "", "a & b"],
            ["inception3a.branch2.1", "5", "7", ""],
        ]
    ]
    assert html.count("text-align:right") == 2 * 3  # params and rf, header and both rows
    assert html.count("box-shadow") == 1 and BRANCH_COLORS["b2"] in html  # only the layer inside a branch
    assert tables.layer_branch_color({"layer": "inception5b.branch4.1"}) == BRANCH_COLORS["b4"]
    assert tables.layer_branch_color({"layer": "inception5b"}) is None


def test_rows_csv_reads_back_with_the_csv_module():
    import csv
    import io

    rows = [{"layer": "conv1", "params": 3_200, "note": "a, b"}, {"layer": "total", "params": 9, "note": None}]
    back = list(csv.DictReader(io.StringIO(tables.rows_csv(rows))))
    assert back == [{"layer": "conv1", "params": "3200", "note": "a, b"}, {"layer": "total", "params": "9", "note": ""}]


def test_training_curves_svg_draws_every_finite_point_in_its_panel():
    import json

    steps = [{"epoch": i / 4, "loss": 2.0 - i / 10, "acc": i / 20} for i in range(1, 9)]
    steps[3]["loss"] = float("nan")  # a diverged window is left out, not drawn at 0 or off the chart
    epochs = [
        {"epoch": e, "train_loss": 1.5 / e, "train_acc": 0.3 * e, "test_loss": 1.6 / e, "test_acc": 0.28 * e}
        for e in (1, 2)
    ]
    svg = ET.fromstring(training_charts.training_curves_svg(steps, epochs))
    ns = "{http://www.w3.org/2000/svg}"
    lines = {(p.get("data-panel"), p.get("data-series")): p for p in svg.iter(f"{ns}polyline")}
    assert set(lines) == {(k, s) for k in ("loss", "acc") for s in ("train (per step)", "train (epoch)", "test")}
    per_step = lines[("loss", "train (per step)")]
    finite = [r for r in steps if r["loss"] == r["loss"]]  # NaN dropped
    ys = [float(c.split(",")[1]) for c in per_step.get("points").split()]
    assert int(per_step.get("data-n")) == len(ys) == len(finite)
    order = sorted(range(len(finite)), key=lambda i: finite[i]["loss"])
    assert sorted(range(len(ys)), key=lambda i: -ys[i]) == order  # a higher loss is drawn higher up
    assert json.loads(lines[("acc", "test")].get("data-points")) == [[1, 0.28], [2, 0.56]]
    for p in lines.values():  # every point inside its panel's box, x increasing
        xy = [tuple(map(float, c.split(","))) for c in p.get("points").split()]
        assert all(30 <= y <= 250 for _, y in xy) and [x for x, _ in xy] == sorted(x for x, _ in xy)
    titles = [t.text for t in svg.iter(f"{ns}title")]
    assert "epoch 2 · test acc: 56.00%" in titles and len(titles) == 2 * 2 * 2  # 2 panels × 2 epoch lines × 2 epochs
    texts = [t.text for t in svg.iter(f"{ns}text")]
    assert {"Loss", "Accuracy", "train (per step)", "train (epoch)", "test", "100%"} <= set(texts)
    assert training_charts.training_curves_svg([], []).startswith("<svg")  # nothing logged yet: empty panels, no error


@pytest.mark.parametrize(
    ("b3_kernel", "factorize", "reduce", "b3_boxes"),
    [
        (5, False, True, ["1×1 conv", "5×5 conv"]),
        (3, False, True, ["1×1 conv", "3×3 conv"]),
        (5, True, True, ["1×1 conv", "3×3 conv", "3×3 conv"]),
        (5, False, False, ["5×5 conv"]),
    ],
)
def test_block_diagram_boxes_name_the_planned_kernels(b3_kernel, factorize, reduce, b3_boxes):
    """The boxes say each layer's kernel from the block's plan (not parsed back from the report's labels)."""
    spec = dataclasses.replace(NG.block, b3_kernel=b3_kernel, factorize=factorize, reduce=reduce)
    report = block_report(spec, NG.input_shape)
    boxes = block_charts.branch_nodes(report)
    assert boxes["b3"] == b3_boxes and boxes["b4"] == ["3×3 pool", "1×1 conv"] and boxes["b1"] == ["1×1 conv"]
    assert [len(v) for v in boxes.values()] == [len(b.layers) for b in report.branches]
    texts = [t.text for t in _svg(block_charts.block_diagram_svg(report)).iter(f"{SVG}text")]
    assert all(texts.count(box) >= 1 for v in boxes.values() for box in v)


def test_share_bars_stack_signed_shares_from_zero_in_branch_colours():
    bars = [
        Bar("3a", [Segment("b1", 0.5, "up", {"k": "1"}), Segment("b2", -0.25, "down", {"k": "2"})]),
        Bar("3b", [Segment("b3", 0.25, "up", {"k": "3"}), Segment("b4", float("nan"), "none", {"k": "4"})]),
    ]
    svg = _svg(share_bars_svg(bars, "t", "the bars", ticks=[-0.5, 0, 0.5, 1.0], tick_text=str, css_class="seg"))
    segs = {g.get("data-k"): g.find(f"{SVG}rect") for g in svg.iter(f"{SVG}g") if g.get("class") == "seg"}
    assert set(segs) == {"1", "2", "3"}  # a nan share is not drawn
    assert [segs[k].get("fill") for k in "123"] == [BRANCH_COLORS[b] for b in ("b1", "b2", "b3")]
    top = {k: float(r.get("y")) for k, r in segs.items()}
    bottom = {k: top[k] + float(r.get("height")) for k, r in segs.items()}
    assert bottom["1"] == pytest.approx(top["2"], abs=0.15)  # b1 up from zero, b2 down from the same line
    assert bottom["1"] == pytest.approx(bottom["3"], abs=0.15)  # both bars start at zero
    h = {k: float(r.get("height")) for k, r in segs.items()}
    assert h["1"] == pytest.approx(2 * h["2"], abs=0.15) and h["2"] == pytest.approx(h["3"], abs=0.15)


def test_grid_svg_and_heatmap_are_one_layout():
    grid = Grid(
        rows=["3a", "3b"],
        branches=["b1", "b2"],
        values=[[0.1, None], [0.5, 0.9]],
        texts=[["10%", ""], ["50%", "90%"]],
        hovers=[["3a b1", "3a b2"], ["3b b1", "3b b2"]],
        headers={"b1": "1×1"},
    )
    svg = _svg(grid.svg("title", lambda v: "#000000" if v > 0.4 else "#ffffff", (0.0, 1.0, "mid")))
    cells = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "cell"]
    assert [(c.get("data-row"), c.get("data-col"), c.find(f"{SVG}title").text) for c in cells] == [
        ("0", "0", "3a b1"),
        ("0", "1", "3a b2"),
        ("1", "0", "3b b1"),
        ("1", "1", "3b b2"),
    ]
    assert cells[1].get("data-value") == "nan"
    ink = [c.find(f"{SVG}text").get("fill") for c in cells]
    assert ink == ["#222", "#222", "white", "white"]  # readable on light and dark cells
    trace = grid.heatmap(0, 1, show_text=True)
    assert list(trace.y) == grid.rows and list(trace.x) == grid.branches and trace.z[0][1] is None
    assert [list(r) for r in trace.customdata] == grid.hovers and trace.texttemplate == "%{text}"
