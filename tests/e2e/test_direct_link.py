"""A fresh server's first visitor who opens a sub-page by its link gets the app's
real navigation (app.py's st.navigation), not Streamlit's folder mode."""

import pytest

from tests.appserver import app_server
from tests.conftest import assert_no_exception, screenshot
from tests.e2e import streamlit_ui as ui

pytestmark = pytest.mark.e2e


def test_first_visit_straight_to_a_sub_page(tmp_path, page):
    with app_server(tmp_path) as server:
        ui.goto(page, f"{server.url}/network_explorer")
        page.get_by_role("heading", name="Network Explorer").first.wait_for()
        sidebar = page.locator("[data-testid='stSidebar']")
        nav = sidebar.inner_text()
        for title in ("Home", "Block Designer", "Network Explorer", "Feature Maps", "Training"):
            assert title in nav
        # Folder mode would list the helper module and the entry script as pages.
        assert "\nui\n" not in f"\n{nav}\n" and "\napp\n" not in f"\n{nav}\n"
        assert "Compute device" in nav
        assert_no_exception(page)
        screenshot(page, "direct_link_network_explorer")
