"""The records of a run's metrics.jsonl, typed once: gnet.train writes them, gnet.runs reads them back, the
Training page, the sweeps and the charts draw them. One JSON object per line, `kind` says which record it is.
Torch-free, so the charts and the page can name them without importing the trainer. (No postponed
annotations here: TypedDict reads NotRequired from the evaluated ones.)"""

from typing import Literal, NotRequired, TypedDict


class StepRecord(TypedDict):
    """The training steps since the previous record (every `log_every` steps and at an epoch's end)."""

    kind: Literal["step"]
    step: int  # the global step reached (1-based: the number of steps taken)
    epoch: float  # fractional: 1.5 is half way through the second epoch
    loss: float  # mean training loss of the main head over the window (all ranks)
    acc: float  # training accuracy over the window
    lr: float
    images_per_s: float  # training throughput of the window, evaluation excluded
    time: float  # Unix time
    gpu_mem_gb: NotRequired[float]  # peak allocated CUDA memory (CUDA only)


class EpochRecord(TypedDict):
    """An epoch's end: its training sums and the evaluation on the test split."""

    kind: Literal["epoch"]
    step: int
    epoch: int  # 1-based: the number of epochs finished
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    train_n: int
    test_n: int
    lr: float
    time: float
    images_per_s: float  # the epoch's training throughput, evaluation excluded
    elapsed_s: float  # training seconds of the run so far, evaluation excluded


MetricRecord = StepRecord | EpochRecord
