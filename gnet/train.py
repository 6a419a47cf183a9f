"""The trainer: one readable loop, single process or torchrun/DDP, split like nanoGPT and airbench.

    python -m gnet train --preset mini --dataset synthetic --epochs 5 --run-dir runs/mini-1
    torchrun --nproc_per_node=2 -m gnet train --preset mini --run-dir runs/ddp-1   # DDP, rank 0 writes

The parts, in the order `train()` uses them:
  * `setup_distributed()` / `Distributed.teardown()`: torchrun's environment → process group, device, rank;
  * `Loader`: the dataset as uint8 (N, C, H, W) tensors on the training device; a batch is an index gather,
    then cast, resize (bilinear, on the device), flip and normalise — no per-sample PIL work. Where the data
    does not fit in half the free GPU memory it stays in pinned CPU memory and batches are copied async;
  * `make_optimizer()`: SGD / Nesterov momentum / AdamW, no weight decay on biases and BatchNorm;
  * `get_lr()`: the learning rate as a pure function of the step (resume needs no scheduler state);
  * `TrainState`: position, accumulators, best accuracy and RNG states; into and out of the checkpoint
    (which also carries the config and the network spec, so a checkpoint rebuilds its own model);
  * `evaluate()`: test loss and accuracy, sharded over the ranks and all-reduced;
  * `Reporter`: metrics.jsonl, telemetry.jsonl, status.json, heartbeat, checkpoints and TensorBoard events;
    it does all of that on rank 0 and nothing on the other ranks;
  * `gnet.telemetry.BranchProbe`: per-branch statistics every `telemetry_every` steps.
Speed (airbench-style, all visible in the loop): channels_last activations and weights; bf16 autocast on
CUDA and on CPUs with native bf16 (AVX512-BF16/AMX; `--amp off` for pure fp32); optional torch.compile;
loss/accuracy sums stay on the device and are read (one sync) only every `log_every` steps.

The recipes and every option are defined once in gnet/train_options.py. What the improved recipe buys,
measured on this CPU (mini preset, synthetic 10k/2k at 32×32, 3 epochs): test accuracy
19.1 → 27.8 → 32.9 % with the seed recipe vs 77.3 → 98.3 → 99.0 % improved. Seed 001 reports 90.21 %
Fashion-MNIST test accuracy after 30 epochs (best 90.86 %).
Auxiliary classifiers (--aux) add 0.3 × their cross-entropy to the loss during training only
(seeds 002/003); evaluation and checkpoints' predictions use the main head.

Determinism: a fixed seed gives identical results on the CPU, and a run stopped and resumed equals
an uninterrupted one (data order is a pure function of (seed, epoch), the lr a pure function of the
step, and RNG states travel in the checkpoint). Telemetry reads and never changes the numbers. On CUDA,
cuDNN autotuning trades bitwise reproducibility for speed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from gnet import jobs, runs
from gnet.analysis import NetworkReport, network_report, plan_report, validate_network
from gnet.checkpoints import (
    Checkpoint,
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
    torch_load_safely,
)
from gnet.data import DataError, Dataset, dataset_shape, load_dataset, subset, to_model_input
from gnet.devices import autocast_dtype, describe, pick_device
from gnet.fsio import ConfinementError, confined
from gnet.metrics import EpochRecord, StepRecord
from gnet.network import build
from gnet.spec import NETWORK_PRESETS, NetworkSpec, SpecError, network_preset, with_input
from gnet.telemetry import BranchProbe, TensorBoardWriter, branch_modules, telemetry_step
from gnet.train_options import (  # noqa: F401  (re-exported: the page and older callers import them from here)
    AMP_MODES,
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_IMAGE,
    MIN_IMAGE,
    OPTIMIZERS,
    OPTIONS,
    RECIPES,
    SCHEDULES,
    ConfigError,
    TrainConfig,
)
from gnet.v3 import V3_PRESETS, InceptionV3Spec, network_from_dict, network_from_json, v3_plan

AnyNetwork = NetworkSpec | InceptionV3Spec


def _report(spec: AnyNetwork) -> NetworkReport:
    return plan_report(v3_plan(spec)) if isinstance(spec, InceptionV3Spec) else network_report(spec)


def _build(spec: AnyNetwork) -> torch.nn.Module:
    if isinstance(spec, InceptionV3Spec):
        from gnet.v3_modules import build_v3

        return build_v3(spec)
    return build(spec)


def model_spec(cfg: TrainConfig, in_channels: int, num_classes: int) -> AnyNetwork:
    """The network adapted to the dataset (channels, classes), image size, aux heads and BatchNorm."""
    spec = network_from_dict(cfg.network)
    size = (cfg.image_size, cfg.image_size) if cfg.image_size else spec.input_size
    if isinstance(spec, InceptionV3Spec):  # every conv has BatchNorm; the aux head is the spec's own
        spec = dataclasses.replace(spec, in_channels=in_channels, input_size=size, num_classes=num_classes)
        _report(spec)
        check_memory(spec, cfg.batch_size)
        return spec
    # --aux adds the heads; a spec that already has them (googlenet-imagenet-aux, an edited one) keeps them
    spec = dataclasses.replace(with_input(spec, in_channels, size), num_classes=num_classes, aux=cfg.aux or spec.aux)
    if cfg.batch_norm and not spec.batch_norm:
        spec = dataclasses.replace(
            spec,
            batch_norm=True,
            stages=tuple(tuple(dataclasses.replace(b, batch_norm=True) for b in st) for st in spec.stages),
        )
    validate_network(spec)
    check_memory(spec, cfg.batch_size)
    return spec


def check_memory(spec: AnyNetwork, batch_size: int, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a batch whose activations (kept for the backward
    pass, plus their gradients: about 2 × fp32 per output element) exceed half this machine's memory."""
    need = 2 * 4 * batch_size * _report(spec).activation_elements
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > available // 2:
        raise ConfigError(
            f"batch {batch_size} at {spec.input_size[0]}×{spec.input_size[1]} needs about "
            f"{need / 2**30:.1f} GiB for activations; this machine has {available / 2**30:.0f} GiB: "
            "use a smaller batch size or image size"
        )


