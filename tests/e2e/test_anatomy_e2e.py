"""Block Anatomy in headless Chromium: the chain on the untrained network (offline), the animation player (Play moves
the frame several times in the browser without a rerun, Pause stops it, Step moves one), and a clicked unit on the
picker updates the chain."""

from __future__ import annotations

import re

import pytest

from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e


def frame_of(player) -> int:
    return int(player.locator("#anim").get_attribute("data-frame"))


def test_chain_animation_and_click(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 4600})  # Streamlit scrolls inside its main block
    ui.open_app(page, app_server, "/anatomy")
    page.get_by_role("heading", name="Block Anatomy").first.wait_for()
    page.get_by_text(re.compile(r"How 3a·b2 \(\d+, \d+\), channel \d+, is computed")).wait_for(timeout=120_000)
    ui.wait_idle(page)
    body = page.inner_text("body")
    assert "UNTRAINED" in body and "Compute device" in body
    assert "Layer 1 of 2: inception3a.branch2.0" in body and "Layer 2 of 2: inception3a.branch2.1" in body
    assert page.locator('svg[aria-label="concatenation of 3a"] line.unit').count() == 1
    assert page.locator('svg[aria-label="inception3a.branch2.0.conv: conv step"] g.strip rect').count() == 192
    assert_no_exception(page)

    # the player runs in its own iframe: frames change with no script run of the page
    player = page.frame_locator("[data-testid='stIFrame'], iframe").first
    player.locator("#play").wait_for(timeout=30_000)
    player.locator("#speed").select_option("100")
    start = frame_of(player)
    player.locator("#play").click()
    # until the player has shown 4 frames (a promise resolved by an observer of its frame attribute)
    seen = player.locator("#anim").evaluate(
        """(e, n) => new Promise(resolve => {
             const s = new Set([e.dataset.frame]);
             const check = () => { s.add(e.dataset.frame); if (s.size >= n) { obs.disconnect(); resolve([...s]); } };
             const obs = new MutationObserver(check);
             obs.observe(e, { attributes: true, attributeFilter: ["data-frame"] });
             check();
           })""",
        4,
    )
    assert len({start, *map(int, seen)}) >= 4, seen  # several frames while playing
    assert page.locator("[data-testid='stApp']").get_attribute("data-test-script-state") == "notRunning"
    player.locator("#pause").click()
    stopped = frame_of(player)
    page.wait_for_timeout(
        700
    )  # a fixed wait on purpose: no frame may change in it (a playing player at 100 ms a frame would move 7)
    assert frame_of(player) == stopped and player.locator("#anim").get_attribute("data-playing") == "0"
    player.locator("#step").click()
    assert frame_of(player) == (stopped + 1) % (28 * 28)
    screenshot(page, "anatomy_untrained")

    # a clicked unit: the top-left cell of the picker (3a·b2, 28×28) moves the chain to (0, 0)
    point = page.locator(".gnet-unit-picker rect[data-r='0'][data-c='0']")
    point.wait_for(timeout=30_000)
    assert page.locator(".gnet-unit-picker rect[data-r]").count() == 28 * 28
    ui.click(page, point, until=page.get_by_text(re.compile(r"How 3a·b2 \(0, 0\), channel")))
    body = page.inner_text("body")
    assert re.search(r"Unit: 3a·b2 channel \d+ at \(0, 0\)", body)
    assert_no_exception(page)
    screenshot(page, "anatomy_click")
