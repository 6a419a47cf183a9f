"""Net: what every model source returns, and the only code that walks a model at run time.

A `Net` holds the module (eval mode, no gradients, shared by every session: never mutated per request),
its layer plan, its preprocessing and a content key computed once from the weights, the spec and the
preprocessing. Views (feature maps, Explain, feature visualisation, anatomy) call its walk:

    h = net.block_input("inception3a", x)        # the input image through the stem, transform_input once
    parts = net.branch_outputs("inception3a", h)  # {"b1": ..., "b4": ...} in concatenation order
    logits = net.head("inception3a", torch.cat(list(parts.values()), 1))

Everything runs module by module from the plan (no forward hooks), so a request leaves no state on the
shared module, and any intermediate tensor can be replaced (ablations) or differentiated (Grad-CAM).
torchvision's GoogLeNet and this project's `gnet.network.GoogLeNet` share module names, so one walk
serves both.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property

import torch
import torch.nn.functional as F
from torch import nn

from gnet.blocks import branch_kernel_labels
from gnet.images import Preprocess
from gnet.plan import AVGPOOL, CONV, MAXPOOL, Plan, Step, layer_plan
from gnet.spec import BlockSpec, NetworkSpec, googlenet_imagenet
from gnet.v3 import inception_v3_imagenet, v3_plan


class NetError(ValueError):
    """A request the network can't answer: a module path it does not have."""


@cache
def torchvision_plan() -> Plan:
    """torchvision's GoogLeNet has no list of its layers: it is the plan of the preset built to match it
    (its state_dict loads into `gnet.network.GoogLeNet(googlenet_imagenet())`)."""
    return layer_plan(googlenet_imagenet())


@cache
def torchvision_v3_plan(aux: bool, num_classes: int, transform_input: bool) -> Plan:
    """torchvision's Inception3 as the plan of the preset built to match it (same module names)."""
    spec = inception_v3_imagenet(aux)
    return v3_plan(dataclasses.replace(spec, num_classes=num_classes, transform_input=transform_input))


def plan_of(module: nn.Module) -> Plan:
    """The layer plan of a gnet GoogLeNet or Inception v3, or of the preset that matches torchvision's."""
    from torchvision.models import GoogLeNet as TorchvisionGoogLeNet
    from torchvision.models import Inception3

    plan = getattr(module, "plan", None)
    if isinstance(plan, Plan):
        return plan
    if isinstance(module, TorchvisionGoogLeNet):
        return torchvision_plan()
    if isinstance(module, Inception3):
        return torchvision_v3_plan(module.AuxLogits is not None, module.fc.out_features, bool(module.transform_input))
    raise NetError(f"no layer plan for a {type(module).__name__}; the views need a GoogLeNet or an Inception v3")


class PlanBranch(nn.Module):
    """A branch that is no module of its own (torchvision's Inception v3 runs its convs in the block's forward):
    its plan steps run in turn on the shared modules, functional pools as torchvision calls them, and two
    halves (Inception v3's E) side by side, concatenated. Made per request; holds no weights of its own."""

    def __init__(self, module: nn.Module, steps: list[Step]) -> None:
        super().__init__()
        self._root = [module]  # a list: not registered, so this wrapper never owns (or moves) the network
        self._steps = steps

    def _layer(self, step: Step, h: torch.Tensor) -> torch.Tensor:
        if step.kind == CONV:
            return self._root[0].get_submodule(step.path)(h)
        p = step.spec
        if step.kind == AVGPOOL:
            return F.avg_pool2d(h, p.kernel, p.stride, p.padding)
        return F.max_pool2d(h, p.kernel, p.stride, p.padding, ceil_mode=p.ceil_mode)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        halves = []
        for step in self._steps:
            if step.half:
                halves.append(self._layer(step, h))
            else:
                h = self._layer(step, h)
        return torch.cat(halves, 1) if halves else h


def weights_digest(module: nn.Module) -> str:
    """A hash of every parameter and buffer (names, shapes, dtypes, values): which weights these are."""
    h = hashlib.blake2b(digest_size=12)
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


