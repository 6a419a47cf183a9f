"""Explain in headless Chromium: upload an image, see the 9×4 Grad-CAM grid, the evidence and
ablation grids and the receptive fields; click a unit on the picker chart to move the position.

The app_server fixture gives the app an empty torch hub cache, so this runs offline on the
clearly labelled untrained network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import assert_no_exception, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "samples" / "coffee.jpg"


def test_upload_shows_the_grid_and_a_click_picks_a_unit(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 5200})  # Streamlit scrolls inside its main block
    page.goto(app_server)  # a fresh server needs app.py's st.navigation once (see test_feature_maps_e2e)
    wait_for_app(page)
    page.goto(app_server + "/explain")
    wait_for_app(page)
    page.get_by_role("heading", name="Explain").first.wait_for()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(SAMPLE))
    page.get_by_text("your upload: what the network sees").wait_for(timeout=120_000)
    page.get_by_text("Grad-CAM for '").first.wait_for(timeout=120_000)
    wait_for_app(page)
    body = page.inner_text("body")
    assert "UNTRAINED" in body and "Compute device" in body
    for heading in ("Grad-CAM of every branch", "Zeroing one branch at a time", "Receptive fields on the image"):
        assert heading in body
    assert "colour scale: shared by all maps" in body and "zeroing " in body
    images = page.locator("[data-testid='stImage'] img")
    assert images.count() == 8  # input, grid, the unit's two views, the four branches
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function(
            "e => e.complete && e.naturalWidth > 0", arg=images.nth(i).element_handle(), timeout=30_000
        )
    grid = images.nth(1).element_handle()
    assert page.evaluate("e => [e.naturalWidth, e.naturalHeight]", grid)[1] > 9 * 112  # 9 rows of thumbnails
    assert page.locator("[data-testid='stPlotlyChart']").count() == 1  # the unit picker (click to pick)
    shares = page.locator('svg[aria-label^="each block\'s share"] g.share')
    assert shares.count() >= 9 and shares.first.locator("title").count() == 1  # one segment per non-zero share
    for grid_title in ("Where the evidence for", "Zeroing one branch"):  # the two 9×4 SVG grids, hover titles kept
        cells = page.locator(f'svg[aria-label^="{grid_title}"] g.cell')
        assert cells.count() == 36 and cells.first.locator("title").count() == 1
    assert_no_exception(page)
    screenshot(page, "explain_upload")

    # click the top-left cell of the unit picker (4d·b1, 14×14): row and column follow
    picker = page.locator("[data-testid='stPlotlyChart']").first
    picker.scroll_into_view_if_needed()
    point = picker.locator("g.points path.point").first
    point.wait_for(timeout=30_000)
    point.click(force=True)
    page.get_by_text("The four branches of 4d at (0, 0)").wait_for(timeout=120_000)
    wait_for_app(page)
    assert_no_exception(page)
    screenshot(page, "explain_rf_click")

    # another of the top 5: the target line and both grids follow; the picked unit stays where it was
    box = page.get_by_label("Class", exact=True)
    box.click()
    option = page.get_by_role("option").nth(2)
    label = re.sub(r"^#\d+ | \([^()]*\)$", "", option.inner_text().strip())
    option.click()
    page.get_by_text(f"Target: {label} (class").wait_for(timeout=120_000)
    wait_for_app(page)
    for grid_title in (f"Where the evidence for '{label}'", f"Zeroing one branch: change in P('{label}')"):
        assert page.locator(f'svg[aria-label^="{grid_title}"] g.cell').count() == 36
    assert page.get_by_text("The four branches of 4d at (0, 0)").count() == 1
    assert_no_exception(page)
