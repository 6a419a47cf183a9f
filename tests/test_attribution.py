"""gnet.attribution against independent implementations: Captum's LayerGradCam and
LayerGradientXActivation on the branch modules, ablations against forward hooks on a
separate copy of the model, receptive fields against autograd's support; plus target
resolution, JSON, and 8 threads on one shared model."""

from __future__ import annotations

import copy
import dataclasses
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from captum.attr import LayerGradCam, LayerGradientXActivation
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet import attribution as A
from gnet.blocks import BRANCH_ATTRS
from gnet.charts.explain import ablation_heatmap, evidence_heatmap, gradcam_grid, rf_box, rf_image, unit_picker
from gnet.checkpoints import Checkpoint, save_checkpoint
from gnet.colors import BRANCH_COLORS
from gnet.images import load, preprocess
from gnet.network import build
from gnet.plan import short_label
from gnet.pretrained import ModelSource, load_model
from gnet.spec import d2l_fashion96, mini, with_input

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "assets" / "samples").glob("*.jpg"))


def mini_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build(mini()).eval()


def tv_model(seed: int = 0) -> torch.nn.Module:
    """torchvision's GoogLeNet as the pretrained source builds it (transform_input on), random weights."""
    torch.manual_seed(seed)
    m = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True)
    return m.eval()


def blocks_of(model: torch.nn.Module) -> list[str]:
    """The Inception blocks by the modules' own names (independent of the plan that gnet walks)."""
    return [n for n, _ in model.named_children() if n.startswith("inception")]


def check_against_captum(
    model: torch.nn.Module, x: torch.Tensor, ex: A.Explanation, blocks: list[str] | None = None
) -> None:
    """Every block × branch: Captum's Grad-CAM map and Σ grad×act, on a separate copy (Captum hooks it)."""
    other = copy.deepcopy(model)
    for block in blocks or blocks_of(model):
        for b, attr in zip(A.BRANCHES, BRANCH_ATTRS):
            layer = getattr(getattr(other, block), attr)
            cam = LayerGradCam(other, layer).attribute(x, target=ex.target, relu_attributions=True)[0, 0].detach()
            gxa = LayerGradientXActivation(other, layer).attribute(x, target=ex.target).detach().double().sum()
            ours = ex.blocks[block][b]
            assert ours.gradcam.shape == tuple(cam.shape), (block, b)
            scale = max(float(cam.abs().max()), 1e-6)
            np.testing.assert_allclose(ours.gradcam, cam.numpy(), atol=1e-5 * scale, rtol=1e-4, err_msg=f"{block} {b}")
            assert ours.grad_x_act == pytest.approx(float(gxa), rel=1e-4, abs=1e-6), (block, b)