def content_key(module: nn.Module, spec: NetworkSpec, preprocess: Preprocess) -> str:
    """Weights identity + spec + preprocessing (+ torchvision's input remapping, which no state_dict holds):
    equal keys give equal results on equal inputs, whichever file or process the weights came from."""
    remap = f"{type(module).__name__}:transform_input={bool(getattr(module, 'transform_input', False))}"
    h = hashlib.blake2b(digest_size=12)
    for part in (weights_digest(module), spec.to_json(), repr(preprocess), remap):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Net:
    """A network ready for inference. Shared by all sessions: read it, never change it."""

    module: nn.Module  # eval mode, requires_grad off, on `device`
    plan: Plan
    preprocess: Preprocess
    label: str = ""  # what the UI says this network is
    trained: bool = True
    classes: tuple[str, ...] = ()
    note: str = ""  # e.g. how torchvision's weights expect their input
    source: object = None  # the gnet.pretrained.ModelSource it was loaded from, if any
    _main: tuple[str, ...] = field(init=False, repr=False)
    _blocks: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        main = tuple(p for p in self.plan.main_path() if getattr(self.module, p, None) is not None)
        object.__setattr__(self, "_main", main)
        object.__setattr__(self, "_blocks", tuple(b for b in self.plan.blocks() if b in main))

    @cached_property
    def content(self) -> str:
        """content_key(...): the same for the same weights, spec and preprocessing on any device or process
        (the feature-visualisation cache on disk is keyed by it). Computed once per Net: hashing the weights
        takes tens of milliseconds."""
        return content_key(self.module, self.plan.spec, self.preprocess)

    @property
    def key(self) -> str:
        """What in-process caches of results computed on this Net are keyed by: content and device."""
        return f"{self.content}@{self.device}"

    @staticmethod
    def of(
        module: nn.Module,
        preprocess: Preprocess | None = None,
        *,
        label: str = "",
        trained: bool = True,
        classes: Iterable[str] = (),
        note: str = "",
        source: object = None,
        share: bool = True,
    ) -> Net:
        """Wrap a module with its plan; `share` first puts it into the shared inference state (eval mode,
        no gradients), as every model source does. A bare module wrapped on the fly (`as_net`) is left as it is."""
        plan = plan_of(module)
        if share:
            module.eval().requires_grad_(False)
        c, h, w = plan.input_shape
        pre = preprocess or Preprocess(max(h, w), (h, w), (0.5,) * c, (0.5,) * c, c)
        return Net(module, plan, pre, label, trained, tuple(classes), note, source)

    # -- what it has ----------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return _device_of(self.module)

    @property
    def spec(self) -> NetworkSpec:
        return self.plan.spec

    def main_path(self) -> list[str]:
        """Top-level modules from the input to the last block, in forward order (no head, no aux)."""
        return list(self._main)

    def blocks(self) -> list[str]:
        """The Inception blocks in network order, e.g. ["inception3a", ..., "inception5b"]."""
        return list(self._blocks)

    def branch_paths(self, block: str) -> dict[str, str]:
        """{"b1": "inception3a.branch1", ...}: each branch's module, in concatenation order."""
        self._check_block(block)
        return self.plan.branch_paths(block)

    def branch_labels(self, block: str) -> dict[str, str]:
        """Each branch's real kernel sizes, e.g. {"b3": "1×1 → 3×3"}: read from a GoogLeNet's loaded block
        (torchvision's "5×5" branch is 3×3, pytorch/vision#906), or from an Inception v3 block's spec (the plan's,
        which is torchvision's layout)."""
        self._check_block(block)
        spec = self.plan.step(block).spec
        if isinstance(spec, BlockSpec):
            return branch_kernel_labels(self.module.get_submodule(block))
        return spec.branch_labels()

    def branch_module(self, block: str, branch: str) -> nn.Module:
        """The module that computes one branch: its own (GoogLeNet's branch2), or a PlanBranch where the
        branch is several modules (Inception v3's branch7x7dbl) or starts with a functional pool."""
        paths = self.branch_paths(block)
        if branch not in paths:
            raise NetError(f"no branch {branch!r} in {block}; choose one of {', '.join(paths)}")
        step, layers = self.plan.step(paths[branch]), self.plan.branch_layers(block, branch)
        if step.virtual or (len(layers) > 1 and step.kind in (CONV, MAXPOOL, AVGPOOL)):
            return PlanBranch(self.module, layers)
        return self.module.get_submodule(paths[branch])

    def submodule(self, path: str) -> nn.Module:
        try:
            return self.module.get_submodule(path)
        except AttributeError:
            raise NetError(f"no module {path!r} in this network") from None

    def _check_block(self, block: str) -> None:
        if block not in self._blocks:
            raise NetError(f"no block {block!r}; choose one of {', '.join(self.blocks())}")

    def _index(self, path: str) -> int:
        try:
            return self._main.index(path)
        except ValueError:
            raise NetError(f"no layer {path!r} on the main path; choose one of {', '.join(self._main)}") from None

    # -- the walk ---------------------------------------------------------------------------------

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of preprocessed images (N, C, H, W) on the device, as the first layer reads it."""
        h = x.to(self.device, non_blocking=True)
        if getattr(self.module, "transform_input", False):
            h = self.module._transform_input(h)  # torchvision's ported weights remap the normalised input
        return h

    def run(self, h: torch.Tensor, *, after: str | None = None, upto: str | None = None) -> torch.Tensor:
        """Run the main path's modules after `after` (None: from the first) up to and including `upto`
        (None: to the last) on `h`, the output of `after` (or the `input`)."""
        start = 0 if after is None else self._index(after) + 1
        stop = len(self._main) if upto is None else self._index(upto) + 1
        for name in self._main[start:stop]:
            h = getattr(self.module, name)(h)
        return h

    def run_to(self, path: str, x: torch.Tensor) -> torch.Tensor:
        """The output of the main-path module `path` for images x."""
        return self.run(self.input(x), upto=path)

    def before(self, path: str) -> str | None:
        """The main-path module whose output `path` reads (None for the first)."""
        i = self._index(path)
        return self._main[i - 1] if i else None

    def block_input(self, block: str, x: torch.Tensor) -> torch.Tensor:
        """What `block` reads for images x (the output of the module before it)."""
        before = self.before(block)
        return self.input(x) if before is None else self.run(self.input(x), upto=before)

    def forward_blocks(
        self, h: torch.Tensor, *, after: str | None = None
    ) -> tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
        """Run the main path after `after` (h is its output) to its end, keeping every block's branch
        outputs: (the last output, {block: {branch: output}}). Explain differentiates with respect to them."""
        parts: dict[str, dict[str, torch.Tensor]] = {}
        start = 0 if after is None else self._index(after) + 1
        for name in self._main[start:]:
            if name in self._blocks:
                parts[name] = self.branch_outputs(name, h)
                h = torch.cat(list(parts[name].values()), dim=1)
            else:
                h = getattr(self.module, name)(h)
        return h, parts

    def branch_outputs(self, block: str, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each branch's output for the block input h, in concatenation order."""
        return {b: self.branch_module(block, b)(h) for b in self.branch_paths(block)}

    def head(self, from_path: str | None, t: torch.Tensor) -> torch.Tensor:
        """Logits from `t`, the output of the main-path module `from_path`: the rest of the main path,
        then global average pool, dropout (identity in eval mode) and the classifier."""
        h = self.run(t, after=from_path) if from_path != self._main[-1] else t
        m = self.module
        return m.fc(m.dropout(torch.flatten(m.avgpool(h), 1)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(None, self.input(x))


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def as_net(obj: Net | nn.Module) -> Net:
    """A Net as it is, or a bare module (a test's or a script's) wrapped with its plan."""
    return obj if isinstance(obj, Net) else Net.of(obj, share=False)
