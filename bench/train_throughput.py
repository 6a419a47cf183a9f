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
    python bench/train_throughput.py --device cuda --steps 50 --warmup 10   # GPU: CUDA events time each step

Prints images/s (median over the timed steps) for each and the ratio ours / reference.
Target on the 2-core CPU: ≥ 1.5× (aim 2×).

Also, from the same run:
  * the machine's fp32 matmul peak (best of a few 2048² matmuls) and the trainer's achieved fp32 FLOP/s as a
    fraction of it. FLOPs of a training step = 3 × forward (forward, and a backward of about twice the forward),
    forward FLOPs = 2 × the network's multiplications (gnet.analysis, the seeds' hand count: convs and linears,
    no bias, BatchNorm, pools or ReLUs). Target ≥ 80 % of the peak on CPU.
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
from gnet.spec import d2l_fashion96, with_input
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


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """fp32 FLOP/s of the best of a few n×n matmuls (2n³ FLOPs each) on this device, now."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


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
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument(
        "--ref-workers",
        type=int,
        default=0,
        help="DataLoader workers for the reference (d2l uses 4; 0 is kinder to a 2-core CPU)",
    )
    p.add_argument("--telemetry-batch", type=int, default=32, help="batch of the telemetry off/on pair")
    p.add_argument("--telemetry-steps", type=int, default=None, help="timed steps of each run (default 2K + 2)")
    p.add_argument("--telemetry-pairs", type=int, default=4, help="interleaved off/on pairs (off-on, on-off, …)")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's breakdown by kind of op")
    p.add_argument(
        "--compile",
        action="store_true",
        help="the default-settings run also uses torch.compile "
        "(compilation happens in the warm-up steps, which are not timed)",
    )
    a = p.parse_args()
    device = torch.device(a.device)
    k = OPTIONS["telemetry_every"].default
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, batch {a.batch_size}, "
        f"{a.warmup} warm-up + {a.steps} timed steps, d2l GoogLeNet at 1×96×96"
    )
    fwd_flops = 2 * network_report(with_input(d2l_fashion96(), 1, (96, 96))).cost.multiplications
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tel_steps = a.telemetry_steps or 2 * k + 2
        make_fashion_mnist(
            tmp_path / "data",
            max(a.batch_size * (a.warmup + a.steps), a.batch_size * 8, a.telemetry_batch * (a.warmup + tel_steps)),
            a.batch_size,
        )
        peak = matmul_peak(device)
        print(f"fp32 matmul peak (2048², best of 5):        {peak / 1e9:8.1f} GFLOP/s")
        ref = reference(tmp_path / "data", device, a.batch_size, a.warmup, a.steps, a.ref_workers)
        print(f"reference (per-sample Resize+ToTensor, {a.ref_workers} workers, fp32): {ref:8.1f} images/s")
        fp32 = median_ips(
            a.batch_size, ours(tmp_path / "data", device, a.batch_size, a.warmup, a.steps, tmp_path, "off")
        )
        print(f"gnet trainer, fp32 (--amp off):            {fp32:8.1f} images/s  ratio {fp32 / ref:.2f}×")
        achieved = fp32 * 3 * fwd_flops
        print(
            f"  achieved {achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.0%} of the fp32 matmul peak "
            f"(3 × forward = 3 × {fwd_flops / 1e9:.3f} GFLOP per image; peak would be "
            f"{peak / (3 * fwd_flops):.1f} images/s); target ≥ 80 %"
        )
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
        ips_off, ips_on = (a.telemetry_batch * n_steps[e] / seconds[e] for e in (0, k))
        print(
            f"telemetry off / on every {k} steps (batch {a.telemetry_batch}, {a.telemetry_pairs} interleaved pairs "
            f"of {tel_steps} steps, all steps' time): {ips_off:.1f} / {ips_on:.1f} images/s  ratio "
            f"{ips_on / ips_off:.3f} (target ≥ 0.95)"
        )
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
