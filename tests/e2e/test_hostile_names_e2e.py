"""Browser: a checkpoint whose class names and network name are markup that points at a loopback HTTP server the
test runs (images, raw HTML, links, autolinks, a blank line before an image) and a run whose status carries more of
it. The Training, Feature Maps and Explain pages show them, as text: the browser makes no request to that server,
and the page holds no image or link of it."""

from __future__ import annotations

import pytest

from tests.appserver import app_server
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui
from tests.loopback import FileServer
from tests.markup import MARKER, hostile_run, payloads
from ui.common import WORD_JOINER

pytestmark = pytest.mark.e2e


@pytest.fixture
def bait():
    server = FileServer()
    for name in ("md.png", "raw.png", "a", "nl.png", "bs.png", "auto"):
        server.add(f"/{name}", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    yield server
    server.close()


def _no_contact(page, bait: FileServer, host: str) -> None:
    page.wait_for_timeout(1500)  # time for an image a rerun would have added to be fetched
    assert sum(bait.requests.values()) == 0, dict(bait.requests)
    images = page.locator("img").evaluate_all("els => els.map(e => e.src)")
    links = page.locator("a").evaluate_all("els => els.map(e => e.href)")
    assert not [u for u in images + links if host in u or u.startswith("javascript:")], (images, links)
    assert page.locator("[data-testid='stMain'] svg[onload]").count() == 0


def test_hostile_class_names_make_no_request(tmp_path, page, bait):
    host = bait.base.removeprefix("http://")
    names = payloads(host)
    hostile_run(tmp_path / "runs", "hostile", names)
    with app_server(tmp_path, {"OMP_NUM_THREADS": "1"}) as server:
        ui.open_app(page, server.url, "/training")
        ui.wait_text(page, "Latest checkpoint's predictions on test images")
        body = page.inner_text("[data-testid='stMain']").replace(WORD_JOINER, "")  # invisible: breaks autolinks
        assert f"{MARKER}![t](http://{host}/md.png)" in body  # shown as typed
        assert f"{MARKER}<img src=http://{host}/raw.png>" in body
        _no_contact(page, bait, host)
        screenshot(page, "hostile_names_training")

        ui.goto(page, server.url + "/feature_maps")
        ui.choose_radio(page, "Network", "Training checkpoint")
        ui.wait_text(page, "Top-5 predictions")
        assert MARKER in page.inner_text("[data-testid='stMain']")
        _no_contact(page, bait, host)

        ui.goto(page, server.url + "/explain")
        ui.choose_radio(page, "Network", "Training checkpoint")
        ui.wait_text(page, "Where the evidence for")
        assert MARKER in page.inner_text("[data-testid='stMain']")
        _no_contact(page, bait, host)
        assert_no_exception(page)
        screenshot(page, "hostile_names_explain")
