"""Inception v3 on every page, in headless Chromium: the Block Designer's kinds C and E, the Network Explorer's
inception-v3-imagenet preset and its comparison with GoogLeNet, Feature Maps, Explain, Block Anatomy and the Channel
Atlas on the untrained Inception v3 (the app_server fixture is offline with an empty torch hub cache), and a short
mini-v3 run on the Training page. What the pages show is checked against gnet computed from the same inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from gnet import anatomy as A
from gnet import features as F
from gnet import featurevis as fv
from gnet.analysis import network_report, plan_report
from gnet.charts import v3_network as v3_charts
from gnet.charts.network import totals
from gnet.compare import compare_networks
from gnet.images import load, preprocess
from gnet.pretrained import ModelSource, load_model
from gnet.spec import network_preset
from gnet.train_options import train_preset
from gnet.v3 import KIND_SPECS, V3_PRESETS, default_kind, factorisation_savings, kind_report, kind_with, v3_plan
from tests.appserver import stop_children
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui
from tests.e2e.test_training_e2e import _step, _watch_progress
from ui.sources import SAMPLES

pytestmark = pytest.mark.e2e

V3 = V3_PRESETS["inception-v3-imagenet"]()
V3_REPORT = plan_report(v3_plan(V3))
SAMPLE = sorted(p.name for p in SAMPLES.glob("*.jpg"))[0]  # what the pages show before an upload


@pytest.fixture(scope="module")
def v3_net():
    """The app's untrained Inception v3 (seeded: the same weights in every process), built here once."""
    import torch

    return load_model(ModelSource("untrained", model="inception-v3"), torch.device("cpu"))


@pytest.fixture(scope="module")
def sample_x(v3_net):
    """The default sample as the pages feed it to Inception v3 (resize 342, centre crop 299)."""
    return preprocess(load((SAMPLES / SAMPLE).read_bytes()).image, v3_net.preprocess)[1]


@pytest.fixture(scope="module")
def mixed_7b(v3_net, sample_x):
    """Block E's branches and the logits of one forward pass on the sample."""
    return F.extract(v3_net, sample_x, "Mixed_7b")


def _rf(layer: str) -> str:
    """The layer table's receptive field of a module (expanded rows)."""
    return next(r for r in v3_charts.layer_rows(V3_REPORT, expand=True) if r["layer"] == layer)[v3_charts.RF_COLUMN]


def _metric(page, label: str) -> str:
    metric = page.locator("[data-testid='stMetric']").filter(has=page.get_by_text(label, exact=True)).first
    return metric.locator("[data-testid='stMetricValue']").inner_text().strip()


def _open_v3(page, server: str, path: str, height: int) -> None:
    """A page with the model picker, on the untrained Inception v3."""
    page.set_viewport_size({"width": 1400, "height": height})  # Streamlit scrolls inside its main block
    ui.open_app(page, server, path)
    ui.choose_radio(page, "Family", "Inception v3")
    ui.choose_radio(page, "Network", "Untrained (random weights)")


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def test_block_designer_v3_kinds(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 3000})
    ui.open_app(page, app_server, "/block_designer")
    page.locator("[data-testid='stMetricValue']").first.wait_for()

    # C (Mixed_6b): c7 128 → 160 changes every branch that runs at c7, the totals and the link
    ui.choose_radio(page, "Block kind", KIND_SPECS["C"].TITLE)
    c = default_kind("C")
    page.get_by_text(f"Output {kind_report(c, c.DEFAULT_INPUT).concat_text()}").wait_for()
    ui.fill(page, "c7", 160)
    edited = kind_with(c, {"c7": 160})
    report = kind_report(edited, c.DEFAULT_INPUT)
    page.get_by_text(f"Output {report.concat_text()}").wait_for()
    assert _metric(page, "Parameters") == f"{report.cost.params:,}"
    assert _metric(page, "Mult-adds") == f"{report.cost.mult_adds:,}"
    assert re.search(r"[?&]c7=160(&|$)", page.url) and "kind=C" in page.url, page.url
    # the branch table: a canvas, and an accessible DOM of the cells in view
    grid = page.locator("[data-testid='stDataFrame']").first.text_content()
    for b in report.branches:  # the accessible cells (the columns in view) hold the raw values
        shape = "×".join(map(str, (*b.output_shape[1:], b.output_shape[0])))
        costs = f"{b.cost.params}{b.cost.mult_adds}{b.cost.multiplications}"
        assert f"{b.name}{b.label}{shape}{costs}" in grid, (b.name, grid[:800])
    body = page.inner_text("body")
    for s in factorisation_savings(edited, c.DEFAULT_INPUT):
        assert s.title in body
        best = max(range(1, len(s.options)), key=s.saved)
        assert f"Saves {s.saved(best):.0%} of the multiplications" in body
    assert_no_exception(page)
    screenshot(page, "v3_designer_c_c7_160")

    # E (Mixed_7b): its two split branches list their halves, side by side
    ui.choose_radio(page, "Block kind", KIND_SPECS["E"].TITLE)
    e = default_kind("E")
    report = kind_report(e, e.DEFAULT_INPUT)
    page.get_by_text(f"Output {report.concat_text()}").wait_for()
    assert _metric(page, "Parameters") == f"{report.cost.params:,}"
    grid = page.locator("[data-testid='stDataFrame']").first.text_content()
    halves = [h for b in report.branches for h in b.halves]
    assert len(halves) == 4
    for h in halves:
        shape = "×".join(map(str, (*h.output_shape[1:], h.output_shape[0])))
        costs = f"{h.cost.params}{h.cost.mult_adds}{h.cost.multiplications}"
        assert f"half{h.kind}{shape}{costs}" in grid, (h.name, grid[:800])  # the module names are scrolled out
    assert grid.count("half") == 4
    page.get_by_text("‖: the two halves read the same input and are concatenated").wait_for()
    assert_no_exception(page)
    screenshot(page, "v3_designer_e")


