"""The browser tests cannot be skipped silently where they are required.

`.ci/run` stops with a message when chromium is missing and cannot be installed, and it tells the
suite (GNET_REQUIRE_BROWSER=1) to fail, not skip, a browser test without a browser. The script runs
here for real under bash, with a PATH of stand-ins: nothing is installed and no venv is made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.appserver import ROOT
from tests.conftest import chromium_or_skip


def stand_ins(tmp_path: Path, uid: int, chromium: bool) -> Path:
    """A PATH folder: `id` says uid, apt-get records its call and fails (no network), python3 prints what
    the suite would be started with and exits 3 (so no venv is made), chromium exists only if asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "id": f"echo {uid}",
        "apt-get": f"echo apt-get >> {tmp_path / 'calls'}; exit 100",
        "python3": "echo GNET_REQUIRE_BROWSER=${GNET_REQUIRE_BROWSER:-unset}; exit 3",
    }
    if chromium:
        scripts["chromium"] = "exit 0"
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    os.symlink(shutil.which("dirname"), bin_dir / "dirname")
    return bin_dir


def ci_run(bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("bash"), str(ROOT / ".ci" / "run")],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("uid", [1000, 0])
def test_ci_run_stops_when_chromium_is_missing(tmp_path, uid):
    p = ci_run(stand_ins(tmp_path, uid, chromium=False))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "chromium is missing" in p.stderr and "browser tests cannot run" in p.stderr
    assert "GNET_REQUIRE_BROWSER" not in p.stdout  # the suite never started
    # as root it tried to install chromium first; as another user it could not
    assert (tmp_path / "calls").exists() == (uid == 0)


def test_ci_run_requires_the_browser_tests_of_the_suite(tmp_path):
    p = ci_run(stand_ins(tmp_path, 1000, chromium=True))
    assert p.returncode == 3 and "GNET_REQUIRE_BROWSER=1" in p.stdout, p.stdout + p.stderr


def test_browser_fixture_fails_instead_of_skipping_where_required(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GNET_REQUIRE_BROWSER", raising=False)
    # pytest's outcomes are BaseExceptions: catch them all here, so that a skip where a failure is due
    # fails this test instead of skipping it
    with pytest.raises(BaseException) as outcome:
        chromium_or_skip()
    assert outcome.type is pytest.skip.Exception
    for var in ("GNET_REQUIRE_BROWSER", "CI"):
        with monkeypatch.context() as m:
            m.setenv(var, "1")
            with pytest.raises(BaseException) as outcome:
                chromium_or_skip()
            assert outcome.type is pytest.fail.Exception and "chromium is required" in str(outcome.value), var
