"""The online first run in headless Chromium: a real app server whose weights mirror is a
throttled HTTP server on 127.0.0.1 (tests/loopback.py). The page shows the download's
progress, stays usable, and switches to the pretrained network by itself once
the verified file is in place (no click, no reload). Downloads are switched on for this
server only (tests/appserver.py switches them off for the shared one)."""

from __future__ import annotations

import pytest

from gnet import pretrained
from tests.appserver import app_server as start_app_server
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui
from tests.loopback import FileServer, sha256, torchvision_weights_bytes

pytestmark = pytest.mark.e2e

WEIGHTS_PATH = f"/weights/{pretrained.WEIGHTS_FILE}"


@pytest.fixture
def mirror():
    s = FileServer()
    yield s
    s.close()


def test_first_run_online_shows_progress_and_switches_by_itself(browser, mirror, tmp_path):
    blob = torchvision_weights_bytes()
    served = mirror.add(WEIGHTS_PATH, blob, rate=8e6, pause_at=len(blob) // 2)  # ~8 MB/s, then a pause
    env = {
        "GNET_OFFLINE": "",
        "GNET_WEIGHTS_URL": mirror.url(WEIGHTS_PATH),
        "GNET_WEIGHTS_SHA256": sha256(blob),
        "GNET_DOWNLOAD_STALL_S": "600",
    }  # the test's pause must not read as a stalled connection
    with start_app_server(tmp_path, extra_env=env) as server:
        # One browser session (sessions sharing one download: tests/test_downloads.py, 8 at once).
        # generous timeouts: the suite shares 2 cores with the server
        with ui.new_page(browser, height=2600, timeout_ms=120_000) as page:
            ui.goto(page, server.url)  # the entry page first (see ui.open_app); then no wait for an idle app:
            page.goto(server.url + "/feature_maps", wait_until="domcontentloaded")  # the download starts at once
            page.get_by_text("Downloading the pretrained GoogLeNet weights").wait_for()
            assert served.paused.wait(60)
            page.get_by_text(f"of {len(blob) / 1e6:.1f} MB").first.wait_for()  # the bar's numbers update
            page.get_by_text("Layer 3a: 256 channels").first.wait_for()  # meanwhile the stand-in network works
            body = page.inner_text("body")
            assert "UNTRAINED" in body and "switches to the pretrained network by itself" in body
            assert page.get_by_role("button", name="Retry download").count() == 0
            assert str(tmp_path) not in body  # no server path on the page
            assert_no_exception(page)
            ui.wait_idle(page)  # between two polls of the progress fragment
            screenshot(page, "download_in_progress")

            served.release.set()  # the rest of the file; nobody touches the pages from here on
            page.get_by_text("torchvision GoogLeNet, ImageNet weights (IMAGENET1K_V1)").wait_for(timeout=180_000)
            page.get_by_text("Layer 3a: 256 channels").first.wait_for()
            ui.wait_idle(page)
            body = page.inner_text("body")
            assert "UNTRAINED" not in body and "Downloading the pretrained" not in body
            assert page.locator("[data-testid='stProgress']").count() == 0
            assert_no_exception(page)
            screenshot(page, "download_switched_to_pretrained")
            assert mirror.requests[WEIGHTS_PATH] == 1
            assert (tmp_path / "torch" / "hub" / "checkpoints" / pretrained.WEIGHTS_FILE).read_bytes() == blob
