"""Which branch of which block carries the evidence for a class.

For one image and one target class, over all Inception blocks x 4 branches:
- per-branch Grad-CAM (Selvaraju et al.): for a branch output A (C x H x W) and the
  class logit y, alpha_k = mean over positions of dy/dA_k, map = ReLU(sum_k alpha_k A_k),
  at the branch's own resolution;
- gradient x activation: sum(A * dy/dA) per branch;
- branch ablation: the logit and probability of the class when one branch's output
  is zeroed and everything else is left as it was.

All 36 maps and sums come from ONE forward and ONE backward pass: the Net's walk runs the network
module by module (no hooks), keeping every branch output, and `torch.autograd.grad`
takes the target logit's gradient with respect to those 36 tensors. Nothing is
written to the model (no hooks, no `.grad`, its mode is kept), so one cached model
serves many sessions and threads at once. The ablations reuse each block's branch
outputs from that pass: the four ablated copies of a block are batched, and join the
copies of the earlier blocks on their way through the rest of the network (no full
forward pass is repeated; 36 ablations cost about as much as 9 batch-4 tails).

Receptive fields: the empirical one is |d unit / d input| (autograd w.r.t. the input,
summed over the branch's channels at one position); the theoretical one comes from the
layer plan (gnet.plan, Araujo et al. 2019).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from gnet.devices import cpu_streams
from gnet.net import Net, NetError, as_net
from gnet.plan import ReceptiveField, short_label
from gnet.spec import BRANCHES

T = TypeVar("T")


class AttributionError(ValueError):
    """A request the network can't answer (unknown class, block or position); the message says why."""


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class BranchExplanation:
    gradcam: np.ndarray  # (H, W) float32 at the branch's resolution, before upsampling, not normalised
    activation: np.ndarray  # (H, W) float32: the branch output's mean over its channels (the same for every target)
    grad_x_act: float  # sum over the branch output of A * dy/dA
    delta_logit: float  # ablated logit minus the unmodified one (nan when ablation was skipped)
    delta_prob: float  # ablated probability minus the unmodified one


@dataclass(frozen=True)
class Drop:
    block: str  # module name, e.g. "inception4d"
    branch: str  # "b2"
    before: float  # probability of the target, unmodified
    after: float  # with that branch zeroed
    delta_logit: float

    def sentence(self, label: str) -> str:
        verb = "drops" if self.after <= self.before else "raises"
        return (
            f"zeroing {short_label(self.block, self.branch)} {verb} '{label}' from {pct(self.before)} "
            f"to {pct(self.after)}"
        )


@dataclass(frozen=True)
class Explanation:
    target: int
    label: str
    logit: float
    prob: float
    logits: np.ndarray  # (num_classes,) float32, the unmodified network's output
    blocks: dict[str, dict[str, BranchExplanation]]  # module name -> branch -> result, in network order
    kernel_labels: dict[str, dict[str, str]]  # module name -> branch -> real kernel sizes, e.g. "1×1 → 3×3"
    input_hw: tuple[int, int]
    seconds: float  # wall time of the whole computation (device synchronised)

    def block_names(self) -> list[str]:
        return list(self.blocks)

    def branch_keys(self) -> list[str]:
        """The columns: b1..bN for the block with the most branches (GoogLeNet: b1..b4; Inception v3's B and D
        blocks have three)."""
        return max((list(br) for br in self.blocks.values()), key=len, default=list(BRANCHES))

    def matrix(self, field: str) -> np.ndarray:
        """(blocks, branches) array of one per-branch number: "grad_x_act", "delta_logit" or "delta_prob";
        nan where a block has fewer branches."""
        nan = float("nan")
        return np.array(
            [[getattr(br[r], field) if r in br else nan for r in self.branch_keys()] for br in self.blocks.values()],
            np.float64,
        )

    def block_shares(self) -> np.ndarray:
        """Each branch's grad x act as a signed share of its block's total |grad x act| (rows of |.| sum to 1)."""
        m = self.matrix("grad_x_act")
        tot = np.nansum(np.abs(m), axis=1, keepdims=True)
        out = np.divide(m, tot, out=np.zeros_like(m), where=tot > 0)
        return np.where(np.isnan(m), np.nan, out)

    def largest_drops(self, n: int = 5) -> list[Drop]:
        """The n branches whose zeroing lowers the target's probability most (ties: network order)."""
        rows = [
            (self.blocks[b][r].delta_prob, i, b, r)
            for i, b in enumerate(self.blocks)
            for r in self.blocks[b]
            if np.isfinite(self.blocks[b][r].delta_prob)
        ]
        rows.sort(key=lambda t: (t[0], t[1]))
        return [Drop(b, r, self.prob, self.prob + d, self.blocks[b][r].delta_logit) for d, _, b, r in rows[:n]]

    def to_json(self) -> dict:
        """The CLI's --json object."""
        return {
            "target": self.target,
            "label": self.label,
            "logit": self.logit,
            "prob": self.prob,
            "seconds": self.seconds,
            "blocks": {
                b: {
                    r: {
                        "gradcam": e.gradcam.astype(float).tolist(),
                        "grad_x_act": e.grad_x_act,
                        "ablation_delta_logit": e.delta_logit,
                        "ablation_delta_prob": e.delta_prob,
                    }
                    for r, e in br.items()
                }
                for b, br in self.blocks.items()
            },
        }


