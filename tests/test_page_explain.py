"""pages/explain.py through streamlit.testing.v1.AppTest: the model sources (offline untrained,
pretrained from a temporary torch hub cache, project checkpoints incl. the 1-channel d2l one),
a change of target, the ablation grid's numbers, picking a receptive field, bad uploads."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gnet import attribution as A
from gnet.images import load, preprocess
from gnet.plan import short_label
from gnet.pretrained import ModelSource, load_model
from tests.pagetest import offline_env, run_page, texts, unit_pickers
from tests.test_attribution import write_d2l_checkpoint
from tests.test_checkpoint_loading import CLASSES, write_checkpoint
from tests.test_pretrained import write_hub_weights

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "explain.py")
FIRST_SAMPLE = sorted((ROOT / "assets" / "samples").glob("*.jpg"))[0]


@pytest.fixture
def env(tmp_path, monkeypatch):
    return offline_env(tmp_path, monkeypatch)


def run(at: AppTest | None = None) -> AppTest:
    return run_page(PAGE, at, 240)


SVG = "{http://www.w3.org/2000/svg}"


def grids(at: AppTest) -> dict[str, dict]:
    """The two 9×4 SVG grids by title: their cell values as a matrix, row and column labels, hover texts."""
    out = {}
    for m in at.markdown:
        if not m.value.startswith("<svg"):
            continue
        svg = ET.fromstring(m.value)
        cells = [g for g in svg.findall(f"{SVG}g") if g.get("class") == "cell"]
        if not cells:
            continue
        shape = (1 + max(int(c.get("data-row")) for c in cells), 1 + max(int(c.get("data-col")) for c in cells))
        z = np.full(shape, np.nan)
        for c in cells:
            z[int(c.get("data-row")), int(c.get("data-col"))] = float(c.get("data-value"))
        texts_ = [t.text for t in svg.iter(f"{SVG}text")]
        out[svg.get("aria-label")] = {
            "z": z,
            "rows": [t for t in texts_ if t in {short_label(f"inception{n}") for n in BLOCK_NAMES}],
            "hovers": [c.find(f"{SVG}title").text for c in cells],
        }
    return out


BLOCK_NAMES = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")


def block_shares(at: AppTest, blocks: list[str]) -> tuple[np.ndarray, list[str]]:
    """The block-share bars (SVG) as a blocks × branches matrix of signed shares, and their hover texts."""
    svg = next(ET.fromstring(m.value) for m in at.markdown if "share of grad×act" in m.value[:400])
    segments = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "share"]
    z = np.zeros((len(blocks), len(A.BRANCHES)))
    for g in segments:
        z[blocks.index(g.get("data-block")), A.BRANCHES.index(g.get("data-branch"))] = float(g.get("data-share"))
    return z, [g.find(f"{SVG}title").text for g in segments]


def arr(v) -> np.ndarray:
    """A figure array as sent to the browser: a list, or plotly's typed-array form {dtype, bdata, shape}."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(n) for n in str(v.get("shape", a.size)).split(",")])
    return np.array(v)


def mini_checkpoint(env: Path) -> Path:
    path = env / "runs" / "demo" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(path)
    return path


def open_checkpoint(path: Path) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.session_state["ex_checkpoint"] = str(path)
    return run(at)


def target_line(at: AppTest) -> str:
    return next(line for line in texts(at, "markdown").splitlines() if line.startswith("**Target:**"))


def test_sources_offline_untrained_then_pretrained_then_a_weights_file(env):
    at = run()
    warning = texts(at, "warning")
    assert "googlenet-1378be20.pth" in warning and "UNTRAINED" in warning
    assert "Retry download" in [b.label for b in at.button]
    assert [s for s in texts(at, "subheader").splitlines()][:1] == ["Grad-CAM of every branch"]
    assert "Receptive fields on the image" in texts(at, "subheader")
    # the input, the 9×4 Grad-CAM grid, the picked unit's two views and the four branches side by side
    images = at.get("image")
    assert len(images) == 8
    grid = images[1]
    assert "colour scale: shared by all maps" in grid.captions[0]
    ablation = next(g for t, g in grids(at).items() if t.startswith("Zeroing one branch"))
    assert ablation["rows"] == list(BLOCK_NAMES)
    assert ablation["z"].shape == (9, 4) and np.isfinite(ablation["z"]).all()
    assert "zeroing " in texts(at, "markdown") and "computed in" in target_line(at)

    write_hub_weights(env / "torch")  # the weights appear (as after a download): the default source uses them
    run(at)
    assert "UNTRAINED" not in texts(at, "warning")
    assert "torchvision GoogLeNet, ImageNet weights (IMAGENET1K_V1)" in texts(at, "markdown")
    assert len(at.get("image")) == 8

    # the same file as a weights file (allowed: it lies in the torch hub cache)
    at.radio(key="ex_source").set_value("weights")
    run(at)
    at.text_input(key="ex_weights_path").set_value(
        str(env / "torch" / "hub" / "checkpoints" / "googlenet-1378be20.pth")
    )
    run(at)
    assert "torchvision GoogLeNet, weights file googlenet-1378be20.pth" in texts(at, "markdown")
    assert not at.error and len(at.get("image")) == 8


