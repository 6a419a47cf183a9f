"""Explain in headless Chromium: upload an image, see the 9×4 Grad-CAM grid, the evidence and
ablation grids and the receptive fields; click a unit on the picker chart to move the position.

The app_server fixture gives the app an empty torch hub cache, so this runs offline on the
clearly labelled untrained network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "samples" / "coffee.jpg"


def test_upload_shows_the_grid_and_a_click_picks_a_unit(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 5200})  # Streamlit scrolls inside its main block
    ui.open_app(page, app_server, "/explain")
    page.get_by_role("heading", name="Explain").first.wait_for()
    ui.upload(page, SAMPLE)
    page.get_by_text("your upload: what the network sees").wait_for(timeout=120_000)
    page.get_by_text("Grad-CAM for '").first.wait_for(timeout=120_000)
    ui.wait_idle(page)
    body = page.inner_text("body")
    assert "UNTRAINED" in body and "Compute device" in body
    for heading in ("Grad-CAM of every branch", "Zeroing one branch at a time", "Receptive fields on the image"):
        assert heading in body
    assert "colour scale: shared by all maps" in body and "zeroing " in body
    images = page.locator("[data-testid='stImage'] img")
    assert ui.images_decoded(page, images) == 8  # input, grid, the unit's two views, the four branches
    grid = images.nth(1).element_handle()
    assert page.evaluate("e => [e.naturalWidth, e.naturalHeight]", grid)[1] > 9 * 112  # 9 rows of thumbnails
    assert page.locator(".gnet-unit-picker rect[data-r]").count() == 14 * 14  # the unit picker of 4d (click to pick)
    shares = page.locator('svg[aria-label^="each block\'s share"] g.share')
    assert shares.count() >= 9 and shares.first.locator("title").count() == 1  # one segment per non-zero share
    for grid_title in ("Where the evidence for", "Zeroing one branch"):  # the two 9×4 SVG grids, hover titles kept
        cells = page.locator(f'svg[aria-label^="{grid_title}"] g.cell')
        assert cells.count() == 36 and cells.first.locator("title").count() == 1
    assert_no_exception(page)
    screenshot(page, "explain_upload")

    # click the top-left cell of the unit picker (4d·b1, 14×14): row and column follow
    point = page.locator(".gnet-unit-picker rect[data-r='0'][data-c='0']")
    point.wait_for(timeout=30_000)
    ui.click(page, point, until=page.get_by_text("The four branches of 4d at (0, 0)"), timeout_ms=120_000)
    assert_no_exception(page)
    screenshot(page, "explain_rf_click")

    # another of the top 5: the target line and both grids follow; the picked unit stays where it was
    label = re.sub(r"^#\d+ | \([^()]*\)$", "", ui.choose(page, "Class", 2))
    page.get_by_text(f"Target: {label} (class").wait_for(timeout=120_000)
    ui.wait_idle(page)
    for grid_title in (f"Where the evidence for '{label}'", f"Zeroing one branch: change in P('{label}')"):
        assert page.locator(f'svg[aria-label^="{grid_title}"] g.cell').count() == 36
    assert page.get_by_text("The four branches of 4d at (0, 0)").count() == 1
    assert_no_exception(page)
