"""Per-branch telemetry: the statistics of a step equal ones computed by hand, telemetry changes nothing,
resume continues the stream, TensorBoard events hold the same figures, the reader tolerates torn files."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as hst
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gnet import runs
from gnet.blocks import BRANCH_ATTRS
from gnet.checkpoints import load_checkpoint
from gnet.data import load_dataset
from gnet.network import build
from gnet.spec import CHANNEL_FIELDS, BlockSpec, ConvSpec, NetworkSpec, PoolSpec, network_preset
from gnet.telemetry import telemetry_step
from gnet.train import Distributed, TrainConfig, get_lr, make_loaders, make_optimizer, model_spec, train

STATS = tuple(runs.TELEMETRY_STATS)


def aux_spec() -> NetworkSpec:
    """The smallest network with the paper's aux heads (after 4a and 4d)."""
    b = BlockSpec(b1=4, b2_reduce=4, b2=4, b3_reduce=2, b3=4, b4=4, batch_norm=True)
    return NetworkSpec(
        name="tiny-aux",
        in_channels=3,
        input_size=(24, 24),
        num_classes=10,
        stem=(ConvSpec(8, 3, 1, 1), PoolSpec(3, 2, 1)),
        stages=((b,), (b, b, b, b)),
        stage_pools=(PoolSpec(3, 2, 1),),
        batch_norm=True,
    )


def aux_cfg(**kw) -> TrainConfig:
    return TrainConfig.from_recipe(
        "improved",
        aux_spec(),
        **{
            "image_size": 24,
            "synthetic_train": 40,
            "synthetic_test": 20,
            "batch_size": 20,
            "epochs": 1,
            "device": "cpu",
            "aux": True,
            "amp": "off",
            "telemetry_every": 1,
            **kw,
        },
    )


@pytest.fixture(scope="module")
def aux_run(tmp_path_factory):
    cfg = aux_cfg()
    run = runs.create(tmp_path_factory.mktemp("tel") / "aux", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    return cfg, run


def by_hand(cfg: TrainConfig) -> tuple[dict, dict[str, float], float]:
    """Step 1 of `cfg` without the trainer's loop or probe: the network walked module by module, every branch
    output kept with retain_grad, one backward, one optimiser step, norms of the parameters before and after."""
    data = load_dataset("synthetic", None, image_size=24, synthetic_train=40, synthetic_test=20, seed=cfg.seed)
    spec = model_spec(cfg, data.in_channels, len(data.classes))
    loader, _ = make_loaders(cfg, data, Distributed(1, 0, torch.device("cpu")), spec.input_size, data.channel_stats())
    x, y = next(iter(loader.epoch(0)))
    torch.manual_seed(cfg.seed)
    model = build(spec).to(memory_format=torch.channels_last).train()
    opt = make_optimizer(model, cfg)
    for g in opt.param_groups:
        g["lr"] = get_lr(0, cfg.epochs * loader.steps, cfg)
    outs, aux_logits, h = {}, [], x
    for name in model.main_path:  # the plan's forward order up to the head
        mod = getattr(model, name)
        if name.startswith("inception"):
            parts = []
            for i, attr in enumerate(BRANCH_ATTRS):
                o = getattr(mod, attr)(h)
                o.retain_grad()
                outs[(name, f"b{i + 1}")] = o
                parts.append(o)
            h = torch.cat(parts, 1)
        else:
            h = mod(h)
        if name in model.aux_after:
            aux_logits.append(getattr(model, model.aux_after[name])(h))
    logits = model.fc(model.dropout(torch.flatten(model.avgpool(h), 1)))
    ce = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    loss, aux = ce(logits, y), [ce(a, y) for a in aux_logits]
    (loss + cfg.aux_weight * sum(aux)).backward()

    def params(key: tuple[str, str]) -> torch.Tensor:
        return torch.cat(
            [
                p.detach().flatten()
                for p in getattr(getattr(model, key[0]), BRANCH_ATTRS[int(key[1][1]) - 1]).parameters()
            ]
        )

    before = {k: params(k).clone() for k in outs}
    opt.step()
    expect = {
        k: {
            "out_rms": o.detach().pow(2).mean().sqrt().item(),
            "grad_rms": o.grad.pow(2).mean().sqrt().item(),
            "weight_norm": params(k).norm().item(),
            "update_norm": (params(k) - before[k]).norm().item(),
        }
        for k, o in outs.items()
    }
    return expect, {f"aux{i + 1}": a.item() for i, a in enumerate(aux)}, loss.item()


def test_one_step_statistics_equal_a_hand_computation(aux_run):
    cfg, run = aux_run
    recs = runs.read_telemetry(run)
    assert [r["step"] for r in recs] == [1, 2]
    rec = recs[0]
    expect, aux, loss = by_hand(cfg)
    assert list(rec["branches"]) == ["inception3a", "inception4a", "inception4b", "inception4c", "inception4d"]
    assert {(b, br) for b, d in rec["branches"].items() for br in d} == set(expect)
    for (blk, br), stats in expect.items():
        for s in STATS:
            assert rec["branches"][blk][br][s] == pytest.approx(stats[s], rel=1e-5, abs=1e-12), (blk, br, s)
    assert rec["aux_loss"] == pytest.approx(aux, rel=1e-6) and rec["loss"] == pytest.approx(loss, rel=1e-6)
    assert rec["lr"] == get_lr(0, 2, cfg)
    # the same main loss as the step's metrics record (a different code path: the record window's sums)
    assert runs.read_metrics(run, "step")[0]["loss"] == pytest.approx(rec["loss"], rel=1e-6)


def test_telemetry_changes_no_number(aux_run, tmp_path):
    cfg, run = aux_run
    off = aux_cfg(telemetry_every=0)
    quiet = runs.create(tmp_path / "off", {"train": off.to_dict()})
    assert train(off, quiet) == "finished"
    assert not (quiet / runs.TELEMETRY).exists()
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt").model_state for r in (run, quiet))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tensorboard_events_hold_the_same_figures(aux_run):
    _, run = aux_run
    ea = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0}).Reload()
    tags = ea.Tags()
    rec = runs.read_telemetry(run)[0]
    for blk, d in rec["branches"].items():
        for br, stats in d.items():
            for s, v in stats.items():
                events = ea.Scalars(f"branch/{blk}/{br}/{s}")
                assert [e.step for e in events] == [1, 2]
                assert events[0].value == pytest.approx(v, rel=1e-6)
    assert {"train/loss", "train/acc", "lr", "images_per_s", "test/loss", "test/acc", "aux/aux1_loss"} <= set(
        tags["scalars"]
    )
    epoch = runs.read_metrics(run, "epoch")[0]
    assert ea.Scalars("test/acc")[0].value == pytest.approx(epoch["test_acc"], rel=1e-6)
    assert {f"weights/{b}" for b in rec["branches"]} <= set(tags["histograms"])


