"""Browser: start a run on the Training page, watch its progress and curves update live, stop and resume it."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import assert_no_exception, screenshot, wait_for_app

pytestmark = pytest.mark.e2e


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_for_app(page)


def _progress_text(page) -> str:
    bar = page.locator("[data-testid='stProgress']")
    return bar.first.inner_text() if bar.count() else ""


def _watch_progress(page, changes: int, timeout_s: float = 120) -> list[str]:
    """The progress texts seen while polling, until `changes` distinct ones and the live curves are shown."""
    seen: list[str] = []
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        text = _progress_text(page)
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        if len(seen) >= changes and page.get_by_text("train (per step)").count() >= 1:  # the live curves' legend
            break
        page.wait_for_timeout(300)
    return seen


def _button(page, name: str):
    """The page's own button: Streamlit's status widget has a "Stop" button of its own while a script runs."""
    return page.locator("[data-testid='stMain']").get_by_role("button", name=name, exact=True)


def _step(text: str) -> int:
    return int(re.search(r"step ([\d,]+)/", text).group(1).replace(",", ""))


def test_training_run_updates_live_stops_and_resumes(app_server, page):
    page.set_viewport_size({"width": 1400, "height": 2600})  # Streamlit scrolls inside the app: show it all
    # A fresh server treats pages/ as Streamlit's old multipage folder until app.py has called
    # st.navigation once: load the entry page first (as the other e2e tests do).
    page.goto(app_server)
    wait_for_app(page)
    page.goto(app_server + "/training")
    wait_for_app(page)
    page.get_by_role("heading", name="Training").wait_for()
    page.get_by_text("No runs yet").wait_for()
    wait_for_app(page)
    # A run far longer than the test watches it (1000 epochs), so that the live updates are seen on a machine
    # of any speed; the test stops it, resumes it and stops it again.
    _set_number(page, "Image size (pixels)", 12)
    _set_number(page, "Epochs", 1000)
    _set_number(page, "Batch size", 25)
    _set_number(page, "Training images (0 = all)", 400)
    name = page.get_by_label("Run name", exact=True)
    name.fill("e2e-run")
    name.press("Enter")
    wait_for_app(page)
    screenshot(page, "training_form")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started run e2e-run").wait_for(timeout=30_000)

    # The fragment polls the run's files: the progress text must change while we watch.
    seen = _watch_progress(page, changes=2)
    assert len(seen) >= 2, f"progress never updated: {seen}"
    assert _step(seen[-1]) > _step(seen[0]), seen
    assert "/1000" in seen[-1]
    # The ETA appears once the run has a steady pace (the status after the start-up window).
    page.get_by_text(re.compile(r"step [\d,]+/16,000 · ETA \d+")).wait_for(timeout=60_000)
    screenshot(page, "training_live")
    # Let one epoch finish first, so that the stopped run has a test accuracy to compare.
    page.wait_for_function("() => /epoch ([2-9]|\\d\\d+)\\/1000/.test(document.body.innerText)", timeout=120_000)

    _button(page, "Stop").click()
    page.get_by_text(re.compile(r"stopped at step [\d,]+ of [\d,]+; resume continues")).wait_for(timeout=60_000)
    wait_for_app(page)
    page.get_by_text("true:").first.wait_for(timeout=30_000)  # predictions of the stop's checkpoint
    thumbs = page.locator("[data-testid='stImage'] img")
    assert thumbs.count() >= 8  # the checkpoint's test images, each decoded (they load lazily: scroll to each)
    for i in range(thumbs.count()):
        thumbs.nth(i).scroll_into_view_if_needed()
        page.wait_for_function(
            "e => e.complete && e.naturalWidth > 0", arg=thumbs.nth(i).element_handle(), timeout=30_000
        )
    body = page.inner_text("body")
    stopped_at = _step(_progress_text(page))
    assert stopped_at >= _step(seen[-1])
    assert "Compare runs" in body and "Compute device" in body  # run through app.py's navigation
    assert "No finished epochs yet" not in body
    assert page.locator(".js-plotly-plot").count() >= 2  # curves + comparison
    assert_no_exception(page)
    screenshot(page, "training_stopped")
    # Branch telemetry of the run (recorded at step 1 and every 20 steps): the blocks × branches heatmap,
    # then the lines per block in the next tab.
    page.get_by_text("Branch telemetry").wait_for()
    assert page.locator(".js-plotly-plot .heatmaplayer").count() >= 1
    page.get_by_role("tab", name="Lines per block").click()
    page.get_by_text("per block, by branch").first.wait_for()
    screenshot(page, "training_telemetry")

    # Resume continues from the stop's step, live again.
    _button(page, "Resume").click()
    seen = _watch_progress(page, changes=2)
    assert len(seen) >= 2 and _step(seen[-1]) > stopped_at, (stopped_at, seen)
    _button(page, "Stop").click()
    page.get_by_text(re.compile(r"stopped at step [\d,]+ of")).wait_for(timeout=60_000)
    wait_for_app(page)
    assert_no_exception(page)

    # "Open in Feature Maps" hands the run's checkpoint to the Feature Maps page.
    page.get_by_role("button", name="Open in Feature Maps").click()
    page.get_by_role("heading", name="Feature Maps").wait_for(timeout=60_000)
    page.wait_for_url(re.compile(r".*/feature_maps$"))
    wait_for_app(page)
    assert "e2e-run" in page.inner_text("body")  # the checkpoint path names the run
    assert_no_exception(page)
    screenshot(page, "training_open_in_feature_maps")
