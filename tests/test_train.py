"""The trainer: recipes, caps, CLI, an end-to-end tiny run, determinism, stop/resume, NaN, aux heads."""

from __future__ import annotations

import ast
import dataclasses
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet import runs
from gnet.__main__ import main
from gnet.checkpoints import load_checkpoint
from gnet.metrics import EpochRecord, StepRecord
from gnet.network import build
from gnet.spec import BlockSpec, ConvSpec, NetworkSpec, PoolSpec, network_preset
from gnet.train import ConfigError, Pace, TrainConfig, get_lr, model_spec, predictions, train
from tests.test_data import write_fashion_mnist

TINY = dict(image_size=16, synthetic_train=120, synthetic_test=40, batch_size=40, epochs=2, device="cpu")


def tiny(**kw) -> TrainConfig:
    return TrainConfig.from_recipe("improved", network_preset("mini"), **{**TINY, **kw})


def weights(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt").model_state


def epoch_numbers(run) -> list[tuple]:
    return [
        (r["epoch"], r["train_loss"], r["train_acc"], r["test_loss"], r["test_acc"])
        for r in runs.read_metrics(run, "epoch")
    ]


def test_seed_recipe_is_seed_001_exactly():
    cfg = TrainConfig.from_recipe("seed", network_preset("d2l-fashion96"), dataset="fashion-mnist")
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.optimizer, cfg.schedule) == (0.005, 128, 30, "sgd", "constant")
    assert (cfg.weight_decay, cfg.label_smoothing, cfg.batch_norm, cfg.normalize, cfg.flip, cfg.aux) == (
        0.0,
        0.0,
        False,
        False,
        False,
        False,
    )
    spec = model_spec(cfg, 1, 10)
    assert spec.input_size == (96, 96) and not spec.batch_norm
    assert sum(p.numel() for p in build(spec).parameters()) == 5_977_530  # seed 001's torchinfo total
    assert all(get_lr(s, 100, cfg) == 0.005 for s in (0, 50, 99))


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("epochs", 1001),
        ("batch_size", 5000),
        ("image_size", 4),
        ("lr", float("nan")),
        ("lr", -1.0),
        ("lr", 0.0),
        ("optimizer", "rmsprop"),
        ("label_smoothing", 0.9),
        ("device", "tpu"),
        ("epochs", True),
        ("dataset", "imagenet"),
        ("amp", "fp8"),
    ],
)
def test_caps_are_clear_errors(field, value):
    with pytest.raises(ConfigError, match=field.replace("_", " ")):
        tiny(**{field: value})


def test_network_too_small_for_the_image_is_a_spec_error():
    from gnet.spec import SpecError

    cfg = TrainConfig.from_recipe("improved", network_preset("googlenet-imagenet"), image_size=8)
    with pytest.raises(SpecError, match="too small"):
        model_spec(cfg, 1, 10)


@settings(max_examples=30, deadline=None)
@given(total=st.integers(1, 5000), frac=st.floats(0, 1), lr=st.floats(1e-5, 10))
def test_onecycle_lr_stays_within_peak(total, frac, lr):
    cfg = dataclasses.replace(tiny(), lr=lr)
    step = min(total - 1, int(frac * total))
    assert 0.0 <= get_lr(step, total, cfg) <= lr * (1 + 1e-12)


