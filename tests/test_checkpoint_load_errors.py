"""gnet.checkpoints' one torch-file loader: the size cap at its boundary, the load options it insists on,
and the message for each kind of failure (the user reads it on the page)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from gnet import checkpoints
from gnet.checkpoints import MAX_CHECKPOINT_BYTES, CheckpointError, describe_load_failure, torch_load_safely


def sparse_zip_like(path: Path, size: int) -> Path:
    """A file of exactly `size` bytes that starts like a zip (what torch.save writes), without using the disk."""
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04")
        f.truncate(size)
    return path


def test_size_cap_is_2_gb_exactly(tmp_path):
    with pytest.raises(CheckpointError) as over:
        torch_load_safely(sparse_zip_like(tmp_path / "over.pt", MAX_CHECKPOINT_BYTES + 1))
    assert str(over.value) == "the file is larger than 2 GB; a GoogLeNet checkpoint is well under 200 MB"
    with pytest.raises(CheckpointError) as at:  # at the cap: read, and refused only as not a torch file
        torch_load_safely(sparse_zip_like(tmp_path / "at.pt", MAX_CHECKPOINT_BYTES))
    assert "larger than" not in str(at.value) and "not a readable PyTorch file" in str(at.value)


def test_loads_on_the_cpu_with_weights_only_whatever_torchs_defaults(tmp_path, monkeypatch):
    """Explicit options: a CUDA-saved checkpoint must open on a CPU-only server, and weights_only must not
    depend on the installed torch's default (False before torch 2.6)."""
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, path)
    seen: list[dict] = []
    real = torch.load
    monkeypatch.setattr(checkpoints.torch, "load", lambda *a, **kw: (seen.append(kw), real(*a, **kw))[1])
    assert torch.equal(torch_load_safely(path)["w"], torch.ones(2))
    assert seen == [{"map_location": "cpu", "weights_only": True}]


@pytest.mark.parametrize("error,message", [
    (pickle.UnpicklingError("Weights only load failed.\nUnsupported global: GLOBAL os.system"),
     "refused to load c.pt: it contains Python objects other than tensors and plain data "
     "(a checkpoint must load with weights_only=True, so nothing in it can run code)."),
    (pickle.UnpicklingError("invalid load key, 'x'."),
     "c.pt is not a readable PyTorch file (truncated or corrupt?): invalid load key, 'x'.."),
    (RuntimeError("Unsupported global in a RuntimeError is still just a corrupt file"),
     "c.pt is not a readable PyTorch file (truncated or corrupt?): "
     "Unsupported global in a RuntimeError is still just a corrupt file."),
    (zipfile.BadZipFile("first line\nsecond line"),
     "c.pt is not a readable PyTorch file (truncated or corrupt?): first line."),
    (EOFError(), "c.pt is not a readable PyTorch file (truncated or corrupt?): EOFError."),
    (RuntimeError("x" * 300), f"c.pt is not a readable PyTorch file (truncated or corrupt?): {'x' * 200}."),
    (TypeError("odd"), "c.pt could not be loaded: TypeError."),
])
def test_each_failure_has_its_own_message(error, message):
    assert describe_load_failure(Path("/secret/dir/c.pt"), error) == message
