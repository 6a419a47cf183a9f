"""Inputs that used to reach only "Something went wrong on this page" get a message of their own: a weights path
with a NUL byte or over the file-name limits, and a feature-visualisation cache entry whose description is
incomplete or whose PNG does not decode."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from gnet import featurevis as fv
from gnet.checkpoints import Checkpoint, CheckpointError, save_checkpoint
from gnet.network import build
from gnet.pretrained import ModelSource, load_model, user_file
from tests.pagetest import offline_env, texts
from tests.test_featurevis import tiny_spec
from ui.common import PAGE_FAILED

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture
def env(tmp_path, monkeypatch):
    offline_env(tmp_path, monkeypatch)
    monkeypatch.delenv("GNET_CACHE_DIR", raising=False)
    (tmp_path / "runs").mkdir()
    return tmp_path


# -- weights paths ---------------------------------------------------------------------------------------------------
def bad_paths(runs: Path) -> dict[str, str]:
    return {
        f"{runs}/a\x00b.pth": "the path contains a NUL character",
        f"{runs}/{'x' * 256}.pth": "longer than the 255-byte limit",
        f"{runs}/{'é' * 128}.pth": "longer than the 255-byte limit",  # 256 bytes in UTF-8
        f"{runs}/" + "d/" * 2100 + "w.pth": "longer than the 4,096-byte limit of a path",
        f"{runs}/\ud800.pth": "cannot be a file name on this server",
    }


def test_user_file_names_what_is_wrong_with_a_path(env):
    for path, words in bad_paths(env / "runs").items():
        with pytest.raises(CheckpointError, match=words):
            user_file(path)
    ok = env / "runs" / ("x" * 255)
    assert user_file(str(ok)) == ok  # at the limit: accepted (and then not found, with its own message)
    with pytest.raises(CheckpointError, match="no weights file"):
        load_model(ModelSource("weights", str(ok)))


@pytest.mark.parametrize("case", range(4))  # a lone surrogate cannot come from a browser (UTF-8 on the wire)
def test_the_weights_path_field_says_what_is_wrong(env, case):
    path, words = list(bad_paths(env / "runs").items())[case]
    at = AppTest.from_file(str(PAGES / "feature_maps.py"), default_timeout=120)
    at.session_state["fm_source"] = "weights"
    at.session_state["fm_weights_path"] = path
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = texts(at, "error")
    assert words in errors and PAGE_FAILED not in errors


# -- the visualisation cache ---------------------------------------------------------------------------------------
META = {"layer": "inception3a", "branch": "b1", "channel": 0, "output_channel": 0, "steps": 16, "seconds": 0.5}


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 30, 200)).save(buf, format="PNG")
    return buf.getvalue()


def write_entry(root: Path, key: str, png: bytes, meta: dict) -> None:
    """An entry as write_result lays it out: <root>/results/<2>/<key>.png and .json naming the PNG's sha256."""
    d = root / "results" / key[:2]
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{key}.png").write_bytes(png)
    (d / f"{key}.json").write_text(json.dumps({**meta, "png_sha256": hashlib.sha256(png).hexdigest()}))


GOOD_META = {**META, "activation_start": 0.1, "activation_end": 0.9}
DAMAGED = {
    "no activations": (png_bytes(), META, "incomplete description (no usable activation_start, activation_end)"),
    "steps a string": (png_bytes(), {**GOOD_META, "steps": "16"}, "no usable steps"),
    "activation NaN": (png_bytes(), {**GOOD_META, "activation_end": float("nan")}, "no usable activation_end"),
    "not an image": (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, GOOD_META, "does not decode"),
    "truncated PNG": (png_bytes()[:60], GOOD_META, "does not decode"),
    "a JPEG": (b"", GOOD_META, "is not a PNG"),
}


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_cache_entry_says_why_and_is_made_again(tmp_path, case):
    png, meta, words = DAMAGED[case]
    png = png or jpeg()
    write_entry(tmp_path, "ab" + "0" * 30, png, meta)
    with pytest.raises(fv.DamagedResult, match=re.escape(words)):
        fv.read_result(tmp_path, "ab" + "0" * 30)
    assert fv.result_needed(tmp_path, "ab" + "0" * 30)


def test_a_whole_entry_reads_and_a_half_written_one_is_missing(tmp_path):
    write_entry(tmp_path, "cd" + "1" * 30, png_bytes(), GOOD_META)
    res = fv.read_result(tmp_path, "cd" + "1" * 30)
    assert res is not None and res.image().size == (32, 32) and not fv.result_needed(tmp_path, "cd" + "1" * 30)
    (tmp_path / "results" / "cd" / f"{'cd' + '1' * 30}.png").write_bytes(png_bytes()[:50])  # sha no longer matches
    assert fv.read_result(tmp_path, "cd" + "1" * 30) is None


def test_the_atlas_says_which_cached_pictures_are_damaged(env):
    path = env / "runs" / "tiny" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    pre = {"image_size": [16, 16], "mean": [0.5] * 3, "std": [0.25] * 3, "in_channels": 3, "resize_mode": "stretch"}
    classes = [f"c{i}" for i in range(10)]
    save_checkpoint(path, Checkpoint(tiny_spec(), build(tiny_spec()).state_dict(), classes, pre, {"epoch": 1}))
    # the keys the page looks up: these settings, the first channel of each branch of 3a, this checkpoint
    lm = load_model(ModelSource("checkpoint", str(path)))
    cfg = fv.VisConfig(size=32, steps=16, lr=0.05, seed=0, jitter=8)
    root = fv.cache_root()
    for b in ("b1", "b2", "b3", "b4"):
        target = fv.resolve(lm, fv.Target("inception3a", b, 0)).target
        png, meta, _ = DAMAGED["not an image" if b == "b1" else "no activations"]
        write_entry(root, fv.result_key(fv.model_fingerprint(lm), target, cfg), png, meta)
    at = AppTest.from_file(str(PAGES / "atlas.py"), default_timeout=180)
    for key, value in (("at_source", "checkpoint"), ("at_size", 32), ("at_steps", 16), ("at_k", 1)):
        at.session_state[key] = value
    at.session_state["at_order"] = "index"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warning = texts(at, "warning")
    assert "4 cached picture(s) cannot be used and count as missing: the cached picture" in warning, warning
    assert any(b.label.startswith("Visualise the 4 missing channels") for b in at.button)