def test_network_explorer_inception_v3_preset(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 3000})
    ui.open_app(page, app_server, "/network_explorer")
    ui.choose(page, "Preset", "inception-v3-imagenet")
    t = totals(V3_REPORT)
    page.wait_for_function(
        "v => document.querySelector(\"[data-testid='stMetricValue']\")?.textContent.trim() === v",
        arg=f"{t['params']:,}",
    )
    ui.wait_idle(page)
    assert t["params"] == 27_161_264  # torchvision's, aux head included
    assert _metric(page, "Mult-adds") == f"{t['mult_adds']:,}"
    blocks = ", ".join(f"{n} → {b.output_shape[0]}" for n, b in V3_REPORT.blocks.items())
    assert f"Blocks: {blocks}" in page.inner_text("body")
    table = page.locator(".gnet-table table").first
    assert table.locator("tr").count() == len(v3_charts.layer_rows(V3_REPORT)) + 2  # + header and total
    ui.set_checkbox(page, "Show the layers inside each block", True)
    expanded = v3_charts.layer_rows(V3_REPORT, expand=True)
    page.wait_for_function("n => document.querySelector('.gnet-table table')?.rows.length === n", arg=len(expanded) + 2)
    # a 1×7 conv widens the field along the width only: its row says H×W
    row = next(r for r in expanded if r["layer"] == "Mixed_6b.branch7x7_2")
    shown = table.locator("tr").filter(has_text="Mixed_6b.branch7x7_2").first.inner_text().split("\t")
    assert row[v3_charts.RF_COLUMN] in shown and "×" in row[v3_charts.RF_COLUMN], (row, shown)
    assert row["output (C×H×W)"] in shown and f"{row['params']:,}" in shown
    assert "Auxiliary classifier" in page.inner_text("body")
    assert_no_exception(page)
    screenshot(page, "v3_network_explorer_layers")

    for tab, name in (("Receptive field", "receptive_field"), ("Where the parameters live", "params")):
        ui.select_tab(page, tab)
        page.locator("[data-testid='stPlotlyChart']:visible .main-svg").first.wait_for()  # plotly has drawn it
        assert_no_exception(page)
        screenshot(page, f"v3_network_explorer_{name}")


