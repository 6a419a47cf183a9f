"""The shipped server configuration is safe by default (issue 6)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_listens_on_localhost_only():
    assert CONFIG["server"]["address"] == "localhost"


def test_xsrf_and_cors_protection_on():
    assert CONFIG["server"]["enableXsrfProtection"] is True
    assert CONFIG["server"]["enableCORS"] is True


def test_upload_limit_is_25_mb_everywhere():
    """The server's cap, the image loader's own cap and the README's figure are one number: 25 MB."""
    from gnet.images import MAX_BYTES

    assert CONFIG["server"]["maxUploadSize"] == 25  # Streamlit counts MB as 2**20 bytes
    assert MAX_BYTES == 25 * 2**20
    assert "uploads are capped at 25 MB" in (ROOT / "README.md").read_text()


def test_no_tracebacks_in_the_browser():
    assert CONFIG["client"]["showErrorDetails"] == "none"


def test_streamlit_accepts_the_config():
    """Streamlit itself parses the file and reads back the same values."""
    from streamlit import config

    config.get_config_options(force_reparse=True)
    assert config.get_option("server.enableXsrfProtection") is True
    assert config.get_option("client.showErrorDetails") == "none"


def test_page_failure_net_shows_no_traceback():
    """app.py's safety net: a page bug is logged and answered with a plain message."""
    from streamlit.testing.v1 import AppTest

    script = (
        "import streamlit as st\n"
        "from ui.common import run_page\n"
        "def broken():\n"
        "    raise RuntimeError('secret /etc/path detail')\n"
        "run_page(st.navigation([st.Page(broken, title='Broken')]))\n"
    )
    at = AppTest.from_string(script, default_timeout=30).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "Something went wrong" in shown and "/etc/path" not in shown


def test_app_routes_every_page_through_the_safety_net(monkeypatch):
    """app.py itself (not a copy of it): a page that raises shows the plain message, no exception."""
    import ast

    from streamlit.testing.v1 import AppTest

    import ui.common

    def broken() -> None:  # every page calls this first
        raise RuntimeError("secret /etc/path detail")

    monkeypatch.setattr(ui.common, "use_app_navigation", broken)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    shown = " ".join(e.value for e in at.error)
    assert ui.common.PAGE_FAILED in shown and "/etc/path" not in shown
    # and statically: the one page app.py runs goes through run_page, nothing runs a page directly
    tree = ast.parse((ROOT / "app.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert not [n for n in calls if isinstance(n.func, ast.Attribute) and n.func.attr == "run"], (
        "app.py runs a page directly; run it with run_page(page)"
    )
    assert [ast.unparse(n) for n in calls if isinstance(n.func, ast.Name) and n.func.id == "run_page"] == [
        "run_page(page)"
    ]
