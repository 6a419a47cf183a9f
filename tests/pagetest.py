"""Helpers shared by the AppTest page tests (Feature Maps, Explain, Atlas)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
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


class _TableParser(HTMLParser):
    """The cells of every <table> in an HTML string, as the browser shows them (text only)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _number(text: str) -> object:
    """'12,352' → 12352, '0.5' → 0.5, '' → None; other text stays text."""
    if text == "":
        return None
    if re.fullmatch(r"-?\d{1,3}(,\d{3})*", text):
        return int(text.replace(",", ""))
    if re.fullmatch(r"-?\d[\d,]*\.\d+(e[-+]?\d+)?", text):
        return float(text.replace(",", ""))
    return text


def html_tables(at: AppTest) -> list[pd.DataFrame]:
    """Every table the page shows as HTML (gnet.charts.table_html), read back from the markdown it sent."""
    out = []
    for e in at.markdown:
        if 'class="gnet-table"' not in str(e.value):
            continue
        parser = _TableParser()
        parser.feed(str(e.value))
        for header, *rows in parser.tables:
            out.append(pd.DataFrame([[_number(c) for c in r] for r in rows], columns=header))
    return out


def unit_pickers(at: AppTest) -> dict[str, dict]:
    """The unit pickers (ui/unit_picker.py) by title: the data the browser's grid is drawn from."""
    return {
        data["title"]: data
        for c in at.get("bidi_component")
        if c.proto.component_name == "gnet.unit_picker"
        for data in [json.loads(c.proto.json)]
    }