def test_resumed_run_continues_the_stream_without_duplicates(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    cfg = TrainConfig.from_recipe(
        "improved",
        network_preset("mini"),
        image_size=16,
        synthetic_train=120,
        synthetic_test=40,
        batch_size=40,
        epochs=2,
        device="cpu",
        telemetry_every=2,
    )
    straight = runs.create(tmp_path / "straight", {"train": cfg.to_dict()})
    assert train(cfg, straight) == "finished"
    split = runs.create(tmp_path / "split", {"train": cfg.to_dict()})
    assert train(cfg, split, should_stop=lambda step: step == 3) == "stopped"
    # A process killed after its step-3 checkpoint had written step 4 already (and left a torn line):
    runs.append_jsonl(split / runs.TELEMETRY, [{"kind": "telemetry", "step": 4, "branches": {}, "stale": True}])
    with open(split / runs.TELEMETRY, "a") as f:
        f.write('{"kind": "telemetry", "st')
    w = SummaryWriter(str(split))
    w.add_scalar("train/loss", 123.0, 4)
    w.close()
    assert train(cfg, split, resume=True) == "finished"
    recs = runs.read_telemetry(split)
    assert [r["step"] for r in recs] == [1, 2, 4, 6] and not any(r.get("stale") for r in recs)

    def numbers(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "time"}

    assert [numbers(r) for r in recs] == [numbers(r) for r in runs.read_telemetry(straight)]
    ea = EventAccumulator(str(split), size_guidance={"scalars": 0}).Reload()
    loss = ea.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 7)) and 123.0 not in [e.value for e in loss]


def test_telemetry_steps_are_step_one_then_every_k():
    assert [s for s in range(1, 30) if telemetry_step(s, 10)] == [1, 10, 20]
    assert not any(telemetry_step(s, 0) for s in range(1, 30))


def test_reader_skips_torn_and_foreign_lines(tmp_path):
    good = {"kind": "telemetry", "step": 2, "branches": {"inception3a": {"b1": {"out_rms": 1.0}}}}
    (tmp_path / runs.TELEMETRY).write_text(
        "\n".join(
            [
                json.dumps(good),
                json.dumps({**good, "step": 1}),
                "[1, 2]",
                json.dumps({"step": "x", "branches": {}}),
                json.dumps({"step": 3, "branches": "no"}),
                json.dumps({"step": True, "branches": {}}),
                '{"step": 4, "bra',
            ]
        )
    )
    assert [r["step"] for r in runs.read_telemetry(tmp_path)] == [1, 2]
    assert runs.read_telemetry(tmp_path / "missing") == []
    assert math.isfinite(runs.read_telemetry(tmp_path)[0]["branches"]["inception3a"]["b1"]["out_rms"])


