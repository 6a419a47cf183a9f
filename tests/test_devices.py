import torch

from gnet.devices import autocast_dtype, describe, inference_threads, pick_device


def test_auto_picks_cpu_without_a_gpu_and_refuses_a_missing_cuda():
    dev = pick_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)
    if not torch.cuda.is_available():
        try:
            pick_device("cuda")
        except ValueError as e:
            assert "no CUDA GPU" in str(e)
        else:
            raise AssertionError("cuda without a GPU must be refused")
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "off") is None and autocast_dtype(cpu, "bf16") is torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert autocast_dtype(cpu) is (torch.bfloat16 if native else None)
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
