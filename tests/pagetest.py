"""Helpers shared by the AppTest page tests (Feature Maps, Explain, Atlas)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest


def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache and runs root; downloads off, so the suite never touches the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GNET_OFFLINE", "1")
    monkeypatch.delenv("GNET_WEIGHTS", raising=False)
    return tmp_path


def run_page(page: str, at: AppTest | None, timeout: float) -> AppTest:
    """Run (or rerun) the page and fail on any exception it shows."""
    if at is None:
        at = AppTest.from_file(page, default_timeout=timeout)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest, kind: str) -> str:
    """The elements' markdown with the page's backslash escapes removed (as a browser shows it)."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(e.value) for e in getattr(at, kind)))