def test_checkpoint_target_change_and_ablation_numbers(env):
    path = mini_checkpoint(env)
    at = open_checkpoint(path)
    assert at.radio(key="ex_source").value == "checkpoint"
    assert "checkpoint demo/best.pt (mini, epoch 3)" in texts(at, "markdown")
    lm = load_model(ModelSource("checkpoint", str(path)))
    _, x = preprocess(load(FIRST_SAMPLE.read_bytes()).image, lm.preprocess)
    top = np.argsort(-A.predict(lm.module, x), kind="stable")
    assert f"(class {top[0]})" in target_line(at)  # the top-1 class by default

    # one of the top 5
    at.selectbox(key="ex_top5").set_value(int(top[2]))
    run(at)
    assert target_line(at).startswith(f"**Target:** {CLASSES[top[2]]} (class {top[2]})")
    want = A.explain(lm.module, x, int(top[2]), lm.classes)
    title, grid = next((t, g) for t, g in grids(at).items() if t.startswith("Zeroing one branch"))
    np.testing.assert_allclose(grid["z"], want.matrix("delta_prob") * 100, rtol=1e-6, atol=1e-9)
    assert CLASSES[top[2]] in title
    drops = texts(at, "markdown")
    assert want.largest_drops(1)[0].sentence(want.label) in drops
    gxa = next(g for t, g in grids(at).items() if t.startswith("Where the evidence"))
    np.testing.assert_allclose(gxa["z"], want.matrix("grad_x_act"), rtol=1e-6, atol=1e-9)
    shares, hovers = block_shares(at, [short_label(b) for b in want.blocks])
    np.testing.assert_allclose(shares, np.nan_to_num(want.block_shares()), rtol=1e-9, atol=1e-12)
    assert np.abs(shares).sum(1) == pytest.approx(1.0)  # each block's |shares| add up to the whole
    assert hovers[0].startswith(f"block {short_label(next(iter(want.blocks)))} · b1: ") and "grad×act" in hovers[0]

    # any class, searched by name
    at.radio(key="ex_target_mode").set_value("Any class (search by name)")
    run(at)
    at.selectbox(key="ex_any").set_value(7)
    run(at)
    assert target_line(at).startswith(f"**Target:** {CLASSES[7]} (class 7)")

    # the per-row colour scale is said on the grid
    at.radio(key="ex_scale").set_value("row")
    run(at)
    assert "per row" in at.get("image")[1].captions[0]


def test_pick_a_receptive_field(env):
    path = mini_checkpoint(env)
    at = open_checkpoint(path)
    at.selectbox(key="ex_rf_block").set_value("inception3b")
    at.selectbox(key="ex_rf_branch").set_value("b3")
    run(at)
    at.number_input(key="ex_row").set_value(2)
    at.number_input(key="ex_col").set_value(13)
    run(at)
    lm = load_model(ModelSource("checkpoint", str(path)))
    sizes = {b: A.theoretical_rf(lm.module, "inception3b", b).size for b in A.BRANCHES}
    caps = " | ".join(c for i in at.get("image") for c in i.captions)
    assert f"theoretical receptive field of 3b·b3 (2, 13): {sizes['b3']}×{sizes['b3']} px" in caps
    for b in A.BRANCHES:
        assert f"{b} (" in caps and f"theoretical {sizes[b]}×{sizes[b]} px" in caps
    assert "The four branches of 3b at (2, 13)" in texts(at, "markdown")
    picker = next(d for t, d in unit_pickers(at).items() if "click a unit" in t)
    assert picker["title"].startswith("3b·b3 mean activation, 16×16")
    assert (picker["h"], picker["w"], len(picker["fills"])) == (16, 16, 16 * 16) and picker["selected"] == [2, 13]
    # another target class: the picker's data is sent again exactly as it was (the browser keeps its grid)
    _, x = preprocess(load(FIRST_SAMPLE.read_bytes()).image, lm.preprocess)
    second = int(np.argsort(-A.predict(lm.module, x), kind="stable")[1])
    at.selectbox(key="ex_top5").set_value(second)
    run(at)
    assert f"(class {second})" in target_line(at)
    assert unit_pickers(at)[picker["title"]] == picker
    # a click on the picker moves the unit (what its click sends: row, col)
    at.session_state["ex_pick"] = {"unit": [5, 3]}
    run(at)
    del at.session_state["ex_pick"]  # a click is sent once; AppTest keeps what a test sets
    assert "The four branches of 3b at (5, 3)" in texts(at, "markdown")
    assert unit_pickers(at)[picker["title"]]["selected"] == [5, 3]
    at.number_input(key="ex_row").set_value(2)
    at.number_input(key="ex_col").set_value(13)
    run(at)

    # a smaller block: the position is clamped to its 8×8 grid, nothing breaks
    at.selectbox(key="ex_rf_block").set_value("inception4b")
    run(at)
    assert at.number_input(key="ex_row").value == 2 and at.number_input(key="ex_col").value == 7
    assert "The four branches of 4b at (2, 7)" in texts(at, "markdown")


def test_one_channel_d2l_checkpoint(env):
    path = env / "runs" / "fashion" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    write_d2l_checkpoint(path)
    at = open_checkpoint(path)
    assert "fashion/last.pt" in texts(at, "markdown") and not at.error
    assert "64×64 (H×W)" in at.get("image")[0].captions[0]
    grid = next(g for t, g in grids(at).items() if t.startswith("Zeroing one branch"))
    assert len(grid["rows"]) == 9 and grid["z"].shape == (9, 4)


@pytest.mark.parametrize("data,match", [(b"", "empty"), (b"hello, I am a text file", "not a supported image")])
def test_bad_upload_shows_an_error(env, data, match):
    at = open_checkpoint(mini_checkpoint(env))
    at.file_uploader(key="ex_upload").set_value(("x.png", data, "image/png"))
    run(at)
    assert re.search(match, texts(at, "error")), texts(at, "error")
    assert not at.get("image")