def get_lr(step: int, total: int, cfg: TrainConfig) -> float:
    """The learning rate as a pure function of the step (so resume needs no scheduler state)."""
    if cfg.schedule == "constant":
        return cfg.lr
    warm = max(1, int(0.2 * total))
    if step < warm:
        return cfg.lr * (0.1 + 0.9 * step / warm)
    return cfg.lr * max(0.0, (total - step) / max(1, total - warm))


@dataclass
class Pace:
    """The remaining time of a run from this process's own pace. The first record window is left out:
    it holds start-up (first-call kernel selection, allocator growth) and would inflate the ETA many times."""

    first_step: int | None = None
    first_elapsed: float = 0.0
    eval_s: float = 0.0
    evals: int = 0

    def eta(self, step: int, elapsed: float, total_steps: int, evals_left: int) -> float | None:
        """Seconds to go after `step` (training seconds `elapsed`, evaluation excluded); None until known."""
        if self.first_step is None:
            self.first_step, self.first_elapsed = step, elapsed
        if step <= self.first_step:
            return None
        per_step = (elapsed - self.first_elapsed) / (step - self.first_step)
        per_eval = self.eval_s / self.evals if self.evals else 0.0
        return per_step * (total_steps - step) + per_eval * evals_left


# ---------------------------------------------------------------------------
# Distributed setup and teardown


