"""GoogLeNet as an nn.Module built from a validated `NetworkSpec`, one module per step of its layer plan."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnet.analysis import plan_report
from gnet.blocks import ConvBlock, InceptionBlock
from gnet.plan import ADAPTIVE_AVGPOOL, AUX, BLOCK, CONV, DROPOUT, LINEAR, MAXPOOL, Plan, Step, layer_plan
from gnet.spec import NetworkSpec

# AuxClassifier is exported verbatim by gnet.codegen: torch, F, nn and ConvBlock only.


class AuxClassifier(nn.Module):
    """The paper's auxiliary head: 5×5/3 avg-pool, 1×1 conv 128, FC 1024, dropout 0.7, FC classes.

    pool="torchvision" uses an adaptive 4×4 average pool instead (torchvision's
    InceptionAux; identical output shape at the paper's 14×14).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pooled_hw: tuple[int, int],
        pool: str,
        batch_norm: bool,
        dropout: float,
    ) -> None:
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
    """Stem → stages of Inception blocks (max-pool between stages) → avg-pool → dropout → FC,
    one module per top-level step of the spec's layer plan, in its order and with its names.

    In training mode with aux heads, forward returns (logits, aux1, aux2);
    otherwise just the logits.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        plan = layer_plan(spec)
        plan_report(plan)  # the caps: nothing is allocated for a network too large
        self.spec = spec
        self.plan = plan
        for step in plan.top_level():
            self.add_module(step.path, _module(plan, step))
        self.main_path: list[str] = plan.main_path()  # forward order up to the head
        self.aux_after: dict[str, str] = plan.aux_after()

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        aux_out = []
        for name in self.main_path:
            x = getattr(self, name)(x)
            if self.training and name in self.aux_after:
                aux_out.append(getattr(self, self.aux_after[name])(x))
        x = torch.flatten(self.avgpool(x), 1)
        x = self.fc(self.dropout(x))
        return (x, *aux_out) if aux_out else x


def layer_module(step: Step) -> nn.Module:
    """The module for a top-level step that is a plain layer (a stem conv or max-pool, the head's pool, dropout
    and fc), built alike for GoogLeNet and Inception v3; blocks and aux heads are each network's own."""
    if step.kind == CONV:
        c = step.spec
        return ConvBlock(step.in_shape[0], c.out_channels, c.kernel, c.stride, c.padding, batch_norm=step.batch_norm)
    if step.kind == MAXPOOL:
        p = step.spec
        return nn.MaxPool2d(p.kernel, p.stride, padding=p.padding, ceil_mode=p.ceil_mode)
    if step.kind == ADAPTIVE_AVGPOOL:
        return nn.AdaptiveAvgPool2d(step.spec)
    if step.kind == DROPOUT:
        return nn.Dropout(step.spec)
    if step.kind == LINEAR:
        return nn.Linear(step.in_shape[0], step.spec)
    raise AssertionError(f"no module for a top-level {step.kind} step")


def _module(plan: Plan, step: Step) -> nn.Module:
    """The module for one top-level step."""
    if step.kind == BLOCK:
        return InceptionBlock(step.in_shape[0], step.spec)
    if step.kind == AUX:
        pool, conv, fc1, _, dropout = plan.children(step.path)
        return AuxClassifier(
            step.in_shape[0],
            step.out_shape[0],
            pool.out_shape[1:],
            "torchvision" if pool.kind == ADAPTIVE_AVGPOOL else "paper",
            conv.batch_norm,
            dropout.spec,
        )
    return layer_module(step)


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


def torchinfo_summary(spec: NetworkSpec, depth: int = 3, model: nn.Module | None = None):
    """torchinfo's summary of the built module at the spec's input size (batch 1, eval mode)."""
    import torchinfo  # only this function needs it; `import gnet.network` stays light

    model = model if model is not None else GoogLeNet(spec)
    return torchinfo.summary(
        model,
        input_size=(1, spec.in_channels, *spec.input_size),
        depth=depth,
        verbose=0,
        mode="eval",
        device="cpu",
        col_names=("output_size", "num_params", "mult_adds"),
        row_settings=("var_names",),
    )
