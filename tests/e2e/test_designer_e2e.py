"""Both pages in headless Chromium: change a channel count, watch the shapes follow."""

import re

import pytest

from gnet.analysis import block_report, network_report
from gnet.spec import BlockSpec, block_presets, network_preset
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e

NG = block_presets()["Ng's example (28×28×192, seed 002)"]


def _open(page, server: str, path: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 2600})  # Streamlit scrolls inside the app: show it all
    ui.open_app(page, server, path)
    page.locator("[data-testid='stMetricValue']").first.wait_for()
    ui.wait_idle(page)


def test_block_designer_updates_the_concat_shape(app_server, page):
    _open(page, app_server, "/block_designer")
    before = block_report(NG.block, NG.input_shape).concat_text()
    page.get_by_text(f"Output {before}").wait_for()
    screenshot(page, "block_designer_default")

    ui.fill(page, "b1 channels", 100)
    spec = BlockSpec(b1=100, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32)
    after = block_report(spec, NG.input_shape).concat_text()
    page.get_by_text(f"Output {after}").wait_for()
    assert after == "28×28×(100+128+32+32) = 28×28×292"
    assert re.search(r"[?&]b1=100(&|$)", page.url), page.url  # the link follows the design
    assert_no_exception(page)
    screenshot(page, "block_designer_b1_100")

    ui.select_tab(page, "What the bottleneck buys")
    page.get_by_text("221,184").first.wait_for()
    body = page.inner_text("body")
    assert "129,024" in body and "120,422,400" in body and "12,443,648" in body  # seeds 000/003 and 002
    screenshot(page, "block_designer_bottleneck")

    ui.fill(page, "b1 channels", 0)
    page.get_by_text("Invalid input: b1 must be from 1").wait_for()
    assert_no_exception(page)
    screenshot(page, "block_designer_invalid")

    # a shared link reproduces a design
    ui.goto(page, app_server + "/block_designer?c=48&h=17&w=9&b1=10&b2r=20&b2=30&b3r=5&b3=64&b4=7&reduce=1&b3v=33&bn=1")
    spec = BlockSpec(b1=10, b2_reduce=20, b2=30, b3_reduce=5, b3=64, b4=7, factorize=True, batch_norm=True)
    page.get_by_text(f"Output {block_report(spec, (48, 17, 9)).concat_text()}").wait_for()
    assert_no_exception(page)
    page.locator("svg[aria-label^='block diagram']").first.wait_for()
    screenshot(page, "block_designer_from_link")


def test_network_explorer_edit_a_block(app_server, page):
    _open(page, app_server, "/network_explorer")
    spec = network_preset("d2l-fashion96")
    page.get_by_text(f"{network_report(spec).params_total:,}").first.wait_for()
    screenshot(page, "network_explorer_default")

    ui.fill(page, "b1 channels", 128, commit="Tab")  # in the block's form: Apply submits it
    ui.button(page, "Apply to 3a")
    edited = spec.with_block("3a", BlockSpec(b1=128, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32))
    report = network_report(edited)
    page.get_by_text(f"{report.params_total:,}").first.wait_for()
    page.get_by_text("3a → 320").wait_for()  # the blocks caption, drawn later in the same rerun
    assert_no_exception(page)

    # round trip through the Block Designer: open 4b there, change it, apply it back
    ui.choose(page, "Block", "4b")
    ui.button(page, "Open 4b in Block Designer", until=page.get_by_text("Editing block 4b"))
    ui.fill(page, "b4 pool projection", 100)
    ui.button(page, "Apply to 4b and return to the Network Explorer")
    edited = edited.with_block("4b", BlockSpec(b1=160, b2_reduce=112, b2=224, b3_reduce=24, b3=64, b4=100))
    page.get_by_text(f"{network_report(edited).params_total:,}").first.wait_for()
    page.get_by_text("4b → 548").wait_for()
    assert_no_exception(page)

    for tab, name in (
        ("Where the parameters live", "params"),
        ("Shapes along depth", "depth"),
        ("Receptive field", "receptive_field"),
        ("Cost per block", "blocks"),
    ):
        ui.select_tab(page, tab)
        page.locator("[data-testid='stPlotlyChart']:visible .main-svg").first.wait_for()  # plotly has drawn it
        screenshot(page, f"network_explorer_edited_{name}")
