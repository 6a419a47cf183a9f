"""nn.Modules for Inception blocks, built from a validated `BlockSpec`.

Module names follow torchvision's `models/googlenet.py` (`branch1`..`branch4`,
each conv a `ConvBlock` with `.conv` and, in BatchNorm style, `.bn`), so
torchvision's GoogLeNet state_dict loads into the `googlenet-imagenet` preset.
"""

from __future__ import annotations

import torch
from torch import nn

from gnet.analysis import block_report
from gnet.plan import branch_layers
from gnet.spec import MAX_PARAMS, BlockSpec, SpecError

# ConvBlock and Inception are exported verbatim by gnet.codegen (with gnet.plan.branch_layers): they
# use only torch, nn and each other, so the exported file runs with torch alone.


class ConvBlock(nn.Module):
    """Conv → (BatchNorm) → ReLU. With BatchNorm the conv has no bias (torchvision's
    BasicConv2d, eps=1e-3); without, it has one (d2l's `nn.Conv2d` + `nn.ReLU`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=not batch_norm
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001) if batch_norm else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x)


class Inception(nn.Module):
    """Four parallel branches concatenated on the channel axis (see branch_layers). All convs are
    'same'-padded and the pool has stride 1, so H and W are unchanged."""

    def __init__(
        self,
        in_channels: int,
        b1: int,
        b2: tuple[int, int],
        b3: tuple[int, int],
        b4: int,
        reduce: bool = True,
        b3_kernel: int = 5,
        factorize: bool = False,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        branches = []
        for layers in branch_layers(in_channels, b1, b2, b3, b4, reduce, b3_kernel, factorize):
            mods = [
                nn.MaxPool2d(k, stride=1, padding=k // 2, ceil_mode=True)
                if kind == "maxpool"
                else ConvBlock(c_in, c_out, k, padding=k // 2, batch_norm=batch_norm)
                for kind, c_in, c_out, k in layers
            ]
            branches.append(mods[0] if len(mods) == 1 else nn.Sequential(*mods))  # torchvision's module names
        self.branch1, self.branch2, self.branch3, self.branch4 = branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionBlock(Inception):
    """An Inception block from a validated `BlockSpec`: the spec's numbers into `Inception`."""

    def __init__(self, in_channels: int, spec: BlockSpec) -> None:
        # Validate in_channels and the spec, and refuse a block too large to allocate,
        # before any weight exists (the report is analytic; the 1×1 size does not change params).
        params = block_report(spec, (in_channels, 1, 1)).cost.params
        if params > MAX_PARAMS:
            raise SpecError(f"this block has {params:,} parameters; the cap is {MAX_PARAMS:,}")
        super().__init__(
            in_channels,
            spec.b1,
            (spec.b2_reduce, spec.b2),
            (spec.b3_reduce, spec.b3),
            spec.b4,
            reduce=spec.reduce,
            b3_kernel=spec.b3_kernel,
            factorize=spec.factorize,
            batch_norm=spec.batch_norm,
        )
        self.spec = spec
        self.in_channels = in_channels


def branch_kernel_labels(block: nn.Module) -> dict[str, str]:
    """Kernel sizes read from a loaded module, e.g. {"b3": "1×1 → 3×3"}.

    Works for this project's InceptionBlock and torchvision's Inception alike:
    torchvision's pretrained "5×5" branch really is 3×3 (pytorch/vision#906),
    and a label must say what the weights do, not what the paper drew.
    """
    labels = {}
    for i, b in enumerate(BRANCH_ATTRS):
        parts = []
        for m in getattr(block, b).modules():
            if isinstance(m, nn.MaxPool2d):
                k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
                parts.append(f"{k}×{k} max-pool")
            elif isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                parts.append(f"{kh}×{kw}")
        labels[f"b{i + 1}"] = " → ".join(parts)
    return labels


BRANCH_ATTRS = ("branch1", "branch2", "branch3", "branch4")
