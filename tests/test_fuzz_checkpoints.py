"""Fuzzing checkpoint loading (issue 6): mutated, truncated and random bytes of a real
checkpoint, and random structures in place of its parts, only ever give a loaded
checkpoint or a CheckpointError, never another exception."""

import io
import random
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnet.checkpoints import Checkpoint, CheckpointError, checkpoint_from_dict, load_checkpoint, save_checkpoint
from gnet.network import build
from gnet.spec import mini
from tests.fuzzing import fuzz_settings


@pytest.fixture(scope="module")
def real_checkpoint() -> bytes:
    spec = mini()
    ckpt = Checkpoint(
        spec,
        build(spec).state_dict(),
        [f"c{i}" for i in range(10)],
        {"image_size": [32, 32], "mean": [0.5] * 3, "std": [0.25] * 3, "in_channels": 3},
        {"epoch": 1},
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "last.pt"
        save_checkpoint(path, ckpt)
        return path.read_bytes()


def _load_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.pt"
        path.write_bytes(data)
        try:
            load_checkpoint(path).build_model()
        except CheckpointError as e:
            assert str(e)  # a message for the user, never empty


def test_the_unmutated_checkpoint_loads(real_checkpoint):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "ok.pt").write_bytes(real_checkpoint)
        assert load_checkpoint(Path(d) / "ok.pt").spec == mini()


@fuzz_settings(40)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 64), cut=st.floats(0.0, 1.0))
def test_fuzz_mutated_checkpoint_bytes(real_checkpoint, seed, flips, cut):
    rng = random.Random(seed)
    data = bytearray(real_checkpoint)
    for _ in range(flips):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if cut < 0.3:  # sometimes also truncated
        data = data[: int(len(data) * cut / 0.3)]
    _load_bytes(bytes(data))


@fuzz_settings(40)
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data):
    _load_bytes(data)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


@fuzz_settings(60)
@given(part=st.sampled_from(["format", "spec", "model", "classes", "preprocess", "extra"]), value=JSONISH)
def test_fuzz_checkpoint_parts(real_checkpoint, part, value):
    raw = torch.load(io.BytesIO(real_checkpoint), weights_only=True)
    raw[part] = value
    try:
        checkpoint_from_dict(raw).build_model()
    except CheckpointError as e:
        assert str(e)
