"""Shared fixtures. The e2e ones start the real app (`streamlit run app.py`) and
drive it in Debian's headless Chromium through Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.appserver import CHROMIUM_ARGS, ROOT
from tests.appserver import app_server as start_app_server

ARTIFACTS = ROOT / "tests" / "artifacts"

# Tiny networks run faster on one thread, and the suite shares 2 cores with the app
# server and Chromium; subprocesses (the app, training runs) keep their own defaults.
torch.set_num_threads(1)
# Hypothesis keeps its example database out of the source tree.
settings.register_profile("gnet", database=DirectoryBasedExampleDatabase(str(ARTIFACTS / ".hypothesis")))
settings.load_profile("gnet")


def chromium_or_skip() -> str:
    """Debian's chromium. Without it a browser test skips on a developer's machine, but fails where the
    browser tests are required: GNET_REQUIRE_BROWSER=1 (.ci/run sets it) or CI."""
    chromium = shutil.which("chromium")
    if chromium is None:
        required = bool(os.environ.get("GNET_REQUIRE_BROWSER") or os.environ.get("CI"))
        if required:
            pytest.fail("Debian's chromium is required here (GNET_REQUIRE_BROWSER/CI is set): apt-get install chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return chromium


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app on a free loopback port, with its own runs root and an empty torch hub cache."""
    with start_app_server(tmp_path_factory.mktemp("app_home")) as server:
        yield server.url


@pytest.fixture(scope="session")
def browser():
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=chromium,
            args=CHROMIUM_ARGS,
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = ctx.new_page()
    p.set_default_timeout(30_000)
    yield p
    ctx.close()


def wait_for_app(page) -> None:
    """Wait until Streamlit has run the script to the end (the app root's script state,
    which starts as "initial", reads "notRunning"; no running-status widget)."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(300)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_exception(page) -> None:
    """No Streamlit exception box, and app.py's safety net did not catch one either."""
    from pages.ui import PAGE_FAILED

    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]
    assert PAGE_FAILED.split(".")[0] not in page.inner_text("body")
