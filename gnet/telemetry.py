"""Per-branch training telemetry: what each Inception branch carries forward and backward, every K steps.

On a telemetry step the trainer attaches a `BranchProbe` to its own (private) model for that one step:
forward hooks on every branch module sum the squares of the branch output and register a tensor hook
that sums the squares of the loss gradient with respect to it; the handles are removed right after the
backward pass, so no other step pays for them. Around the optimiser step the probe snapshots the
branch parameters to measure the update. Per block and branch a record holds:

    out_rms      RMS of the branch output (all elements of the batch)
    grad_rms     RMS of d(training loss)/d(branch output); the training loss is the batch mean of the main
                 cross-entropy plus aux_weight × each aux head's, the one that is backpropagated
    weight_norm  L2 norm of all the branch's parameters after the step (conv weights and biases, BN affine)
    update_norm  L2 norm of the change the optimiser step just made to them

plus the main and each aux head's loss (batch means) and the learning rate. Under DDP the sums of
squares and the losses are all-reduced, so a record equals the single-process figure over the whole
batch: the gradient of the global mean loss is each rank's gradient / world size. Parameters are the
same on every rank, so their norms need no reduction.

An Inception v3 branch of several layers is no module of its own (torchvision runs them in the block's
forward): its output is its last layer's, or for E's split branches its two halves' together (the sums of
squares of both), and its parameters are all its layers'. A branch that is only a functional pool (B's and
D's max-pool) has no module and no parameters: its output (and gradient) statistics are read from its channels
of the block's output, and its weight and update norms are None ("no parameters"; null in telemetry.jsonl,
left out of the TensorBoard events, a gap in the charts). No statistic is ever NaN: one that cannot be measured
is None.

With --compile in one process, telemetry steps call the plain module (the same parameters): hooks on a
compiled module's submodules would make it recompile. Under DDP with --compile they go through the compiled
module, which may then recompile for the hooked variant.

Records are lines of telemetry.jsonl in the run directory (gnet.runs.append_jsonl / read_telemetry).
When the `tensorboard` package is installed the trainer also writes TensorBoard event files into the
run directory (`TensorBoardWriter`), so `tensorboard --logdir runs` shows every run.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gnet.plan import CONV


@dataclass(frozen=True)
class LayeredBranch:
    """A branch that is no module: the modules whose outputs make its output, and those holding its parameters.

    `channels` (lo, hi): the branch's output is channels lo:hi of its one output module's (a pool-only branch,
    read from the block's concatenated output); None: the outputs' whole tensors."""

    outputs: tuple[nn.Module, ...]
    layers: tuple[nn.Module, ...]
    channels: tuple[int, int] | None = None


Branch = nn.Module | LayeredBranch


def _outputs(b: Branch) -> tuple[nn.Module, ...]:
    return b.outputs if isinstance(b, LayeredBranch) else (b,)


def _parameters(b: Branch) -> list[nn.Parameter]:
    return [p for m in b.layers for p in m.parameters()] if isinstance(b, LayeredBranch) else list(b.parameters())


def _channels(b: Branch) -> tuple[int, int] | None:
    return b.channels if isinstance(b, LayeredBranch) else None


def branch_modules(model: nn.Module) -> dict[str, dict[str, Branch]]:
    """{"inception3a": {"b1": module, ...}, ...} in network order, from the network's layer plan (a GoogLeNet's
    or an Inception v3's: gnet.network.GoogLeNet, gnet.v3_modules.InceptionV3)."""
    plan = model.plan
    out: dict[str, dict[str, Branch]] = {}
    for blk in plan.blocks():
        out[blk] = {}
        lo = 0  # the branch's first channel in the block's output (branches are concatenated in this order)
        for br, path in plan.branch_paths(blk).items():
            step = plan.step(path)
            channels, lo = (lo, lo + step.out_shape[0]), lo + step.out_shape[0]
            if not step.virtual:
                out[blk][br] = model.get_submodule(path)
                continue
            convs = [s for s in plan.steps if s.block == blk and s.branch == br and s.kind == CONV and not s.virtual]
            if not convs:  # a functional pool only (v3's B and D): its channels of the block's output, no parameters
                out[blk][br] = LayeredBranch((model.get_submodule(blk),), (), channels)
                continue
            halves = [s for s in convs if s.half]
            last = halves or convs[-1:]
            out[blk][br] = LayeredBranch(
                tuple(model.get_submodule(s.path) for s in last), tuple(model.get_submodule(s.path) for s in convs)
            )
    return out


class BranchProbe:
    """Branch statistics of one training step; attach before the forward pass, detach after backward."""

    def __init__(self, branches: dict[str, dict[str, Branch]]) -> None:
        self.branches = branches
        self.keys = [(blk, br) for blk, d in branches.items() for br in d]
        self._handles: list[Any] = []
        self._out: dict[tuple[str, str], list[tuple[torch.Tensor, int]]] = {}  # (sum of squares, elements)
        self._grad: dict[tuple[str, str], list[tuple[torch.Tensor, int]]] = {}
        self._before: dict[tuple[str, str], list[torch.Tensor]] = {}
        self._norms: list[torch.Tensor] = []

    def attach(self) -> BranchProbe:
        self._out = {k: [] for k in self.keys}
        self._grad = {k: [] for k in self.keys}
        for key in self.keys:
            b = self.branches[key[0]][key[1]]
            for m in _outputs(b):
                self._handles.append(m.register_forward_hook(self._forward_hook(key, _channels(b))))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _forward_hook(self, key: tuple[str, str], channels: tuple[int, int] | None) -> Callable[..., None]:
        def part(t: torch.Tensor) -> torch.Tensor:  # the branch's channels of a block's output, or all of it
            return t if channels is None else t[:, channels[0] : channels[1]]

        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            o = part(out.detach())
            self._out[key].append((o.float().square().sum(), o.numel()))
            if out.requires_grad:
                out.register_hook(grad_hook)

        def grad_hook(g: torch.Tensor) -> None:
            g = part(g)
            self._grad[key].append((g.float().square().sum(), g.numel()))

        return hook

    def _params(self, key: tuple[str, str]) -> list[torch.Tensor]:
        return [p.detach() for p in _parameters(self.branches[key[0]][key[1]])]

    @torch.no_grad()
    def before_step(self) -> None:
        self._before = {k: [p.clone() for p in self._params(k)] for k in self.keys}

    @torch.no_grad()
    def after_step(self) -> None:
        """Weight and update norms, kept on the device (read with everything else in one sync); foreach
        kernels keep the launches per telemetry step few on a GPU."""
        self._norms = []
        now = [self._params(k) for k in self.keys]
        flat_now = [p for ps in now for p in ps]
        flat_before = [p for k in self.keys for p in self._before[k]]
        if not flat_now:
            return
        weights = torch._foreach_norm([p.float() for p in flat_now])
        updates = torch._foreach_norm(
            torch._foreach_sub([p.float() for p in flat_now], [p.float() for p in flat_before])
        )
        i = 0
        for ps in now:
            w, u = weights[i : i + len(ps)], updates[i : i + len(ps)]
            zero = torch.zeros((), device=flat_now[0].device)
            self._norms += [
                torch.stack(w).square().sum().sqrt() if w else zero,
                torch.stack(u).square().sum().sqrt() if u else zero,
            ]
            i += len(ps)
        self._before = {}

    def record(
        self, all_sum: Callable[[list[float]], list[float]], world: int, losses: list[torch.Tensor], **fields: Any
    ) -> dict[str, Any]:
        """The record of this step. losses: the main loss, then each aux head's (batch means on this rank).

        all_sum sums a list of floats over the ranks (identity in one process)."""
        device = losses[0].device
        parts = [self._out[k] for k in self.keys] + [self._grad[k] for k in self.keys]
        sq = [sum((t for t, _ in ps), torch.zeros((), device=device)) for ps in parts]
        counts = [float(sum(n for _, n in ps)) for ps in parts]  # known on the host: no device round trip
        flat = torch.stack([*sq, *(x.detach().float() for x in losses), *self._norms]).double()
        values = flat.tolist()  # the one host sync of a telemetry step
        n, m = len(self.keys), len(losses)
        reduced = all_sum(values[: 2 * n] + counts + values[2 * n : 2 * n + m])
        ss, cnt, loss_means = reduced[: 2 * n], reduced[2 * n : 4 * n], [v / world for v in reduced[4 * n :]]
        norms = values[2 * n + m :]
        branches: dict[str, dict[str, dict[str, float | None]]] = {}
        for i, (blk, br) in enumerate(self.keys):
            o_ss, o_n, g_ss, g_n = ss[i], cnt[i], ss[n + i], cnt[n + i]
            # None, never NaN, for what was not measured: a branch without parameters (a pool) has no weight norm
            has_params = bool(norms) and bool(_parameters(self.branches[blk][br]))
            branches.setdefault(blk, {})[br] = {
                "out_rms": math.sqrt(o_ss / o_n) if o_n else None,
                # each rank's loss is the mean over its shard: the global mean's gradient is 1/world of it
                "grad_rms": math.sqrt(g_ss / g_n) / world if g_n else None,
                "weight_norm": norms[2 * i] if has_params else None,
                "update_norm": norms[2 * i + 1] if has_params else None,
            }
        self._out, self._grad, self._norms = {}, {}, []
        return {
            "kind": "telemetry",
            **fields,
            "loss": loss_means[0],
            "aux_loss": {f"aux{i + 1}": v for i, v in enumerate(loss_means[1:])},
            "branches": branches,
        }


def telemetry_step(global_step: int, every: int) -> bool:
    """Is the step numbered global_step (1-based) a telemetry step? Step 1, then every `every`-th."""
    return every > 0 and (global_step == 1 or global_step % every == 0)


# ---------------------------------------------------------------------------
# TensorBoard (optional: nothing changes when the package is missing)


def tensorboard_available() -> bool:
    """Without importing it (the import is slow): the page only needs to know."""
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardWriter:
    """Scalars and histograms into the run directory; a no-op when tensorboard is not installed."""

    def __init__(self, run: Path, purge_step: int | None = None) -> None:
        self.writer: Any = None
        if tensorboard_available():
            # Imported here, not at the top: tensorboard is optional and slow to import, and the page
            # (which imports this module for the charts' helpers) never writes events.
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run hides the events a killed process wrote after its checkpoint
            self.writer = SummaryWriter(log_dir=str(run), purge_step=purge_step, flush_secs=10)  # live in TensorBoard

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for tag, v in values.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(tag, v, step)

    def step(self, rec: dict[str, Any]) -> None:
        self.scalars(
            rec["step"],
            {"train/loss": rec["loss"], "train/acc": rec["acc"], "lr": rec["lr"], "images_per_s": rec["images_per_s"]},
        )

    def epoch(self, rec: dict[str, Any]) -> None:
        self.scalars(
            rec["step"],
            {
                "epoch/train_loss": rec["train_loss"],
                "epoch/train_acc": rec["train_acc"],
                "test/loss": rec["test_loss"],
                "test/acc": rec["test_acc"],
            },
        )

    def telemetry(self, rec: dict[str, Any]) -> None:
        values = {f"aux/{k}_loss": v for k, v in rec["aux_loss"].items()}
        for blk, brs in rec["branches"].items():
            for br, stats in brs.items():  # None (a branch without parameters has no weight norm): no event
                values.update({f"branch/{blk}/{br}/{s}": v for s, v in stats.items() if v is not None})
        self.scalars(rec["step"], values)

    def histograms(self, step: int, model: nn.Module) -> None:
        """Each block's weights (all its parameters in one histogram)."""
        if self.writer is None:
            return
        for blk, branches in branch_modules(model).items():
            flat = torch.cat([p.detach().float().flatten().cpu() for b in branches.values() for p in _parameters(b)])
            self.writer.add_histogram(f"weights/{blk}", flat, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