@dataclass
class Distributed:
    world: int
    rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        """Sums over the ranks (float64); the identity in one process."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def teardown(self) -> None:
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()


def setup_distributed(cfg: TrainConfig) -> Distributed:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is one process on pick_device()."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = cfg.device in ("auto", "cuda") and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    else:
        try:
            device = pick_device(cfg.device)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if cfg.batch_size % world:
        raise ConfigError(f"batch size {cfg.batch_size} must be divisible by the {world} processes")
    return Distributed(world, rank, device)


# ---------------------------------------------------------------------------
# Data on the device


class Loader:
    """Batches of one split for this rank: uint8 images on the device, an index gather per batch, then
    cast, resize, flip and normalise there. shuffle: a new order each epoch, a pure function of (seed, epoch),
    cut into equal shards per rank (the remainder dropped); otherwise the split in order, strided by rank."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch: int,
        ddp: Distributed,
        hw: tuple[int, int],
        mean: torch.Tensor,
        std: torch.Tensor,
        shuffle_seed: int | None = None,
        augment: torch.Generator | None = None,
    ) -> None:
        self.x, self.y, self.batch, self.ddp, self.hw = x, y, batch, ddp, hw
        self.mean, self.std, self.shuffle_seed, self.augment = mean, std, shuffle_seed, augment
        self.n_per_rank = len(x) // ddp.world
        self.steps = math.ceil(self.n_per_rank / batch)
        self._epoch, self._start = 0, 0

    def epoch(self, epoch: int, start: int = 0) -> Loader:
        """Iterate epoch `epoch` from its step `start` (a resumed run continues mid-epoch)."""
        self._epoch, self._start = epoch, start
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch → normalised float batch on the device (resize and flips done batch-wise)."""
        device = self.ddp.device
        x = x.to(device, non_blocking=True).float().div_(255)
        if tuple(x.shape[-2:]) != tuple(self.hw):
            x = F.interpolate(x, size=self.hw, mode="bilinear", align_corners=False, antialias=x.shape[-1] > self.hw[1])
        if self.augment is not None:
            flips = torch.rand(len(x), 1, 1, 1, generator=self.augment, device=device) < 0.5
            x = torch.where(flips, x.flip(3), x)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        b, world, rank, device = self.batch, self.ddp.world, self.ddp.rank, self.ddp.device
        if self.shuffle_seed is None:
            for i in range(rank * b, len(self.x), b * world):
                yield self.prepare(self.x[i : i + b]), self.y[i : i + b].to(device)
            return
        perm = torch.randperm(
            len(self.x), generator=torch.Generator().manual_seed(self.shuffle_seed * 1_000_003 + self._epoch)
        )
        mine = perm[rank::world][: self.n_per_rank].to(self.x.device)
        for s in range(self._start, self.steps):
            idx = mine[s * b : (s + 1) * b]
            yield self.prepare(self.x[idx]), self.y[idx].to(device, non_blocking=True)


def make_loaders(
    cfg: TrainConfig, data: Dataset, ddp: Distributed, hw: tuple[int, int], stats: tuple[list[float], list[float]]
) -> tuple[Loader, Loader]:
    train_x, train_y = subset(data.train_x, data.train_y, cfg.max_train_samples, cfg.seed)
    test_x, test_y = subset(data.test_x, data.test_y, cfg.max_test_samples, cfg.seed + 1)
    device = ddp.device
    nbytes = sum(t.numel() * t.element_size() for t in (train_x, train_y, test_x, test_y))
    on_device = device.type != "cuda" or nbytes < 0.5 * torch.cuda.mem_get_info(device)[0]
    store = device if on_device else torch.device("cpu")
    train_x, train_y, test_x, test_y = (t.to(store) for t in (train_x, train_y, test_x, test_y))
    if not on_device:
        train_x, test_x = train_x.pin_memory(), test_x.pin_memory()
    mean = torch.tensor(stats[0], device=device).view(1, -1, 1, 1)
    std = torch.tensor(stats[1], device=device).view(1, -1, 1, 1)
    per_rank = cfg.batch_size // ddp.world
    augment = torch.Generator(device=device).manual_seed(cfg.seed + 7) if cfg.flip and data.flip_ok else None
    common = {"batch": per_rank, "ddp": ddp, "hw": hw, "mean": mean, "std": std}
    return (
        Loader(x=train_x, y=train_y, **common, shuffle_seed=cfg.seed, augment=augment),
        Loader(x=test_x, y=test_y, **common),
    )


# ---------------------------------------------------------------------------
# Optimiser, training state, evaluation


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)  # no weight decay on biases and BatchNorm
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    momentum = 0.9 if cfg.optimizer == "momentum" else 0.0
    # The fused SGD kernel gives the for-loop's numbers (same state_dict too) about 4× faster on this CPU: the
    # step of d2l-fashion96's 6M parameters was ~5 % of a training step.
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=momentum, nesterov=momentum > 0, fused=fused or None)


@dataclass
class TrainState:
    """Where the run is (the next step to take) and what it has summed so far; it travels in the checkpoint
    with the optimiser, the RNG states and the config."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_acc: float = -1.0
    epoch_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss*n, correct, n this epoch
    elapsed_s: float = 0.0  # training seconds, evaluation excluded
    epoch_started_at: float = 0.0  # elapsed_s when this epoch began

    def to_extra(
        self, opt: torch.optim.Optimizer, cfg: TrainConfig, device: torch.device, augment: torch.Generator | None
    ) -> dict[str, Any]:
        extra = {
            "optimizer": opt.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_acc": self.best_acc,
            "epoch_sums": list(self.epoch_sums),
            "elapsed_s": self.elapsed_s,
            "epoch_started_at": self.epoch_started_at,
            "rng_cpu": torch.get_rng_state(),
            "config": cfg.to_dict(),
        }
        if device.type == "cuda":
            extra["rng_cuda"] = torch.cuda.get_rng_state(device)
        if augment is not None:
            extra["rng_augment"] = augment.get_state()
        return extra

    @staticmethod
    def restore(
        ck: Checkpoint,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        device: torch.device,
        augment: torch.Generator | None,
        steps_per_epoch: int,
    ) -> TrainState:
        """Weights, optimiser, position, accumulators and RNG states from a checkpoint."""
        model.load_state_dict(ck.model_state)
        opt.load_state_dict(ck.extra["optimizer"])
        e = ck.extra
        elapsed = float(e.get("elapsed_s", 0.0))
        state = TrainState(
            epoch=int(e["epoch"]),
            step_in_epoch=int(e["step_in_epoch"]),
            global_step=int(e["global_step"]),
            best_acc=float(e["best_acc"]),
            epoch_sums=list(e["epoch_sums"]),
            elapsed_s=elapsed,
            epoch_started_at=float(e.get("epoch_started_at", elapsed)),
        )
        torch.set_rng_state(e["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in e:
            torch.cuda.set_rng_state(e["rng_cuda"], device)
        if augment is not None and "rng_augment" in e:
            augment.set_state(e["rng_augment"])
        if state.step_in_epoch >= steps_per_epoch:
            state.epoch, state.step_in_epoch, state.epoch_sums = state.epoch + 1, 0, [0.0, 0.0, 0.0]
        return state


def evaluate(
    model: torch.nn.Module, loader: Loader, ddp: Distributed, autocast: Callable[[], Any]
) -> tuple[float, float, int]:
    """Mean loss, accuracy and the number of images, over every rank's shard of the split."""
    model.eval()
    device = ddp.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    with torch.no_grad(), autocast():
        for x, y in loader:
            logits = model(x).float()
            sums += torch.stack(
                [
                    F.cross_entropy(logits, y, reduction="sum").double(),
                    (logits.argmax(1) == y).sum().double(),
                    torch.tensor(len(y), device=device).double(),
                ]
            )
    model.train()
    loss_sum, correct, n = ddp.all_sum(sums.tolist())
    return loss_sum / max(n, 1), correct / max(n, 1), int(n)


# ---------------------------------------------------------------------------
# The rank-0 reporter: every file a run writes


class Reporter:
    """metrics.jsonl, telemetry.jsonl, status.json, heartbeat, checkpoints, TensorBoard events.

    On rank 0 it writes; on the other ranks every method returns at once."""

    def __init__(self, run: Path, main: bool, status_base: dict[str, Any]) -> None:
        self.run, self.main, self.status_base = run, main, status_base
        self.last_path, self.best_path = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
        self._beat_stop = threading.Event()
        self._t_status = 0.0
        self.tb: TensorBoardWriter | None = None
        self._ck: dict[str, Any] = {}

    def start(
        self,
        cfg: TrainConfig,
        spec: AnyNetwork,
        data: Dataset,
        preprocess: dict[str, Any],
        samples: tuple[torch.Tensor, torch.Tensor],
        state: TrainState,
        resumed: bool,
    ) -> None:
        self._ck = {"spec": spec, "classes": list(data.classes), "preprocess": preprocess}
        if not self.main:
            return
        config = runs.read_json(self.run / "config.json") or {}
        runs.write_json(
            self.run / "config.json",
            {
                **config,
                "train": cfg.to_dict(),
                "spec": spec.to_dict(),
                "preprocess": preprocess,
                "classes": data.classes,
                "dataset_notes": data.notes,
            },
        )
        if resumed:  # what a killed process wrote after its last checkpoint is replayed: drop it
            runs.truncate_metrics(self.run, state.global_step)
            runs.truncate_jsonl(self.run / runs.TELEMETRY, state.global_step)
        for stale in (self.run / "checkpoints").glob(".*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        buf = io.BytesIO()
        torch.save({"x": samples[0][:16].cpu(), "y": samples[1][:16].cpu(), "classes": data.classes}, buf)
        atomic_write_bytes(self.run / "samples.pt", buf.getvalue())
        # Hides the events a killed process wrote after its checkpoint (a fresh run has none to hide).
        self.tb = TensorBoardWriter(self.run, purge_step=state.global_step + 1)
        runs.write_status(self.run, "running", **self.status_base, epoch=state.epoch, global_step=state.global_step)
        runs.touch_heartbeat(self.run)
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def _heartbeat(self) -> None:
        while not self._beat_stop.wait(runs.HEARTBEAT_EVERY_S):
            runs.touch_heartbeat(self.run)

    def wants_stop(self, should_stop: Callable[[int], bool] | None, step: int) -> bool:
        return jobs.stop_requested(self.run) or (should_stop is not None and should_stop(step))

    def step(self, rec: StepRecord, state: TrainState, eta: float | None, force_status: bool) -> None:
        if not self.main:
            return
        runs.append_metrics(self.run, [rec])
        if self.tb:
            self.tb.step(rec)
        if force_status or time.monotonic() - self._t_status >= 1.0:  # a rename per second is plenty
            runs.write_status(
                self.run,
                "running",
                **self.status_base,
                epoch=state.epoch,
                step_in_epoch=state.step_in_epoch,
                global_step=state.global_step,
                images_per_s=rec["images_per_s"],
                eta_s=eta,
                elapsed_s=state.elapsed_s,
            )
            self._t_status = time.monotonic()

    def epoch(self, rec: EpochRecord, model: torch.nn.Module) -> None:
        if not self.main:
            return
        runs.append_metrics(self.run, [rec])
        if self.tb:
            self.tb.epoch(rec)
            self.tb.histograms(rec["step"], model)

    def telemetry(self, rec: dict[str, Any]) -> None:
        if not self.main:
            return
        runs.append_jsonl(self.run / runs.TELEMETRY, [rec])
        if self.tb:
            self.tb.telemetry(rec)

    def save(self, which: str, model: torch.nn.Module, extra: dict[str, Any]) -> None:
        if not self.main:
            return
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
            return  # weights already diverged: keep the last good checkpoint (the next record reports it)
        save_checkpoint(
            self.last_path if which == "last" else self.best_path,
            Checkpoint(
                spec=self._ck["spec"],
                model_state=state,
                classes=self._ck["classes"],
                preprocess=self._ck["preprocess"],
                extra=extra,
            ),
        )

    def finish(self, result: str, message: str, state: TrainState) -> None:
        self._beat_stop.set()
        if not self.main:
            return
        if self.tb:
            self.tb.close()
        runs.write_status(
            self.run,
            result,
            **self.status_base,
            message=message,
            global_step=state.global_step,
            elapsed_s=state.elapsed_s,
            best_acc=state.best_acc,
        )
        jobs.clear_stop(self.run)


# ---------------------------------------------------------------------------
# Everything a run needs, then the loop


@dataclass
class Job:
    cfg: TrainConfig
    ddp: Distributed
    autocast: Callable[[], Any]
    raw_model: torch.nn.Module  # the network itself: checkpoints, telemetry probes
    model: torch.nn.Module  # what the steps call: raw_model, compiled and/or wrapped in DDP
    opt: torch.optim.Optimizer
    criterion: torch.nn.Module
    train_loader: Loader
    test_loader: Loader
    state: TrainState
    reporter: Reporter
    total_steps: int
    log_every: int
    pace: Pace = field(default_factory=Pace)

    def checkpoint(self, which: str) -> None:
        if self.ddp.main:
            extra = self.state.to_extra(self.opt, self.cfg, self.ddp.device, self.train_loader.augment)
            self.reporter.save(which, self.raw_model, extra)

    def forward(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The main head's logits and the losses: the main head's first, then each aux head's (training only)."""
        out = model(x)
        logits, aux_logits = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        return logits, [self.criterion(logits, y), *(self.criterion(a, y) for a in aux_logits)]

    def end_epoch(self, epoch: int, lr: float, test: tuple[float, float, int], eval_s: float) -> None:
        """After the evaluation (`test`: loss, accuracy, images; it took `eval_s`): the epoch record, the
        checkpoints (last, and best when it improved)."""
        state, (test_loss, test_acc, test_n) = self.state, test
        self.pace.eval_s, self.pace.evals = self.pace.eval_s + eval_s, self.pace.evals + 1
        tr_n = max(state.epoch_sums[2], 1)
        record: EpochRecord = {
            "kind": "epoch",
            "step": state.global_step,
            "epoch": epoch + 1,
            "train_loss": state.epoch_sums[0] / tr_n,
            "train_acc": state.epoch_sums[1] / tr_n,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "train_n": int(state.epoch_sums[2]),
            "test_n": test_n,
            "lr": lr,
            "time": time.time(),
            "images_per_s": state.epoch_sums[2] / max(state.elapsed_s - state.epoch_started_at, 1e-9),
            "elapsed_s": state.elapsed_s,
        }
        self.reporter.epoch(record, self.raw_model)
        best, state.best_acc = test_acc > state.best_acc, max(state.best_acc, test_acc)
        state.epoch, state.step_in_epoch, state.epoch_sums = epoch + 1, 0, [0.0, 0.0, 0.0]
        self.checkpoint("last")
        if best:
            self.checkpoint("best")


def step_record(
    step: int, epoch: float, loss_sum: float, correct: float, n: float, lr: float, dt: float, device: torch.device
) -> StepRecord:
    """The metrics of the steps since the last record (sums over every rank; `dt` seconds of training)."""
    record: StepRecord = {
        "kind": "step",
        "step": step,
        "epoch": epoch,
        "loss": loss_sum / n,
        "acc": correct / n,
        "lr": lr,
        "images_per_s": n / dt if dt > 0 else 0.0,
        "time": time.time(),
    }
    if device.type == "cuda":
        record["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return record


def diverged_message(loss_sum: float, step: int, epoch: int, lr: float) -> str:
    return (
        f"the loss became {'NaN' if math.isnan(loss_sum) else 'infinite'} by step {step} (epoch {epoch + 1}); "
        f"the learning rate {lr:g} is probably too high. The last good checkpoint is kept."
    )


def prepare(cfg: TrainConfig, run: Path, ddp: Distributed, resume: bool) -> Job:
    """Data, network, optimiser and state (from the last checkpoint when resuming); the run's files started."""
    device = ddp.device
    amp = autocast_dtype(device, cfg.amp)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext
    torch.backends.cudnn.benchmark = True
    size = cfg.image_size or network_from_dict(cfg.network).input_size[0]
    data = load_dataset(
        cfg.dataset,
        cfg.data_dir,
        image_size=size,
        synthetic_train=cfg.synthetic_train,
        synthetic_test=cfg.synthetic_test,
        seed=cfg.seed,
    )
    spec = model_spec(cfg, data.in_channels, len(data.classes))
    stats = data.channel_stats() if cfg.normalize else ([0.0] * data.in_channels, [1.0] * data.in_channels)
    preprocess = {
        "image_size": list(spec.input_size),
        "mean": stats[0],
        "std": stats[1],
        "in_channels": data.in_channels,
        "interpolation": "bilinear",
        "resize_mode": "stretch",
        "dataset": data.name,
    }
    train_loader, test_loader = make_loaders(cfg, data, ddp, spec.input_size, stats)
    torch.manual_seed(cfg.seed)
    raw_model = _build(spec).to(device, memory_format=torch.channels_last)
    opt = make_optimizer(raw_model, cfg)
    total_steps = cfg.epochs * train_loader.steps
    reporter = Reporter(
        run,
        ddp.main,
        {
            **jobs.this_process(),  # pid, its start time and host: gnet.jobs' liveness and stop rule
            "device": describe(device),
            "world_size": ddp.world,
            "started": (runs.read_json(run / "status.json") or {}).get("started") or time.time(),
            "precision": "bf16 autocast" if amp else "fp32",
            "epochs": cfg.epochs,
            "steps_per_epoch": train_loader.steps,
            "total_steps": total_steps,
        },
    )
    state = TrainState()
    if reporter.last_path.is_file():  # asked to resume with no checkpoint yet: from the start
        if not resume:  # a fresh start here would overwrite the run's checkpoints
            raise ConfigError(f"the run {run.name} already has a checkpoint: resume it, or start a new run")
        ck = load_checkpoint(reporter.last_path)
        if ck.spec.to_dict() != spec.to_dict():
            raise ConfigError("the run's last checkpoint does not match its config (was config.json edited?)")
        state = TrainState.restore(ck, raw_model, opt, device, train_loader.augment, train_loader.steps)
    model: torch.nn.Module = torch.compile(raw_model) if cfg.compile else raw_model
    if ddp.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    # a resume drops what was written after the checkpoint's step (all of it when there was no checkpoint yet)
    reporter.start(cfg, spec, data, preprocess, (test_loader.x, test_loader.y), state, resume)
    return Job(
        cfg=cfg,
        ddp=ddp,
        autocast=autocast,
        raw_model=raw_model,
        model=model,
        opt=opt,
        criterion=torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        train_loader=train_loader,
        test_loader=test_loader,
        state=state,
        reporter=reporter,
        total_steps=total_steps,
        log_every=cfg.log_every or max(1, train_loader.steps // 50),
    )


def train(cfg: TrainConfig, run: Path, resume: bool = False, should_stop: Callable[[int], bool] | None = None) -> str:
    """Train (or resume) the run in `run`; returns finished, stopped or failed. should_stop(global_step) is an
    extra stop request (tests use it to stop at an exact step)."""
    ddp = setup_distributed(cfg)
    job = prepare(cfg, run, ddp, resume)
    state, reporter, opt, model, world = job.state, job.reporter, job.opt, job.model, ddp.world
    steps_per_epoch = job.train_loader.steps
    probe = BranchProbe(branch_modules(job.raw_model))  # hooks only during telemetry steps, removed right after
    result, message = "finished", ""
    window = torch.zeros(2, dtype=torch.float64, device=ddp.device)  # loss*n, correct since the last record (no sync)
    n_window, t_window, t_ckpt = 0, time.perf_counter(), time.monotonic()
    model.train()
    for epoch in range(state.epoch, cfg.epochs):
        if state.step_in_epoch == 0:
            state.epoch_started_at = state.elapsed_s
        for x, y in job.train_loader.epoch(epoch, state.step_in_epoch):
            # -- the step --------------------------------------------------------------------------------
            lr = get_lr(state.global_step, job.total_steps, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            probing = telemetry_step(state.global_step + 1, cfg.telemetry_every)
            if probing:
                probe.attach()
            with job.autocast():  # a compiled model would recompile for hooks: probe the plain one (one process)
                logits, losses = job.forward(job.raw_model if probing and cfg.compile and world == 1 else model, x, y)
                total = losses[0] + cfg.aux_weight * sum(losses[1:], torch.zeros((), device=ddp.device))
            opt.zero_grad(set_to_none=True)
            total.backward()
            if probing:
                probe.detach()
                probe.before_step()
            opt.step()
            window += torch.stack([losses[0].detach().double() * len(y), (logits.argmax(1) == y).sum().double()])
            n_window += len(y)
            state.global_step, state.step_in_epoch = state.global_step + 1, state.step_in_epoch + 1
            at = epoch + state.step_in_epoch / steps_per_epoch
            if probing:
                probe.after_step()
                tel = probe.record(
                    ddp.all_sum, world, losses, step=state.global_step, epoch=at, lr=lr, time=time.time()
                )
                reporter.telemetry(tel)
            # Stop requests: checked every step in one process, at record steps under DDP (all ranks agree there).
            end_of_epoch = state.step_in_epoch == steps_per_epoch
            record = state.global_step % job.log_every == 0 or end_of_epoch
            if not (record or (world == 1 and reporter.wants_stop(should_stop, state.global_step))):
                continue
            # -- a record step: one sync, all-reduce the sums (and the stop vote), report ----------------------
            wants_stop = float(reporter.wants_stop(should_stop, state.global_step))
            loss_sum, correct, n, stop_votes = ddp.all_sum([*window.tolist(), float(n_window), wants_stop])
            window.zero_()
            n_window, dt, t_window = 0, time.perf_counter() - t_window, time.perf_counter()
            state.elapsed_s += dt
            if not math.isfinite(loss_sum):
                result, message = "failed", diverged_message(loss_sum, state.global_step, epoch, cfg.lr)
                break
            state.epoch_sums = [a + b for a, b in zip(state.epoch_sums, (loss_sum, correct, n))]
            eta = job.pace.eta(state.global_step, state.elapsed_s, job.total_steps, evals_left=cfg.epochs - epoch)
            rec = step_record(state.global_step, at, loss_sum, correct, n, lr, dt, ddp.device)
            reporter.step(rec, state, eta, force_status=end_of_epoch)
            if end_of_epoch:  # -- evaluation, the epoch's record and checkpoints -------------------------
                t_eval = time.perf_counter()
                test = evaluate(model, job.test_loader, ddp, job.autocast)
                job.end_epoch(epoch, lr, test, eval_s=time.perf_counter() - t_eval)
                t_ckpt, t_window = time.monotonic(), time.perf_counter()  # evaluation is not training throughput
            elif stop_votes > 0 or time.monotonic() - t_ckpt >= cfg.checkpoint_every_s:
                job.checkpoint("last")
                t_ckpt = time.monotonic()
            if stop_votes > 0:
                result = "stopped"
                message = f"stopped at step {state.global_step} of {job.total_steps}; resume continues from here"
                break
        if result != "finished":
            break
    else:
        message = f"finished {cfg.epochs} epoch(s); best test accuracy {state.best_acc:.2%}"
    reporter.finish(result, message, state)
    ddp.teardown()
    return result


# Command line (wired by gnet/__main__.py)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The network, then one flag per option of gnet.train_options (defaults None: the recipe decides)."""
    net = p.add_mutually_exclusive_group()
    net.add_argument("--preset", choices=[*NETWORK_PRESETS, *V3_PRESETS], help="a network preset")
    net.add_argument("--spec", metavar="FILE.json", help="a network spec saved from the app")
    for o in OPTIONS.values():
        if o.cli_flag is None:
            continue
        text = o.help.replace("%", "%%")  # argparse %-formats help strings
        if o.kind is bool:
            p.add_argument(o.cli_flag, dest=o.name, action="store_true", default=None, help=text)
        else:
            p.add_argument(
                o.cli_flag,
                dest=o.name,
                type=o.kind,
                default=None,
                choices=o.choices or None,
                metavar=o.metavar,
                help=text,
            )
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--run-dir", required=True, help="the run's directory (created; must not hold another run)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.preset in V3_PRESETS:
        network = V3_PRESETS[args.preset]()
    elif args.preset:
        network = network_preset(args.preset)
    elif args.spec:
        try:
            text = Path(args.spec).read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read the spec file {args.spec}: {e.strerror}") from None
        network = network_from_json(text)
    else:
        raise ConfigError("choose a network with --preset NAME or --spec FILE.json")
    overrides = {o.name: getattr(args, o.name) for o in OPTIONS.values() if o.cli_flag and o.name != "recipe"}
    return TrainConfig.from_recipe(args.recipe or "improved", network, **overrides)


def run_from_args(args: argparse.Namespace) -> int:
    """`python -m gnet train ...`: 0 finished or stopped, 1 failed, 2 bad options."""
    run = Path(args.run_dir)
    main = int(os.environ.get("RANK", "0")) == 0
    status: dict = {}
    try:
        existing = runs.read_json(run / "config.json")
        status = runs.read_json(run / "status.json") or {}
        if args.resume or (
            existing and status.get("state") in ("created", "starting") and not (args.preset or args.spec)
        ):
            if not existing:
                raise ConfigError(f"there is no run to resume in {run}")
            cfg = TrainConfig.from_dict(existing.get("train"))
            changes = {k: getattr(args, k) for k in ("epochs", "device") if getattr(args, k) is not None}
            cfg = dataclasses.replace(cfg, **changes).validate()
            resume = bool(args.resume)
        elif existing and not (args.preset or args.spec):
            raise ConfigError(
                f"{run} already holds a run ({status.get('state', 'unknown')}); "
                "add --resume to continue it, or choose a new --run-dir"
            )
        else:
            cfg = config_from_args(args)
            if main:
                runs.create(run, {"train": cfg.to_dict()})
            resume = False
    except (ConfigError, SpecError, runs.RunError) as e:
        # Launched by the app for this run: say why on the page, instead of "starting" and then "died".
        if main and status.get("state") == "starting" and jobs.launched_this_process(run, jobs.TRAINING, status):
            runs.write_status(run, "failed", message=str(e), **jobs.this_process())
        print(f"error: {e}", file=sys.stderr)
        return 2
    signalled = jobs.StopSignal().install()  # SIGTERM / SIGINT: finish the step, checkpoint, status "stopped"
    try:
        state = train(cfg, run, resume=resume, should_stop=lambda step: signalled())
    except (ConfigError, SpecError, DataError, CheckpointError) as e:
        if main:
            runs.write_status(run, "failed", message=str(e), pid=os.getpid(), host=socket.gethostname())
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if main:
            runs.write_status(
                run,
                "failed",
                message=f"training crashed: {type(e).__name__}: {str(e)[:300]}",
                pid=os.getpid(),
                host=socket.gethostname(),
            )
        raise
    if main:
        print(f"{state}: {(runs.read_json(run / 'status.json') or {}).get('message', '')}")
    return 0 if state in ("finished", "stopped") else 1


# ---------------------------------------------------------------------------
# Helpers for the page


def preflight(cfg: TrainConfig) -> AnyNetwork:
    """The network as the run will build it, checked before launching: it fits the dataset's channels and
    classes and the image size (SpecError if not; ConfigError when the dataset cannot be read)."""
    try:
        channels, classes = dataset_shape(cfg.dataset, cfg.data_dir)
    except DataError as e:
        raise ConfigError(str(e)) from None
    return model_spec(cfg, channels, classes)


@dataclass
class Prediction:
    image: Any  # (H, W, C) uint8 numpy array
    true: str
    predicted: str
    confidence: float


def _samples(path: Path, ck: Checkpoint, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n of the run's sample images and labels, checked against the checkpoint (CheckpointError):
    the file is anyone's to edit, and a label indexes the class names."""
    try:
        samples = torch_load_safely(path)
    except CheckpointError as e:
        raise CheckpointError(f"the run's sample images are unreadable: {e}") from None
    x = samples.get("x") if isinstance(samples, dict) else None
    y = samples.get("y") if isinstance(samples, dict) else None
    channels = ck.spec.in_channels
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != channels:
        raise CheckpointError(f"the run's sample images are not uint8 images of shape (N, {channels}, H, W)")
    if not (x.shape[0] and 1 <= x.shape[2] <= 4096 and 1 <= x.shape[3] <= 4096):
        raise CheckpointError("the run's sample images are empty or larger than 4096 pixels a side")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise CheckpointError("the run's sample labels are not a list of class numbers")
    x, y = x[:n], y[:n]
    if len(y) != len(x) or (len(y) and not (0 <= int(y.min()) and int(y.max()) < len(ck.classes))):
        raise CheckpointError(
            f"the run's sample labels must be one class number (0 to {len(ck.classes) - 1}) per image"
        )
    return x, y


def predictions(run: Path, which: str = "last", n: int = 8) -> list[Prediction]:
    """The checkpoint's predictions on the run's first few test images (CheckpointError if unusable)."""
    try:  # files under a run are untrusted: never follow a link out of it
        ckpt_path = confined(run, run / "checkpoints" / f"{which}.pt", "checkpoint")
        samples_path = confined(run, run / "samples.pt", "sample file")
    except ConfinementError as e:
        raise CheckpointError(str(e)) from None
    ck = load_checkpoint(ckpt_path)
    x, y = _samples(samples_path, ck, n)
    model = ck.build_model()
    pre = ck.preprocess
    try:
        with torch.no_grad():
            probs = model(
                to_model_input(x, tuple(pre["image_size"]), torch.tensor(pre["mean"]), torch.tensor(pre["std"]))
            ).softmax(1)
    except (RuntimeError, TypeError, ValueError, KeyError) as e:  # preprocessing that does not fit the network
        raise CheckpointError(f"the checkpoint's preprocessing does not fit its network: {str(e)[:120]}") from None
    conf, pred = probs.max(1)
    images = x.permute(0, 2, 3, 1)
    if images.shape[-1] == 1:
        images = images.expand(-1, -1, -1, 3)
    return [
        Prediction(images[i].numpy(), ck.classes[int(y[i])], ck.classes[int(pred[i])], float(conf[i]))
        for i in range(len(x))
    ]
