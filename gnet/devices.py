"""Which device to run on: CUDA when present, then Apple's MPS, then the CPU."""

from __future__ import annotations

import os

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """'auto' picks cuda > mps > cpu; 'cuda'/'mps'/'cpu' insist (ValueError if absent)."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no CUDA GPU is available; use --device auto or cpu")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("MPS was asked for but is not available; use --device auto or cpu")
    if preference not in ("cuda", "mps", "cpu"):
        raise ValueError(f"device must be auto, cuda, mps or cpu, got {preference!r}")
    return torch.device(preference)


def autocast_dtype(device: torch.device, mode: str = "auto") -> torch.dtype | None:
    """The autocast dtype for training: mode "off" → None (fp32), "bf16" → bf16,
    "auto" → bf16 where it is faster: CUDA GPUs that support it, and CPUs with AMX-BF16 tiles. A CPU with
    only AVX512-BF16 trained slower in bf16 than in fp32 (75.7 against 98.7 images/s on a 2-core Xeon,
    bench/train_throughput.py), so "auto" stays fp32 there. Weights, optimiser and loss stay fp32."""
    if mode == "off" or device.type not in ("cuda", "cpu"):
        return None
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and cpu_has_amx_bf16() else None


def cpu_has_amx_bf16() -> bool:
    try:  # torch's cpuinfo flags: a private API; if it moves, "auto" keeps fp32, which is always correct
        return bool(torch._C._cpu._get_cpu_capability().get("amx_bf16", False))
    except (AttributeError, RuntimeError):
        return False


def cpu_streams(device: torch.device, cpu_count: int | None = None) -> int:
    """Independent streams one large CPU request may split its batch into: each runs in its own thread on
    `inference_threads()` cores, so together they fill the machine when it is idle, and when a core is busy
    elsewhere a stream only runs slower (no OpenMP team waits on it). 1 off the CPU."""
    if device.type != "cpu":
        return 1
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // inference_threads(cores))


def describe(device: torch.device) -> str:
    """A short label for the UI, e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'' if n == 1 else 's'})"
    return device.type


def inference_threads(cpu_count: int | None = None) -> int:
    """Intra-op threads for the app's CPU inference: half the cores, 1 to 4.

    The app serves many sessions, each running small batch-1 forwards, often beside
    a training process. With every core in one OpenMP team, a forward stalls whenever
    one core is busy elsewhere (measured on 2 cores with a training run beside it:
    2.5 s with 2 threads, 70 ms with 1).
    """
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, min(4, cores // 2))
