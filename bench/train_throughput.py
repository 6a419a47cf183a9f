"""Training throughput: seed 001's reference loop vs this project's trainer, same network and batch.

Reference (seed 001 / d2l): torchvision FashionMNIST with transforms Resize(96) + ToTensor applied per
sample in a DataLoader, the d2l GoogLeNet (gnet's d2l-fashion96, identical to the seed's module), fp32,
plain SGD lr 0.005, batch 128, `loss.item()` every step.
Ours: gnet.train.train() with the seed recipe on the same files: uint8 data on the device, batch-wise
resize/normalise, channels_last, bf16 autocast where the hardware has it natively (CUDA; CPUs with
AVX512-BF16/AMX), metrics read every few steps.

The real Fashion-MNIST cannot be downloaded here, so both read synthetic Fashion-MNIST-shaped data
(28×28 uint8) written as real IDX files into a temporary FashionMNIST/raw folder.

    python bench/train_throughput.py                      # CPU: 3 warm-up + 10 timed steps each
    python bench/train_throughput.py --quick              # a busy CPU: batch 16, 3 timed steps, no telemetry pair
    python bench/train_throughput.py --device cuda --steps 50 --warmup 10   # GPU: CUDA events time each step

Prints images/s (median over the timed steps) for each and the ratio ours / reference, as the last line.
Target on the 2-core CPU: ≥ 1.5× (aim 2×).

Also, from the same run, two limits the fp32 trainer is measured against:
  * the machine's fp32 matmul peak (TF32 on CUDA, as cuDNN's convs): the best of at least 10 n×n matmuls at each of several sizes up to 4096²
    (a single size and few repeats under-measures it: the trainer once read as 125 % of such a "peak");
  * the trainer's own convolutions alone: every conv of the network at the shapes the trainer runs it
    (batch, channels_last, fp32), forward and backward (input and weight gradients, no input gradient for the
    first conv, as in training) and nothing else: the step's floor on this machine.
  The trainer's achieved FLOP/s: FLOPs of a step = 3 × forward (forward, and a backward of about twice the
  forward), forward FLOPs = 2 × the network's multiplications (gnet.analysis, the seeds' hand count: convs and
  linears, no bias, BatchNorm, pools or ReLUs). A fraction above 100 % of either limit means the limit is
  wrong: the bench says so and stops. Target: a trainer step at most 1.2 × its convolutions alone.
  * per-branch telemetry's overhead: images/s (all timed steps, telemetry steps included) with telemetry off and
    on at the default K, as a ratio (target ≥ 0.95), on a smaller batch so that the window holds several K.
  * --profile: torch.profiler's breakdown of the fp32 trainer's steps into convs, pools, BatchNorm, ReLU,
    concat, the optimizer step and the rest (self CPU time), to say where the gap to the peak is.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import torch
from torch import nn
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile

from gnet import runs
from gnet.analysis import network_report
from gnet.network import build
from gnet.spec import NetworkSpec, d2l_fashion96, with_input
from gnet.train import OPTIONS, TrainConfig, train


def write_idx(path: Path, array: torch.Tensor) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.to(torch.uint8).numpy().tobytes())


def make_fashion_mnist(root: Path, n_train: int, n_test: int) -> None:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            raw / f"{prefix}-images-idx3-ubyte", torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        )
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", torch.arange(n) % 10)


class Timer:
    """Per-step wall time; on CUDA, events around each step (no host sync inside the step)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.times: list[float] = []
        self._events: list[tuple] = []
        self._t = 0.0

    def start(self) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self._events.append((e,))
        else:
            self._t = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self._events[-1] += (e,)
        else:
            self.times.append(time.perf_counter() - self._t)

    def result(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1000 for a, b in self._events]
        return self.times


def reference(data: Path, device: torch.device, batch: int, warmup: int, steps: int, workers: int) -> float:
    """Seed 001's loop; returns the median images/s of the timed steps (data loading included)."""
    import torchvision
    from torchvision import transforms

    ds = torchvision.datasets.FashionMNIST(
        str(data),
        train=True,
        download=False,
        transform=transforms.Compose([transforms.Resize(96), transforms.ToTensor()]),
    )
    loader = torch.utils.data.DataLoader(ds, batch, shuffle=True, num_workers=workers)
    torch.manual_seed(0)
    model = build(d2l_fashion96()).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.005)
    loss_fn = nn.CrossEntropyLoss()
    timer = Timer(device)
    it = iter(loader)
    model.train()
    for i in range(warmup + steps):
        if i >= warmup:
            timer.start()
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # the seed's Trainer accumulates the loss as a Python number every step
        if i >= warmup:
            timer.stop()
    return batch / statistics.median(timer.result())


