"""gnet.features: per-branch activations, ranking, stats, ablation, mosaics, concurrency."""

from __future__ import annotations

import copy
import dataclasses
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from torchvision.models.feature_extraction import create_feature_extractor

from gnet import features as F
from gnet.analysis import network_report
from gnet.colors import BRANCH_COLORS
from gnet.images import load, preprocess
from gnet.pretrained import ModelSource, load_model
from gnet.raster import ascii_label
from gnet.spec import googlenet_imagenet
from gnet.v3 import V3_PRESETS, v3_plan

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "assets" / "samples").glob("*.jpg"))


@pytest.fixture(scope="module")
def untrained():
    return load_model(ModelSource("untrained"))


@pytest.fixture(scope="module")
def cat(untrained):
    return preprocess(load(SAMPLES[0].read_bytes()).image, untrained.preprocess)


def test_layers(untrained):
    assert [l.label for l in F.layers(untrained.module)] == [
        "conv1 (stem)",
        "maxpool1 (stem)",
        "conv2 (stem)",
        "conv3 (stem)",
        "maxpool2 (stem)",
        "3a",
        "3b",
        "4a",
        "4b",
        "4c",
        "4d",
        "4e",
        "5a",
        "5b",
    ]
    with pytest.raises(F.FeatureError, match="no layer"):
        F.find_layer(untrained.module, "6a")


def test_extract_matches_torchvision_feature_extraction(untrained, cat):
    _, x = cat
    layers = ["maxpool2 (stem)", "3a", "5b"]
    modules = [F.find_layer(untrained.module, l).module for l in layers]
    refs = create_feature_extractor(untrained.module, {m: m for m in modules})(x)  # one trace, one forward
    report = network_report(googlenet_imagenet())
    with torch.no_grad():
        logits = untrained.module(x)[0]
    for layer, module in zip(layers, modules):
        ex = F.extract(untrained.module, x, layer)
        assert np.array_equal(ex.output, refs[module][0].numpy()), layer
        assert ex.output.shape == tuple(report.row(module).output_shape)
        assert torch.allclose(ex.logits, logits, atol=1e-5) and ex.forward_s > 0


def test_branch_split_and_offsets(untrained, cat):
    ex = F.extract(untrained.module, cat[1], "4a")
    spec = googlenet_imagenet().block("4a")
    assert {g: a.shape[0] for g, a in ex.groups.items()} == {"b1": spec.b1, "b2": spec.b2, "b3": spec.b3, "b4": spec.b4}
    assert ex.offsets == {"b1": 0, "b2": spec.b1, "b3": spec.b1 + spec.b2, "b4": spec.b1 + spec.b2 + spec.b3}
    assert ex.kernel_labels["b3"] == "1×1 → 3×3"  # the ImageNet spec matches torchvision (vision#906)


def test_stats(untrained, cat):
    ex = F.extract(untrained.module, cat[1], "3b")
    stats = F.group_stats(ex)
    assert abs(sum(s.share for s in stats) - 1) < 1e-9
    for s in stats:
        a = ex.groups[s.group]
        assert s.channels == a.shape[0] and 0 <= s.zero_fraction <= 1
        assert s.share == pytest.approx(float(a.astype(np.float64).sum()) / float(ex.output.astype(np.float64).sum()))


def test_ablation_equals_a_network_whose_branch_outputs_zero(untrained, cat):
    """Independent check: zeroing a branch's last BatchNorm (weight and bias 0) makes the
    branch output exactly 0 after ReLU; the full forward of that copy must equal ablate()."""
    _, x = cat
    ex = F.extract(untrained.module, x, "4c")
    assert torch.equal(F.ablate(untrained.module, ex, []), ex.logits)
    zeroed = copy.deepcopy(untrained.module)
    for b in ("branch2", "branch4"):
        last = list(getattr(zeroed.inception4c, b).modules())
        bn = [m for m in last if isinstance(m, torch.nn.BatchNorm2d)][-1]
        bn.weight.data.zero_()
        bn.bias.data.zero_()
    with torch.no_grad():
        expected = zeroed(x)[0]
    after = F.ablate(untrained.module, ex, ["b2", "b4"])
    assert torch.allclose(after, expected, atol=1e-5)
    assert not torch.allclose(after, ex.logits)
    rows = F.ablation_rows(ex.logits, after, untrained.classes)
    pb, pa = torch.softmax(ex.logits.double(), 0), torch.softmax(after.double(), 0)
    for r in rows:
        assert r.before == pytest.approx(float(pb[r.index])) and r.after == pytest.approx(float(pa[r.index]))
    assert {r.rank_before for r in rows} >= {1, 2, 3, 4, 5} and {r.rank_after for r in rows} >= {1, 2, 3, 4, 5}
    with pytest.raises(F.FeatureError, match="no branch"):
        F.ablate(untrained.module, ex, ["b7"])


def test_top_k():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.0])
    preds = F.top_k(logits, ["a", "b", "c", "d"], k=3)
    assert [p.label for p in preds] == ["b", "d", "c"]
    assert preds[0].prob == pytest.approx(float(torch.softmax(logits, 0)[1]))


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 12), st.integers(1, 4), st.integers(1, 4)),
        elements=st.floats(0, 10, width=32),
    ),
    st.integers(1, 20),
)
def test_rank_channels_property(act, k):
    idx = F.rank_channels(act, k)
    means = act.reshape(act.shape[0], -1).mean(1)
    assert len(idx) == min(k, act.shape[0]) and len(set(idx)) == len(idx)
    assert all(means[a] > means[b] or (means[a] == means[b] and a < b) for a, b in zip(idx, idx[1:]))
    rest = set(range(act.shape[0])) - set(idx)
    assert all(means[r] <= means[idx[-1]] for r in rest)