def pct(p: float) -> str:
    """A probability as people read it: "62 %", "6.2 %", "0.031 %" (small ones keep two digits)."""
    v = 100 * p
    if v >= 10:
        return f"{v:.0f} %"
    if v >= 1:
        return f"{v:.1f} %"
    return f"{v:.2g} %"


# ---------------------------------------------------------------------------
# Target class


def resolve_target(target: int | str | None, logits: np.ndarray | torch.Tensor, classes: Sequence[str]) -> int:
    """None -> the top-1 class; an int or a string of ASCII digits -> that index; otherwise a class name
    (case-insensitive, exact). AttributionError for anything else, an empty name included (it is not "top-1":
    leave the target out for that)."""
    n = int(logits.shape[-1])
    if target is None:
        return int(np.argmax(np.asarray(logits, dtype=np.float64)))
    if isinstance(target, str) and not target.strip():
        raise AttributionError("the target is empty: give a class index or name, or leave it out for the top-1 class")
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        idx = int(target)
    elif isinstance(target, str) and re.fullmatch(r"-?[0-9]{1,9}", target.strip()):  # not isdigit(): it takes '²'
        idx = int(target.strip())
    elif isinstance(target, str):
        want = target.strip().casefold()
        hits = [i for i, c in enumerate(classes[:n]) if c.casefold() == want]
        if not hits:
            near = [c for c in classes[:n] if want in c.casefold() or c.casefold() in want][:5]
            hint = f"; did you mean {', '.join(repr(c) for c in near)}?" if near else ""
            raise AttributionError(f"unknown class {target.strip()!r}{hint}")
        return hits[0]
    else:
        raise AttributionError(f"a target is a class index or name, not {type(target).__name__}")
    if not 0 <= idx < n:
        raise AttributionError(f"class index {idx} is out of range: this network has classes 0–{n - 1}")
    return idx


def class_name(classes: Sequence[str], idx: int) -> str:
    return classes[idx] if 0 <= idx < len(classes) else str(idx)


# ---------------------------------------------------------------------------
# The one forward / one backward pass


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _zeroed_copies(parts: Sequence[torch.Tensor], which: Sequence[int]) -> torch.Tensor:
    """(len(which), C, H, W): the block's concatenated output once per branch k in `which`, with branch k
    set to zero."""
    batch = torch.cat(parts, dim=1).repeat(len(which), 1, 1, 1)
    starts = [0]
    for p in parts:
        starts.append(starts[-1] + p.shape[1])
    for row, k in enumerate(which):
        batch[row, starts[k] : starts[k + 1]] = 0
    return batch


def predict(net: Net | nn.Module, x: torch.Tensor) -> np.ndarray:
    """The logits (num_classes,) for one image, run module by module like `explain` (no graph kept)."""
    with torch.inference_mode():
        return as_net(net).logits(x)[0].float().cpu().numpy()


