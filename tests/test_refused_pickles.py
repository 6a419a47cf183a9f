"""Real malicious pickles through the real loaders: refused, reported as a refusal, and torch's advice to set
weights_only=False is never passed on (its wording changed across torch releases; the message must not)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gnet.checkpoints import FORMAT, CheckpointError, load_checkpoint, torch_load_safely
from gnet.pretrained import ModelSource, load_model

REFUSED = "it contains Python objects other than tensors and plain data"


class RunsACommand:
    """Unpickling this calls os.system(command): what a hostile checkpoint carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_file(path: Path, marker: Path, legacy: bool = False) -> Path:
    payload = {"format": FORMAT, "spec": {}, "model": {"w": torch.ones(1)}, "classes": RunsACommand(f"touch {marker}")}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
@pytest.mark.parametrize(
    "load",
    [
        torch_load_safely,
        load_checkpoint,
        lambda p: load_model(ModelSource("checkpoint", str(p))),
        lambda p: load_model(ModelSource("weights", str(p))),
    ],
    ids=["torch_load_safely", "load_checkpoint", "checkpoint-source", "weights-source"],
)
def test_a_real_malicious_pickle_is_refused_as_such(tmp_path, load, legacy):
    marker = tmp_path / "ran"
    path = malicious_file(tmp_path / "evil.pt", marker, legacy)
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert not marker.exists()  # nothing ran
    message = str(e.value)
    assert REFUSED in message and message.startswith("refused to load evil.pt")
    assert "False" not in message and "Re-running" not in message


def test_torch_still_refuses_with_weights_only_advice():
    """The premise of the test above: the installed torch's own message carries the advice we must not show."""
    import io
    import pickle

    buf = io.BytesIO()
    torch.save({"x": RunsACommand("true")}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError) as e:
        torch.load(buf, weights_only=True)
    assert "weights_only" in str(e.value) and "False" in str(e.value)
