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


def test_upload_limit_is_small():
    assert 1 <= CONFIG["server"]["maxUploadSize"] <= 50


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
        "from pages.ui import run_page\n"
        "def broken():\n"
        "    raise RuntimeError('secret /etc/path detail')\n"
        "run_page(st.navigation([st.Page(broken, title='Broken')]))\n"
    )
    at = AppTest.from_string(script, default_timeout=30).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "Something went wrong" in shown and "/etc/path" not in shown
