"""Browser: start a run on the Training page, watch its progress and curves update live, stop and resume it."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.appserver import stop_children
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e


def _progress_text(page) -> str:
    bar = page.locator("[data-testid='stProgress']")
    return bar.first.inner_text() if bar.count() else ""


def _watch_progress(page, changes: int, timeout_s: float = 240) -> list[str]:
    """The progress texts seen while the fragment polls, until `changes` distinct ones and the live curves show."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < changes and time.monotonic() < deadline:
        try:  # until the bar shows a text other than the last one seen
            page.wait_for_function(
                "prev => { const b = document.querySelector(\"[data-testid='stProgress']\");"
                " const t = b ? b.innerText : ''; return t !== '' && t !== prev; }",
                arg=seen[-1] if seen else "",
                timeout=max(1.0, deadline - time.monotonic()) * 1000,
            )
        except PlaywrightError:
            break
        text = _progress_text(page)
        if text and (not seen or text != seen[-1]):
            seen.append(text)
    ui.wait_text(page, "train (per step)", timeout_ms=max(1.0, deadline - time.monotonic()) * 1000)  # the legend
    return seen


def _step(text: str) -> int:
    return int(re.search(r"step ([\d,]+)/", text).group(1).replace(",", ""))


@pytest.mark.timeout(900)  # a training run beside the suite's app server and browser, on 2 shared cores
def test_training_run_updates_live_stops_and_resumes(app_server, app_home, page):
    try:
        _train_stop_resume(app_server, page)
    finally:  # a failure half-way must not leave its 1000-epoch run on the shared cores
        stop_children(app_home)


def _train_stop_resume(app_server: str, page) -> None:
    page.set_viewport_size({"width": 1400, "height": 2600})  # Streamlit scrolls inside the app: show it all
    # A fresh server treats pages/ as Streamlit's old multipage folder until app.py has called
    # st.navigation once: load the entry page first (as the other e2e tests do).
    ui.open_app(page, app_server, "/training")
    page.get_by_role("heading", name="Training").wait_for()
    page.get_by_text("No runs yet").wait_for()
    ui.wait_idle(page)
    # A run far longer than the test watches it (1000 epochs), so that the live updates are seen on a machine
    # of any speed; the test stops it, resumes it and stops it again.
    ui.fill(page, "Image size (pixels)", 12)
    ui.fill(page, "Epochs", 1000)
    ui.fill(page, "Batch size", 25)
    ui.fill(page, "Training images (0 = all)", 400)
    ui.fill(page, "Run name", "e2e-run")
    screenshot(page, "training_form")
    ui.button(page, "Start training", until=page.get_by_text("Started run e2e-run"))

    # The fragment polls the run's files: the progress text must change while we watch.
    seen = _watch_progress(page, changes=2)
    assert len(seen) >= 2, f"progress never updated: {seen}"
    assert _step(seen[-1]) > _step(seen[0]), seen
    assert "/1000" in seen[-1]
    # The ETA appears once the run has a steady pace (the status after the start-up window).
    page.get_by_text(re.compile(r"step [\d,]+/16,000 · ETA \d+")).wait_for(timeout=180_000)
    screenshot(page, "training_live")
    # Let one epoch finish first, so that the stopped run has a test accuracy to compare.
    page.wait_for_function("() => /epoch ([2-9]|\\d\\d+)\\/1000/.test(document.body.innerText)", timeout=240_000)

    stopped = page.get_by_text(re.compile(r"stopped at step [\d,]+ of [\d,]+; resume continues"))
    ui.button(page, "Stop", until=stopped)
    page.get_by_text("true:").first.wait_for(timeout=60_000)  # predictions of the stop's checkpoint
    # the checkpoint's test images, each decoded (they load lazily: scroll to each)
    assert ui.images_decoded(page, page.locator("[data-testid='stImage'] img")) >= 8
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
    ui.select_tab(page, "Lines per block")
    page.get_by_text("per block, by branch").first.wait_for()
    screenshot(page, "training_telemetry")

    # Resume continues from the stop's step, live again.
    ui.button(page, "Resume")
    seen = _watch_progress(page, changes=2)
    assert len(seen) >= 2 and _step(seen[-1]) > stopped_at, (stopped_at, seen)
    ui.button(page, "Stop", until=page.get_by_text(re.compile(r"stopped at step [\d,]+ of")))
    assert_no_exception(page)

    # "Open in Feature Maps" hands the run's checkpoint to the Feature Maps page.
    ui.button(page, "Open in Feature Maps", until=page.get_by_role("heading", name="Feature Maps"))
    page.wait_for_url(re.compile(r".*/feature_maps$"))
    ui.wait_idle(page)
    assert "e2e-run" in page.inner_text("body")  # the checkpoint path names the run
    assert_no_exception(page)
    screenshot(page, "training_open_in_feature_maps")