def _ablated_logits(net: Net, parts: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:
    """Logits of every one-branch ablation, block by block in network order (row k: the k-th branch in
    network order zeroed). Each block's ablated copies are built from its saved branch outputs and join one
    batch that travels on through the rest of the network with the earlier blocks' copies: the same arithmetic
    as a separate tail per block, in far fewer (larger) kernel calls.

    On a CPU the copies are dealt alternately to `devices.cpu_streams` independent streams, each a thread
    of its own (the ops release the GIL), so an idle 2-core machine runs both halves at once; a copy's
    arithmetic is the same in either stream."""
    rows = [(block, k) for block in net.blocks() for k in range(len(parts[block]))]
    if not rows:
        raise AttributionError("this network has no Inception blocks")
    return torch.stack(_dealt(len(rows), net.device, lambda share: _ablation_stream(net, parts, set(share), rows)))


def _dealt(n: int, device: torch.device, work: Callable[[list[int]], Sequence[T]]) -> list[T]:
    """work(indices) for items 0..n-1 (it returns their results in that order), dealt alternately to
    `devices.cpu_streams` threads (torch's ops release the GIL); the results in item order."""
    streams = max(1, min(cpu_streams(device), n))
    shares = [list(range(s, n, streams)) for s in range(streams)]
    if streams == 1:
        return list(work(shares[0]))
    with ThreadPoolExecutor(streams) as pool:
        outs = list(pool.map(work, shares))
    results: list[T] = [None] * n  # type: ignore[list-item]  (every slot is filled below)
    for share, out in zip(shares, outs):
        for i, r in zip(share, out):
            results[i] = r
    return results


def _ablation_stream(
    net: Net, parts: dict[str, dict[str, torch.Tensor]], share: set[int], rows: list[tuple[str, int]]
) -> Sequence[torch.Tensor]:
    """The logits of the ablations `share` (indices into `rows`), in their order (one row each)."""
    with torch.inference_mode():  # per thread: a stream's thread starts outside the caller's mode
        carry, prev = torch.empty(0), None  # no copies yet: nothing to run through a block
        for block in net.blocks():
            mine = [k for i, (b, k) in enumerate(rows) if b == block and i in share]
            if len(carry):
                carry = net.run(carry, after=prev, upto=block)
            if mine:
                zeroed = _zeroed_copies([p.detach() for p in parts[block].values()], mine)
                carry = torch.cat([carry, zeroed]) if len(carry) else zeroed
            prev = block if len(carry) else None
        return net.head(prev, carry).unbind(0)


def ablation_logits(net: Net | nn.Module, x: torch.Tensor) -> np.ndarray:
    """(4 × blocks, classes) float64: the logits of every one-branch ablation of one image (rows 4i..4i+3:
    block i's b1..b4 zeroed). They do not depend on the target class: a page that lets the user switch the
    target computes them once per image and passes them to `explain` (the ablations are most of its time)."""
    net = as_net(net)
    _check_eval_and_image(net, x)
    first = _first_block(net)
    with torch.inference_mode():
        _, parts = net.forward_blocks(net.block_input(first, x), after=net.before(first))
        return _ablated_logits(net, parts).double().cpu().numpy()


def _first_block(net: Net) -> str:
    if not net.blocks():
        raise AttributionError("this network has no Inception blocks")
    return net.blocks()[0]


def _check_eval_and_image(net: Net, x: torch.Tensor) -> None:
    if net.module.training:
        raise AttributionError("the network is in training mode; explanations need eval mode")
    if x.ndim != 4 or x.shape[0] != 1:
        raise AttributionError(f"expected one image shaped (1, C, H, W), got {tuple(x.shape)}")


def explain(
    net: Net | nn.Module,
    x: torch.Tensor,
    target: int | str | None = None,
    classes: Sequence[str] = (),
    ablation: bool = True,
    ablated: np.ndarray | None = None,
) -> Explanation:
    """Grad-CAM, grad x act and (optionally) branch ablations for every block and branch.

    `x` is one preprocessed image (1, C, H, W). The model must be in eval mode (dropout
    and BatchNorm as at inference); it is only read. `ablated`: this image's `ablation_logits`, when
    the caller has them already (then no ablation is run here).
    """
    return explain_many(net, x, [target], classes, ablation, ablated)[0]


def explain_many(
    net: Net | nn.Module,
    x: torch.Tensor,
    targets: Sequence[int | str | None],
    classes: Sequence[str] = (),
    ablation: bool = True,
    ablated: np.ndarray | None = None,
) -> list[Explanation]:
    """`explain` for several targets of one image: one forward pass, then one backward per target
    (retaining the graph between them) and one ablation batch for all. The Explain page computes its
    top-5 classes this way, so switching between them is a lookup. Each result's `seconds` is its
    share: the forward and the ablations split evenly, plus its own backward."""
    net = as_net(net)
    _check_eval_and_image(net, x)
    if not targets:
        raise AttributionError("no target class given")
    first = _first_block(net)
    blocks = net.blocks()
    device = net.device
    _sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():  # nothing before the first block is asked about: no graph there
        h = net.block_input(first, x)
    with torch.enable_grad():
        # A leaf that needs grad starts the graph; autograd.grad below asks only for the
        # branch outputs, so no gradient is computed for (or stored on) any parameter.
        h, parts = net.forward_blocks(h.detach().requires_grad_(True), after=net.before(first))
        logits = net.head(blocks[-1], h)[0]
    logits_cpu = logits.detach().float().cpu().numpy()
    tgts = [resolve_target(t, logits_cpu, classes) for t in targets]
    flat = [p for b in blocks for p in parts[b].values()]
    acc = torch.float32 if device.type == "mps" else torch.float64  # sums and softmax in float64 (MPS has none)
    with torch.inference_mode():
        out = None
        if ablation:
            out = (  # (4 * blocks, classes)
                _ablated_logits(net, parts) if ablated is None else torch.as_tensor(ablated, device=device)
            )
            if out.shape != (len(flat), logits.shape[0]):
                raise AttributionError(f"ablated logits shaped {tuple(out.shape)} are not this network's")
        act_flat = torch.cat([a.detach().mean(dim=1)[0].flatten() for a in flat]).float().cpu().numpy()
    _sync(device)
    shared = (time.perf_counter() - t0) / len(tgts)
    labels = {b: net.branch_labels(b) for b in blocks}
    pairs = [(b, r) for b in blocks for r in parts[b]]
    results = []
    for k, tgt in enumerate(tgts):
        t1 = time.perf_counter()
        with torch.enable_grad():
            grads = torch.autograd.grad(logits[tgt], flat, retain_graph=k < len(tgts) - 1)
        with torch.inference_mode():
            cams, gxa = [], []
            for a, g in zip(flat, grads):
                alpha = g.mean(dim=(2, 3), keepdim=True)
                cams.append(torch.relu((alpha * a.detach()).sum(dim=1))[0].flatten())
                gxa.append((g.to(acc) * a.detach().to(acc)).sum())
            logit = logits.detach()[tgt].to(acc)
            prob = torch.softmax(logits.detach().to(acc), 0)[tgt]
            deltas = []
            if out is not None:
                deltas.append(
                    torch.stack([out[:, tgt].to(acc) - logit, torch.softmax(out.to(acc), 1)[:, tgt] - prob], 1)
                )  # (36, 2)
            # One transfer to the CPU for everything (each .cpu() would synchronise a GPU).
            packed = (
                torch.cat(
                    [torch.cat(cams).to(acc), torch.stack(gxa), logit[None], prob[None], *(d.flatten() for d in deltas)]
                )
                .cpu()
                .numpy()
                .astype(np.float64)
            )
        _sync(device)
        seconds = shared + time.perf_counter() - t1
        results.append(
            _unpack(packed, act_flat, flat, pairs, tgt, classes, logits_cpu, labels, x, seconds, out is not None)
        )
    return results


def _unpack(
    packed: np.ndarray,
    act_flat: np.ndarray,
    flat: Sequence[torch.Tensor],
    pairs: Sequence[tuple[str, str]],
    tgt: int,
    classes: Sequence[str],
    logits_cpu: np.ndarray,
    labels: dict[str, dict[str, str]],
    x: torch.Tensor,
    seconds: float,
    ablation: bool,
) -> Explanation:
    """The packed CPU vector (36 maps, 36 grad×act, logit, prob, 36 × (Δlogit, Δprob)) and the 36 mean-activation
    maps (laid out as the Grad-CAM maps) as an Explanation."""
    n_cam = sum(a.shape[2] * a.shape[3] for a in flat)
    cam_flat, rest = packed[:n_cam], packed[n_cam:]
    gxa_np, logit_v, prob_v, delta_np = rest[: len(flat)], rest[len(flat)], rest[len(flat) + 1], rest[len(flat) + 2 :]
    result: dict[str, dict[str, BranchExplanation]] = {}
    o = 0
    for i, a in enumerate(flat):
        hh, ww = a.shape[2], a.shape[3]
        cam = cam_flat[o : o + hh * ww].reshape(hh, ww).astype(np.float32)
        act = act_flat[o : o + hh * ww].reshape(hh, ww)
        o += hh * ww
        block, branch = pairs[i]
        dl, dp = (delta_np[2 * i], delta_np[2 * i + 1]) if ablation else (float("nan"), float("nan"))
        result.setdefault(block, {})[branch] = BranchExplanation(cam, act, float(gxa_np[i]), float(dl), float(dp))
    return Explanation(
        tgt,
        class_name(classes, tgt),
        float(logit_v),
        float(prob_v),
        logits_cpu,
        result,
        labels,
        (int(x.shape[2]), int(x.shape[3])),
        seconds,
    )


# ---------------------------------------------------------------------------
# Receptive fields


def _check_block(net: Net, block: str) -> None:
    if block not in net.blocks():
        raise AttributionError(f"no block {block!r}; choose one of {', '.join(short_label(b) for b in net.blocks())}")


def theoretical_rf(net: Net | nn.Module, block: str, branch: str) -> ReceptiveField:
    """The receptive field of a branch output's units, from the layer plan (gnet.plan)."""
    try:
        net = as_net(net)
    except NetError as e:
        raise AttributionError(str(e)) from None
    if branch not in BRANCHES:
        raise AttributionError(f"no branch {branch!r}; choose one of {', '.join(BRANCHES)}")
    _check_block(net, block)
    paths = net.branch_paths(block)
    if branch not in paths:
        raise AttributionError(f"no branch {branch!r} in {short_label(block)}; choose one of {', '.join(paths)}")
    rf = net.plan.step(paths[branch]).rf
    if rf is None:
        raise AttributionError(f"the layer plan has no receptive field for {short_label(block, branch)}")
    return rf


@dataclass(frozen=True)
class EmpiricalRF:
    block: str
    row: int
    col: int
    grid: dict[str, tuple[int, int]]  # branch -> its output's (H, W)
    maps: dict[str, np.ndarray]  # branch -> (H_in, W_in) |d unit / d input| summed over input channels
    theory: dict[str, ReceptiveField]


def receptive_fields(net: Net | nn.Module, x: torch.Tensor, block: str, row: int, col: int) -> EmpiricalRF:
    """The four branches of `block` at position (row, col): |d (sum over the branch's channels
    at that position) / d input|, from one forward and four backward passes."""
    net = as_net(net)
    _check_block(net, block)
    with torch.enable_grad():
        xin = x.to(net.device).detach().requires_grad_(True)
        outputs = net.branch_outputs(block, net.block_input(block, xin))
        names, parts = list(outputs), list(outputs.values())
        hh, ww = parts[0].shape[2], parts[0].shape[3]
        if not (0 <= row < hh and 0 <= col < ww):
            raise AttributionError(f"position ({row}, {col}) is outside {short_label(block)}'s {hh}×{ww} grid")

        # One forward, four backward passes through the kept graph (measured faster on CPU than a
        # batch of 4 copies or a vmapped backward: the forward up to the block is shared). On a CPU the
        # backward passes run in parallel streams (autograd runs a CPU backward on its calling thread).
        def backward(ks: list[int]) -> list[torch.Tensor]:
            with torch.enable_grad():
                return [torch.autograd.grad(parts[k][0, :, row, col].sum(), [xin], retain_graph=True)[0] for k in ks]

        g = torch.cat(_dealt(len(parts), net.device, backward))
    maps_np = g.detach().abs().sum(dim=1).float().cpu().numpy()
    return EmpiricalRF(
        block,
        row,
        col,
        {b: (hh, ww) for b in names},
        {b: maps_np[k] for k, b in enumerate(names)},
        {b: theoretical_rf(net, block, b) for b in names},
    )


# ---------------------------------------------------------------------------
# Text report (the CLI without --json)


def explain_text(ex: Explanation, model_label: str = "") -> str:
    head = [
        model_label,
        (
            f"target {ex.target} '{ex.label}': logit {ex.logit:.3f}, probability {pct(ex.prob)} "
            f"({ex.input_hw[0]}×{ex.input_hw[1]} input, {ex.seconds * 1000:.0f} ms)"
        ),
        "per block and branch: grad×act | change in probability (percentage points) when the branch is zeroed",
    ]
    keys = ex.branch_keys()
    rows = [["block", *keys]]
    for b, br in ex.blocks.items():
        cells = (f"{br[r].grad_x_act:+.3g} | {br[r].delta_prob * 100:+.3g}" if r in br else "—" for r in keys)
        rows.append([short_label(b), *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    drops = [d.sentence(ex.label) for d in ex.largest_drops(3)]
    return "\n".join([h for h in head if h] + table + (["largest drops:"] + [f"  {d}" for d in drops] if drops else []))
