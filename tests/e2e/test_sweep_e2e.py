"""Browser: start a small sweep from the Network Explorer and see its accuracy-vs-cost chart and table fill in.

Its own app server (own runs root), so the Training e2e test's "No runs yet" still holds."""

from __future__ import annotations

import pytest

from gnet import runs
from tests.appserver import app_server as start_app_server
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e


def test_sweep_starts_and_charts_accuracy_against_cost(browser, tmp_path):
    with start_app_server(tmp_path, {"OMP_NUM_THREADS": "1"}) as server:
        root = tmp_path / "runs"
        with ui.new_page(browser, height=3200) as page:  # the server's exit stops the runs and the scheduler
            _sweep(page, server.url, root)


def _sweep(page, url: str, root) -> None:
    ui.open_app(page, url, "/network_explorer")
    ui.open_expander(page, "Sweep: train design variants")
    ui.choose(page, "Base network", "mini")
    for label, value in (
        ("Epochs", 1),
        ("Image size (0 = the network's)", 12),
        ("Training images (synthetic; 0 = default)", 100),
        ("Runs at once", 2),
        ("Sweep name", "e2e-sweep"),
    ):
        ui.fill(page, label, value, commit="Tab")  # a form field commits on blur; Enter must not start runs
    ui.button(page, "Start sweep", until=page.get_by_text("Started sweep e2e-sweep"))
    # The fragment polls the runs' files: the chart appears once a variant has finished its epoch.
    ui.wait_text(page, "Test accuracy vs mult-adds", timeout_ms=180_000)
    ui.wait_text(page, "Test accuracy vs parameters", timeout_ms=10_000)
    ui.wait_text(page, "3/3 finished", timeout_ms=180_000)
    ui.wait_idle(page)
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
