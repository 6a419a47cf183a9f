"""Each interaction that bench/perceived.py times still updates the right thing in the browser (issue 17).

The pages rerun only the fragment a widget lives in, run only the open tab and serve cached figures and images;
these tests check that every such input still changes what it should (no timings here: the bench has those)."""

from __future__ import annotations

import pytest

from gnet.analysis import block_report, network_report
from gnet.charts.network import layer_rows
from gnet.colors import BRANCH_COLORS
from gnet.spec import BlockSpec, network_preset
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e

NG_LINK = "/block_designer?c=192&h=28&w=28&b1=64&b2r=96&b2=128&b3r=16&b3=32&b4=32&reduce=1&b3v=5&bn=0"


def _open(page, server: str, path: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 4200})  # Streamlit scrolls inside the app: show it all
    ui.open_app(page, server, path)


def _metric(page) -> str:
    """The first st.metric's value: Parameters on the designer and the explorer."""
    return page.locator("[data-testid='stMetricValue']").first.inner_text().strip()


def _wait_metric(page, value: str) -> None:
    page.wait_for_function(
        "v => document.querySelector(\"[data-testid='stMetricValue']\")?.textContent.trim() === v", arg=value
    )
    ui.wait_idle(page)


def _srcs(page) -> set[str]:
    return set(page.eval_on_selector_all("[data-testid='stMain'] img", "els => els.map(e => e.src)"))


def _images_loaded(page) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stMain'] img\")]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )


def test_block_designer_inputs_update_shape_and_counts(app_server, page):
    _open(page, app_server, NG_LINK)
    shape = (192, 28, 28)
    ui.fill(page, "b1 channels", 70)
    spec = BlockSpec(b1=70, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32)
    page.get_by_text(f"Output {block_report(spec, shape).concat_text()}").wait_for()
    assert "b1=70" in page.url  # the link still follows the design

    ui.set_checkbox(page, "1×1 reductions", False)
    _wait_metric(
        page,
        f"{block_report(BlockSpec(b1=70, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, reduce=False), shape).cost.params:,}",
    )
    assert "reduce=0" in page.url
    ui.set_checkbox(page, "1×1 reductions", True)
    _wait_metric(page, f"{block_report(spec, shape).cost.params:,}")

    ui.choose_radio(page, "b3 convolution", "two 3×3 (factorized 5×5)")
    _wait_metric(
        page,
        f"{block_report(BlockSpec(b1=70, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, factorize=True), shape).cost.params:,}",
    )
    assert "b3v=33" in page.url
    # the cached diagram is the new design's: its output label
    diagram = page.locator("svg[aria-label^='block diagram']").first
    diagram.wait_for()
    assert "28×28×262" in diagram.text_content()
    factorized = block_report(BlockSpec(b1=70, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, factorize=True), shape)
    edges = sum(len(b.layers) for b in factorized.branches) + 4 + 1  # each layer's input, 4 into concat, 1 out
    assert diagram.locator("polyline title").count() == edges  # hover texts survive the page's HTML sanitiser
    assert_no_exception(page)
    screenshot(page, "interactions_block_designer")


def test_network_explorer_edit_expand_and_lazy_tabs(app_server, page):
    _open(page, app_server, "/network_explorer")
    spec = network_preset("d2l-fashion96")
    ui.fill(page, "b1 channels", 100, commit="Tab")  # in the block's form: Apply submits it
    ui.button(page, "Apply to 3a")
    edited = spec.with_block("3a", BlockSpec(b1=100, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32))
    report = network_report(edited)
    _wait_metric(page, f"{report.params_total:,}")
    page.get_by_text("3a → 292").wait_for()

    rows = page.locator(".gnet-table table").first.locator("tr")  # the header row too
    collapsed = len(layer_rows(report)) + 2  # + the total row and the header row
    assert rows.count() == collapsed
    ui.set_checkbox(page, "Show the layers inside each block", True)
    expanded = len(layer_rows(report, expand=True)) + 2
    page.wait_for_function(
        "n => document.querySelector('.gnet-table table')?.rows.length === n",
        arg=expanded,
    )
    # the layers inside a block carry their branch's colour (as the browser computed it)
    shadow = rows.filter(has_text="inception3a.branch2.1").first.evaluate("e => getComputedStyle(e).boxShadow")
    assert "rgb({}, {}, {})".format(*bytes.fromhex(BRANCH_COLORS["b2"][1:])) in shadow
    ui.wait_idle(page)
    assert _metric(page) == f"{report.params_total:,}"  # only the table reran: the totals stay

    # a chart tab runs when opened, and shows the edited network
    ui.select_tab(page, "Cost per block")
    page.locator("[data-testid='stPlotlyChart']:visible .main-svg").first.wait_for()
    assert page.locator("[data-testid='stPlotlyChart']:visible").count() == 1
    ui.select_tab(page, "Layers")
    page.locator(".gnet-table table").first.wait_for(state="attached")
    assert page.locator(".gnet-table table").first.locator("tr").count() == expanded  # the toggle kept its state
    assert_no_exception(page)
    screenshot(page, "interactions_network_explorer")


def test_feature_maps_layer_channels_and_sample(app_server, page):
    _open(page, app_server, "/feature_maps")
    page.get_by_text("Layer 3a: 256 channels").wait_for(timeout=120_000)
    ui.wait_idle(page)
    _images_loaded(page)
    before = _srcs(page)

    ui.choose(page, "Layer", "4a")
    page.get_by_text("Layer 4a: 512 channels, 14×14 maps").wait_for()
    _images_loaded(page)
    after_layer = _srcs(page)
    assert len(after_layer - before) >= 6  # 4 mosaics + the channel's heatmap and overlay are the new layer's

    ui.press(page, page.get_by_role("slider", name="Channels shown per branch"), "ArrowRight")
    page.wait_for_function(
        "n => [...document.querySelectorAll(\"[data-testid='stMain'] img\")]"
        ".filter(i => !n.includes(i.src)).length >= 4",
        arg=sorted(after_layer),
    )
    ui.wait_idle(page)
    _images_loaded(page)
    assert page.get_by_role("button", name="Download b1 grid (PNG)").count() == 1

    ui.choose(page, "…or use a sample image", "cat.jpg")
    page.get_by_text("sample cat.jpg: JPEG").wait_for()
    ui.wait_idle(page)
    _images_loaded(page)
    assert page.get_by_text("Layer 4a: 512 channels").count() == 1  # the layer choice survives a new image
    assert page.locator("[data-testid='stImage'] img").count() == 8
    assert_no_exception(page)
    screenshot(page, "interactions_feature_maps")
