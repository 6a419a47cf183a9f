import pytest

from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e


def test_home_renders_and_links_pages(app_server, page):
    ui.goto(page, app_server)
    page.get_by_role("heading", name="Inception Explorer").wait_for()
    page.get_by_text("Why the 1×1 convolutions").wait_for()
    body = page.inner_text("body")
    assert "H×W×(C1+C2+C3+C4)" in body
    assert "120,422,400" in body and "12,443,648" in body
    for title in ("Block Designer", "Network Explorer", "Feature Maps", "Training"):
        assert page.get_by_role("link", name=title).count() >= 1
    assert "Compute device" in body
    assert_no_exception(page)
    screenshot(page, "home")
