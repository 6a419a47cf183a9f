"""Browser: start a tiny run on the Training page and watch its progress and curves update live."""

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


def test_training_run_updates_live(app_server, page):
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
    _set_number(page, "Image size (pixels)", 12)
    _set_number(page, "Epochs", 3)
    _set_number(page, "Batch size", 25)
    _set_number(page, "Training images (0 = all)", 200)
    name = page.get_by_label("Run name", exact=True)
    name.fill("e2e-run")
    name.press("Enter")
    wait_for_app(page)
    screenshot(page, "training_form")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started run e2e-run").wait_for(timeout=30_000)

    # The fragment polls the run's files: the progress text must change while we watch.
    seen: list[str] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        text = _progress_text(page)
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        if len(seen) >= 2 and page.get_by_text("train (per step)").count() >= 1:  # the live curves' legend
            break
        page.wait_for_timeout(300)
    assert len(seen) >= 2, f"progress never updated: {seen}"
    assert re.search(r"step \d+/\d+", seen[-1])
    screenshot(page, "training_live")

    page.get_by_text("finished 3 epoch(s)").wait_for(timeout=120_000)
    page.wait_for_timeout(2500)  # one more poll: predictions of the final checkpoint
    body = page.inner_text("body")
    assert "epoch 3/3" in body and "true:" in body and "Compare runs" in body
    assert "Compute device" in body  # run through app.py's navigation
    assert page.locator(".js-plotly-plot").count() >= 2  # live curves + comparison
    assert_no_exception(page)
    screenshot(page, "training_finished")

    # "Open in Feature Maps" hands the run's checkpoint to the Feature Maps page.
    page.get_by_role("button", name="Open in Feature Maps").click()
    page.get_by_role("heading", name="Feature Maps").wait_for(timeout=60_000)
    page.wait_for_url(re.compile(r".*/feature_maps$"))
    wait_for_app(page)
    assert "e2e-run" in page.inner_text("body")  # the checkpoint path names the run
    assert_no_exception(page)
    screenshot(page, "training_open_in_feature_maps")
