"""Datasets: torchvision's real loader on tiny IDX files, the synthetic set, image folders."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gnet.data import DataError, image_folder, list_image_folders, load_dataset, subset, synthetic, to_model_input


def write_idx(path: Path, array: torch.Tensor) -> None:
    """An uncompressed IDX file as torchvision reads it: magic (0, 0, 0x08 ubyte, ndim), big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.to(torch.uint8).numpy().tobytes())


def write_fashion_mnist(root: Path, n_train: int = 64, n_test: int = 32, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """root/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte with class-dependent images."""
    g = torch.Generator().manual_seed(seed)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = torch.arange(n) % 10
        x = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
        for i in range(n):  # a bright bar whose row depends on the class: learnable
            x[i, 2 + 2 * int(y[i]) : 4 + 2 * int(y[i]), 4:24] = 250
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        out += [x, y]
    return tuple(out)


def test_fashion_mnist_through_torchvisions_loader(tmp_path):
    x_tr, y_tr, x_te, y_te = write_fashion_mnist(tmp_path, 40, 20)
    d = load_dataset("fashion-mnist", tmp_path, download=False)
    assert d.train_x.shape == (40, 1, 28, 28) and d.train_x.dtype == torch.uint8
    assert torch.equal(d.train_x[:, 0], x_tr) and torch.equal(d.train_y, y_tr)
    assert torch.equal(d.test_x[:, 0], x_te) and torch.equal(d.test_y, y_te)
    assert d.classes[0] == "T-shirt/top" and len(d.classes) == 10 and d.flip_ok


def test_missing_dataset_names_the_folder(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", tmp_path, download=False)
    # named symbolically: pages show this message, and no server path reaches a user (the log has it)
    assert "$GNET_DATA_DIR/FashionMNIST/raw/" in str(e.value) and str(tmp_path) not in str(e.value)
    assert "train-images-idx3-ubyte" in str(e.value)


def test_corrupt_idx_file_is_a_clear_error(tmp_path):
    write_fashion_mnist(tmp_path, 20, 10)
    (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(DataError, match="Fashion-MNIST"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet-42")


def test_synthetic_is_deterministic_and_balanced():
    a, b = synthetic(100, 20, 16, seed=3), synthetic(100, 20, 16, seed=3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    c = synthetic(100, 20, 16, seed=4)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.train_x.shape == (100, 3, 16, 16) and a.train_x.dtype == torch.uint8
    assert a.train_y.bincount(minlength=10).tolist() == [10] * 10
    # The test split is drawn independently of the training split: no test image is a training image,
    # not even with equal split sizes (where one seed for both would give identical splits).
    for d in (a, synthetic(20, 20, 16, seed=3)):
        same = (d.test_x.flatten(1)[:, None, :] == d.train_x.flatten(1)[None, :, :]).all(-1)
        assert not bool(same.any()), f"{int(same.any(1).sum())} test images are copies of training images"


@settings(max_examples=8, deadline=None)
@given(n=st.integers(10, 120), size=st.sampled_from([8, 12, 20]))
def test_synthetic_class_counts_differ_by_at_most_one(n, size):
    d = synthetic(n, 10, size, seed=1)
    counts = d.train_y.bincount(minlength=10)
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == n
    # every image shows a pattern: foreground and background differ
    assert bool((d.train_x.float().std(dim=(1, 2, 3)) > 5).all())


def test_synthetic_caps():
    with pytest.raises(DataError):
        synthetic(5, 10, 16)
    with pytest.raises(DataError):
        synthetic(100, 10, 4000)


def _png(path: Path, color: tuple[int, int, int], size: int = 12) -> None:
    Image.new("RGB", (size, size), color).save(path)


def test_image_folder_skips_and_counts_unreadable_files(tmp_path):
    for cls, color in (("cats", (200, 10, 10)), ("dogs", (10, 10, 200))):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(5):
            _png(tmp_path / "pets" / cls / f"{i}.png", color, size=10 + i)
    (tmp_path / "pets" / "cats" / "notes.txt").write_text("not an image")
    (tmp_path / "pets" / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    d = image_folder(tmp_path, "pets", 16)
    assert d.classes == ["cats", "dogs"]
    assert len(d.train_x) + len(d.test_x) == 10 and d.train_x.shape[1:] == (3, 16, 16)
    assert len(d.test_x) == 2  # every fifth file of each class
    assert d.notes and "skipped 2" in d.notes[0]
    assert d.train_x[d.train_y == 0][:, 0].float().mean() > 150  # cats are red
    assert list_image_folders(tmp_path) == ["pets"]


def test_image_folder_with_only_unreadable_files(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "junk" / cls).mkdir(parents=True)
        (tmp_path / "junk" / cls / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="no readable images"):
        image_folder(tmp_path, "junk", 16)


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", ""])
def test_image_folder_name_cannot_escape(tmp_path, name):
    with pytest.raises(DataError):
        load_dataset(f"folder:{name}", tmp_path)


def test_image_folder_needs_two_classes(tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    _png(tmp_path / "one" / "only" / "a.png", (1, 2, 3))
    with pytest.raises(DataError, match="2 to"):
        image_folder(tmp_path, "one", 16)


def test_subset_and_model_input():
    x = torch.arange(20 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(20, 3, 4, 4)
    y = torch.arange(20)
    xs, ys = subset(x, y, 5, seed=0)
    assert len(xs) == 5 and torch.equal(xs, x[ys])
    assert subset(x, y, None, 0)[0] is x
    out = to_model_input(xs, (8, 8), torch.zeros(3), torch.ones(3))
    assert out.shape == (5, 3, 8, 8) and float(out.max()) <= 1.0 and float(out.min()) >= 0.0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([1, 3]))
def test_model_input_is_normalised_per_channel(seed, channels):
    """Against an independent oracle: per channel, (x/255 − mean)/std, so the result's per-channel mean and
    std are (m/255 − mean)/std and s/255/std for the images' own m, s (no resize: same size in and out)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (4, channels, 6, 6), generator=g, dtype=torch.uint8)
    mean, std = torch.rand(channels, generator=g), 0.1 + torch.rand(channels, generator=g)
    out = to_model_input(x, (6, 6), mean, std).double()
    px = x.double() / 255
    for c in range(channels):
        expect_mean = (float(px[:, c].mean()) - float(mean[c])) / float(std[c])
        expect_std = float(px[:, c].std()) / float(std[c])
        assert float(out[:, c].mean()) == pytest.approx(expect_mean, abs=1e-5)
        assert float(out[:, c].std()) == pytest.approx(expect_std, rel=1e-5)
    pixel = (int(x[1, -1, 2, 3]) / 255 - float(mean[-1])) / float(std[-1])  # one pixel, by hand
    assert float(out[1, -1, 2, 3]) == pytest.approx(pixel, abs=1e-6)
