"""gnet.featurevis: activation maximisation, its cache and jobs, branch specialisation, `python -m gnet visualize`.

A tiny GoogLeNet (one stage of two blocks, 16×16 input) is trained for a few dozen steps on
the synthetic set once per module: big enough to have learned channels, small enough to
train in seconds on a shared 2-core machine.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.models import googlenet as tv_googlenet

from gnet import features as F
from gnet import featurevis as fv
from gnet.__main__ import main
from gnet.checkpoints import Checkpoint, save_checkpoint
from gnet.data import synthetic
from gnet.images import Preprocess, crop_for_model, to_tensor
from gnet.network import build
from gnet.pretrained import ModelSource, load_model
from gnet.spec import BlockSpec, ConvSpec, NetworkSpec, PoolSpec
from tests.patience import BACKGROUND_S, wait_until

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
FAST = fv.VisConfig(size=32, steps=64, jitter=2, lr=0.1)


def tiny_spec(in_channels: int = 3) -> NetworkSpec:
    return NetworkSpec(
        name="tiny",
        in_channels=in_channels,
        input_size=(16, 16),
        num_classes=10,
        stem=(ConvSpec(16, 3, 1, 1), PoolSpec(3, 2, padding=1)),
        stages=(
            (
                BlockSpec(b1=8, b2_reduce=8, b2=12, b3_reduce=4, b3=8, b4=8, batch_norm=True),
                BlockSpec(b1=8, b2_reduce=8, b2=12, b3_reduce=4, b3=8, b4=8, batch_norm=True),
            ),
        ),
        stage_pools=(),
        batch_norm=True,
    )


def train_tiny(in_channels: int = 3, steps: int = 60) -> tuple[torch.nn.Module, Preprocess, dict]:
    ds = synthetic(512, 10, size=16)
    x = ds.train_x.float() / 255
    if in_channels == 1:
        x = x.mean(1, keepdim=True)
    mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3))
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    torch.manual_seed(0)
    model = build(tiny_spec(in_channels))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(x), (32,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[i]), ds.train_y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval().requires_grad_(False)
    pre_dict = {
        "image_size": [16, 16],
        "mean": mean.tolist(),
        "std": std.tolist(),
        "in_channels": in_channels,
        "resize_mode": "stretch",
    }
    pre = Preprocess(16, (16, 16), tuple(mean.tolist()), tuple(std.tolist()), in_channels, stretch=True)
    return model, pre, pre_dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, preprocessing, checkpoint path) of the tiny network after a short training run."""
    model, pre, pre_dict = train_tiny()
    path = tmp_path_factory.mktemp("tinyrun") / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, Checkpoint(tiny_spec(), model.state_dict(), [f"c{i}" for i in range(10)], pre_dict, {}))
    return model, pre, path


def snapshot(model: torch.nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "flags": [p.requires_grad for p in model.parameters()],
        "training": model.training,
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
        ),
    }


