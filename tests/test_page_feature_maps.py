"""pages/feature_maps.py through streamlit.testing.v1.AppTest: offline fallback, pretrained
weights from a temporary torch hub cache, checkpoints, uploads (good and bad), ablation."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.pagetest import html_tables, offline_env, run_page, texts
from tests.test_checkpoint_loading import CLASSES, write_checkpoint
from tests.test_pretrained import write_hub_weights, write_malicious

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "feature_maps.py")


@pytest.fixture
def env(tmp_path, monkeypatch):
    return offline_env(tmp_path, monkeypatch)


def run(at: AppTest | None = None) -> AppTest:
    return run_page(PAGE, at, 120)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_offline_shows_an_untrained_network_clearly_labelled(env):
    at = run()
    warning = texts(at, "warning")
    assert "googlenet-1378be20.pth" in warning and "$TORCH_HOME/hub/checkpoints/" in warning
    assert "GNET_WEIGHTS" in warning and str(env) not in warning  # symbolic: no server path on the page
    assert "UNTRAINED" in warning and "Retry download" in [b.label for b in at.button]
    assert "UNTRAINED" in texts(at, "markdown")
    assert "Layer 3a: 256 channels, 28×28 maps" in texts(at, "subheader")
    md = texts(at, "markdown")
    for chip in ("b1: 1×1", "b2: 1×1 → 3×3", "b3: 1×1 → 3×3", "b4: 3×3 max-pool → 1×1"):
        assert chip in md
    assert "ms forward pass on cpu" in md
    # 2 inputs + 4 branch mosaics + channel heatmap + overlay
    assert len(at.get("image")) == 8
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Download b3 grid (PNG)" in labels and "Download all activations of 3a (.npz)" in labels
    preds = html_tables(at)[1]
    assert list(preds["rank"]) == [1, 2, 3, 4, 5]
    assert "224×224 (H×W)" in " ".join(c for i in at.get("image") for c in i.captions)


def test_layer_k_channel_and_ablation(env):
    at = run()
    at.selectbox(key="fm_layer").set_value("4b")
    at.slider(key="fm_k").set_value(4)
    run(at)
    assert "Layer 4b: 512 channels, 14×14 maps" in texts(at, "subheader")
    bars = share_bars(at)  # the branch-share chart (SVG): the four branches, in order, shares adding to 1
    assert [g for g, _ in bars] == ["b1", "b2", "b3", "b4"] and sum(v for _, v in bars) == pytest.approx(1.0)
    at.multiselect(key="fm_ablate_inception4b").set_value(["b2", "b3"])
    at.number_input(key="fm_ch_inception4b_b1").set_value(3)
    run(at)
    table = html_tables(at)[-1]
    assert {"class", "before", "after", "rank before", "rank after"} <= set(table.columns)
    assert set(range(1, 6)) <= set(table["rank before"]) and set(range(1, 6)) <= set(table["rank after"])
    assert any("b1 channel 3 = output channel 3" in c.value for c in at.caption)
    at.selectbox(key="fm_layer").set_value("conv1 (stem)")
    run(at)
    assert "Layer conv1 (stem): 64 channels, 112×112 maps" in texts(at, "subheader")
    assert "**conv1 (stem): 7×7 conv**" in texts(at, "markdown")
    assert share_bars(at) == []  # not a block: no branches to share


def share_bars(at: AppTest) -> list[tuple[str, float]]:
    svgs = [ET.fromstring(m.value) for m in at.markdown if m.value.startswith("<svg")]
    g = "{http://www.w3.org/2000/svg}g"
    return [(b.get("data-group"), float(b.get("data-share"))) for svg in svgs for b in svg.iter(g)]


def test_pretrained_weights_from_the_hub_cache(env):
    write_hub_weights(env / "torch")
    at = run()
    assert not at.warning, texts(at, "warning")
    md = texts(at, "markdown")
    assert "torchvision GoogLeNet, ImageNet weights (IMAGENET1K_V1)" in md and "UNTRAINED" not in md
    assert "b3: 1×1 → 3×3" in md  # read from torchvision's module, not the paper's 5×5
    assert "transform_input" in texts(at, "caption")
    assert all(
        c in __import__("gnet.pretrained", fromlist=["x"]).imagenet_categories() for c in html_tables(at)[1]["class"]
    )


@pytest.mark.parametrize("case", ["rgba_png", "palette_gif", "gray16_png", "cmyk_tiff"])
def test_upload_good_files(env, case):
    rng = np.random.default_rng(0)
    img = {
        "rgba_png": lambda: Image.fromarray(rng.integers(0, 255, (60, 80, 4), dtype=np.uint8), "RGBA"),
        "palette_gif": lambda: Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).convert("P"),
        "gray16_png": lambda: Image.fromarray(rng.integers(0, 65535, (60, 80), dtype=np.uint16)),
        "cmyk_tiff": lambda: Image.new("CMYK", (80, 60), (0, 255, 255, 0)),
    }[case]()
    fmt = {"rgba_png": "PNG", "palette_gif": "GIF", "gray16_png": "PNG", "cmyk_tiff": "TIFF"}[case]
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    at = run()
    at.file_uploader(key="fm_upload").set_value(("photo.jpg", buf.getvalue(), "image/jpeg"))  # name lies
    run(at)
    assert not at.error, texts(at, "error")
    caption = at.get("image")[0].captions[0]
    assert caption.startswith(f"your upload: {fmt}, 80×60 px")
    assert len(at.get("image")) == 8


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"GIF89a" + b"\x00" * 40, "could not be decoded|not a supported image"),
        (b"hello, I am a text file", "not a supported image"),
    ],
)
def test_upload_bad_files_show_an_error_and_the_page_stays_usable(env, data, match):
    at = run()
    at.file_uploader(key="fm_upload").set_value(("x.png", data, "image/png"))
    run(at)
    assert re.search(match, texts(at, "error")), texts(at, "error")
    assert at.radio(key="fm_source") is not None and not at.get("image")
    at.file_uploader(key="fm_upload").set_value(None)  # back to the sample: works again
    run(at)
    assert not at.error and len(at.get("image")) == 8


def test_truncated_upload(env):
    full = png(Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    at = run()
    at.file_uploader(key="fm_upload").set_value(("t.png", full[: len(full) // 2], "image/png"))
    run(at)
    assert "truncated" in texts(at, "error")


def test_checkpoint_from_the_training_page(env):
    path = env / "runs" / "demo" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["fm_checkpoint"] = str(path)
    run(at)
    assert at.radio(key="fm_source").value == "checkpoint"
    md = texts(at, "markdown")
    assert "checkpoint demo/last.pt (mini, epoch 3)" in md
    assert "Layer 3a: 56 channels, 16×16 maps" in texts(at, "subheader")  # mini 3a: 16+24+8+8 at 16×16
    assert set(html_tables(at)[1]["class"]) <= set(CLASSES)
    assert "32×32 (H×W)" in " ".join(c for i in at.get("image") for c in i.captions)


def test_offline_falls_back_to_a_checkpoint_when_there_is_one(env):
    path = env / "runs" / "demo" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    at = run()
    assert "Showing the training checkpoint demo/best.pt instead" in texts(at, "warning")
    assert "checkpoint demo/best.pt" in texts(at, "markdown")


def test_malicious_checkpoint_is_refused_on_the_page(env):
    path = env / "runs" / "evil" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    marker = env / "marker"
    write_malicious(path, marker)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["fm_checkpoint"] = str(path)
    run(at)
    assert "refused to load" in texts(at, "error") and not marker.exists()
    assert not at.get("image")


def test_file_and_run_names_are_shown_literally_never_as_markdown(env):
    path = env / "runs" / "![x](http:__evil.example_a.png)" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["fm_checkpoint"] = str(path)
    run(at)
    raw = "\n".join(str(m.value) for m in at.markdown)
    assert "![x](" not in raw and "\\!\\[x\\]\\(" in raw  # escaped in the source ...
    assert "checkpoint ![x](http:__evil.example_a.png)/last.pt" in texts(at, "markdown")  # ... literal on screen


def test_offline_with_a_broken_checkpoint_still_shows_the_untrained_network(env):
    path = env / "runs" / "evil" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    marker = env / "marker"
    write_malicious(path, marker)
    at = run()
    assert "Showing the training checkpoint evil/last.pt instead" in texts(at, "warning")
    assert "refused to load" in texts(at, "error") and not marker.exists()
    assert "UNTRAINED" in texts(at, "markdown") and len(at.get("image")) == 8


def test_gnet_weights_environment_variable(env, monkeypatch):
    import torch

    from tests.test_pretrained import torchvision_state

    path = env / "googlenet-own.pth"
    torch.save(torchvision_state(), path)
    monkeypatch.setenv("GNET_WEIGHTS", str(path))
    at = run()
    assert at.radio(key="fm_source").value == "weights" and at.text_input(key="fm_weights_path").value == ""
    assert str(env) not in str(at.text_input(key="fm_weights_path").proto)  # used, not shown
    assert "torchvision GoogLeNet, weights file googlenet-own.pth" in texts(at, "markdown") and not at.warning


def test_weights_path_that_does_not_exist(env):
    at = run()
    at.radio(key="fm_source").set_value("weights")
    run(at)
    at.text_input(key="fm_weights_path").set_value(str(env / "data" / "googlenet.pth"))
    run(at)
    assert "no weights file" in texts(at, "error")


@pytest.mark.parametrize("where", ["/etc/passwd", "{data}/../outside.pth", "{data}/link.pth"])
def test_weights_path_outside_the_app_folders_is_refused(env, where):
    """Issue 6: a typed path cannot reach files outside the hub cache, data and runs roots,
    neither directly, through '..', nor through a symlink."""
    data = env / "data"
    data.mkdir()
    (env / "outside.pth").write_bytes(b"PK secret")
    (data / "link.pth").symlink_to(env / "outside.pth")
    at = run()
    at.radio(key="fm_source").set_value("weights")
    run(at)
    at.text_input(key="fm_weights_path").set_value(where.format(data=data))
    run(at)
    assert "for safety the app only reads weights from" in texts(at, "error")
    assert "secret" not in " ".join(texts(at, "error"))
