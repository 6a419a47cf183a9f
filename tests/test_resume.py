"""Resume equals an uninterrupted run, on a configuration where every restored state matters.

Dropout (global CPU RNG), random flips (the augmentation generator), Nesterov momentum (optimiser
state), a one-cycle lr (a function of the global step), a stop in the middle of an epoch (position and
the epoch's running sums) and evaluation between epochs (best accuracy). The oracle is the same
configuration trained without a stop. `bench/mutations.py --group resume` breaks each restore in a copy
of the project and checks that these tests fail.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gnet import runs
from gnet.__main__ import main
from gnet.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from gnet.data import load_dataset
from gnet.spec import network_preset
from gnet.train import ConfigError, TrainConfig, train
from tests.test_data import write_fashion_mnist

# Fields that measure time, not training: they legitimately differ between two runs.
CLOCK_FIELDS = ("time", "images_per_s", "elapsed_s", "gpu_mem_gb")
STEPS = 9  # 3 epochs of 3 steps (60 images, batch 20)


@dataclass
class Setup:
    root: Path
    data: tuple[torch.Tensor, ...]  # train x, train y, test x, test y as written
    cfg: TrainConfig
    straight: Path  # the uninterrupted run: the oracle


def config(data_dir: Path, **kw) -> TrainConfig:
    net = {**network_preset("mini").to_dict(), "dropout": 0.5}
    return TrainConfig.from_recipe(
        "improved",
        net,
        **{
            **dict(
                dataset="fashion-mnist",
                data_dir=str(data_dir),
                image_size=16,
                epochs=3,
                batch_size=20,
                device="cpu",
                seed=5,
                log_every=1,
            ),
            **kw,
        },
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    root = tmp_path_factory.mktemp("resume")
    data = write_fashion_mnist(root / "data", 60, 20)
    cfg = config(root / "data")
    # The configuration really exercises every state a resume must restore.
    assert cfg.optimizer == "momentum" and cfg.schedule == "onecycle" and cfg.flip
    assert load_dataset("fashion-mnist", root / "data", download=False).flip_ok
    straight = runs.create(root / "straight", {"train": cfg.to_dict()})
    assert train(cfg, straight) == "finished"
    assert [r["step"] for r in runs.read_metrics(straight, "step")] == list(range(1, STEPS + 1))
    return Setup(root, data, cfg, straight)


def numbers(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in rows]


def first_difference(a: list[dict], b: list[dict]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            keys = sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k))
            return f"record {i} (step {x.get('step')}, {x.get('kind')}) differs in {', '.join(keys)}"
    return f"{len(a)} records != {len(b)}"


def differences(a: Path, b: Path) -> list[str]:
    """Everything in which run b's final state differs from run a's (empty: the same)."""
    out = []
    ra, rb = numbers(runs.read_metrics(a)), numbers(runs.read_metrics(b))
    if ra != rb:
        out.append("metrics: " + first_difference(ra, rb))
    ca, cb = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (a, b))
    if ca.model_state.keys() != cb.model_state.keys() or not all(
        torch.equal(ca.model_state[k], cb.model_state[k]) for k in ca.model_state
    ):
        out.append("final weights")
    sa, sb = ca.extra["optimizer"]["state"], cb.extra["optimizer"]["state"]
    if sa.keys() != sb.keys() or not all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa):
        out.append("final momentum buffers")
    for key in ("rng_cpu", "rng_augment"):
        if key not in ca.extra or key not in cb.extra or not torch.equal(ca.extra[key], cb.extra[key]):
            out.append(f"final {key} state")
    for key in ("global_step", "epoch", "step_in_epoch", "best_acc", "epoch_sums"):
        if ca.extra[key] != cb.extra[key]:
            out.append(f"checkpoint {key}: {ca.extra[key]} != {cb.extra[key]}")
    ba, bb = (load_checkpoint(r / "checkpoints" / "best.pt").model_state for r in (a, b))
    if not all(torch.equal(ba[k], bb[k]) for k in ba):
        out.append("best checkpoint")
    ta, tb = (json.loads((r / "status.json").read_text()) for r in (a, b))
    if (ta["state"], ta["global_step"], ta["best_acc"]) != (tb["state"], tb["global_step"], tb["best_acc"]):
        out.append(
            f"status: {ta['state'], ta['global_step'], ta['best_acc']} != {tb['state'], tb['global_step'], tb['best_acc']}"
        )
    return out


def stopped_run(s: Setup, name: str, at: int) -> Path:
    run = runs.create(s.root / name, {"train": s.cfg.to_dict()})
    assert train(s.cfg, run, should_stop=lambda step: step == at) == "stopped"
    assert load_checkpoint(run / "checkpoints" / "last.pt").extra["global_step"] == at
    return run


def test_stop_mid_epoch_and_resume_through_the_cli_equals_an_uninterrupted_run(setup, capsys):
    split = stopped_run(setup, "split", at=5)
    ck = load_checkpoint(split / "checkpoints" / "last.pt")
    assert (ck.extra["epoch"], ck.extra["step_in_epoch"]) == (1, 2) and ck.spec.dropout == 0.5  # mid-epoch 2
    assert ck.extra["best_acc"] >= 0 and ck.extra["epoch_sums"][2] == 2 * 20  # epoch 1 evaluated; 2 batches summed
    history = copy.deepcopy(runs.read_metrics(split))
    assert max(r["step"] for r in history) == 5
    # Resume as a user does: the CLI reads the run's own config.
    assert main(["train", "--resume", "--run-dir", str(split)]) == 0, capsys.readouterr().err
    # What was recorded before the stop stays as it was (a restart from step 0 would rewrite it) ...
    assert runs.read_metrics(split)[: len(history)] == history, "records up to the stop were rewritten"
    # ... and the run ends exactly where the uninterrupted one does: every record, weights, optimiser, RNGs.
    diffs = differences(setup.straight, split)
    assert not diffs, "; ".join(diffs)


def test_resume_after_a_kill_replays_what_came_after_the_last_checkpoint(setup):
    """A process killed between writing step 5's record and its checkpoint leaves a record past the
    checkpoint (step 4): resume drops it and replays step 5, so no step is counted twice."""
    killed = stopped_run(setup, "killed", at=4)
    past = [r for r in runs.read_metrics(setup.straight) if r["step"] == 5]
    runs.append_metrics(killed, [{**r, "time": 0.0} for r in past])
    assert train(setup.cfg, killed, resume=True) == "finished"
    assert [r["step"] for r in runs.read_metrics(killed, "step")] == list(range(1, STEPS + 1))
    diffs = differences(setup.straight, killed)
    assert not diffs, "; ".join(diffs)


def test_resume_keeps_the_best_accuracy_from_before_the_stop(setup):
    """best.pt is replaced only by an epoch better than every earlier one, including those before a stop."""
    run = stopped_run(setup, "best", at=4)
    path = run / "checkpoints" / "last.pt"
    ck = load_checkpoint(path)
    ck.extra["best_acc"] = 1.0  # as if epoch 1 had been perfect: no later epoch can beat it
    save_checkpoint(path, ck)
    before = (run / "checkpoints" / "best.pt").read_bytes()
    assert train(setup.cfg, run, resume=True) == "finished"
    assert (run / "checkpoints" / "best.pt").read_bytes() == before
    status = json.loads((run / "status.json").read_text())
    assert status["best_acc"] == 1.0 and "100.00%" in status["message"]


def test_trainer_normalises_with_the_training_sets_channel_statistics(setup):
    """The recorded mean/std are the training images' own, and the trainer's test loss is what the saved
    model gives on test images normalised with them (computed here, independently of gnet)."""
    cfg = config(setup.root / "data", epochs=1, amp="off", flip=False)
    run = runs.create(setup.root / "norm", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    x_tr, _, x_te, y_te = setup.data
    pre = json.loads((run / "config.json").read_text())["preprocess"]
    pixels = x_tr.double() / 255
    assert pre["mean"] == pytest.approx([float(pixels.mean())], abs=1e-6)
    assert pre["std"] == pytest.approx([float(pixels.std())], abs=1e-6)
    assert not pre["mean"] == pytest.approx([0.0], abs=0.01)  # the data is not already centred
    model = load_checkpoint(run / "checkpoints" / "last.pt").build_model()
    x = F.interpolate(x_te.unsqueeze(1).float() / 255, size=(16, 16), mode="bilinear", antialias=True)
    with torch.no_grad():
        logits = model((x - pixels.mean().float()) / pixels.std().float())
    row = runs.read_metrics(run, "epoch")[-1]
    assert row["test_loss"] == pytest.approx(float(F.cross_entropy(logits, y_te)), rel=1e-4)
    assert row["test_acc"] == pytest.approx(float((logits.argmax(1) == y_te).double().mean()))


def test_a_checkpoint_taken_after_an_epochs_last_step_resumes_at_the_next_epoch():
    """TrainState.restore on a hand-made checkpoint (no training): position "step 3 of a 3-step epoch" means the
    epoch is done, so the resume starts the next one with fresh sums; anywhere inside an epoch it stays put. The
    CPU and augmentation RNG states come back as saved."""
    from gnet.train import TrainState

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    augment = torch.Generator().manual_seed(1)
    saved_augment = augment.get_state()
    extra = dict(epoch=4, step_in_epoch=3, global_step=15, best_acc=0.5, epoch_sums=[1.0, 2.0, 3.0])
    extra |= dict(optimizer=opt.state_dict(), rng_cpu=torch.get_rng_state(), rng_augment=saved_augment)
    ck = Checkpoint(network_preset("mini"), model.state_dict(), [], {}, extra)
    expected_cpu = torch.rand(3)  # what the CPU RNG gives next from the saved state
    augment.manual_seed(2)
    done = TrainState.restore(ck, model, opt, torch.device("cpu"), augment, steps_per_epoch=3)
    assert (done.epoch, done.step_in_epoch, done.global_step, done.epoch_sums) == (5, 0, 15, [0.0, 0.0, 0.0])
    assert torch.equal(torch.rand(3), expected_cpu) and torch.equal(augment.get_state(), saved_augment)
    inside = TrainState.restore(ck, model, opt, torch.device("cpu"), None, steps_per_epoch=4)
    assert (inside.epoch, inside.step_in_epoch, inside.epoch_sums) == (4, 3, [1.0, 2.0, 3.0])


def test_each_epochs_training_figures_are_the_means_of_its_own_steps(setup):
    """An absolute oracle for the epoch's running sums (a resumed and a straight run would share a bug in
    resetting them): with one record per step and equal batches, an epoch's train loss and accuracy are the
    means of its three step records, and it counts its 60 images once. It trains its own run (not the
    fixture's), so that a mutation tool that runs only the tests calling train() runs this one."""
    run = runs.create(setup.root / "sums", {"train": setup.cfg.to_dict()})
    assert train(setup.cfg, run) == "finished"
    steps, epochs = runs.read_metrics(run, "step"), runs.read_metrics(run, "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    for e in epochs:
        mine = [r for r in steps if e["epoch"] - 1 < r["epoch"] <= e["epoch"]]
        assert len(mine) == 3 and e["step"] == mine[-1]["step"]
        assert e["train_loss"] == pytest.approx(sum(r["loss"] for r in mine) / 3, rel=1e-12)
        assert e["train_acc"] == pytest.approx(sum(r["acc"] for r in mine) / 3, rel=1e-12)
        assert e["train_n"] == 60


def test_a_fresh_start_never_overwrites_a_runs_checkpoint(setup):
    """train() without resume on a folder that holds a checkpoint refuses, and the checkpoint and records stay."""
    run = stopped_run(setup, "fresh-over-old", at=4)
    last, before = run / "checkpoints" / "last.pt", (run / "checkpoints" / "last.pt").read_bytes()
    history = runs.read_metrics(run)
    with pytest.raises(ConfigError, match="already has a checkpoint: resume it"):
        train(setup.cfg, run)
    assert last.read_bytes() == before and runs.read_metrics(run) == history


def test_resume_of_a_folder_without_a_run_says_so(tmp_path, capsys):
    assert main(["train", "--resume", "--run-dir", str(tmp_path / "nothing")]) == 2
    assert "there is no run to resume" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_restore_on_the_cpu_ignores_a_gpu_runs_cuda_rng_state(monkeypatch):
    """A checkpoint written on a GPU carries rng_cuda; resuming it on the CPU restores the rest and never calls
    into the CUDA generator (which, without CUDA, would fail or silently queue the call)."""
    from gnet.train import TrainState

    calls: list[tuple] = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *a: calls.append(a))
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    extra = dict(epoch=0, step_in_epoch=1, global_step=1, best_acc=-1.0, epoch_sums=[0.0, 0.0, 0.0])
    extra |= dict(
        optimizer=opt.state_dict(), rng_cpu=torch.get_rng_state(), rng_cuda=torch.zeros(16, dtype=torch.uint8)
    )
    expected_cpu = torch.rand(3)
    ck = Checkpoint(network_preset("mini"), model.state_dict(), [], {}, extra)
    assert TrainState.restore(ck, model, opt, torch.device("cpu"), None, steps_per_epoch=3).global_step == 1
    assert torch.equal(torch.rand(3), expected_cpu) and calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_rng_state_goes_into_the_checkpoint_and_comes_back():
    from gnet.train import TrainState

    device = torch.device("cuda")
    model = torch.nn.Linear(2, 2).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.cuda.manual_seed(3)
    saved = torch.cuda.get_rng_state(device)
    extra = TrainState(global_step=2).to_extra(opt, config(Path(".")), device, None)
    assert torch.equal(extra["rng_cuda"], saved)
    expected = torch.rand(4, device=device)
    torch.cuda.manual_seed(4)
    TrainState.restore(
        Checkpoint(network_preset("mini"), model.state_dict(), [], {}, extra), model, opt, device, None, 3
    )
    assert torch.equal(torch.rand(4, device=device), expected)