def assert_unchanged(model: torch.nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["training"] is False and after["hooks"] == before["hooks"] == 0
    assert after["flags"] == before["flags"]
    assert all(p.grad is None for p in model.parameters())
    assert before["state"].keys() == after["state"].keys()
    assert all(torch.equal(before["state"][k], after["state"][k]) for k in before["state"])


def mean_act(model: torch.nn.Module, pre: Preprocess, img: np.ndarray, target: fv.Target) -> float:
    """The target's mean activation on a uint8 image, through gnet.features (an independent path)."""
    a = torch.from_numpy(img.astype(np.float32) / 255)
    a = a.permute(2, 0, 1)[None] if a.ndim == 3 else a[None, None]
    x = (a - torch.tensor(pre.mean).view(1, -1, 1, 1)) / torch.tensor(pre.std).view(1, -1, 1, 1)
    ex = F.extract(model, x, target.layer)
    act = ex.groups[target.branch]
    return float(act.mean() if target.channel is None else act[target.channel].mean())


# ---------------------------------------------------------------------------
# Optimisation


@pytest.fixture(scope="module")
def b1_pictures(trained):
    """The pictures of 3a·b1's eight channels, optimised as one batch."""
    model, pre, _ = trained
    before = snapshot(model)
    targets = [fv.Target("inception3a", "b1", k) for k in range(8)]
    pics = fv.visualize(model, pre, targets, FAST)
    assert_unchanged(model, before)
    return targets, pics


def test_optimisation_raises_the_target_far_above_a_grey_or_random_start(trained, b1_pictures):
    model, pre, _ = trained
    noise = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    grey = np.full((32, 32, 3), 128, np.uint8)
    far = 0
    live = 0
    for t, vis in zip(*b1_pictures):
        on_noise, on_grey = mean_act(model, pre, noise, t), mean_act(model, pre, grey, t)
        assert vis.activation_start == pytest.approx(on_grey, rel=0.1, abs=0.05)  # the start is near mid-grey
        # the number reported is what the network gives on the saved picture (through gnet.features)
        assert mean_act(model, pre, vis.image, t) == pytest.approx(vis.activation_end, rel=0.05, abs=0.02)
        if max(on_noise, on_grey, vis.activation_end) < 1e-3:
            continue  # a dead channel (zero on everything): no gradient to follow
        live += 1
        assert vis.activation_end > 1.2 * max(on_noise, on_grey), t
        far += vis.activation_end > 3 * max(on_noise, on_grey)
        assert vis.image.shape == (32, 32, 3) and vis.image.dtype == np.uint8 and vis.image.std() > 5
    assert live >= 6 and far >= live // 2, (live, far)


def test_channel_is_excited_most_by_its_own_picture(trained, b1_pictures):
    model, pre, _ = trained
    targets, pics = b1_pictures
    a = np.array([[mean_act(model, pre, p.image, t) for t in targets] for p in pics])  # a[picture, channel]
    live = [k for k in range(8) if a[k, k] > 0.1]
    assert len(live) >= 5, a.round(2)
    for k in live:
        others = np.delete(a[:, k], k)
        assert a[k, k] > others.max(), (k, a[:, k].round(3))


def test_batch_does_not_change_a_channel_picture_and_results_are_deterministic(trained):
    model, pre, _ = trained
    t = fv.Target("inception3a", "b3", 2)
    cfg = fv.VisConfig(size=32, steps=12, jitter=2)
    (one,) = fv.visualize(model, pre, [t], cfg)
    (again,) = fv.visualize(model, pre, [t], cfg)
    assert np.array_equal(one.image, again.image) and one.activation_end == again.activation_end
    batched = fv.visualize(model, pre, [fv.Target("inception3a", "b1", 0), t], cfg)[1]
    assert np.abs(batched.image.astype(int) - one.image.astype(int)).max() <= 2
    (other_seed,) = fv.visualize(model, pre, [t], fv.VisConfig(size=32, steps=12, jitter=2, seed=1))
    assert not np.array_equal(other_seed.image, one.image)


def test_whole_branch_and_whole_block_objectives(trained):
    model, pre, _ = trained
    branch, block = fv.visualize(model, pre, [fv.Target("inception3a", "b3"), fv.Target("inception3a")], FAST)
    assert branch.activation_end > 1.5 * branch.activation_start
    assert branch.target.caption() == "3a·b3 (whole branch)" and block.target.caption() == "3a (whole block)"
    # the whole-block objective is the mean of the concatenated block output
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = fv.objectives(model, fv.block_input(model, x, "inception3a"), [block.target])
    assert float(got[0]) == pytest.approx(float(F.extract(model, x, "3a").output.mean()), rel=1e-5)


def test_grey_network_gets_a_grey_picture():
    model, pre, _ = train_tiny(in_channels=1, steps=5)
    (vis,) = fv.visualize(model, pre, [fv.Target("3a", "b2", 1)], fv.VisConfig(size=32, steps=16, jitter=2))
    assert vis.image.shape == (32, 32) and vis.pil().mode == "L"
    assert vis.activation_end > vis.activation_start


def test_refuses_a_model_in_training_mode_and_touches_nothing(trained):
    model = copy.deepcopy(trained[0]).train()
    stats = model.inception3a.branch1.bn.running_mean.clone()
    with pytest.raises(fv.VisError, match="eval mode"):
        fv.visualize(model, trained[1], [fv.Target("3a", "b1", 0)], FAST)
    assert torch.equal(stats, model.inception3a.branch1.bn.running_mean)


def test_cancel_is_checked_every_step(trained):
    calls = []
    with pytest.raises(fv.Cancelled, match="after 3 of"):
        fv.visualize(
            trained[0],
            trained[1],
            [fv.Target("3a", "b1", 0)],
            FAST,
            progress=lambda s, n, v: calls.append(s),
            should_stop=lambda: len(calls) >= 3,
        )


def test_objective_matches_features_extract_with_torchvision_transform_input():
    """torchvision's transform_input is applied in the objective exactly as in gnet.features; the
    private copy (BatchNorm folded, channels last) computes the same numbers."""
    torch.manual_seed(0)
    model = tv_googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False).eval()
    model.requires_grad_(False)
    before = snapshot(model)
    x = torch.randn(1, 3, 64, 64)
    fast = fv.private_copy(model)
    for t in (fv.Target("inception3a", "b2", 7), fv.Target("inception4a", "b4", 3)):
        r = fv.resolve(model, t)
        want = F.extract(model, x, t.layer).groups[t.branch][t.channel].mean()
        with torch.no_grad():
            got = fv.objectives(model, fv.block_input(model, x, t.layer), [r])[0]
            got_fast = fv.objectives(fast, fv.block_input(fast, x, t.layer), [r])[0]
        assert float(got) == pytest.approx(float(want), rel=1e-5, abs=1e-6)
        assert float(got_fast) == pytest.approx(float(want), rel=1e-3, abs=1e-4)
    assert fv.resolve(model, fv.Target("4b", "b3", 5)).caption() == "4b·b3 ch 5 | out 389"  # 160 + 224 + 5
    assert_unchanged(model, before)


