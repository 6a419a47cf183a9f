"""Channel Atlas in headless Chromium: from Feature Maps' link to the atlas, a background job
that fills a branch grid, a click on a tile for the large view, the specialisation chart.

The app_server fixture is offline with an empty torch hub cache: the page says so and runs the
clearly labelled untrained GoogLeNet. Settings are made tiny (32 px, 16 steps, 1 channel per branch)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e


def test_atlas_job_grid_and_large_view(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 3000})
    ui.open_app(page, app_server, "/feature_maps")
    page.get_by_text("Layer 3a: 256 channels").wait_for(timeout=90_000)
    ui.click(page, page.get_by_role("link", name="Channel Atlas: what each channel wants to see"))  # in-app
    page.get_by_role("heading", name="Channel Atlas").wait_for(timeout=60_000)
    page.get_by_text("Block 4b: 512 channels, top 6 per branch").wait_for(timeout=90_000)
    page.locator("[data-testid='stPlotlyChart']").wait_for(timeout=90_000)
    ui.wait_idle(page)
    assert re.search(r"/atlas$", page.url)
    body = page.inner_text("body")
    assert "UNTRAINED" in body and "Visualise the 24 missing channels (128×128 px, 256 steps)" in body
    assert "Branch Specialization" in body and "BatchNorm" in body
    assert page.get_by_role("button", name=re.compile(r"^4b·b3 ch \d+ \| out \d+$")).count() == 6
    assert_no_exception(page)
    screenshot(page, "atlas_start")

    # tiny settings: 1 channel per branch, 32 px, 16 steps
    ui.press(page, page.get_by_role("slider", name="Channels per branch"), "Home")
    ui.open_expander(page, "Optimisation settings")
    ui.press(page, page.get_by_role("slider", name="Image size (px)"), "Home")
    ui.fill(page, "Steps", 16)
    ui.button(
        page,
        "Visualise the 4 missing channels (32×32 px, 16 steps)",
        until=page.get_by_text("All 4 pictures are cached for these settings."),
        timeout_ms=180_000,
    )
    tiles = page.get_by_role("button", name=re.compile(r"^4b·b[1-4] ch \d+ \| out \d+$"))
    assert tiles.count() == 4
    assert_no_exception(page)
    screenshot(page, "atlas_grid")

    label = tiles.nth(2).inner_text().strip()
    ui.click(page, tiles.nth(2), until=page.get_by_text("where it fires on your image"))
    body = page.inner_text("body")
    assert "what it wants to see: mean activation" in body and label in body
    assert ui.images_decoded(page, page.locator("[data-testid='stImage'] img")) >= 1  # every picture decoded
    assert_no_exception(page)
    screenshot(page, "atlas_large_view")

    back = page.get_by_role("link", name=re.compile("Back to Feature Maps"))
    ui.click(page, back, until=page.get_by_role("heading", name="Feature Maps"))
