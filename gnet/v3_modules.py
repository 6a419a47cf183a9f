"""nn.Modules for Inception v3, built from `gnet.v3` specs with torchvision's module names.

Each conv is a `ConvBlock` with BatchNorm (torchvision's BasicConv2d: no conv bias, eps 1e-3, ReLU), set as
an attribute named as torchvision names it (`branch7x7_2`), so torchvision's Inception3 state_dict loads
into `InceptionV3(inception_v3_imagenet())` unchanged. Pools are functional, as in torchvision's forward.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from gnet.analysis import plan_report, steps_block_report
from gnet.blocks import ConvBlock
from gnet.network import init_weights, layer_module
from gnet.plan import AUX, AVGPOOL, BLOCK, CONV, Step
from gnet.spec import MAX_PARAMS, SpecError
from gnet.v3 import InceptionV3Spec, KindSpec, Layer, block_plan_steps, v3_plan


def imagenet_remap(x: torch.Tensor) -> torch.Tensor:
    """torchvision's transform_input: ImageNet-normalised input to the (x − 0.5) / 0.5 its ported weights expect."""
    x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    return torch.cat((x_ch0, x_ch1, x_ch2), 1)


def _layer(layer: Layer, c_in: int) -> nn.Module | partial:
    if layer.kind == CONV:
        return ConvBlock(c_in, layer.out_channels, layer.kernel, layer.stride, layer.padding, batch_norm=True)
    pool = F.avg_pool2d if layer.kind == AVGPOOL else F.max_pool2d
    return partial(pool, kernel_size=layer.kernel, stride=layer.stride, padding=layer.padding)


class InceptionV3Block(nn.Module):
    """A v3 block of any kind (A–E): its branches run on the same input and are concatenated on channels;
    E's split branches end in two layers that both read the branch's last output."""

    def __init__(self, in_channels: int, spec: KindSpec) -> None:
        super().__init__()
        steps, _ = block_plan_steps(spec, (in_channels, 9, 9))  # validates; the size does not change params
        params = steps_block_report(spec, (in_channels, 9, 9), steps, (1, 1, 1)).cost.params
        if params > MAX_PARAMS:
            raise SpecError(f"this block has {params:,} parameters; the cap is {MAX_PARAMS:,}")
        self.spec = spec
        self.in_channels = in_channels
        # (layers, halves) per branch, as callables; the convs are also attributes (registration order =
        # torchvision's: branch by branch, layer by layer).
        self._branches: list[tuple[list, list]] = []
        for branch in spec.layout(in_channels):
            c, layers, halves = in_channels, [], []
            for x in branch.layers:
                f = _layer(x, c)
                if isinstance(f, nn.Module):
                    self.add_module(x.name, f)
                layers.append(f)
                c = x.out_channels
            for x in branch.halves:
                f = _layer(x, c)
                self.add_module(x.name, f)
                halves.append(f)
            self._branches.append((layers, halves))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for layers, halves in self._branches:
            h = x
            for f in layers:
                h = f(h)
            outs.append(torch.cat([f(h) for f in halves], 1) if halves else h)
        return torch.cat(outs, 1)


class InceptionAux(nn.Module):
    """torchvision's InceptionAux: 5×5/3 avg-pool, conv0 1×1 → 128, conv1 5×5 → 768, global avg-pool, fc."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = ConvBlock(in_channels, 128, 1, batch_norm=True)
        self.conv1 = ConvBlock(128, 768, 5, batch_norm=True)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, kernel_size=5, stride=3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


class InceptionV3(nn.Module):
    """Stem → Mixed blocks → global avg-pool → dropout → fc, one module per top-level step of the spec's plan,
    with its names (AuxLogits registered after its block, as torchvision does). In training mode with the aux
    head, forward returns (logits, aux logits); otherwise the logits."""

    def __init__(self, spec: InceptionV3Spec) -> None:
        super().__init__()
        plan = v3_plan(spec)
        plan_report(plan)  # the caps, before anything is allocated
        self.spec = spec
        self.plan = plan
        self.transform_input = spec.transform_input
        for step in plan.top_level():
            self.add_module(step.path, _module(step))
        self.main_path: list[str] = plan.main_path()
        self.aux_after: dict[str, str] = plan.aux_after()
        self._main = [self.get_submodule(p) for p in self.main_path]
        self._aux = {
            i: self.get_submodule(self.aux_after[p]) for i, p in enumerate(self.main_path) if p in self.aux_after
        }

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        """What torchvision's Inception3 names this (gnet.net.Net.input calls it)."""
        return imagenet_remap(x) if self.transform_input else x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.transform_input:
            x = imagenet_remap(x)
        aux_out = []
        for i, m in enumerate(self._main):
            x = m(x)
            if self.training and i in self._aux:
                aux_out.append(self._aux[i](x))
        x = self.fc(torch.flatten(self.dropout(self.avgpool(x)), 1))
        return (x, *aux_out) if aux_out else x


def _module(step: Step) -> nn.Module:
    if step.kind == BLOCK:
        return InceptionV3Block(step.in_shape[0], step.spec)
    if step.kind == AUX:
        return InceptionAux(step.in_shape[0], step.out_shape[0])
    return layer_module(step)  # the stem's convs are BatchNorm convs (their steps say batch_norm=True)


def build_v3(spec: InceptionV3Spec) -> InceptionV3:
    """Validate, build and initialise (seed 001's Kaiming/Xavier initialisation)."""
    return init_weights(InceptionV3(spec))