def check_against_hooks(model: torch.nn.Module, x: torch.Tensor, ex: A.Explanation) -> None:
    """Every block × branch: zero the branch with a forward hook on a copy and run the whole network."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        base = other(x)[0].double()
    assert float(base[ex.target]) == pytest.approx(ex.logit, rel=1e-5, abs=1e-5)
    for block in blocks_of(model):
        for b, attr in zip(A.BRANCHES, BRANCH_ATTRS):
            handle = getattr(getattr(other, block), attr).register_forward_hook(lambda m, i, o: torch.zeros_like(o))
            try:
                with torch.no_grad():
                    out = other(x)[0].double()
            finally:
                handle.remove()
            ours = ex.blocks[block][b]
            assert ours.delta_logit == pytest.approx(float(out[ex.target] - base[ex.target]), abs=1e-4), (block, b)
            p = torch.softmax(out, 0)[ex.target] - torch.softmax(base, 0)[ex.target]
            assert ours.delta_prob == pytest.approx(float(p), abs=1e-5), (block, b)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), target=st.integers(0, 9), side=st.sampled_from([32, 40]))
def test_mini_matches_captum_and_hooks(seed, target, side):
    model = mini_model(seed)
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(seed))
    ex = A.explain(model, x, target)
    assert ex.target == target and list(ex.blocks) == ["inception3a", "inception3b", "inception4a", "inception4b"]
    check_against_captum(model, x, ex)
    check_against_hooks(model, x, ex)


def test_ablations_computed_once_serve_every_target():
    """The Explain page computes an image's ablations once and switches targets on them: each target's
    deltas must still equal the hooked runs, and the explanation the one computed from scratch."""
    model = mini_model(3)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ablated = A.ablation_logits(model, x)
    assert ablated.shape == (4 * 4, 10) and ablated.dtype == np.float64
    for target in (0, 7):
        ex = A.explain(model, x, target, ablated=ablated)
        check_against_hooks(model, x, ex)
        fresh = A.explain(model, x, target)
        for block in ex.blocks:
            for b in A.BRANCHES:
                mine, theirs = ex.blocks[block][b], fresh.blocks[block][b]
                assert mine.delta_prob == pytest.approx(theirs.delta_prob, abs=1e-6)
                np.testing.assert_array_equal(mine.gradcam, theirs.gradcam)
    with pytest.raises(A.AttributionError, match="not this network's"):
        A.explain(model, x, 0, ablated=ablated[:4])
    assert_untouched(model)


@pytest.mark.parametrize("streams", [2, 3, 40])
def test_ablations_split_into_streams_equal_one_stream(streams, monkeypatch):
    """The CPU deals the ablated copies to parallel streams (threads): every row, in network order, equals the
    one-stream batch, more streams than copies included; and the hooked runs still agree."""
    model = mini_model(4)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    monkeypatch.setattr(A, "cpu_streams", lambda device: 1)
    one = A.ablation_logits(model, x)
    monkeypatch.setattr(A, "cpu_streams", lambda device: streams)
    split = A.ablation_logits(model, x)
    np.testing.assert_allclose(split, one, rtol=0, atol=1e-5)
    check_against_hooks(model, x, A.explain(model, x, 2))
    assert_untouched(model)


def test_explain_many_equals_one_explanation_per_target():
    model = mini_model(5)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    many = A.explain_many(model, x, [4, None, "c2"], classes=[f"c{i}" for i in range(10)])
    singles = [A.explain(model, x, t, classes=[f"c{i}" for i in range(10)]) for t in (4, None, "c2")]
    assert [e.target for e in many] == [s.target for s in singles] and many[2].target == 2
    for mine, theirs in zip(many, singles):
        assert (mine.logit, mine.prob) == pytest.approx((theirs.logit, theirs.prob))
        for block in mine.blocks:
            for b in A.BRANCHES:
                m, t = mine.blocks[block][b], theirs.blocks[block][b]
                np.testing.assert_allclose(m.gradcam, t.gradcam, rtol=1e-6, atol=1e-7)
                assert (m.grad_x_act, m.delta_prob) == pytest.approx((t.grad_x_act, t.delta_prob), rel=1e-6, abs=1e-9)
    check_against_captum(model, x, many[0])  # a later backward on the retained graph is still right
    check_against_captum(model, x, many[2])
    with pytest.raises(A.AttributionError, match="no target"):
        A.explain_many(model, x, [])
    assert_untouched(model)


def test_torchvision_googlenet_all_36_branches_match_captum_and_hooks():
    model = tv_model()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ex = A.explain(model, x, classes=[f"c{i}" for i in range(1000)])
    assert len(ex.blocks) == 9 and all(len(v) == 4 for v in ex.blocks.values())
    assert ex.target == int(torch.argmax(model(x)[0]))  # default target: the top-1 class
    assert ex.label == f"c{ex.target}"
    assert ex.blocks["inception3a"]["b1"].gradcam.shape == (8, 8)  # 64 / 8
    assert ex.blocks["inception5b"]["b4"].gradcam.shape == (2, 2)
    assert ex.kernel_labels["inception4b"]["b3"] == "1×1 → 3×3"  # torchvision's "5×5" is 3×3
    check_against_captum(model, x, ex)
    check_against_hooks(model, x, ex)


def write_d2l_checkpoint(path: Path) -> torch.nn.Module:
    """A real checkpoint of the 1-channel d2l preset (at 64×64 to keep the test small)."""
    spec = with_input(d2l_fashion96(), size=(64, 64))
    torch.manual_seed(3)
    model = build(spec)
    pre = {"image_size": [64, 64], "mean": [0.5], "std": [0.5], "in_channels": 1}
    save_checkpoint(path, Checkpoint(spec, model.state_dict(), [f"c{i}" for i in range(10)], pre, {"epoch": 1}))
    return model


def test_one_channel_d2l_checkpoint_with_a_grey_image(tmp_path):
    path = tmp_path / "d2l.pt"
    write_d2l_checkpoint(path)
    lm = load_model(ModelSource("checkpoint", str(path)))
    cropped, x = preprocess(load(SAMPLES[0].read_bytes()).image, lm.preprocess)
    assert x.shape == (1, 1, 64, 64)
    ex = A.explain(lm.module, x, "c3", lm.classes)
    assert ex.target == 3 and ex.label == "c3" and len(ex.blocks) == 9
    check_against_captum(lm.module, x, ex, ["inception3a", "inception4c", "inception5b"])  # all 36: the tests above
    check_against_hooks(lm.module, x, ex)
    rf = A.receptive_fields(lm.module, x, "inception3a", 1, 2)
    assert rf.maps["b1"].shape == (64, 64)
    assert rf_image(cropped, rf, "b2").mode == "RGB"  # a grey crop draws too
    assert gradcam_grid(ex, cropped, "row").size[1] > 9 * 100


# -- receptive fields ---------------------------------------------------------------


def support_box(g: np.ndarray) -> tuple[int, int, int, int] | None:
    nz = np.argwhere(g > 0)
    if not len(nz):
        return None
    return int(nz[:, 1].min()), int(nz[:, 0].min()), int(nz[:, 1].max()), int(nz[:, 0].max())


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 1000),
    block=st.sampled_from(["inception3a", "inception3b", "inception4a", "inception4b"]),
    row=st.integers(0, 15),
    col=st.integers(0, 15),
)
def test_empirical_rf_lies_inside_the_theoretical_box(seed, block, row, col):
    model = mini_model(seed)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    hh = 16 if block.startswith("inception3") else 8
    row, col = row % hh, col % hh
    rf = A.receptive_fields(model, x, block, row, col)
    assert rf.grid["b1"] == (hh, hh)
    for b in A.BRANCHES:
        x0, y0, x1, y1 = rf_box(rf.theory[b], row, col, (32, 32))
        box = support_box(rf.maps[b])
        if box is not None:  # pixel k spans [k - 0.5, k + 0.5]
            assert x0 <= box[0] - 0.5 and y0 <= box[1] - 0.5 and box[2] + 0.5 <= x1 and box[3] + 0.5 <= y1, (b, box)


def test_rf_batch_equals_one_backward_per_branch():
    model = mini_model(5)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    rf = A.receptive_fields(model, x, "inception4a", 3, 6)
    for b, attr in zip(A.BRANCHES, BRANCH_ATTRS):
        xi = x.clone().requires_grad_(True)
        h = xi
        for name in ("conv1", "maxpool1", "inception3a", "inception3b", "maxpool2"):
            h = getattr(model, name)(h)
        out = getattr(model.inception4a, attr)(h)
        (g,) = torch.autograd.grad(out[0, :, 3, 6].sum(), [xi])
        np.testing.assert_allclose(rf.maps[b], g.abs().sum(1)[0].numpy(), rtol=1e-5, atol=1e-7)


def walked_rf(model: torch.nn.Module, block: str, branch: str) -> tuple[int, int, float]:
    """An independent oracle for the plan: walk the loaded modules' kernels, strides and paddings
    (an earlier block counts with its widest branch)."""

    def walk(mods, rf):
        size, jump, start = rf
        for m in mods:
            if isinstance(m, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
                k, st_, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
                size, start, jump = size + (k - 1) * jump, start + ((k - 1) / 2 - p) * jump, jump * st_
        return size, jump, start

    rf = (1, 1, 0.0)
    names = [n for n, _ in model.named_children() if n.startswith(("conv", "maxpool", "inception"))]
    for n in names[: names.index(block)]:
        mod = getattr(model, n)
        if n.startswith("inception"):
            rf = max((walk(getattr(mod, a).modules(), rf) for a in BRANCH_ATTRS), key=lambda r: r[0])
        else:
            rf = walk(mod.modules(), rf)
    return walk(getattr(getattr(model, block), BRANCH_ATTRS[A.BRANCHES.index(branch)]).modules(), rf)


@pytest.mark.parametrize("which", ["torchvision", "mini", "d2l"])
def test_plan_rf_equals_the_loaded_modules(which):
    model = {"torchvision": tv_model, "mini": mini_model, "d2l": lambda s: build(d2l_fashion96())}[which](0)
    for block in blocks_of(model):
        for b in A.BRANCHES:
            rf = A.theoretical_rf(model, block, b)
            assert (rf.size, rf.jump, rf.start) == walked_rf(model, block, b), (block, b)


def test_torchvision_theoretical_rf_by_hand():
    # conv1 7/2 p3 -> (7, 2, 0); maxpool1 3/2 -> (11, 4, 2); conv2 1x1; conv3 3 p1 -> (19, 4, 2);
    # maxpool2 3/2 -> (27, 8, 6): 3a's b1 (1×1) sees 27 px, b2 (1×1 → 3×3) 27 + 2·8 = 43.
    model = tv_model()
    assert A.theoretical_rf(model, "inception3a", "b1") == A.ReceptiveField(27, 8, 6.0)
    assert A.theoretical_rf(model, "inception3a", "b2") == A.ReceptiveField(43, 8, 6.0)
    assert A.theoretical_rf(model, "inception3a", "b4") == A.ReceptiveField(43, 8, 6.0)
    # 3b's input has passed 3a: its widest branch (3×3) adds 16, then 3b's b2 adds 16 more.
    assert A.theoretical_rf(model, "inception3b", "b2") == A.ReceptiveField(59, 8, 6.0)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    rf = A.receptive_fields(model, x, "inception4a", 2, 3)
    for b in A.BRANCHES:
        x0, y0, x1, y1 = rf_box(rf.theory[b], 2, 3, (96, 96))
        box = support_box(rf.maps[b])
        assert box is not None
        assert x0 <= box[0] - 0.5 and y0 <= box[1] - 0.5 and box[2] + 0.5 <= x1 and box[3] + 0.5 <= y1


def test_rf_errors():
    model = mini_model(0)
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(A.AttributionError, match="outside 3a's 16×16 grid"):
        A.receptive_fields(model, x, "inception3a", 16, 0)
    with pytest.raises(A.AttributionError, match="no block"):
        A.receptive_fields(model, x, "inception9z", 0, 0)
    with pytest.raises(A.AttributionError, match="no branch"):
        A.theoretical_rf(model, "inception3a", "b5")
    with pytest.raises(A.AttributionError, match="no layer plan"):
        A.theoretical_rf(torch.nn.Linear(2, 2), "inception3a", "b1")


# -- targets, JSON, text ----------------------------------------------------------------


def test_resolve_target():
    logits = np.array([0.1, 3.0, -1.0])
    classes = ["tabby", "Egyptian cat", "tiger"]
    assert A.resolve_target(None, logits, classes) == 1
    for empty in ("", "  "):  # an empty --target is a mistake, not a request for the top-1 class
        with pytest.raises(A.AttributionError, match="the target is empty"):
            A.resolve_target(empty, logits, classes)
    with pytest.raises(A.AttributionError, match="unknown class '²'"):  # str.isdigit() took it, int() refused
        A.resolve_target("²", logits, classes)
    assert A.resolve_target(2, logits, classes) == 2
    assert A.resolve_target(" 0 ", logits, classes) == 0
    assert A.resolve_target("egyptian CAT", logits, classes) == 1
    with pytest.raises(A.AttributionError, match=r"unknown class 'tabby cat'; did you mean 'tabby'"):
        A.resolve_target("tabby cat", logits, classes)
    with pytest.raises(A.AttributionError, match="out of range"):
        A.resolve_target(3, logits, classes)
    with pytest.raises(A.AttributionError, match="out of range"):
        A.resolve_target("-1", logits, classes)


def test_json_text_and_drops():
    model = mini_model(2)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ex = A.explain(model, x, 4, [f"thing {i}" for i in range(10)])
    j = ex.to_json()
    assert set(j) == {"target", "label", "logit", "prob", "seconds", "blocks"}
    assert j["target"] == 4 and j["label"] == "thing 4" and j["seconds"] > 0
    assert list(j["blocks"]) == list(ex.blocks)
    cell = j["blocks"]["inception3b"]["b2"]
    assert set(cell) == {"gradcam", "grad_x_act", "ablation_delta_logit", "ablation_delta_prob"}
    assert np.array_equal(np.array(cell["gradcam"], np.float32), ex.blocks["inception3b"]["b2"].gradcam)
    assert j["prob"] == pytest.approx(float(torch.softmax(torch.from_numpy(ex.logits).double(), 0)[4]))
    drops = ex.largest_drops(3)
    dp = ex.matrix("delta_prob")
    assert drops[0].after - drops[0].before == pytest.approx(dp.min())
    assert [d.after - d.before for d in drops] == sorted(d.after - d.before for d in drops)
    s = drops[0].sentence("thing 4")
    assert s.startswith(f"zeroing {short_label(drops[0].block)}·{drops[0].branch} ") and "'thing 4' from" in s
    shares = ex.block_shares()
    np.testing.assert_allclose(np.abs(shares).sum(1), 1.0)
    text = A.explain_text(ex, "mini")
    assert "target 4 'thing 4'" in text and "largest drops:" in text and " 4b " in text
    no_ablation = A.explain(model, x, 4, ablation=False)
    assert np.isnan(no_ablation.matrix("delta_logit")).all()
    np.testing.assert_array_equal(no_ablation.matrix("grad_x_act"), ex.matrix("grad_x_act"))


def test_pct():
    assert A.pct(0.62) == "62 %" and A.pct(0.062) == "6.2 %" and A.pct(0.00031) == "0.031 %"


def test_figures_carry_the_numbers():
    model = mini_model(4)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    ex = A.explain(model, x, 1, [f"k{i}" for i in range(10)])
    for svg, want in (
        (ablation_heatmap(ex), ex.matrix("delta_prob") * 100),
        (evidence_heatmap(ex), ex.matrix("grad_x_act")),
    ):
        cells = ET.fromstring(svg).findall("{http://www.w3.org/2000/svg}g")
        got = np.zeros_like(want)
        for c in cells:
            got[int(c.get("data-row")), int(c.get("data-col"))] = float(c.get("data-value"))
        assert len(cells) == want.size
        np.testing.assert_array_equal(got, want)
        labels = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
        assert all(name in labels for name in ["3a", "3b", "4a", "4b", *A.BRANCHES])
    biggest_drop = ex.largest_drops(1)[0]
    cell = ET.fromstring(ablation_heatmap(ex)).findall("{http://www.w3.org/2000/svg}g")[
        4 * list(ex.blocks).index(biggest_drop.block) + A.BRANCHES.index(biggest_drop.branch)
    ]
    assert (
        f"{biggest_drop.before:.2%} → {biggest_drop.after:.2%}" in cell.find("{http://www.w3.org/2000/svg}title").text
    )
    pick = unit_picker(ex, "inception4a", "b3")
    # the oracle: the branch's output from a forward hook, averaged over its channels
    seen = {}
    handle = model.inception4a.branch3.register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    want = seen["out"][0].mean(0).numpy()
    assert (pick["h"], pick["w"]) == want.shape and len(pick["fills"]) == len(pick["values"]) == want.size
    np.testing.assert_allclose(np.array(pick["values"]), want.ravel(), rtol=1e-3, atol=1e-7)  # 4 digits, as hovered
    # light grey at the minimum, the branch's colour at the maximum, row-major
    assert pick["fills"][int(want.argmin())] == "#f2f2f2"
    assert pick["fills"][int(want.argmax())] == BRANCH_COLORS["b3"].lower()
    # the same for every target: switching the target leaves the grid's data unchanged
    assert unit_picker(A.explain(model, x, 7), "inception4a", "b3") == pick
    img = load(SAMPLES[0].read_bytes()).image.resize((32, 32))
    shared, per_row = gradcam_grid(ex, img, "shared"), gradcam_grid(ex, img, "row")
    assert shared.size == per_row.size and shared.tobytes() != per_row.tobytes()
    with pytest.raises(ValueError):
        gradcam_grid(ex, img, "log")


def test_refuses_training_mode_and_batches():
    model = mini_model(0)
    with pytest.raises(A.AttributionError, match="one image"):
        A.explain(model, torch.zeros(2, 3, 32, 32))
    with pytest.raises(A.AttributionError, match="one image"):
        A.ablation_logits(model, torch.zeros(2, 3, 32, 32))
    model.train()
    with pytest.raises(A.AttributionError, match="training mode"):
        A.explain(model, torch.zeros(1, 3, 32, 32))
    with pytest.raises(A.AttributionError, match="training mode"):
        A.ablation_logits(model, torch.zeros(1, 3, 32, 32))


# -- the shared model ----------------------------------------------------------------


def assert_untouched(model: torch.nn.Module) -> None:
    assert not model.training and all(not m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert not getattr(m, "_backward_pre_hooks", None)


def test_eight_threads_on_one_shared_model_equal_lone_runs():
    model = mini_model(7)
    model.requires_grad_(True)  # even with trainable parameters, no .grad may appear
    xs = [torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(100 + i)) for i in range(8)]
    jobs = [(xs[i], i % 10) for i in range(8)]
    lone = [A.explain(model, x, t) for x, t in jobs]
    lone_rf = [A.receptive_fields(model, x, "inception3b", i, 15 - i) for i, (x, _) in enumerate(jobs)]
    assert_untouched(model)

    def work(i: int) -> tuple[A.Explanation, A.EmpiricalRF]:
        x, t = jobs[i]
        return A.explain(model, x, t), A.receptive_fields(model, x, "inception3b", i, 15 - i)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for (ex, rf), want, want_rf in zip(results, lone, lone_rf):
        assert ex.target == want.target
        for f in ("grad_x_act", "delta_logit", "delta_prob"):
            np.testing.assert_allclose(ex.matrix(f), want.matrix(f), rtol=1e-6, atol=1e-9)
        for b in ex.blocks:
            for r in A.BRANCHES:
                np.testing.assert_allclose(ex.blocks[b][r].gradcam, want.blocks[b][r].gradcam, rtol=1e-6, atol=1e-9)
                np.testing.assert_allclose(rf.maps[r], want_rf.maps[r], rtol=1e-6, atol=1e-12)
    assert_untouched(model)


def test_loaded_model_stays_as_loaded(tmp_path):
    lm = load_model(ModelSource("checkpoint", str(_mini_ckpt(tmp_path))))
    before = {k: v.clone() for k, v in lm.module.state_dict().items()}
    x = torch.randn(1, 3, 32, 32)
    A.explain(lm.module, x)
    A.receptive_fields(lm.module, x, "inception4b", 0, 0)
    assert_untouched(lm.module)
    assert all(not p.requires_grad for p in lm.module.parameters())
    assert all(torch.equal(before[k], v) for k, v in lm.module.state_dict().items())  # BN stats too


def _mini_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "mini.pt"
    spec = dataclasses.replace(mini())
    pre = {"image_size": [32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "in_channels": 3}
    save_checkpoint(path, Checkpoint(spec, mini_model(9).state_dict(), [f"t{i}" for i in range(10)], pre, {}))
    return path
