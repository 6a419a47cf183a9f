"""GoogLeNet as an nn.Module built from a validated `NetworkSpec`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnet.blocks import ConvBlock, InceptionBlock
from gnet.spec import ConvSpec, NetworkSpec, PoolSpec


class AuxClassifier(nn.Module):
    """The paper's auxiliary head: 5×5/3 avg-pool, 1×1 conv 128, FC 1024, dropout 0.7, FC classes.

    pool="torchvision" uses an adaptive 4×4 average pool instead (torchvision's
    InceptionAux; identical output shape at the paper's 14×14).
    """

    def __init__(self, in_channels: int, num_classes: int, pooled_hw: tuple[int, int], pool: str,
                 batch_norm: bool, dropout: float) -> None:
        super().__init__()
        self.pool: nn.Module = nn.AdaptiveAvgPool2d((4, 4)) if pool == "torchvision" else nn.AvgPool2d(5, stride=3)
        self.conv = ConvBlock(in_channels, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * pooled_hw[0] * pooled_hw[1], 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(nn.Module):
    """Stem → stages of Inception blocks (max-pool between stages) → avg-pool → dropout → FC.

    In training mode with aux heads, forward returns (logits, aux1, aux2);
    otherwise just the logits.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        from gnet.analysis import network_report  # validated shapes, no tensors

        report = network_report(spec)  # validates the spec: nothing is allocated for an invalid one
        self.spec = spec
        self.stem_names: list[str] = []
        channels, convs, pools = spec.in_channels, 0, 0
        for layer in spec.stem:
            if isinstance(layer, ConvSpec):
                convs += 1
                name = f"conv{convs}"
                mod: nn.Module = ConvBlock(channels, layer.out_channels, layer.kernel, layer.stride,
                                           layer.padding, batch_norm=spec.batch_norm)
                channels = layer.out_channels
            else:
                pools += 1
                name = f"maxpool{pools}"
                mod = _pool(layer)
            self.add_module(name, mod)
            self.stem_names.append(name)
        # Stages: blocks, then the pool between stages, named as torchvision names them.
        self.body_names: list[str] = []
        names = iter(spec.block_names())
        for s, stage in enumerate(spec.stages):
            for block in stage:
                name = f"inception{next(names)}"
                self.add_module(name, InceptionBlock(channels, block))
                channels = block.out_channels
                self.body_names.append(name)
            if s < len(spec.stage_pools):
                pools += 1
                name = f"maxpool{pools}"
                self.add_module(name, _pool(spec.stage_pools[s]))
                self.body_names.append(name)
        self.aux_after: dict[str, str] = {}
        for i, block_name in enumerate(spec.aux_blocks()):
            row = report.row(f"inception{block_name}")
            aux_pooled = report.row(f"aux{i + 1}.pool").output_shape[1:]
            self.add_module(f"aux{i + 1}", AuxClassifier(row.output_shape[0], spec.num_classes, aux_pooled,
                                                         spec.aux_pool, spec.batch_norm, spec.aux_dropout))
            self.aux_after[f"inception{block_name}"] = f"aux{i + 1}"
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(spec.dropout)
        self.fc = nn.Linear(channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        aux_out = []
        for name in self.stem_names:
            x = getattr(self, name)(x)
        for name in self.body_names:
            x = getattr(self, name)(x)
            if self.training and name in self.aux_after:
                aux_out.append(getattr(self, self.aux_after[name])(x))
        x = torch.flatten(self.avgpool(x), 1)
        x = self.fc(self.dropout(x))
        return (x, *aux_out) if aux_out else x


def _pool(p: PoolSpec) -> nn.MaxPool2d:
    return nn.MaxPool2d(p.kernel, p.stride, padding=p.padding, ceil_mode=p.ceil_mode)


def init_weights(model: nn.Module) -> nn.Module:
    """Seed 001's initialisation: Kaiming-normal convs (fan_in, ReLU), Xavier-uniform
    linear layers, zero biases; BatchNorm keeps its defaults (weight 1, bias 0)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def build(spec: NetworkSpec) -> GoogLeNet:
    """Validate, build and initialise a network."""
    return init_weights(GoogLeNet(spec))