# ---------------------------------------------------------------------------
# Charts (gnet.charts.telemetry) from telemetry records

BLOCKS = [f"inception{b}" for b in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]


def fake_records(n: int, aux: int = 2) -> list[dict]:
    """n records of a GoogLeNet (9 blocks × 4 branches); each value encodes (step, block, branch, stat)."""
    return [
        {
            "kind": "telemetry",
            "step": 10 * t + 1,
            "lr": 0.1,
            "loss": 2.0 / (t + 1),
            "aux_loss": {f"aux{i + 1}": 2.5 / (t + 1) for i in range(aux)},
            "branches": {
                blk: {
                    f"b{j + 1}": {s: (t + 1) * 10.0 ** (i - 4) * (j + 1) * (k + 1) for k, s in enumerate(STATS)}
                    for j in range(4)
                }
                for i, blk in enumerate(BLOCKS)
            },
        }
        for t in range(n)
    ]


def test_heatmap_is_blocks_by_branches_with_a_frame_per_step_and_the_latest_shown():
    from gnet.charts import telemetry as telemetry_charts

    recs = fake_records(3)
    fig = telemetry_charts.telemetry_heatmap_fig(recs, "grad_rms")
    heat = fig.data[0]
    assert list(heat.y) == [b.removeprefix("inception") for b in BLOCKS] and list(heat.x) == ["b1", "b2", "b3", "b4"]
    assert len(fig.frames) == 3 and [f.name for f in fig.frames] == ["1", "11", "21"]
    assert fig.layout.sliders[0].active == 2
    for t, frame in enumerate(fig.frames):
        z = frame.data[0].z
        for i, blk in enumerate(BLOCKS):
            for j in range(4):
                assert z[i][j] == pytest.approx(math.log10(recs[t]["branches"][blk][f"b{j + 1}"]["grad_rms"]))
    assert heat.z == fig.frames[-1].data[0].z
    lo, hi = heat.zmin, heat.zmax  # one colour scale for every step
    assert lo == pytest.approx(math.log10(1 * 1e-4 * 1 * 2)) and hi == pytest.approx(math.log10(3 * 1e4 * 4 * 2))
    assert "no telemetry" in telemetry_charts.telemetry_heatmap_fig([], "out_rms").layout.title.text


def test_a_long_runs_heatmap_slider_is_thinned_and_ends_at_the_latest_step():
    """A run with 150 telemetry records: at most ~MAX_HEATMAP_FRAMES frames, evenly spaced, the last one the latest
    record, each frame still holding its own step's values; the slider's labels are the frames' steps."""
    from gnet.charts import telemetry as telemetry_charts

    recs = fake_records(150)
    fig = telemetry_charts.telemetry_heatmap_fig(recs, "out_rms")
    names = [f.name for f in fig.frames]
    assert (
        len(names) <= telemetry_charts.MAX_HEATMAP_FRAMES + 1 and names[0] == "1" and names[-1] == str(recs[-1]["step"])
    )
    assert [s.label for s in fig.layout.sliders[0].steps] == names and fig.layout.sliders[0].active == len(names) - 1
    for frame in (fig.frames[1], fig.frames[-1]):
        rec = next(r for r in recs if str(r["step"]) == frame.name)
        assert frame.data[0].z[0][0] == pytest.approx(math.log10(rec["branches"][BLOCKS[0]]["b1"]["out_rms"]))
    assert fig.data[0].z == fig.frames[-1].data[0].z


def test_lines_per_block_aux_and_compare_figures():
    from gnet.charts import telemetry as telemetry_charts
    from gnet.colors import BRANCH_COLORS

    recs = fake_records(4)
    lines = telemetry_charts.telemetry_lines_fig(recs, "out_rms")
    assert len(lines.data) == 9 * 4
    assert [a.text for a in lines.layout.annotations] == [b.removeprefix("inception") for b in BLOCKS]
    first = lines.data[0]
    assert first.line.color == BRANCH_COLORS["b1"] and list(first.x) == [1, 11, 21, 31]
    assert list(first.y) == pytest.approx([r["branches"]["inception3a"]["b1"]["out_rms"] for r in recs])
    aux = telemetry_charts.aux_loss_fig(recs)
    assert [t.name for t in aux.data] == ["main head", "aux1", "aux2"]
    assert list(aux.data[1].y) == [r["aux_loss"]["aux1"] for r in recs]
    assert "no aux heads" in telemetry_charts.aux_loss_fig(fake_records(2, aux=0)).layout.title.text
    other = [
        {
            **r,
            "branches": {
                b: {br: {s: v * 100 for s, v in st.items()} for br, st in d.items()} for b, d in r["branches"].items()
            },
        }
        for r in recs
    ]
    cmp = telemetry_charts.telemetry_compare_fig({"a": recs, "b": other}, "weight_norm")
    assert len(cmp.data) == 2 and cmp.data[0].zmin == cmp.data[1].zmin and cmp.data[0].zmax == cmp.data[1].zmax
    assert cmp.data[1].z[0][0] == pytest.approx(cmp.data[0].z[0][0] + 2)  # 100× the value: +2 in log10
    assert "step 31" in cmp.layout.annotations[0].text


