"""Feature Maps in headless Chromium: upload a sample image, see the four branch grids.

The app_server fixture gives the app an empty torch hub cache, so this runs offline and
the page must say so and show a clearly labelled untrained network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "samples" / "coffee.jpg"


def test_upload_shows_branch_grids(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 4200})  # Streamlit scrolls inside its main block
    ui.open_app(page, app_server, "/feature_maps")
    page.get_by_role("heading", name="Feature Maps").wait_for()
    page.get_by_role("button", name="Retry download").wait_for(timeout=60_000)
    page.get_by_text("Layer 3a: 256 channels").wait_for(timeout=60_000)  # the sample image's result
    ui.wait_idle(page)
    body = page.inner_text("body")
    assert "googlenet-1378be20.pth" in body and "UNTRAINED" in body
    assert (
        "Compute device" in body
    )  # run through app.py's navigation, not as a bare script  # offline: says what it shows instead
    ui.upload(page, SAMPLE)
    page.get_by_text("your upload: JPEG, 512×341 px").wait_for(timeout=60_000)
    ui.wait_idle(page)
    body = page.inner_text("body")
    for chip in ("b1: 1×1", "b2: 1×1 → 3×3", "b3: 1×1 → 3×3", "b4: 3×3 max-pool → 1×1"):
        assert chip in body
    assert "Layer 3a: 256 channels, 28×28 maps" in body and "ms forward pass" in body
    # 2 input views + 4 branch mosaics + heatmap + overlay, all actually rendered
    assert ui.images_decoded(page, page.locator("[data-testid='stImage'] img")) == 8
    assert page.get_by_role("button", name="Download b2 grid (PNG)").count() == 1
    assert_no_exception(page)
    screenshot(page, "feature_maps_upload")

    # ablation: zero b2 and see the before/after table
    page.get_by_text("Zero these branches").scroll_into_view_if_needed()
    ui.choose_many(page, "Zero these branches", "b2 (1×1 → 3×3)")
    page.get_by_text("without b2").first.wait_for(timeout=30_000)  # the before/after chart's legend
    tables = page.locator(".gnet-table table")  # preprocessing, top-5, branch stats, ablation
    assert tables.count() == 4
    assert tables.nth(1).locator("tr").count() == 1 + 5  # the header and the top-5
    assert tables.nth(3).locator("tr").first.inner_text().split("\t")[:3] == ["class", "before", "after"]
    assert_no_exception(page)
    screenshot(page, "feature_maps_ablation")
