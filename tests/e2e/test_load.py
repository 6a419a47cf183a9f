"""Issue 6 load test in the suite: 16 concurrent browser sessions on loopback (bench/load.py)."""

import asyncio
import importlib.util
import shutil

import pytest

from tests.appserver import ROOT

pytestmark = pytest.mark.e2e


def test_sixteen_concurrent_sessions_get_their_own_correct_answers(capsys):
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed")
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    code = asyncio.run(load.run(16))
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    assert "errors: 0; activations differing from a lone session: 0; wrong block shapes: 0" in out
