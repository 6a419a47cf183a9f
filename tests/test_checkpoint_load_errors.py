"""gnet.checkpoints' one torch-file loader: the size cap at its boundary, the load options it insists on,
and the message for each kind of failure (the user reads it on the page)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from gnet import checkpoints
from gnet.checkpoints import (
    FORMAT,
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    checkpoint_from_dict,
    describe_load_failure,
    sniff_torch_file,
    torch_load_safely,
)
from gnet.network import build
from gnet.spec import mini


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


@pytest.mark.parametrize(
    "error,message",
    [
        (
            pickle.UnpicklingError("Weights only load failed.\nUnsupported global: GLOBAL os.system"),
            "refused to load c.pt: it contains Python objects other than tensors and plain data "
            "(a checkpoint must load with weights_only=True, so nothing in it can run code).",
        ),
        (
            pickle.UnpicklingError("invalid load key, 'x'."),
            "c.pt is not a readable PyTorch file (truncated or corrupt?): invalid load key, 'x'..",
        ),
        (
            RuntimeError("Unsupported global in a RuntimeError is still just a corrupt file"),
            "c.pt is not a readable PyTorch file (truncated or corrupt?): "
            "Unsupported global in a RuntimeError is still just a corrupt file.",
        ),
        (
            zipfile.BadZipFile("first line\nsecond line"),
            "c.pt is not a readable PyTorch file (truncated or corrupt?): first line.",
        ),
        (EOFError(), "c.pt is not a readable PyTorch file (truncated or corrupt?): EOFError."),
        (RuntimeError("x" * 300), f"c.pt is not a readable PyTorch file (truncated or corrupt?): {'x' * 200}."),
        (TypeError("odd"), "c.pt could not be loaded: TypeError."),
    ],
)
def test_each_failure_has_its_own_message(error, message):
    assert describe_load_failure(Path("/secret/dir/c.pt"), error) == message


def test_legacy_pickle_torch_files_pass_the_sniff_and_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"w": torch.arange(3)}, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"  # a bare pickle, not a zip
    assert torch.equal(torch_load_safely(path)["w"], torch.arange(3))


def test_unreadable_file_says_why(tmp_path):
    with pytest.raises(CheckpointError) as e:
        sniff_torch_file(tmp_path)  # a directory: open() fails
    assert str(e.value) == f"cannot read {tmp_path.name}: Is a directory"


def raw_checkpoint(**changes) -> dict:
    spec = mini()
    torch.manual_seed(0)
    raw = {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "model": build(spec).state_dict(),
        "classes": [f"c{i}" for i in range(spec.num_classes)],
        "preprocess": {"image_size": [32, 32]},
    }
    return {**raw, **changes}


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"format": "other"}, "this is a PyTorch file but not an Inception Explorer checkpoint (expected format"),
        ({"spec": {"name": "x"}}, "the network spec inside the checkpoint is invalid: "),
        ({"model": {"w": [1.0]}}, "the checkpoint has no model weights"),
        ({"classes": [f"c{i}" for i in range(9)]}, "the checkpoint must name 10 classes, one per output"),
        ({"classes": ["c"] * 9 + [1]}, "the checkpoint must name 10 classes, one per output"),
        ({"classes": "abcdefghij"}, "the checkpoint must name 10 classes, one per output"),  # 10 characters, not a list
        ({"preprocess": None}, "the checkpoint has no preprocessing settings"),
    ],
)
def test_each_broken_part_of_a_checkpoint_is_named(changes, message):
    assert checkpoint_from_dict(raw_checkpoint())  # the unbroken one is accepted
    with pytest.raises(CheckpointError) as e:
        checkpoint_from_dict(raw_checkpoint(**changes))
    assert str(e.value).startswith(message)


def test_weights_that_do_not_fit_their_spec_quote_torchs_first_line():
    ck = checkpoint_from_dict(raw_checkpoint())
    ck.model_state = {k: v for k, v in ck.model_state.items() if not k.startswith("fc.")}
    with pytest.raises(CheckpointError) as e:
        ck.build_model()
    assert str(e.value) == (
        "the weights do not fit the network spec stored with them: Error(s) in loading state_dict for GoogLeNet:"
    )


def test_class_names_are_cut_to_100_characters_and_a_non_dict_extra_is_dropped():
    ck = checkpoint_from_dict(raw_checkpoint(classes=["x" * 150] + [f"c{i}" for i in range(9)], extra=[1, 2]))
    assert ck.classes[0] == "x" * 100 and ck.classes[1] == "c0" and ck.extra == {}
