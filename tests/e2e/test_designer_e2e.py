"""Both pages in headless Chromium: change a channel count, watch the shapes follow."""

import re

import pytest

from gnet.analysis import block_report, network_report
from gnet.spec import BlockSpec, block_presets, network_preset
from tests.conftest import assert_no_exception, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

NG = block_presets()["Ng's example (28×28×192, seed 002)"]


def app_server_root(url: str) -> str:
    return url.split("/block_designer")[0].split("/network_explorer")[0]


def _open(page, url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 2600})  # Streamlit scrolls inside the app: show it all
    # A fresh server treats the pages/ folder as Streamlit's old multipage mode until app.py has
    # called st.navigation once (PagesManager.uses_pages_directory): load the entry page first.
    page.goto(app_server_root(url))
    wait_for_app(page)
    page.goto(url)
    wait_for_app(page)
    page.locator("[data-testid='stMetricValue']").first.wait_for()
    wait_for_app(page)


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_for_app(page)


def test_block_designer_updates_the_concat_shape(app_server, page):
    _open(page, app_server + "/block_designer")
    before = block_report(NG.block, NG.input_shape).concat_text()
    page.get_by_text(f"Output {before}").wait_for()
    screenshot(page, "block_designer_default")

    _set_number(page, "b1 channels", 100)
    spec = BlockSpec(100, 96, 128, 16, 32, 32)
    after = block_report(spec, NG.input_shape).concat_text()
    page.get_by_text(f"Output {after}").wait_for()
    assert after == "28×28×(100+128+32+32) = 28×28×292"
    assert re.search(r"[?&]b1=100(&|$)", page.url), page.url  # the link follows the design
    assert_no_exception(page)
    screenshot(page, "block_designer_b1_100")

    page.get_by_role("tab", name="What the bottleneck buys").click()
    page.get_by_text("221,184").first.wait_for()
    body = page.inner_text("body")
    assert "129,024" in body and "120,422,400" in body and "12,443,648" in body  # seeds 000/003 and 002
    screenshot(page, "block_designer_bottleneck")

    _set_number(page, "b1 channels", 0)
    page.get_by_text("Invalid input: b1 must be from 1").wait_for()
    assert_no_exception(page)
    screenshot(page, "block_designer_invalid")

    # a shared link reproduces a design
    page.goto(app_server + "/block_designer?c=48&h=17&w=9&b1=10&b2r=20&b2=30&b3r=5&b3=64&b4=7&reduce=1&b3v=33&bn=1")
    wait_for_app(page)
    spec = BlockSpec(10, 20, 30, 5, 64, 7, factorize=True, batch_norm=True)
    page.get_by_text(f"Output {block_report(spec, (48, 17, 9)).concat_text()}").wait_for()
    assert_no_exception(page)
    page.locator("svg[aria-label^='block diagram']").first.wait_for()
    screenshot(page, "block_designer_from_link")


def test_network_explorer_edit_a_block(app_server, page):
    _open(page, app_server + "/network_explorer")
    spec = network_preset("d2l-fashion96")
    page.get_by_text(f"{network_report(spec).params_total:,}").first.wait_for()
    screenshot(page, "network_explorer_default")

    _set_number(page, "b1 (1×1)", 128)
    page.get_by_role("button", name="Apply to 3a").click()
    wait_for_app(page)
    edited = spec.with_block("3a", BlockSpec(128, 96, 128, 16, 32, 32))
    report = network_report(edited)
    page.get_by_text(f"{report.params_total:,}").first.wait_for()
    page.get_by_text("3a → 320").wait_for()  # the blocks caption, drawn later in the same rerun
    assert_no_exception(page)

    # round trip through the Block Designer: open 4b there, change it, apply it back
    page.get_by_label("Block", exact=True).click()
    page.get_by_role("option", name="4b").click()
    wait_for_app(page)
    page.get_by_role("button", name="Open 4b in Block Designer").click()
    wait_for_app(page)
    page.get_by_text("Editing block 4b").wait_for()
    _set_number(page, "b4 pool projection", 100)
    page.get_by_role("button", name="Apply to 4b and return to the Network Explorer").click()
    wait_for_app(page)
    edited = edited.with_block("4b", BlockSpec(160, 112, 224, 24, 64, 100))
    page.get_by_text(f"{network_report(edited).params_total:,}").first.wait_for()
    page.get_by_text("4b → 548").wait_for()
    assert_no_exception(page)

    for tab, name in (
        ("Where the parameters live", "params"),
        ("Shapes along depth", "depth"),
        ("Receptive field", "receptive_field"),
        ("Cost per block", "blocks"),
    ):
        page.get_by_role("tab", name=tab).click()
        page.locator("[data-testid='stPlotlyChart']:visible").first.wait_for()
        page.wait_for_timeout(500)
        screenshot(page, f"network_explorer_edited_{name}")