def _function(module_path: str, name: str) -> ast.FunctionDef:
    tree = ast.parse(open(module_path, encoding="utf-8").read())
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_the_training_loop_is_one_readable_function_with_the_step_the_evaluation_and_the_report_in_it():
    import gnet.train as trainer

    loop = _function(trainer.__file__, "train")
    assert loop.end_lineno - loop.lineno + 1 <= 80
    called = {
        ast.unparse(n.func) for n in ast.walk(loop) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    } | {n.func.id for n in ast.walk(loop) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    # the step, the evaluation and the report are written in the loop, not hidden in a helper
    assert {"get_lr", "total.backward", "opt.step", "evaluate", "reporter.step", "reporter.finish"} <= called
    assert not hasattr(trainer, "lr_at")  # one name for the schedule


def test_get_lr_is_a_pure_function_of_the_step():
    cfg = tiny(schedule="onecycle", lr=0.1)
    steps = [0, 1, 2, 5, 9]
    forward = [get_lr(s, 10, cfg) for s in steps]
    assert [get_lr(s, 10, cfg) for s in reversed(steps)] == forward[::-1]  # no history: resume needs no state
    assert forward[0] == pytest.approx(0.01) and forward[2] == pytest.approx(0.1)  # warm-up over a fifth, the peak
    assert forward[-1] == pytest.approx(0.1 / 8)  # then linear decay to 0 at the last step


def test_eta_leaves_out_the_start_up_window_and_counts_the_evaluations_to_come():
    pace = Pace()
    # Step 1 took 5 s (start-up); from then on 0.1 s a step. 100 steps in all, one evaluation per epoch.
    assert pace.eta(step=1, elapsed=5.0, total_steps=100, evals_left=2) is None
    assert pace.eta(step=11, elapsed=6.0, total_steps=100, evals_left=2) == pytest.approx(8.9)
    pace.eval_s, pace.evals = 3.0, 1  # one evaluation took 3 s
    assert pace.eta(step=51, elapsed=10.0, total_steps=100, evals_left=1) == pytest.approx(4.9 + 3.0)
    assert pace.eta(step=100, elapsed=14.9, total_steps=100, evals_left=1) == pytest.approx(3.0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 1000), st.floats(0.001, 10), st.floats(0, 100), st.integers(1, 5000))
def test_eta_is_the_steady_pace_times_the_steps_left(first, per_step, warmup, more):
    pace, total = Pace(), first + more + 7
    assert pace.eta(first, warmup, total, 0) is None
    eta = pace.eta(first + more, warmup + per_step * more, total, 0)
    assert eta == pytest.approx(per_step * 7, rel=1e-6)