def test_normalise_and_colours():
    assert F.normalise(np.full((3, 3), 7.0)).max() == 0
    n = F.normalise(np.array([[1.0, 2.0], [3.0, 5.0]]))
    assert n.min() == 0 and n.max() == 255 and n[0, 1] == 64
    assert F.LUT.shape == (256, 3) and F.LUT[0].tolist() == [68, 1, 84] and F.LUT[-1].tolist() == [253, 231, 37]


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 20), st.sampled_from(sorted(BRANCH_COLORS)))
def test_mosaic_layout_and_frame(n, branch):
    act = np.random.default_rng(n).random((24, 7, 7)).astype(np.float32)
    chosen = F.rank_channels(act, n)
    img = F.mosaic(act, chosen, offset=100, color=BRANCH_COLORS[branch], title=f"{branch} · 1×1 → 3×3", tile=40)
    cols = min(8, int(np.ceil(np.sqrt(len(chosen)))))
    rows = -(-len(chosen) // cols)
    assert img.size == (4 * 2 + 4 + cols * 44, 4 * 2 + 24 + 4 + rows * (40 + 16 + 4))
    rgb = tuple(int(BRANCH_COLORS[branch][i : i + 2], 16) for i in (1, 3, 5))
    assert img.getpixel((1, img.height - 2)) == rgb and img.getpixel((img.width - 2, img.height // 2)) == rgb
    # the first tile shows the strongest channel, nearest-upscaled from its 7×7 map
    tile = np.asarray(img.crop((8, 32, 48, 72)))
    assert np.array_equal(tile[:: 40 // 7 + 1][:1, 0], F.LUT[F.normalise(act[chosen[0]])][:1, 0])


def test_mosaic_needs_channels():
    with pytest.raises(F.FeatureError):
        F.mosaic(np.zeros((2, 3, 3), np.float32), [], 0, "#000000", "x")


def test_overlay_and_heatmap():
    img = Image.new("RGB", (64, 48), (10, 200, 30))
    fmap = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert F.overlay(img, fmap, 0.0).tobytes() == img.tobytes()
    full = np.asarray(F.overlay(img, fmap, 1.0))
    assert full.shape == (48, 64, 3) and full[0, 0].tolist() == F.LUT[0].tolist()
    assert full[-1, -1].tolist() == F.LUT[255].tolist()
    assert F.heatmap(fmap, size=400).size == (400, 300)
    with pytest.raises(F.FeatureError):
        F.overlay(img, fmap, 1.5)


def test_npz_download(untrained, cat):
    ex = F.extract(untrained.module, cat[1], "3a")
    z = np.load(io.BytesIO(F.activations_npz(ex)), allow_pickle=False)
    assert np.array_equal(z["output"], ex.output) and np.array_equal(z["b3"], ex.groups["b3"])
    assert z["groups"].tolist() == ["b1", "b2", "b3", "b4"] and z["offsets"].tolist() == [0, 64, 192, 224]
    assert str(z["layer"]) == "3a" and z["kernel_labels"].tolist()[2] == "1×1 → 3×3"
    png = F.png_bytes(F.mosaic(ex.groups["b1"], [0, 1], 0, BRANCH_COLORS["b1"], "b1"))
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_concurrent_sessions_never_mix_activations(untrained):
    """Threads share one model (as sessions share the cached one) on different images and
    layers: every result must equal the sequential one exactly."""
    small = dataclasses.replace(untrained.preprocess, resize=96, crop=(96, 96))  # any size ≥ 32 runs; keeps this fast
    inputs = [preprocess(load(p.read_bytes()).image, small)[1] for p in SAMPLES]
    jobs = [(i, layer) for layer in ("3a", "4d") for i in range(len(inputs))]

    def run(job):
        i, layer = job
        ex = F.extract(untrained.module, inputs[i], layer)
        return ex.output, ex.logits, F.ablate(untrained.module, ex, ["b1"])

    sequential = [run(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        concurrent = list(pool.map(run, jobs))
    for (o1, l1, a1), (o2, l2, a2) in zip(sequential, concurrent):
        assert np.array_equal(o1, o2) and torch.equal(l1, l2) and torch.equal(a1, a2)
    # and the images really differ, so a mix-up could not go unnoticed
    assert not np.array_equal(sequential[0][0], sequential[1][0])


def test_every_branch_label_draws_in_ascii():
    """The mosaics' titles use Pillow's font, which lacks ×, →, · and ‖: every label of every v3 block (E's halves
    side by side included) and of GoogLeNet's blocks comes out in ASCII, with nothing dropped."""
    labels = [
        label
        for make in V3_PRESETS.values()
        for plan in [v3_plan(make())]
        for block in plan.blocks()
        for label in plan.step(block).spec.branch_labels().values()
    ]
    labels += list(F.branch_kernel_labels(load_model(ModelSource("untrained")).module.inception3a).values())
    assert any("‖" in t for t in labels) and any("→" in t for t in labels)
    for text in labels:
        drawn = ascii_label(f"6b·b2: {text}")
        assert drawn.isascii(), drawn
        assert len(drawn) >= len(f"6b·b2: {text}")  # spelled out, never dropped
