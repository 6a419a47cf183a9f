"""Browser: start a small sweep from the Network Explorer and see its accuracy-vs-cost chart and table fill in.

Its own app server (own runs root), so the Training e2e test's "No runs yet" still holds."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from gnet import runs, sweeps
from tests.appserver import app_server as start_app_server
from tests.conftest import assert_no_exception, screenshot, wait_for_app

pytestmark = pytest.mark.e2e


def _set(page, label: str, value: object) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")  # a form field commits on blur
    page.wait_for_timeout(200)


def _stop_everything(root) -> None:
    for sweep in sweeps.list_sweeps(root):
        pid = (runs.read_json(sweep.path / sweeps.SCHEDULER_FILE) or {}).get("pid")
        if isinstance(pid, int) and runs.pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for info in runs.list_runs(root):
        pid = info.status.get("pid")
        if info.active and isinstance(pid, int) and runs.pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_sweep_starts_and_charts_accuracy_against_cost(browser, tmp_path):
    with start_app_server(tmp_path, {"OMP_NUM_THREADS": "1"}) as server:
        root = tmp_path / "runs"
        ctx = browser.new_context(viewport={"width": 1400, "height": 3200})
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        try:
            page.goto(server.url)
            wait_for_app(page)
            page.goto(server.url + "/network_explorer")
            wait_for_app(page)
            page.get_by_text("Sweep: train design variants").click()
            page.get_by_label("Base network", exact=True).click()
            page.get_by_role("option", name="mini", exact=True).click()
            _set(page, "Epochs", 1)
            _set(page, "Image size (0 = the network's)", 12)
            _set(page, "Training images (synthetic; 0 = default)", 100)
            _set(page, "Runs at once", 2)
            name = page.get_by_label("Sweep name", exact=True)
            name.fill("e2e-sweep")
            page.get_by_role("button", name="Start sweep").click()
            page.get_by_text("Started sweep e2e-sweep").wait_for(timeout=60_000)
            # The fragment polls the runs' files: the chart appears once a variant has finished its epoch.
            page.get_by_text("Test accuracy vs mult-adds").first.wait_for(timeout=180_000)
            page.get_by_text("Test accuracy vs parameters").first.wait_for(timeout=10_000)
            deadline = time.time() + 180
            while page.get_by_text("3/3 finished").count() == 0 and time.time() < deadline:
                page.wait_for_timeout(500)
            wait_for_app(page)
            assert_no_exception(page)
            page.get_by_text("Test accuracy vs mult-adds").first.scroll_into_view_if_needed()
            screenshot(page, "sweep_chart")
            assert page.get_by_text("3/3 finished").count() == 1, page.inner_text("body")[-1500:]
            assert page.locator(".js-plotly-plot").count() >= 2
            # every variant is an ordinary run, listed under the runs root as SWEEP/VARIANT
            assert {r.name for r in runs.list_runs(root)} == {
                "e2e-sweep/base",
                "e2e-sweep/no-reduce",
                "e2e-sweep/factorize",
            }
            assert all(r.state == "finished" for r in runs.list_runs(root))
        finally:
            ctx.close()
            _stop_everything(root)