def test_compare_inception_v3_against_googlenet(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 4200})
    ui.open_app(page, app_server, "/network_explorer")
    ui.choose(page, "Preset", "inception-v3-imagenet")
    ui.open_expander(page, "Compare A / B")
    ui.choose_radio(page, "A is", "a preset")
    ui.choose(page, "Preset for A", "googlenet-imagenet")
    ui.wait_text(page, "A GoogLeNet and an Inception v3 share no layer names, so the rows are stages")
    c = compare_networks(network_preset("googlenet-imagenet"), V3, "layers", "A (googlenet-imagenet)", "B (this page)")
    assert _metric(page, "Params, B") == f"{c.total.b.params:,}" == f"{totals(V3_REPORT)['params']:,}"
    assert _metric(page, "Mult-adds, B") == f"{c.total.b.mult_adds:,}"
    assert _metric(page, "Receptive field, B") == f"{c.total.b.rf:,} px"
    assert c.total.a.params == network_report(network_preset("googlenet-imagenet")).params_total
    delta = (
        page.locator("[data-testid='stMetric']").filter(has_text="Params, B").locator("[data-testid='stMetricDelta']")
    )
    assert delta.inner_text().strip().replace("+", "") == f"{c.total.delta('params'):,}"
    grid = page.locator("[data-testid='stExpander'] [data-testid='stDataFrame']").first.text_content()
    for r in c.rows:
        assert r.name in grid, (r.name, grid[:600])
    page.locator("[data-testid='stExpander'] [data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    assert_no_exception(page)
    screenshot(page, "v3_compare_googlenet")


def test_feature_maps_inception_v3(app_server, page, v3_net, mixed_7b):
    _open_v3(page, app_server, "/feature_maps", 4200)
    five_b = V3_REPORT.blocks["5b"].output_shape
    page.get_by_text(f"Layer 5b: {five_b[0]} channels, {five_b[1]}×{five_b[2]} maps").wait_for(timeout=120_000)
    ui.wait_idle(page)
    body = page.inner_text("body")
    assert v3_net.label in body and "299×299 (H×W)" in body
    for b, label in v3_net.branch_labels("Mixed_5b").items():
        assert f"{b}: {label}" in body

    # E (Mixed_7b): the split branches' mosaics, at 8×8
    ui.choose(page, "Layer", "7b")
    seven_b = V3_REPORT.blocks["7b"].output_shape
    page.get_by_text(f"Layer 7b: {seven_b[0]} channels, {seven_b[1]}×{seven_b[2]} maps").wait_for()
    ui.wait_idle(page)
    body = page.inner_text("body")
    for b, label in v3_net.branch_labels("Mixed_7b").items():
        c, h, w = mixed_7b.groups[b].shape
        first = mixed_7b.offsets[b]
        assert f"{b}: {label}" in body
        assert f"channels {first}–{first + c - 1} of the output · map {h}×{w}" in body
        halves = fv.halves(v3_net, "Mixed_7b", b)  # E's split branches: their two halves fill the branch
        assert not halves or sum(x.width for x in halves) == c
    top5 = page.locator(".gnet-table table").nth(1).locator("tr")
    want = F.top_k(mixed_7b.logits, v3_net.classes)
    assert [top5.nth(i + 1).inner_text().split("\t")[1] for i in range(5)] == [p.label for p in want]
    # 2 input views + 4 branch mosaics + heatmap + overlay, all decoded
    assert ui.images_decoded(page, page.locator("[data-testid='stImage'] img")) == 8
    assert_no_exception(page)
    screenshot(page, "v3_feature_maps_7b")


def test_explain_inception_v3(app_server, page, v3_net, mixed_7b):
    _open_v3(page, app_server, "/explain", 6000)
    page.get_by_text("Grad-CAM for '").first.wait_for(timeout=240_000)
    ui.wait_idle(page)
    body = page.inner_text("body")
    assert "299×299 (H×W)" in body and "zeroing " in body
    top = F.top_k(mixed_7b.logits, v3_net.classes)[0]
    assert page.get_by_label("Class", exact=True).input_value().startswith(f"#1 {top.label} (")
    assert f"Target: {top.label} (class {int(mixed_7b.logits.argmax())})" in body
    blocks = list(V3_REPORT.blocks)
    n_branches = [len(v3_net_branches(b)) for b in blocks]
    for grid_title in ("Where the evidence for", "Zeroing one branch"):  # 11 Mixed blocks × up to 4 branches
        cells = page.locator(f'svg[aria-label^="{grid_title}"] g.cell')
        assert cells.count() == len(blocks) * 4
        empty = {
            int(g.get_attribute("data-row"))
            for g in cells.all()
            if g.get_attribute("data-value") == "nan" and g.get_attribute("data-col") == "3"
        }
        assert empty == {i for i, n in enumerate(n_branches) if n == 3}  # the grid reductions 6a and 7a
    images = page.locator("[data-testid='stImage'] img")
    ui.images_decoded(page, images)
    grid = images.nth(1).element_handle()
    assert page.evaluate("e => e.naturalHeight", grid) > len(blocks) * 100  # a row of thumbnails per block
    h, w = V3_REPORT.blocks["5b"].output_shape[1:]
    assert page.locator(".gnet-unit-picker rect[data-r]").count() == h * w  # the first block's unit picker
    assert_no_exception(page)
    screenshot(page, "v3_explain")

    point = page.locator(".gnet-unit-picker rect[data-r='0'][data-c='0']")
    ui.click(page, point, until=page.get_by_text("The four branches of 5b at (0, 0)"))
    body = page.inner_text("body")
    plan = v3_plan(V3)
    for b in plan.branch_paths("Mixed_5b"):  # each branch's field, as the layer table has it for its last layer
        rf = _rf(plan.branch_layers("Mixed_5b", b)[-1].path)
        assert f"{b} ({v3_net.branch_labels('Mixed_5b')[b]}): theoretical {rf}×{rf} px" in body
    assert_no_exception(page)
    ui.choose(page, "Block", "6a")  # a grid reduction: three branches
    page.get_by_text(re.compile(r"The three branches of 6a at \(\d+, \d+\)")).wait_for()
    ui.wait_idle(page)
    shown = page.get_by_label("Branch", exact=True).input_value()
    assert shown == f"b1 ({v3_net.branch_labels('Mixed_6a')['b1']})", shown
    h, w = V3_REPORT.blocks["6a"].output_shape[1:]
    assert page.locator(".gnet-unit-picker rect[data-r]").count() == h * w
    assert_no_exception(page)
    screenshot(page, "v3_explain_6a")


def v3_net_branches(block: str) -> list[str]:
    return list(v3_plan(V3).branch_paths(f"Mixed_{block}"))


def test_anatomy_inception_v3(app_server, page, v3_net, sample_x):
    _open_v3(page, app_server, "/anatomy", 5200)
    page.get_by_text(re.compile(r"How 5b·b2 \(\d+, \d+\), channel \d+, is computed")).wait_for(timeout=180_000)
    ui.choose(page, "Block", "6b")
    labels = v3_net.branch_labels("Mixed_6b")
    ui.choose(page, "Branch", f"b2 ({labels['b2']})")  # 1×1 → 1×7 → 7×1
    head = re.compile(r"How 6b·b2 \((\d+), (\d+)\), channel (\d+), is computed")
    page.get_by_text(head).wait_for()
    ui.wait_idle(page)
    body = page.inner_text("body")
    assert "Layer 2 of 3: Mixed_6b.branch7x7_2, 1×7 convolution" in body
    assert "Layer 3 of 3: Mixed_6b.branch7x7_3, 7×1 convolution" in body
    h, w = V3_REPORT.blocks["6b"].output_shape[1:]
    assert page.locator(".gnet-unit-picker rect[data-r]").count() == h * w

    trace = A.trace_block(v3_net, sample_x, "Mixed_6b")["b2"]

    def check_unit() -> tuple[int, int, int]:
        text = page.inner_text("body")
        m = re.search(r"Unit: 6b·b2 channel (\d+) at \((\d+), (\d+)\) = (\S+)", text)
        assert m, text[:3000]
        ch, r, c = (int(v) for v in m.groups()[:3])
        want = A.unit(trace, ch, r, c)
        assert _number(m.group(4)) == pytest.approx(want.value, rel=1e-3, abs=2e-4), (m.group(0), want.value)
        assert f"In the block output: channel {want.concat_channel} of {trace.block_channels}" in text
        return ch, r, c

    peak = tuple(int(v) for v in np.unravel_index(int(np.argmax(trace.output)), trace.output.shape))
    ch, r, c = check_unit()
    assert (ch, r, c) == peak  # a new branch opens on its strongest unit
    body = page.inner_text("body")
    assert f"receptive field of 6b·b2 ({r}, {c}): {trace.rf.size}×{trace.rf.size} px" in body
    assert trace.rf.size == int(_rf("Mixed_6b.branch7x7_3"))
    frames = len(A.animation(A.unit(trace, ch, r, c), "Mixed_6b.branch7x7_3").frames)
    assert f"{frames} frames, one per output position" in body and frames == h * w
    assert_no_exception(page)
    screenshot(page, "v3_anatomy_6b_b2")

    point = page.locator(".gnet-unit-picker rect[data-r='0'][data-c='0']")
    ui.click(page, point, until=page.get_by_text(f"How 6b·b2 (0, 0), channel {ch}, is computed"))
    assert check_unit() == (ch, 0, 0)
    assert_no_exception(page)
    screenshot(page, "v3_anatomy_click")


def test_atlas_inception_v3(app_server, page, v3_net):
    _open_v3(page, app_server, "/atlas", 3600)
    six_b = V3_REPORT.blocks["6b"].output_shape[0]
    page.get_by_text(f"Block 6b: {six_b} channels, top 6 per branch").wait_for(timeout=180_000)
    page.locator("[data-testid='stPlotlyChart']").wait_for(timeout=180_000)  # branch specialisation
    ui.wait_idle(page)
    assert page.get_by_role("button", name=re.compile(r"^6b·b[1-4] ch \d+ \| out \d+$")).count() == 4 * 6
    assert_no_exception(page)
    screenshot(page, "v3_atlas_6b")

    # a tiny job on 5b: 1 channel per branch, the smallest size the block takes, 16 steps
    ui.choose(page, "Block", "5b")
    page.get_by_text(f"Block 5b: {V3_REPORT.blocks['5b'].output_shape[0]} channels").wait_for()
    ui.press(page, page.get_by_role("slider", name="Channels per branch"), "Home")
    ui.open_expander(page, "Optimisation settings")
    ui.press(page, page.get_by_role("slider", name="Image size (px)"), "Home")
    ui.fill(page, "Steps", 16)
    size = min(v for v in (32, 64, 96, 128, 160, 224) if v >= fv.min_size(v3_net, "Mixed_5b"))
    ui.button(
        page,
        f"Visualise the 4 missing channels ({size}×{size} px, 16 steps)",
        until=page.get_by_text("All 4 pictures are cached for these settings."),
        timeout_ms=180_000,
    )
    tiles = page.get_by_role("button", name=re.compile(r"^5b·b[1-4] ch \d+ \| out \d+$"))
    assert tiles.count() == 4
    assert ui.images_decoded(page, page.locator("[data-testid='stImage'] img")) >= 4
    assert_no_exception(page)
    screenshot(page, "v3_atlas_5b_grid")

    # E's split branches name their halves
    ui.choose(page, "Block", "7b")
    page.get_by_text(f"Block 7b: {V3_REPORT.blocks['7b'].output_shape[0]} channels").wait_for()
    ui.wait_idle(page)
    body = page.inner_text("body")
    for b in ("b2", "b3"):
        split = " ‖ ".join(
            f"ch {h.first}–{h.first + h.width - 1}: {h.kernel} ({h.path})" for h in fv.halves(v3_net, "Mixed_7b", b)
        )
        assert f"Two halves side by side, concatenated: {split}" in body
    assert_no_exception(page)
    screenshot(page, "v3_atlas_7b")


@pytest.mark.timeout(600)
def test_training_mini_v3_live(app_server, app_home, page):
    try:
        _train_mini_v3(app_server, app_home, page)
    finally:  # its 1000-epoch run must not stay on the shared cores
        stop_children(app_home)


def _train_mini_v3(app_server: str, app_home: Path, page) -> None:
    page.set_viewport_size({"width": 1400, "height": 2600})
    ui.open_app(page, app_server, "/training")
    page.get_by_role("heading", name="Training").wait_for()
    ui.open_expander(page, "Start a new run")  # collapsed once the shared app has runs (test_training_e2e's)
    ui.choose(page, "Network", "mini-v3")
    spec = train_preset("mini-v3")
    report = plan_report(v3_plan(spec))
    kinds = ", ".join(f"{type(b).KIND} ({n})" for n, b in spec.blocks)
    size = f"{spec.input_size[0]}×{spec.input_size[1]}"
    ui.wait_text(page, f"Inception v3: blocks {kinds}; its own aux head after {spec.aux_block}")
    assert f"{report.params_total:,} parameters at {size}" in page.inner_text("body")
    ui.fill(page, "Epochs", 1000)  # far longer than the test watches: stopped below
    ui.fill(page, "Batch size", 20)
    ui.fill(page, "Training images (0 = all)", 60)
    ui.fill(page, "Run name", "e2e-v3")
    ui.button(page, "Start training", until=page.get_by_text("Started run e2e-v3"))
    seen = _watch_progress(page, changes=2)
    assert len(seen) >= 2 and _step(seen[-1]) > _step(seen[0]), seen
    assert "/1000" in seen[-1]
    cfg = json.loads((app_home / "runs" / "e2e-v3" / "config.json").read_text())["train"]
    assert cfg["network"]["family"] == "inception-v3" and cfg["network"]["name"] == "mini-v3"
    runs_table = page.locator("[data-testid='stDataFrame']").first.text_content()  # the runs table's cells
    assert "e2e-v3" in runs_table and "mini-v3" in runs_table and "synthetic" in runs_table, runs_table
    assert_no_exception(page)
    screenshot(page, "v3_training_live")
    ui.button(page, "Stop", until=page.get_by_text(re.compile(r"stopped at step [\d,]+ of [\d,]+; resume continues")))
    assert_no_exception(page)