def test_without_tensorboard_a_run_writes_no_events_and_keeps_its_telemetry(tmp_path, monkeypatch):
    from gnet import telemetry

    monkeypatch.setattr(telemetry, "tensorboard_available", lambda: False)
    cfg = TrainConfig.from_recipe(
        "improved",
        network_preset("mini"),
        image_size=12,
        synthetic_train=40,
        synthetic_test=20,
        batch_size=20,
        epochs=1,
        device="cpu",
        telemetry_every=1,
    )
    run = runs.create(tmp_path / "no-tb", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    assert not list(run.glob("events.out.tfevents.*"))
    assert [r["step"] for r in runs.read_telemetry(run)] == [1, 2]


@settings(max_examples=10, deadline=None)
@example(ch=[5, 3, 3, 2, 3, 2], factorize=False, bn=False, seed=3)  # a small update on large weights
@given(
    ch=hst.lists(hst.integers(1, 6), min_size=6, max_size=6),
    factorize=hst.booleans(),
    bn=hst.booleans(),
    seed=hst.integers(0, 1000),
)
def test_probe_equals_retain_grad_on_random_blocks(ch, factorize, bn, seed):
    from gnet.telemetry import BranchProbe, branch_modules

    b = BlockSpec(**dict(zip(CHANNEL_FIELDS, ch)), factorize=factorize, batch_norm=bn)
    spec = NetworkSpec(
        name="rand",
        in_channels=3,
        input_size=(12, 12),
        num_classes=5,
        stem=(ConvSpec(4, 3, 1, 1),),
        stages=((b,), (b,)),
        stage_pools=(PoolSpec(3, 2, 1),),
        batch_norm=bn,
    )
    torch.manual_seed(seed)
    model = build(spec).train()
    x = torch.randn(3, 3, 12, 12)
    probe = BranchProbe(branch_modules(model)).attach()
    model(x).square().mean().backward()
    probe.detach()
    probe.before_step()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p.grad, alpha=-0.1)
    probe.after_step()
    rec = probe.record(lambda v: v, 1, [torch.tensor(1.0)])
    # independently: branch outputs kept with retain_grad, the same loss, the same step
    torch.manual_seed(seed)
    ref = build(spec).train()
    outs, h = {}, x
    for name in ref.main_path:
        mod = getattr(ref, name)
        if name.startswith("inception"):
            parts = [getattr(mod, a)(h) for a in BRANCH_ATTRS]
            for i, o in enumerate(parts):
                o.retain_grad()
                outs[(name, f"b{i + 1}")] = o
            h = torch.cat(parts, 1)
        else:
            h = mod(h)
    ref.fc(ref.dropout(torch.flatten(ref.avgpool(h), 1))).square().mean().backward()
    for (blk, br), o in outs.items():
        got = rec["branches"][blk][br]
        assert got["out_rms"] == pytest.approx(o.detach().pow(2).mean().sqrt().item(), rel=1e-5, abs=1e-12)
        assert got["grad_rms"] == pytest.approx(o.grad.pow(2).mean().sqrt().item(), rel=1e-5, abs=1e-15)
        branch = getattr(getattr(ref, blk), BRANCH_ATTRS[int(br[1]) - 1])
        before = [p.detach() for p in branch.parameters()]
        # the step as the float32 weights took it: 0.1·|grad| itself differs from it by the rounding of w − 0.1·g,
        # which for a small update on a large weight is far above rel=1e-5 (seed 3, ch [5,3,3,2,3,2]: 1.5e-4)
        after = [w.add(p.grad, alpha=-0.1) for w, p in zip(before, branch.parameters())]
        update = torch.cat([(a.double() - w.double()).flatten() for a, w in zip(after, before)])
        assert got["update_norm"] == pytest.approx(update.norm().item(), rel=1e-5, abs=1e-12)
        assert got["weight_norm"] == pytest.approx(torch.cat([a.flatten() for a in after]).norm().item(), rel=1e-5)
    assert not any(m._forward_hooks for m in model.modules())  # nothing left on the module