def test_cli_bad_options_exit_2_with_one_line(capsys, tmp_path):
    for argv in (
        ["train", "--preset", "mini", "--epochs", "0", "--run-dir", str(tmp_path / "a")],
        ["train", "--preset", "mini", "--batch-size", "x", "--run-dir", str(tmp_path / "b")],
        ["train", "--dataset", "synthetic", "--run-dir", str(tmp_path / "c")],
        ["train", "--spec", str(tmp_path / "missing.json"), "--run-dir", str(tmp_path / "d")],
        ["train", "--preset", "mini", "--resume", "--run-dir", str(tmp_path / "e")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


def test_end_to_end_cli_run_on_tiny_fashion_mnist(tmp_path, capsys):
    write_fashion_mnist(tmp_path / "data", 80, 40)
    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "--preset",
            "mini",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(tmp_path / "data"),
            "--image-size",
            "16",
            "--epochs",
            "2",
            "--batch-size",
            "20",
            "--device",
            "cpu",
            "--seed",
            "1",
            "--run-dir",
            str(run),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["global_step"] == 8
    steps, epochs = runs.read_metrics(run, "step"), runs.read_metrics(run, "epoch")
    assert [r["step"] for r in steps] == list(range(1, 9)) and [r["epoch"] for r in epochs] == [1, 2]
    for r in steps:
        assert {"loss", "acc", "lr", "images_per_s"} <= set(r) and r["images_per_s"] > 0
    for r in epochs:
        assert 0 <= r["test_acc"] <= 1 and r["test_acc"] * 40 == pytest.approx(round(r["test_acc"] * 40))
    config = json.loads((run / "config.json").read_text())
    assert config["preprocess"]["image_size"] == [16, 16] and config["preprocess"]["in_channels"] == 1
    assert config["spec"]["in_channels"] == 1 and config["train"]["dataset"] == "fashion-mnist"
    for which in ("last", "best"):
        ck = load_checkpoint(run / "checkpoints" / f"{which}.pt")
        assert ck.classes[0] == "T-shirt/top" and ck.spec.input_size == (16, 16)
        model = ck.build_model()
        assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    preds = predictions(run)
    assert len(preds) == 8 and preds[0].image.shape == (28, 28, 3) and 0 < preds[0].confidence <= 1


def test_same_seed_same_results_and_stop_resume_equals_straight_run(tmp_path):
    cfg = tiny(epochs=2)
    straight = runs.create(tmp_path / "straight", {"train": cfg.to_dict()})
    assert train(cfg, straight) == "finished"
    again = runs.create(tmp_path / "again", {"train": cfg.to_dict()})
    train(cfg, again)
    assert epoch_numbers(again) == epoch_numbers(straight)
    # Stop mid-epoch 1 (step 2 of 3), then resume from the checkpoint written at the stop.
    split = runs.create(tmp_path / "split", {"train": cfg.to_dict()})
    assert train(cfg, split, should_stop=lambda step: step == 2) == "stopped"
    assert runs.read_run(split).state == "stopped"
    assert load_checkpoint(split / "checkpoints" / "last.pt").extra["global_step"] == 2
    assert train(cfg, split, resume=True) == "finished"
    assert epoch_numbers(split) == epoch_numbers(straight)
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in runs.read_metrics(split, "step")][-1] == 6


def test_nan_loss_stops_with_a_clear_status(tmp_path):
    cfg = tiny(lr=1e30, optimizer="sgd", schedule="constant", epochs=3)
    run = runs.create(tmp_path / "nan", {"train": cfg.to_dict()})
    assert train(cfg, run) == "failed"
    info = runs.read_run(run)
    assert info.state == "failed" and ("NaN" in info.message or "infinite" in info.message)
    assert "learning rate" in info.message


def _aux_spec() -> NetworkSpec:
    """The smallest network with the paper's aux heads (stage 4 needs blocks 4a..4d)."""
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


def test_aux_heads_train_and_stay_out_of_evaluation(tmp_path):
    cfg = TrainConfig.from_recipe("improved", _aux_spec(), **{**TINY, "image_size": 24, "epochs": 1}, aux=True)
    assert cfg.aux_weight == 0.3
    run = runs.create(tmp_path / "aux", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ck.spec.aux and any(k.startswith("aux1.") for k in ck.model_state)
    model = ck.build_model()
    assert isinstance(model(torch.zeros(2, 3, 24, 24)), torch.Tensor)  # eval: main head only
    assert len(model.train()(torch.zeros(2, 3, 24, 24))) == 3


def test_the_metric_records_written_are_the_typed_records(tmp_path):
    cfg = tiny(epochs=1)
    run = runs.create(tmp_path / "typed", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    for kind, typed in (("step", StepRecord), ("epoch", EpochRecord)):
        records = runs.read_metrics(run, kind)
        assert records, kind
        for rec in records:  # every required key, nothing the type does not name (gpu_mem_gb: CUDA only)
            assert typed.__required_keys__ <= set(rec) <= typed.__required_keys__ | typed.__optional_keys__


def test_missing_dataset_fails_the_run_with_the_folder_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GNET_NO_DOWNLOAD", "1")  # never touch the network in tests
    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "--preset",
            "mini",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(tmp_path / "empty"),
            "--device",
            "cpu",
            "--run-dir",
            str(run),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "$GNET_DATA_DIR/FashionMNIST/raw/" in err
    info = runs.read_run(run)  # the Training page shows this message: the folder named, no server path
    assert info.state == "failed" and "$GNET_DATA_DIR/FashionMNIST/raw/" in info.message
    assert str(tmp_path) not in info.message
    # the same directory again without --resume: a clear refusal, nothing overwritten
    assert main(["train", "--run-dir", str(run)]) == 2
    assert "add --resume" in capsys.readouterr().err


def test_unreadable_files_in_an_image_folder_are_reported_by_the_run(tmp_path):
    from PIL import Image

    for cls, color in (("a", (250, 0, 0)), ("b", (0, 0, 250))):
        (tmp_path / "data" / "shapes" / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (9, 9), color).save(tmp_path / "data" / "shapes" / cls / f"{i}.png")
    (tmp_path / "data" / "shapes" / "a" / "bad.png").write_bytes(b"garbage")
    cfg = tiny(dataset="folder:shapes", data_dir=str(tmp_path / "data"), epochs=1, batch_size=5)
    run = runs.create(tmp_path / "run", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    notes = runs.read_run(run).config["dataset_notes"]
    assert notes and "skipped 1" in notes[0] and "bad.png" in notes[0]
    assert load_checkpoint(run / "checkpoints" / "last.pt").classes == ["a", "b"]


def test_memory_check_refuses_a_batch_that_cannot_fit_before_allocating():
    from gnet.analysis import network_report
    from gnet.spec import mini
    from gnet.train import ConfigError, check_memory

    spec = mini()
    per_image = 2 * 4 * network_report(spec).activation_elements
    check_memory(spec, 64, available=2 * 64 * per_image + 1)  # fits in half the memory
    with pytest.raises(ConfigError, match="use a smaller batch size"):
        check_memory(spec, 65, available=2 * 64 * per_image)


def test_activation_cap_per_image_is_a_spec_error():
    from gnet.analysis import validate_network
    from gnet.spec import SpecError, d2l_fashion96, with_input

    with pytest.raises(SpecError, match="GiB of activations"):
        validate_network(with_input(d2l_fashion96(), size=(4096, 4096)))


def test_resume_before_the_first_checkpoint_starts_over_without_duplicate_records(tmp_path):
    """A run killed before its first checkpoint left records behind; --resume starts from step 0 and drops them."""
    cfg = tiny(epochs=1)
    run = runs.create(tmp_path / "early", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    straight = [r["step"] for r in runs.read_metrics(run)]
    (run / "checkpoints" / "last.pt").unlink()
    (run / "checkpoints" / "best.pt").unlink(missing_ok=True)
    assert train(cfg, run, resume=True) == "finished"
    steps = [r["step"] for r in runs.read_metrics(run)]
    assert steps == straight  # the same records once, not the killed process's copy as well


def test_mini_v3_trains_through_the_cli_and_its_checkpoint_opens_in_the_views(tmp_path, capsys):
    """The small Inception v3 (kinds A–E, aux head) trains on the synthetic dataset through `python -m gnet train`;
    its checkpoint carries its v3 spec (round trip) and loads as a Net that Feature Maps, Explain and Block Anatomy
    read, every block keyed by its module path."""
    import math

    from gnet import anatomy as A
    from gnet import features as F
    from gnet.attribution import explain
    from gnet.pretrained import ModelSource, load_model
    from gnet.v3 import InceptionV3Spec, mini_v3, network_from_dict
    from tests.test_anatomy import check

    run = tmp_path / "run"
    argv = ["train", "--preset", "mini-v3", "--epochs", "1", "--batch-size", "20", "--device", "cpu"]
    argv += ["--synthetic-train", "40", "--synthetic-test", "20", "--seed", "1", "--run-dir", str(run)]
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert [r["epoch"] for r in runs.read_metrics(run, "epoch")] == [1]
    path = run / "checkpoints" / "last.pt"
    ck = load_checkpoint(path)
    assert isinstance(ck.spec, InceptionV3Spec) and ck.spec == dataclasses.replace(mini_v3(), num_classes=10)
    assert network_from_dict(json.loads(json.dumps(ck.spec.to_dict()))) == ck.spec
    assert json.loads((run / "config.json").read_text())["spec"]["family"] == "inception-v3"
    (tel,) = [r for r in runs.read_telemetry(run) if r["step"] == 1]  # telemetry on step 1, the aux head's loss
    assert set(tel["branches"]) == {"Mixed_5b", "Mixed_6a", "Mixed_6b", "Mixed_7a", "Mixed_7b"}
    assert set(tel["aux_loss"]) == {"aux1"} and math.isfinite(tel["aux_loss"]["aux1"])
    for blk, br in (("Mixed_5b", "b3"), ("Mixed_6b", "b2"), ("Mixed_7b", "b2")):  # several layers; E's two halves
        stats = tel["branches"][blk][br]
        assert all(math.isfinite(stats[k]) and stats[k] > 0 for k in ("out_rms", "grad_rms", "weight_norm")), stats

    preds = predictions(run)  # the Training page's sample predictions
    assert len(preds) == 8 and preds[0].image.shape == (36, 36, 3) and 0 < preds[0].confidence <= 1
    net = load_model(ModelSource("checkpoint", str(path)))
    assert net.trained and net.plan.blocks() == ["Mixed_5b", "Mixed_6a", "Mixed_6b", "Mixed_7a", "Mixed_7b"]
    x = torch.rand(1, 3, 36, 36, generator=torch.Generator().manual_seed(0))
    ex = F.extract(net, x, F.layers(net)[-1].label)  # Feature Maps: the last block, E's halves in its branches
    assert sum(g.shape[0] for g in ex.groups.values()) == 288 and list(ex.groups) == ["b1", "b2", "b3", "b4"]
    explanation = explain(net, x)  # Explain: every block and branch, B and D with three
    assert explanation.block_names() == net.plan.blocks() and list(explanation.blocks["Mixed_6a"]) == ["b1", "b2", "b3"]
    check(net, x, "Mixed_6b", "b2", 3, 2, 2)  # Block Anatomy: a 1×1 → 1×7 → 7×1 unit equals the module's
    assert isinstance(A.anatomy(net, x, "Mixed_7b", "b3", 48 + 10, 1, 1), A.Anatomy)
