"""Atomic writes (checkpoints, run files): the temp file sits next to the target (os.replace is atomic only
within one file system) under a name the trainer's start-up clean-up (`.*.tmp`) finds, the data is
fsynced before the rename, and a failed write leaves the old file and no temp file behind."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

from gnet import checkpoints, runs
from gnet.checkpoints import atomic_write_bytes


def spy_replace(monkeypatch) -> list[tuple[Path, Path]]:
    calls: list[tuple[Path, Path]] = []
    real = os.replace

    def replace(src, dst):
        calls.append((Path(src), Path(dst)))
        real(src, dst)

    monkeypatch.setattr(checkpoints.os, "replace", replace)
    return calls


@pytest.mark.parametrize("write", ["bytes", "json"])
def test_temp_file_is_a_hidden_sibling_and_synced_before_the_rename(tmp_path, monkeypatch, write):
    calls = spy_replace(monkeypatch)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(checkpoints.os, "fsync", lambda fd: (synced.append(len(calls)), real_fsync(fd)))
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    if write == "bytes":
        atomic_write_bytes(target, b"new content")
        assert target.read_bytes() == b"new content"
    else:
        runs.write_json(target, {"a": 1})
        assert runs.read_json(target) == {"a": 1}
    [(src, dst)] = calls
    assert dst == target and src.parent == target.parent
    assert src.name.startswith(".last.pt.") and fnmatch.fnmatch(src.name, ".*.tmp")
    assert synced == [0]  # one fsync, before the rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "status.json"
    target.write_bytes(b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
