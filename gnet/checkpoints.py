"""Project checkpoints: a model's weights together with everything needed to rebuild it.

A checkpoint carries its network spec (a GoogLeNet NetworkSpec or an InceptionV3Spec, told
apart by the spec's "family"), preprocessing and class names (as
nanoGPT puts model arguments in its checkpoint), so it rebuilds its own model.
Files are written atomically (temp file + os.replace) and read with
`torch.load(weights_only=True)`, so a crafted pickle cannot run code.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gnet.analysis import plan_report, validate_network
from gnet.fsio import atomic_write_bytes  # re-exported: train.py and the CLI import it from here
from gnet.spec import NetworkSpec, SpecError
from gnet.v3 import InceptionV3Spec, network_from_dict, v3_plan

FORMAT = "gnet-checkpoint-v1"
MAX_CHECKPOINT_BYTES = 2_000_000_000


class CheckpointError(ValueError):
    """A file is not a usable checkpoint; the message says why and what to do."""


@dataclass
class Checkpoint:
    spec: NetworkSpec | InceptionV3Spec
    model_state: dict[str, torch.Tensor]
    classes: list[str]
    preprocess: dict[str, Any]  # {"image_size": [H, W], "mean": [...], "std": [...], "in_channels": C}
    extra: dict[str, Any] = field(default_factory=dict)  # optimizer state, epoch, step, metrics, rng ...

    def build_model(self) -> torch.nn.Module:
        """The network with these weights, in eval mode, on the CPU."""
        if isinstance(self.spec, InceptionV3Spec):
            from gnet.v3_modules import InceptionV3

            model: torch.nn.Module = InceptionV3(self.spec)
        else:
            from gnet.network import GoogLeNet

            model = GoogLeNet(self.spec)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise CheckpointError(f"the weights do not fit the network spec stored with them: {first}") from None
        return model.eval()


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    import io

    buf = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "spec": ckpt.spec.to_dict(),
            "model": ckpt.model_state,
            "classes": list(ckpt.classes),
            "preprocess": ckpt.preprocess,
            "extra": ckpt.extra,
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and check a project checkpoint; CheckpointError for anything else."""
    return checkpoint_from_dict(torch_load_safely(Path(path)))


def torch_load_safely(path: Path) -> Any:
    """`torch.load(weights_only=True)` on the CPU, with every failure a CheckpointError
    that says what is wrong with the file. The one way this project reads a torch file."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path.name!r}")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError("the file is larger than 2 GB; a GoogLeNet checkpoint is well under 200 MB")
    sniff_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(describe_load_failure(path, e)) from None


def sniff_torch_file(path: Path) -> None:
    """torch.save writes a zip ("PK"); old torch files are a bare pickle (0x80). Anything else
    is refused before torch.load, whose error for e.g. a text file reads like a security refusal."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise CheckpointError(f"cannot read {path.name}: {e.strerror}") from None
    if head != b"PK" and head[:1] != b"\x80":
        raise CheckpointError(f"{path.name} is not a PyTorch file (torch.save writes a zip archive)")


# torch's restricted unpickler words its refusal differently across releases ("Unsupported global: GLOBAL os.system",
# "unsupported GLOBAL posix.system whose module posix is blocked", ...), always under "Weights only load failed".
_REFUSED = re.compile(r"weights.only load failed|unsupported global|is blocked", re.IGNORECASE)


def describe_load_failure(path: Path, e: BaseException) -> str:
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) and _REFUSED.search(text):
        return (
            f"refused to load {path.name}: it contains Python objects other than tensors and plain data "
            "(a checkpoint must load with weights_only=True, so nothing in it can run code)."
        )
    first = text.splitlines()[0][:200] if text else type(e).__name__
    if "weights_only" in first:  # torch's advice to switch the safety off is never passed on
        first = type(e).__name__
    if isinstance(
        e, (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, pickle.UnpicklingError)
    ):
        return f"{path.name} is not a readable PyTorch file (truncated or corrupt?): {first}."
    return f"{path.name} could not be loaded: {type(e).__name__}."


def validate_any(spec: NetworkSpec | InceptionV3Spec) -> NetworkSpec | InceptionV3Spec:
    """The spec, if it can be built (fields, sizes, caps): SpecError otherwise."""
    if isinstance(spec, InceptionV3Spec):
        plan_report(v3_plan(spec))
        return spec
    return validate_network(spec)


def checkpoint_from_dict(raw: Any) -> Checkpoint:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(
            "this is a PyTorch file but not an Inception Explorer checkpoint "
            f"(expected format {FORMAT!r}); for torchvision weights use the weights-file option instead"
        )
    try:
        spec = validate_any(network_from_dict(raw["spec"]))
    except SpecError as e:
        raise CheckpointError(f"the network spec inside the checkpoint is invalid: {e}") from None
    state = raw.get("model")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("the checkpoint has no model weights")
    classes = raw.get("classes")
    if (
        not isinstance(classes, list)
        or not all(isinstance(c, str) for c in classes)
        or len(classes) != spec.num_classes
    ):
        raise CheckpointError(f"the checkpoint must name {spec.num_classes} classes, one per output")
    pre = raw.get("preprocess")
    if not isinstance(pre, dict):
        raise CheckpointError("the checkpoint has no preprocessing settings")
    extra = raw.get("extra") or {}
    return Checkpoint(spec, state, [c[:100] for c in classes], pre, extra if isinstance(extra, dict) else {})
