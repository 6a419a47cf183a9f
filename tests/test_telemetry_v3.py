"""Telemetry of an Inception v3 whose B and D blocks have a branch that is only a max-pool (mini-v3's Mixed_6a and
Mixed_7a b3): no parameters, so no weight or update norm (None, never NaN) — a gap in the charts, no TensorBoard
event — while its output and gradient statistics are those of its channels of the block's output."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gnet import runs
from gnet.charts import telemetry as telemetry_charts
from gnet.telemetry import BranchProbe, LayeredBranch, branch_modules
from gnet.train import TrainConfig, train
from gnet.v3 import InceptionBSpec, InceptionDSpec, mini_v3, v3_plan
from gnet.v3_modules import build_v3

POOLS = {"Mixed_6a": InceptionBSpec, "Mixed_7a": InceptionDSpec}  # mini-v3's B and D blocks: b3 is the max-pool
STATS = tuple(runs.TELEMETRY_STATS)


def test_mini_v3_has_the_pool_only_branches():
    blocks, plan = dict(mini_v3().blocks), v3_plan(mini_v3())
    torch.manual_seed(0)
    branches = branch_modules(build_v3(mini_v3()))
    for blk, kind in POOLS.items():
        assert isinstance(blocks[blk], kind)
        pool = branches[blk]["b3"]
        c_in, c_out = plan.step(blk).in_shape[0], plan.step(blk).out_shape[0]
        # no parameters; its output: the block's last c_in channels (max-pool keeps its input's channels)
        assert isinstance(pool, LayeredBranch) and pool.layers == () and pool.channels == (c_out - c_in, c_out)


def one_step(seed: int) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A probed training step of mini-v3 (SGD, lr 0.1), and independently each pool block's input and its
    output with the output's gradient (retain_grad), on a second model with the same weights."""
    torch.manual_seed(seed)
    x = torch.randn(4, 3, 36, 36)
    torch.manual_seed(seed)
    model = build_v3(mini_v3()).train()
    probe = BranchProbe(branch_modules(model)).attach()
    main, aux = model(x)
    (main.square().mean() + 0.3 * aux.square().mean()).backward()
    probe.detach()
    probe.before_step()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.add_(p.grad, alpha=-0.1)
    probe.after_step()
    rec = probe.record(lambda v: v, 1, [main.square().mean(), aux.square().mean()], step=1)
    torch.manual_seed(seed)
    ref = build_v3(mini_v3()).train()
    inputs, outputs = {}, {}

    def keep(name):
        def hook(module, args, out):
            inputs[name] = args[0].detach()
            out.retain_grad()
            outputs[name] = out

        return hook

    for blk in POOLS:
        ref.get_submodule(blk).register_forward_hook(keep(blk))
    main, aux = ref(x)
    (main.square().mean() + 0.3 * aux.square().mean()).backward()
    return rec, inputs, outputs


def test_a_pool_only_branch_reports_no_parameters_and_its_channels_statistics():
    rec, inputs, outputs = one_step(seed=3)
    json.dumps(rec, allow_nan=False)  # no NaN anywhere: what cannot be measured is None (null)
    for blk, d in rec["branches"].items():
        for br, stats in d.items():
            for s in STATS:
                v = stats[s]
                assert v is None or math.isfinite(v), (blk, br, s)
                # only the pool-only branches lack a value, and only the parameter statistics
                assert (v is None) == (blk in POOLS and br == "b3" and s in ("weight_norm", "update_norm"))
    for blk in POOLS:
        out = outputs[blk]
        lo = out.shape[1] - inputs[blk].shape[1]  # the pool keeps its input's channels, last in the concatenation
        pooled = F.max_pool2d(inputs[blk], kernel_size=3, stride=2)
        assert torch.equal(out.detach()[:, lo:], pooled)  # those channels are the pool's output
        got = rec["branches"][blk]["b3"]
        assert got["out_rms"] == pytest.approx(pooled.square().mean().sqrt().item(), rel=1e-5)
        assert got["grad_rms"] == pytest.approx(out.grad[:, lo:].square().mean().sqrt().item(), rel=1e-5)
        # and a conv branch of the same block still measures its own output only
        b1 = rec["branches"][blk]["b1"]
        c1 = v3_plan(mini_v3()).branch_steps(blk)["b1"].out_shape[0]  # b1's channels come first
        assert b1["out_rms"] == pytest.approx(out.detach()[:, :c1].square().mean().sqrt().item(), rel=1e-5)
        assert b1["weight_norm"] > 0 and b1["update_norm"] > 0


def test_a_mini_v3_run_writes_null_for_the_pool_and_tensorboard_skips_it(tmp_path):
    cfg = TrainConfig.from_recipe(
        "improved",
        mini_v3(),
        synthetic_train=20,
        synthetic_test=10,
        batch_size=10,
        epochs=1,
        device="cpu",
        amp="off",
        telemetry_every=1,
    )
    run = runs.create(tmp_path / "v3", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    text = (run / runs.TELEMETRY).read_text()
    assert "NaN" not in text and '"weight_norm": null' in text
    recs = runs.read_telemetry(run)
    assert [r["step"] for r in recs] == [1, 2]
    ea = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    tags = set(ea.Tags()["scalars"])
    for blk in POOLS:
        assert f"branch/{blk}/b3/out_rms" in tags and f"branch/{blk}/b3/grad_rms" in tags
        assert f"branch/{blk}/b3/weight_norm" not in tags and f"branch/{blk}/b3/update_norm" not in tags
        assert f"branch/{blk}/b1/weight_norm" in tags
        events = ea.Scalars(f"branch/{blk}/b3/out_rms")
        assert events[0].value == pytest.approx(recs[0]["branches"][blk]["b3"]["out_rms"], rel=1e-6)


def test_the_charts_draw_a_pool_only_branch_s_weight_norm_as_a_gap():
    rec, _, _ = one_step(seed=5)
    records = [rec, {**rec, "step": 21}]
    heat = telemetry_charts.telemetry_heatmap_fig(records, "weight_norm").data[0]
    for blk in POOLS:
        i, j = list(heat.y).index(blk.removeprefix("Mixed_")), list(heat.x).index("b3")
        assert heat.z[i][j] is None and heat.customdata[i][j].endswith("— (no parameters: a pool-only branch)")
    i = list(heat.y).index("6a")
    assert heat.customdata[i][list(heat.x).index("b4")] == "6a has no b4"  # B has three branches
    out = telemetry_charts.telemetry_heatmap_fig(records, "out_rms").data[0]
    assert out.z[i][list(out.x).index("b3")] == pytest.approx(math.log10(rec["branches"]["Mixed_6a"]["b3"]["out_rms"]))
    lines = telemetry_charts.telemetry_lines_fig(records, "weight_norm")
    drawn = [(t.hovertemplate.split(" step")[0], t.showlegend) for t in lines.data]
    assert ("Mixed_6a b3", False) not in drawn and ("Mixed_6a b3", True) not in drawn  # no empty line
    assert [br for (name, shown) in drawn if shown for br in [name.split()[1]]] == ["b1", "b2", "b3", "b4"]
    full = telemetry_charts.telemetry_lines_fig(records, "out_rms")
    assert len(full.data) == len(lines.data) + 2  # the pools' output RMS is drawn
