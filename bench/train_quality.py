"""Quality benchmark: the mini preset on the offline synthetic dataset.

Target: ≥ 95 % test accuracy in ≤ 3 minutes on a 2-core CPU.

    python bench/train_quality.py                  # defaults below
    python bench/train_quality.py --epochs 8 --image-size 32

Fashion-MNIST on a GPU (can't run offline here; the data downloads on first use into GNET_DATA_DIR):

    # seed 001's recipe exactly (d2l GoogLeNet at 96×96, SGD lr 0.005, batch 128, 30 epochs) → ≥ 90 % (seed: 90.21 %)
    python -m gnet train --preset d2l-fashion96 --dataset fashion-mnist --recipe seed --device cuda --run-dir runs/seed001
    # the improved recipe (BatchNorm, Nesterov SGD, one-cycle lr 0.05, label smoothing, flips) → target ≥ 93.7 % in 10 epochs
    python -m gnet train --preset d2l-fashion96 --dataset fashion-mnist --recipe improved --epochs 10 --device cuda --run-dir runs/improved10
    # the same on several GPUs
    torchrun --nproc_per_node=4 -m gnet train --preset d2l-fashion96 --dataset fashion-mnist --recipe improved --epochs 10 --run-dir runs/improved10-ddp
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from gnet import runs
from gnet.spec import network_preset
from gnet.train import TrainConfig, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--train", type=int, default=10_000)
    p.add_argument("--test", type=int, default=2_000)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    a = p.parse_args()
    cfg = TrainConfig.from_recipe(
        "improved",
        network_preset("mini"),
        epochs=a.epochs,
        image_size=a.image_size,
        synthetic_train=a.train,
        synthetic_test=a.test,
        lr=a.lr,
        batch_size=a.batch_size,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = runs.create(Path(tmp) / "quality", {"train": cfg.to_dict()})
        t0 = time.perf_counter()
        state = train(cfg, run)
        wall = time.perf_counter() - t0
        for rec in runs.read_metrics(run, "epoch"):
            print(
                f"epoch {rec['epoch']:>2}: train acc {rec['train_acc']:.2%}  test acc {rec['test_acc']:.2%}  "
                f"({rec['elapsed_s']:.0f} s training)"
            )
        final = runs.read_metrics(run, "epoch")[-1]["test_acc"]
    print(
        f"state {state}; final test accuracy {final:.2%} in {wall:.0f} s wall (data generation included); "
        f"target ≥ 95 % in ≤ 180 s: {'MET' if final >= 0.95 and wall <= 180 else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
