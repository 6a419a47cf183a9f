"""Shared fixtures. The e2e ones start the real app (`streamlit run app.py`) and
drive it in Debian's headless Chromium through Playwright (no browser download)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase
from xdist.scheduler import LoadScopeScheduling

from tests.appserver import CHROMIUM_ARGS, ROOT, AppServer
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


REPEAT_ENV = "GNET_E2E_REPEAT"


def e2e_repeats() -> int:
    """How many times each browser test runs (stress mode); 1 unless GNET_E2E_REPEAT says more."""
    raw = os.environ.get(REPEAT_ENV, "1").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"{REPEAT_ENV} must be a whole number from 1, not {raw!r}")
    return int(raw)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Stress mode: every e2e-marked test once per repeat (ids like test_x[repeat2of5])."""
    n = e2e_repeats()
    if n > 1 and metafunc.definition.get_closest_marker("e2e") is not None:
        if "e2e_repeat" not in metafunc.fixturenames:
            metafunc.fixturenames.append("e2e_repeat")
        metafunc.parametrize("e2e_repeat", range(n), ids=[f"repeat{i + 1}of{n}" for i in range(n)])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stress mode runs the suite's pass 1, then pass 2, ...: each pass gets a fresh shared app server, so a
    test that needs an untouched server (no runs yet, no cached pictures) sees one in every pass."""
    if e2e_repeats() > 1:
        items.sort(key=_repeat_of)  # stable: each pass keeps the collection's order


class BrowserTestsTogether(LoadScopeScheduling):
    """pytest-xdist's scheduler for .ci/run's `-n 2`: the browser tests (tests/e2e) are one unit, run in order by
    one worker, as without xdist (they share one app server, and two Chromiums beside the 16-session load test
    starved each other); every other test goes to whichever worker is free. (xdist's own `--dist loadgroup`
    marks a group in the test's node id, which pytest 9.2 no longer lets a plugin change.)"""

    def _split_scope(self, nodeid: str) -> str:
        return "browser" if nodeid.startswith("e2e/") else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> BrowserTestsTogether:
    return BrowserTestsTogether(config, log)


def _repeat_of(item: pytest.Item) -> int:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("e2e_repeat", 0) if callspec is not None else 0


@pytest.fixture
def e2e_repeat() -> int:
    """The pass of the stress mode (0 in a normal run; parametrized by pytest_generate_tests)."""
    return 0


class _SharedServers:
    """One app server at a time, for the current pass: the next pass's request closes the last pass's server."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp = tmp_path_factory
        self.stack = contextlib.ExitStack()
        self.repeat: int | None = None
        self.server: AppServer | None = None

    def get(self, repeat: int) -> AppServer:
        if self.server is None or repeat != self.repeat:
            self.stack.close()
            self.server = self.stack.enter_context(start_app_server(self.tmp.mktemp(f"app_home{repeat}")))
            self.repeat = repeat
        return self.server


@pytest.fixture(scope="session")
def _shared_servers(tmp_path_factory):
    servers = _SharedServers(tmp_path_factory)
    with servers.stack:
        yield servers


@pytest.fixture
def app_server(_shared_servers, e2e_repeat) -> str:
    """The real app's URL on a free loopback port, with its own runs root and an empty torch hub cache (one server
    per pass of the stress mode, shared by that pass's tests)."""
    return _shared_servers.get(e2e_repeat).url


@pytest.fixture
def app_home(_shared_servers, e2e_repeat) -> Path:
    """The app_server's home: its runs root is home/runs."""
    return _shared_servers.get(e2e_repeat).home


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
    """A page in its own context; tests/e2e/streamlit_ui.py watches its websocket from the first script on."""
    from tests.e2e import streamlit_ui

    with streamlit_ui.new_page(browser) as p:
        yield p


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_exception(page) -> None:
    """No Streamlit exception box, and app.py's safety net did not catch one either."""
    from ui.common import PAGE_FAILED

    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]
    assert PAGE_FAILED.split(".")[0] not in page.inner_text("body")
