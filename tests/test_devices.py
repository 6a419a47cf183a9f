import pytest
import torch

from gnet.devices import autocast_dtype, cpu_has_amx_bf16, cpu_streams, describe, inference_threads, pick_device


def _cpuinfo_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


def test_auto_picks_cpu_without_a_gpu_and_refuses_a_missing_cuda():
    dev = pick_device("auto")
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    # The oracle is torch's own availability, not the function's answer.
    assert dev == torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if not torch.cuda.is_available():
        try:
            pick_device("cuda")
        except ValueError as e:
            assert "no CUDA GPU" in str(e)
        else:
            raise AssertionError("cuda without a GPU must be refused")
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "off") is None and autocast_dtype(cpu, "bf16") is torch.bfloat16
    amx = _cpuinfo_flags() and "amx_bf16" in _cpuinfo_flags()  # the kernel's own list, not torch's
    if _cpuinfo_flags():
        assert cpu_has_amx_bf16() is amx
    assert autocast_dtype(cpu) is (torch.bfloat16 if cpu_has_amx_bf16() else None)  # AVX512-BF16 alone: fp32
    assert describe(torch.device("cpu")).startswith("cpu (")


def test_bad_device_name_is_refused():
    try:
        pick_device("tpu")
    except ValueError as e:
        assert "auto, cuda, mps or cpu" in str(e)
    else:
        raise AssertionError


def test_inference_threads_leave_cores_for_other_work():
    assert [inference_threads(n) for n in (1, 2, 3, 4, 8, 16, 64)] == [1, 1, 1, 2, 4, 4, 4]


def test_cpu_streams_fill_the_cores_in_teams_of_inference_threads():
    cpu = torch.device("cpu")
    assert [cpu_streams(cpu, n) for n in (1, 2, 3, 4, 8, 16, 64)] == [1, 2, 3, 2, 2, 4, 16]
    assert cpu_streams(torch.device("cuda"), 64) == 1  # one GPU stream: its batch is already parallel


@pytest.mark.parametrize(
    "cuda,mps,expected", [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert pick_device("auto") == torch.device(expected)
    assert pick_device("cpu") == torch.device("cpu")