def ours(
    data: Path,
    device: torch.device,
    batch: int,
    warmup: int,
    steps: int,
    tmp: Path,
    amp: str,
    telemetry_every: int = 0,
    name: str = "",
    compile: bool = False,
) -> list[float]:
    """The project's trainer, seed recipe, one record per step; the per-step seconds after warm-up."""
    cfg = TrainConfig.from_recipe(
        "seed",
        d2l_fashion96(),
        dataset="fashion-mnist",
        data_dir=str(data),
        batch_size=batch,
        epochs=1,
        max_train_samples=batch * (warmup + steps),
        max_test_samples=batch,
        log_every=1,
        device=device.type,
        amp=amp,
        checkpoint_every_s=86_400.0,
        telemetry_every=telemetry_every,
        compile=compile,
    )
    run = runs.create(
        tmp / f"ours-{amp}-{batch}-{telemetry_every}{name}{'-compiled' * compile}", {"train": cfg.to_dict()}
    )
    train(cfg, run)
    return [batch / r["images_per_s"] for r in runs.read_metrics(run, "step")][warmup:]


def median_ips(batch: int, seconds: list[float]) -> float:
    return batch / statistics.median(seconds)


PEAK_SIZES = (512, 1024, 2048, 3072, 4096)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def convs_use_tf32(device: torch.device) -> bool:
    """On CUDA, cuDNN runs fp32 convolutions on TF32 tensor cores by default while matmuls stay strict fp32: a
    strict-fp32 peak is one the trainer's convs would beat."""
    return device.type == "cuda" and torch.backends.cudnn.allow_tf32


def matmul_peak(device: torch.device, sizes: tuple[int, ...] = PEAK_SIZES, repeats: int = 10) -> tuple[float, int]:
    """FLOP/s of the best n×n matmul (2n³ FLOPs) over `sizes`, `repeats` timed at each after a warm-up, at the
    convs' precision (`convs_use_tf32`); and the size that reached it."""
    best, at = 0.0, 0
    strict = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = convs_use_tf32(device)
    try:
        for n in sizes:
            a, b, out = (torch.randn(n, n, device=device) for _ in range(3))
            torch.mm(a, b, out=out)  # warm-up: kernel selection, page faults
            for _ in range(repeats):
                sync(device)
                t = time.perf_counter()
                torch.mm(a, b, out=out)
                sync(device)
                flops = 2 * n**3 / (time.perf_counter() - t)
                if flops > best:
                    best, at = flops, n
    finally:
        torch.backends.cuda.matmul.allow_tf32 = strict
    return best, at


def convs_alone(spec: NetworkSpec, batch: int, device: torch.device, repeats: int) -> tuple[float, float]:
    """The trainer's convolutions alone: seconds of one step's conv forwards and backwards (the best of
    `repeats` after a warm-up: a limit is what the machine can do) and their FLOPs. The network as the trainer builds it (channels_last, fp32);
    each conv runs on a random input of the shape it sees in training, with the gradients training computes:
    weight (and bias) always, input for every conv but the first."""
    torch.manual_seed(0)
    model = build(spec).to(device, memory_format=torch.channels_last).train()
    seen: list[tuple[nn.Conv2d, torch.Size, torch.Size]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape, o.shape)))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    x = torch.randn(batch, spec.in_channels, *spec.input_size, device=device)
    with torch.no_grad():
        model(x.contiguous(memory_format=torch.channels_last))
    for h in hooks:
        h.remove()
    work, flops = [], 0.0
    for i, (conv, in_shape, out_shape) in enumerate(seen):
        inp = torch.randn(in_shape, device=device).contiguous(memory_format=torch.channels_last)
        grad = torch.randn(out_shape, device=device).contiguous(memory_format=torch.channels_last)
        wrt = list(conv.parameters()) + ([inp.requires_grad_()] if i > 0 else [])
        work.append((conv, inp, grad, wrt))
        kh, kw = conv.kernel_size
        fwd = 2 * out_shape.numel() * (conv.in_channels // conv.groups) * kh * kw
        flops += fwd * (3 if i > 0 else 2)  # backward: the weight gradient, and the input's (as costly)
    times = []
    for r in range(repeats + 1):  # the first is a warm-up
        sync(device)
        t = time.perf_counter()
        for conv, inp, grad, wrt in work:
            torch.autograd.grad(conv(inp), wrt, grad)
        sync(device)
        if r:
            times.append(time.perf_counter() - t)
    return min(times), flops


def limits_beaten(fractions: dict[str, float]) -> str | None:
    """The line that stops the bench when a measured fraction of a limit is above 100 %, else None."""
    wrong = {what: f for what, f in fractions.items() if f > 1.0}
    if not wrong:
        return None
    return (
        "peak is wrong: "
        + "; ".join(f"{what} = {f:.0%}" for what, f in wrong.items())
        + " (above 100 %: a limit that is beaten is not a limit); stopping"
    )


def profile(data: Path, device: torch.device, batch: int, tmp: Path) -> None:
    """Self CPU time of the fp32 trainer's steps by kind of op (torch.profiler, 8 steps after 2 warm-up)."""
    ours(data, device, batch, 0, 2, tmp, "off", name="-profile-warm")
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:  # the epoch's end (a small evaluation, one
        ours(data, device, batch, 0, 8, tmp, "off", name="-profile")  # checkpoint) is in there too
    kinds = {
        "conv (fwd + bwd)": ("conv", "mkldnn_convolution"),
        "max-pool (fwd + bwd)": ("max_pool",),
        "avg-pool": ("avg_pool", "adaptive_avg"),
        "ReLU (fwd + bwd)": ("relu", "threshold", "clamp_min"),
        "concat / split": ("cat", "narrow", "slice", "split"),
        "linear": ("addmm", "mm", "linear"),
        "optimizer step": ("sgd", "_foreach", "adamw"),
        "BatchNorm": ("batch_norm",),
        "copies (memory format, casts)": ("copy_", "to_copy", "contiguous"),
        "elementwise add/mul (grad accumulation, loss)": ("add", "mul"),
    }
    totals = dict.fromkeys([*kinds, "other"], 0.0)
    others: dict[str, float] = {}
    for ev in prof.key_averages():
        kind = next((k for k, keys in kinds.items() if any(x in ev.key.lower() for x in keys)), "other")
        totals[kind] += ev.self_cpu_time_total
        if kind == "other":
            others[ev.key] = ev.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    print("profile (self CPU time of 8 fp32 training steps and their epoch end; batch preparation is in 'other'):")
    for kind, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:22s} {100 * t / whole:5.1f} %")
    top = sorted(others.items(), key=lambda kv: -kv[1])[:6]
    print("  largest in 'other': " + ", ".join(f"{k} {100 * t / whole:.1f} %" for k, t in top))