@settings(max_examples=20, deadline=None)
@given(out=st.integers(0, 35), layer=st.sampled_from(["3a", "inception3b"]))
def test_branch_aware_index_round_trips_to_the_block_output(trained, out, layer):
    model = trained[0]
    t = fv.from_output_channel(model, layer, out)
    r = fv.resolve(model, t)
    assert r.output_channel == out and r.caption().endswith(f"ch {t.channel} | out {out}")
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(out))
    ex = F.extract(model, x, layer)
    assert np.array_equal(ex.output[out], ex.groups[t.branch][t.channel])
    assert np.allclose(fv.activation_map(model, x, t), ex.groups[t.branch][t.channel], atol=1e-6)


def test_bad_targets_and_settings_say_what_is_wrong(trained):
    model = trained[0]
    with pytest.raises(fv.VisError, match="no layer"):
        fv.resolve(model, fv.Target("4z"))
    with pytest.raises(fv.VisError, match="not an Inception block"):
        fv.resolve(model, fv.Target("conv1"))
    with pytest.raises(fv.VisError, match="no branch"):
        fv.resolve(model, fv.Target("3a", "b5"))
    with pytest.raises(fv.VisError, match=r"3a·b1 has channels 0 to 7"):
        fv.resolve(model, fv.Target("3a", "b1", 8))
    with pytest.raises(fv.VisError, match="output channels 0 to 35"):
        fv.from_output_channel(model, "3a", 36)
    for bad in (dict(size=8), dict(steps=0), dict(lr=-1.0), dict(lr=float("nan")), dict(seed=-1)):
        with pytest.raises(fv.VisError):
            fv.VisConfig(**bad).validate()