def main() -> None:
    p = argparse.ArgumentParser(description="seed 001's training loop vs gnet's trainer (images/s)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (--quick: 16)")
    p.add_argument("--warmup", type=int, default=None, help="default 3 (--quick: 1)")
    p.add_argument("--steps", type=int, default=None, help="default 10 (--quick: 3)")
    p.add_argument("--conv-repeats", type=int, default=None, help="timed passes over the convs alone (10; --quick: 3)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small setting for a busy CPU: batch 16, 1 warm-up + 3 timed steps, 3 passes over the convs, "
        "no telemetry pair (the matmul peak is measured in full)",
    )
    p.add_argument(
        "--ref-workers",
        type=int,
        default=0,
        help="DataLoader workers for the reference (d2l uses 4; 0 is kinder to a 2-core CPU)",
    )
    p.add_argument("--telemetry-batch", type=int, default=None, help="batch of the telemetry off/on pair (32)")
    p.add_argument("--telemetry-steps", type=int, default=None, help="timed steps of each run (default 2K + 2)")
    p.add_argument(
        "--telemetry-pairs", type=int, default=None, help="interleaved off/on pairs (off-on, on-off, …; 4; 0: none)"
    )
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's breakdown by kind of op")
    p.add_argument(
        "--compile",
        action="store_true",
        help="the default-settings run also uses torch.compile "
        "(compilation happens in the warm-up steps, which are not timed)",
    )
    a = p.parse_args()
    k = OPTIONS["telemetry_every"].default
    defaults = {"batch_size": 128, "warmup": 3, "steps": 10, "conv_repeats": 10, "telemetry_batch": 32}
    defaults["telemetry_pairs"] = 4
    if a.quick:
        defaults |= {"batch_size": 16, "warmup": 1, "steps": 3, "conv_repeats": 3, "telemetry_pairs": 0}
    for name, value in defaults.items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    device = torch.device(a.device)
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, batch {a.batch_size}, "
        f"{a.warmup} warm-up + {a.steps} timed steps, d2l GoogLeNet at 1×96×96"
    )
    spec = with_input(d2l_fashion96(), 1, (96, 96))  # the network the seed recipe trains on Fashion-MNIST
    fwd_flops = 2 * network_report(spec).cost.multiplications
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tel_steps = a.telemetry_steps or 2 * k + 2
        make_fashion_mnist(
            tmp_path / "data",
            max(a.batch_size * (a.warmup + a.steps), a.batch_size * 8, a.telemetry_batch * (a.warmup + tel_steps)),
            a.batch_size,
        )
        peak, peak_n = matmul_peak(device)
        sizes = ", ".join(f"{n}²" for n in PEAK_SIZES)
        precision = "TF32, as cuDNN's convs" if convs_use_tf32(device) else "fp32"
        print(
            f"{precision} matmul peak (best of 10 at each of {sizes}): {peak / 1e9:8.1f} GFLOP/s, reached at {peak_n}²"
        )
        ref = reference(tmp_path / "data", device, a.batch_size, a.warmup, a.steps, a.ref_workers)
        print(f"reference (per-sample Resize+ToTensor, {a.ref_workers} workers, fp32): {ref:8.1f} images/s")
        # The convs alone just before and just after the trainer's run, the best of both: a machine whose
        # speed drifts (a shared CPU) must not read as a trainer faster than its own convolutions.
        conv_s, conv_flops = convs_alone(spec, a.batch_size, device, a.conv_repeats)
        fp32 = median_ips(
            a.batch_size, ours(tmp_path / "data", device, a.batch_size, a.warmup, a.steps, tmp_path, "off")
        )
        conv_s = min(conv_s, convs_alone(spec, a.batch_size, device, a.conv_repeats)[0])
        print(
            f"its convolutions alone (fwd + bwd, channels_last, fp32, best of {a.conv_repeats} before and after "
            f"its run): {1e3 * conv_s:.1f} ms a step = {conv_flops / conv_s / 1e9:.1f} GFLOP/s, "
            f"{conv_flops / conv_s / peak:.0%} of the matmul peak"
        )
        print(f"gnet trainer, fp32 (--amp off):            {fp32:8.1f} images/s  ratio {fp32 / ref:.2f}×")
        achieved, step_s = fp32 * 3 * fwd_flops, a.batch_size / fp32
        print(
            f"  against the matmul peak: {achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.0%} "
            f"(3 × forward = 3 × {fwd_flops / 1e9:.3f} GFLOP per image; the peak would be "
            f"{peak / (3 * fwd_flops):.1f} images/s)"
        )
        print(
            f"  against its convolutions alone: a step takes {1e3 * step_s:.1f} ms = {step_s / conv_s:.2f} × the "
            f"convs' {1e3 * conv_s:.1f} ms ({conv_s / step_s:.0%} of the step); target ≤ 1.2 × "
            f"({'MET' if step_s <= 1.2 * conv_s else 'NOT MET'})"
        )
        wrong = limits_beaten(
            {
                "the trainer's FLOP/s / the matmul peak": achieved / peak,
                "the convs' FLOP/s / the matmul peak": conv_flops / conv_s / peak,
                "the convs' time / the trainer's step": conv_s / step_s,
            }
        )
        if wrong:
            print(wrong)
            sys.exit(1)
        # Interleaved off/on pairs (ABBA…): a drift of the machine's speed during the pair would otherwise read
        # as telemetry overhead; one pair of 42 steps varied by ±8 % on a quiet 2-core machine.
        seconds = {0: 0.0, k: 0.0}
        n_steps = {0: 0, k: 0}
        for r in range(a.telemetry_pairs):
            for every in (0, k) if r % 2 == 0 else (k, 0):
                s = ours(
                    tmp_path / "data", device, a.telemetry_batch, a.warmup, tel_steps, tmp_path, "off", every, f"-{r}"
                )
                seconds[every] += sum(s)
                n_steps[every] += len(s)
        if a.telemetry_pairs:
            ips_off, ips_on = (a.telemetry_batch * n_steps[e] / seconds[e] for e in (0, k))
            print(
                f"telemetry off / on every {k} steps (batch {a.telemetry_batch}, {a.telemetry_pairs} interleaved "
                f"pairs of {tel_steps} steps, all steps' time): {ips_off:.1f} / {ips_on:.1f} images/s  ratio "
                f"{ips_on / ips_off:.3f} (target ≥ 0.95)"
            )
        else:
            print("telemetry off / on: not measured (no interleaved pair asked for)")
        if a.profile:
            profile(tmp_path / "data", device, a.batch_size, tmp_path)
        auto = median_ips(
            a.batch_size,
            ours(tmp_path / "data", device, a.batch_size, a.warmup, a.steps, tmp_path, "auto", compile=a.compile),
        )
        how = "--amp auto --compile" if a.compile else "--amp auto"
        print(f"gnet trainer, default ({how}):{' ' * (18 - len(how))}{auto:8.1f} images/s  ratio {auto / ref:.2f}×")
    print(
        f"target ≥ 1.5× (aim 2×): {'MET' if auto / ref >= 1.5 else 'NOT MET'} with the default settings "
        f"(ratio {auto / ref:.2f}× against seed 001's loop)"
    )


if __name__ == "__main__":
    main()