@settings(max_examples=15, deadline=None)
@given(size=st.integers(32, 80), seed=st.integers(0, 1000), decorrelate=st.booleans())
def test_parameterisation_is_in_range_and_spectrum_is_one_over_f(size, seed, decorrelate):
    channels = 3 if decorrelate else 1
    spec = torch.randn((2, channels, size, size // 2 + 1, 2), generator=torch.Generator().manual_seed(seed))
    scale = fv._spectrum_scale(size, size, 1.0)
    img = fv.to_pixels(spec, scale, size, channels)
    assert img.shape == (2, channels, size, size) and float(img.min()) >= 0 and float(img.max()) <= 1
    # scale × frequency is constant (√(h·w)) wherever the frequency is above the one-cycle floor
    fy, fx = torch.fft.fftfreq(size)[:, None], torch.fft.rfftfreq(size)[None, :]
    f = (fx**2 + fy**2).sqrt()
    above = f >= 1 / size
    assert torch.allclose((scale * f)[above], torch.full_like(f[above], float(size)), rtol=1e-5)
    assert float(fv.COLOR_MATRIX.norm(dim=0).max()) == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Cache and jobs


def test_cache_round_trip_and_half_written_results_are_not_results(trained, tmp_path):
    model, pre, _ = trained
    (vis,) = fv.visualize(model, pre, [fv.Target("3a", "b2", 0)], fv.VisConfig(size=32, steps=2, jitter=2))
    fp = fv.model_fingerprint(model, pre)
    key = fv.result_key(fp, vis.target.target, fv.VisConfig(size=32, steps=2, jitter=2))
    assert fv.read_result(tmp_path, key) is None
    fv.write_result(tmp_path, key, vis)
    got = fv.read_result(tmp_path, key)
    assert got is not None and np.array_equal(np.asarray(got.image()), vis.image)
    assert got.meta["output_channel"] == 8 and got.meta["steps"] == 2
    png_path, json_path = fv._result_paths(tmp_path, key)
    png_path.write_bytes(png_path.read_bytes()[:100])  # a torn picture under a complete JSON
    assert fv.read_result(tmp_path, key) is None
    json_path.unlink()
    assert fv.read_result(tmp_path, key) is None
    # every part of the key matters
    keys = {
        key,
        fv.result_key(fp, fv.Target("inception3a", "b2", 1), fv.VisConfig(size=32, steps=2, jitter=2)),
        fv.result_key(fp, vis.target.target, fv.VisConfig(size=32, steps=3, jitter=2)),
        fv.result_key("other-model", vis.target.target, fv.VisConfig(size=32, steps=2, jitter=2)),
    }
    assert len(keys) == 4
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.inception3a.branch1.conv.weight[0, 0, 0, 0] += 1
    assert fv.model_fingerprint(other, pre) != fp == fv.model_fingerprint(model, pre)


def test_job_in_process_keeps_each_finished_batch_when_cancelled(trained, tmp_path, monkeypatch):
    model, pre, ckpt = trained
    before = snapshot(model)
    monkeypatch.setattr(fv, "batch_size", lambda device: 1)
    written = []
    real_write = fv.write_result

    def write_then_stop(root, key, vis):
        real_write(root, key, vis)
        written.append(key)
        (job.path / "STOP").write_text("stop")  # asked to stop while the second picture is optimised

    monkeypatch.setattr(fv, "write_result", write_then_stop)
    cfg = fv.VisConfig(size=32, steps=6, jitter=2)
    fp = fv.model_fingerprint(model, pre)
    targets = [fv.Target("inception3a", "b1", k) for k in range(3)]
    job = fv.start_job(
        tmp_path, {"kind": "checkpoint", "path": str(ckpt)}, fp, "inception3a", targets, cfg, spawn=False
    )
    assert job.state == "starting" and job.total == 3
    info = fv.run_job(job.path, model, pre)
    assert info.state == "cancelled" and "1 of 3 pictures are finished" in info.message
    assert len(written) == 1 and fv.read_result(tmp_path, written[0]) is not None
    assert [fv.read_result(tmp_path, fv.result_key(fp, t, cfg)) is not None for t in targets] == [True, False, False]
    assert_unchanged(model, before)


def test_at_most_n_jobs_and_the_same_request_joins_the_running_job(trained, tmp_path, monkeypatch):
    model, pre, ckpt = trained
    monkeypatch.setenv("GNET_MAX_VIS_JOBS", "1")
    src = {"kind": "checkpoint", "path": str(ckpt)}
    fp = fv.model_fingerprint(model, pre)
    first = fv.start_job(tmp_path, src, fp, "inception3a", [fv.Target("inception3a", "b1", 0)], FAST, spawn=False)
    fv.write_job_status(first.path, "running", pid=os.getpid(), host=socket.gethostname())  # alive: this process
    again = fv.start_job(tmp_path, src, fp, "inception3a", [fv.Target("inception3a", "b1", 0)], FAST, spawn=False)
    assert again.id == first.id and again.state == "running"
    with pytest.raises(fv.JobsBusy, match="all 1 visualisation workers are busy"):
        fv.start_job(tmp_path, src, fp, "inception3a", [fv.Target("inception3a", "b1", 1)], FAST, spawn=False)
    fv.write_job_status(first.path, "running", pid=2**22 + 12345)  # a pid that is not running: the job died
    assert fv.read_job(first.path).state == "died"
    assert (
        fv.start_job(tmp_path, src, fp, "inception3a", [fv.Target("inception3a", "b1", 1)], FAST, spawn=False).state
        == "starting"
    )


def wait_for(path: Path, ok, timeout: float = BACKGROUND_S) -> fv.JobInfo:
    def reached() -> fv.JobInfo | None:
        info = fv.read_job(path)
        return info if ok(info) else None

    return wait_until(
        reached, lambda: f"job never got there: {fv.read_job(path)} {(path / 'log.txt').read_text()[-2000:]}", timeout
    )


def test_killed_job_process_leaves_no_half_written_result(trained, tmp_path, monkeypatch):
    model, pre, ckpt = trained
    monkeypatch.setenv("GNET_RUNS_DIR", str(ckpt.parents[2]))  # the job loads only what the app may read
    cfg = fv.VisConfig(size=64, steps=4000, jitter=4)
    fp = fv.model_fingerprint(model, pre)
    targets = [fv.Target("inception3b", "b2", 0), fv.Target("inception3b", "b2", 1)]
    job = fv.start_job(tmp_path, {"kind": "checkpoint", "path": str(ckpt)}, fp, "inception3b", targets, cfg)
    running = wait_for(job.path, lambda j: j.state == "running" and int(j.status.get("step", 0)) > 2)
    assert 0 < running.fraction < 1 and "3b·b2 ch 0 | out 8" in running.status["current"]
    os.killpg(running.status["pid"], signal.SIGKILL)  # its own session: the pid is the group
    died = wait_for(job.path, lambda j: j.state == "died", timeout=30)
    assert "finished pictures are kept" in died.message
    assert all(fv.read_result(tmp_path, fv.result_key(fp, t, cfg)) is None for t in targets)
    results = tmp_path / "results"
    assert not results.exists() or [p for p in results.rglob("*") if p.is_file()] == []


def test_cancel_by_sigterm_is_graceful(trained, tmp_path):
    """What cancel_job sends, delivered to run_job in this process: it stops at the next step."""
    model, pre, ckpt = trained
    cfg = fv.VisConfig(size=32, steps=4000, jitter=2)
    fp = fv.model_fingerprint(model, pre)
    job = fv.start_job(
        tmp_path,
        {"kind": "checkpoint", "path": str(ckpt)},
        fp,
        "inception3a",
        [fv.Target("inception3a", "b1", 0)],
        cfg,
        spawn=False,
    )
    old = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        info = fv.run_job(job.path, model, pre)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old)
    assert info.state == "cancelled" and "0 of 1" in info.message


# ---------------------------------------------------------------------------
# Branch specialisation


def test_specialisation_statistics(trained):
    model, pre, _ = trained
    before = snapshot(model)
    images = [Image.open(p).convert("RGB") for p in sorted(SAMPLES.glob("*.jpg"))]
    spec = fv.specialisation(model, pre, images, threshold=0.3, top_fraction=0.25)
    assert spec.blocks() == ["3a", "3b"] and spec.images == 3 and not spec.grey_network
    for b in spec.blocks():
        rows = [r for r in spec.rows if r.block == b]
        assert [r.branch for r in rows] == ["b1", "b2", "b3", "b4"]
        assert sum(r.strongest_share for r in rows) == pytest.approx(1.0)
        assert sum(r.channel_share for r in rows) == pytest.approx(1.0)
        assert all(0 <= r.colour_sensitivity <= 1 and 0 <= r.colour_selective <= 1 for r in rows)
    assert len(spec.grid("colour_sensitivity")) == 2 and len(spec.grid("colour_sensitivity")[0]) == 4
    # against a direct computation through gnet.features, image by image
    acts = {}
    for kind in ("colour", "grey"):
        rows = []
        for img in images:
            seen = crop_for_model(img, pre)  # the grey copy is of what the network sees
            x = to_tensor(seen if kind == "colour" else seen.convert("L").convert("RGB"), pre)
            rows.append(F.extract(model, x, "3b").groups["b3"].mean(axis=(1, 2)))
        acts[kind] = np.array(rows)
    want = np.abs(acts["colour"] - acts["grey"]).sum(0) / np.maximum(acts["colour"], acts["grey"]).sum(0)
    want = np.nan_to_num(want)
    got = next(r for r in spec.rows if r.block == "3b" and r.branch == "b3")
    assert got.colour_sensitivity == pytest.approx(float(want.mean()), rel=1e-4, abs=1e-6)
    assert got.colour_selective == pytest.approx(float((want > 0.3).mean()))
    # an image that is already grey has nothing to lose
    grey_only = fv.specialisation(model, pre, [images[0].convert("L").convert("RGB")])
    assert all(r.colour_sensitivity == pytest.approx(0, abs=1e-6) for r in grey_only.rows)
    assert_unchanged(model, before)


# ---------------------------------------------------------------------------
# CLI


def test_cli_visualize_json(trained, tmp_path, capsys):
    _, _, ckpt = trained
    out = tmp_path / "ch.png"
    rc = main(
        [
            "visualize",
            "--checkpoint",
            str(ckpt),
            "--layer",
            "inception3b",
            "--branch",
            "b2",
            "--channel",
            "3",
            "--size",
            "32",
            "--steps",
            "16",
            "--seed",
            "0",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert list(d) == [
        "layer",
        "branch",
        "channel",
        "output_channel",
        "steps",
        "seconds",
        "activation_start",
        "activation_end",
    ]
    assert (d["layer"], d["branch"], d["channel"], d["output_channel"], d["steps"]) == ("inception3b", "b2", 3, 11, 16)
    assert d["activation_end"] > d["activation_start"] and d["seconds"] > 0
    assert Image.open(out).size == (32, 32)
    # --channel without --branch counts in the block output
    assert (
        main(
            [
                "visualize",
                "--checkpoint",
                str(ckpt),
                "--layer",
                "3b",
                "--channel",
                "11",
                "--size",
                "32",
                "--steps",
                "16",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["activation_end"] == d["activation_end"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "4z"], "no layer"),
        (["--layer", "3a", "--branch", "b1", "--channel", "99"], "3a·b1 has channels 0 to 7"),
        (["--layer", "3a", "--size", "8"], "size must be"),
        (["--layer", "3a", "--steps", "0"], "steps must be"),
        (["--layer", "3a", "--branch", "b9"], "invalid choice"),
        (["--layer", "3a", "--out", "/no/such/folder/x.png"], "does not exist"),
        (["--layer", "3a", "--out", "x.jpg"], "must be a .png"),
        (["--out", "x.png"], "needs --layer"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(trained, tmp_path, capsys, args, message):
    argv = ["visualize", "--checkpoint", str(trained[2]), *args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_bad_model_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a torch file")
    for src in (["--checkpoint", str(bad)], ["--weights", str(tmp_path / "missing.pth")]):
        assert main(["visualize", *src, "--layer", "3a", "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_pretrained_missing_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_OFFLINE", "1")
    assert main(["visualize", "--layer", "3a", "--out", str(tmp_path / "x.png")]) == 2
    assert "--untrained" in capsys.readouterr().err


def test_checkpoint_source_loads_the_same_weights(trained):
    model, pre, ckpt = trained
    lm = load_model(ModelSource("checkpoint", str(ckpt)))
    assert fv.model_fingerprint(lm.module, lm.preprocess) == fv.model_fingerprint(model, pre)
