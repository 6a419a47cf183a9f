"""Specs: plain dataclasses that describe Inception blocks and GoogLeNets.

A spec is data, not a module: it can be validated, analysed, serialised to
JSON and put in a URL without allocating a single tensor. `gnet.blocks` and
`gnet.network` turn a *validated* spec into an `nn.Module`.

Shapes are (C, H, W) throughout. A `BlockSpec` holds a block's own choices
(branch channels and variant); the block's input shape is passed beside it,
so inside a network each block's in_channels is derived from the block
before it and never typed twice.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Caps: large enough for any real GoogLeNet experiment, small enough that a
# typo ("40960") is refused before anything is allocated.
MAX_CHANNELS = 8192
MAX_SPATIAL = 4096
MAX_CLASSES = 100_000
MAX_BLOCKS_PER_STAGE = 16
MAX_STAGES = 6
MAX_PARAMS = 500_000_000  # a network larger than this is refused before it is built
MAX_ACTIVATION_BYTES = 4 * 2**30  # fp32 activations of one image through the network

BRANCHES = ("b1", "b2", "b3", "b4")
BLOCK_NAMES = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")


class SpecError(ValueError):
    """A spec (or a user's input that became one) is invalid.

    The message names the field and the allowed range, in words a user understands.
    """


def _show(value: Any) -> str:
    """A short rendering of a user's value for a message (a 5,000-digit number or a
    long string must not become the message, nor fail to format)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) < 10**30 else ("-" if value < 0 else "") + "a number with over 30 digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_network_fields(name: Any, in_channels: Any, input_size: Any, num_classes: Any) -> None:
    """The fields every network spec has, GoogLeNet's and Inception v3's: name, input channels and size, classes."""
    if not isinstance(name, str) or not name.strip() or len(name) > 80:
        raise SpecError("name must be 1 to 80 characters")
    _check_int("in_channels", in_channels, 1, MAX_CHANNELS)
    if not isinstance(input_size, (tuple, list)) or len(input_size) != 2:
        raise SpecError(f"input_size must be [height, width], got {_show(input_size)}")
    _check_int("input height", input_size[0], 1, MAX_SPATIAL)
    _check_int("input width", input_size[1], 1, MAX_SPATIAL)
    _check_int("num_classes", num_classes, 1, MAX_CLASSES)


def check_blocks(blocks: Iterable[tuple[str, Any]], cls: type, what: str) -> None:
    """Each (name, block) of a network is a `cls` (`what` in the message) and valid; its errors name the block."""
    for name, b in blocks:
        if not isinstance(b, cls):
            raise SpecError(f"block {name} must be {what}")
        try:
            b.validate()
        except SpecError as e:
            raise SpecError(f"block {name}: {e}") from None


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be a whole number from {lo} to {hi:,}, got {_show(value)}")
    if not lo <= value <= hi:
        raise SpecError(f"{name} must be from {lo} to {hi:,}, got {_show(value)}")
    return value


def _whole(value: Any) -> Any:
    """64.0 (JSON, a float number_input) and numpy integers (st.data_editor) become
    int 64, so a validated spec holds plain ints; anything else is left for
    validation to refuse."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _normalise(obj: Any, *names: str) -> None:
    for name in names:  # frozen dataclasses: normalise in __post_init__ only
        object.__setattr__(obj, name, _whole(getattr(obj, name)))


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{name} must be true or false, got {_show(value)}")
    return value


@dataclass(frozen=True, kw_only=True)  # named fields: six integers in a row are easy to misorder
class BlockSpec:
    """One Inception block: four parallel branches concatenated on channels.

    b1: 1×1 conv → b1 channels
    b2: 1×1 conv → b2_reduce, then 3×3 conv → b2
    b3: 1×1 conv → b3_reduce, then a b3_kernel×b3_kernel conv → b3
        (factorize=True: two stacked 3×3 convs → b3, b3, same 5×5 receptive field)
    b4: 3×3 max-pool (stride 1), then 1×1 conv → b4 ("pool projection")

    reduce=False is the paper's naive module: b2 and b3 convolve the input
    directly (the *_reduce fields are ignored). Unlike the paper's Fig. 2a we
    keep b4's projection so both versions have the same output shape, as in
    Andrew Ng's 28×28×192 example (seed 002).
    batch_norm=True is torchvision's style (conv without bias, BatchNorm eps=1e-3,
    ReLU); False is d2l's (conv with bias, ReLU).
    """

    b1: int
    b2_reduce: int
    b2: int
    b3_reduce: int
    b3: int
    b4: int
    reduce: bool = True
    b3_kernel: int = 5
    factorize: bool = False
    batch_norm: bool = False

    def __post_init__(self) -> None:
        _normalise(self, "b1", "b2_reduce", "b2", "b3_reduce", "b3", "b4", "b3_kernel")

    def validate(self) -> BlockSpec:
        for name in ("b1", "b2_reduce", "b2", "b3_reduce", "b3", "b4"):
            _check_int(name, getattr(self, name), 1, MAX_CHANNELS)
        for name in ("reduce", "factorize", "batch_norm"):
            _check_bool(name, getattr(self, name))
        if isinstance(self.b3_kernel, bool) or not isinstance(self.b3_kernel, int) or self.b3_kernel not in (3, 5):
            raise SpecError(f"b3_kernel must be 3 or 5, got {_show(self.b3_kernel)}")
        if self.factorize and self.b3_kernel != 5:
            raise SpecError("factorize replaces a 5×5 conv by two 3×3 convs: it needs b3_kernel 5")
        return self

    @property
    def out_channels(self) -> int:
        return self.b1 + self.b2 + self.b3 + self.b4

    def b3_label(self) -> str:
        if self.factorize:
            return "3×3 → 3×3"
        return f"{self.b3_kernel}×{self.b3_kernel}"

    def branch_labels(self) -> dict[str, str]:
        r = "1×1 → " if self.reduce else ""
        return {
            "b1": "1×1",
            "b2": f"{r}3×3",
            "b3": f"{r}{self.b3_label()}",
            "b4": "3×3 max-pool → 1×1",
        }


CHANNEL_FIELDS = ("b1", "b2_reduce", "b2", "b3_reduce", "b3", "b4")  # BlockSpec's channel counts, in the paper's order


@dataclass(frozen=True)
class ConvSpec:
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        _normalise(self, "out_channels", "kernel", "stride", "padding")

    def validate(self, where: str) -> ConvSpec:
        _check_int(f"{where} out_channels", self.out_channels, 1, MAX_CHANNELS)
        _check_int(f"{where} kernel", self.kernel, 1, 15)
        _check_int(f"{where} stride", self.stride, 1, 8)
        _check_int(f"{where} padding", self.padding, 0, 7)
        return self


@dataclass(frozen=True)
class PoolSpec:
    """A max-pool. ceil_mode=True is torchvision's choice; d2l pads by 1 instead."""

    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        _normalise(self, "kernel", "stride", "padding")

    def validate(self, where: str) -> PoolSpec:
        _check_int(f"{where} kernel", self.kernel, 1, 15)
        _check_int(f"{where} stride", self.stride, 1, 8)
        _check_int(f"{where} padding", self.padding, 0, self.kernel // 2)
        _check_bool(f"{where} ceil_mode", self.ceil_mode)
        return self


StemLayer = ConvSpec | PoolSpec


@dataclass(frozen=True)
class NetworkSpec:
    """A GoogLeNet: stem, stages of Inception blocks with a max-pool between
    stages, global average pool, dropout, fully connected classifier.

    Stem layers are named as torchvision names them (conv1, maxpool1, conv2, ...),
    blocks as the paper does (3a, 3b, 4a ...), modules as torchvision
    (`inception3a.branch2`), so torchvision's state_dict loads into the
    `googlenet-imagenet` preset.

    aux=True adds the paper's auxiliary classifiers after blocks 4a and 4d
    (training only). aux_pool "paper" is the paper's 5×5/3 average pool;
    "torchvision" is torchvision's adaptive 4×4 pool (same shape at 14×14).
    """

    name: str
    in_channels: int
    input_size: tuple[int, int]
    num_classes: int
    stem: tuple[StemLayer, ...]
    stages: tuple[tuple[BlockSpec, ...], ...]
    stage_pools: tuple[PoolSpec, ...]  # one between each pair of stages
    batch_norm: bool = False  # stem convs; blocks carry their own flag
    dropout: float = 0.0
    aux: bool = False
    aux_pool: str = "paper"
    aux_dropout: float = 0.7
    description: str = ""

    def __post_init__(self) -> None:
        _normalise(self, "in_channels", "num_classes")
        if isinstance(self.input_size, (tuple, list)):  # a list (from JSON) would make the spec unhashable
            object.__setattr__(self, "input_size", tuple(_whole(x) for x in self.input_size))
        for name in ("stem", "stages", "stage_pools"):  # lists are accepted, tuples are stored
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.stages, tuple):
            object.__setattr__(self, "stages", tuple(tuple(s) if isinstance(s, list) else s for s in self.stages))

    # -- structure -------------------------------------------------------
    def block_names(self) -> list[str]:
        return [f"{i + 3}{chr(ord('a') + j)}" for i, stage in enumerate(self.stages) for j in range(len(stage))]

    def blocks(self) -> list[tuple[str, BlockSpec]]:
        specs = [b for stage in self.stages for b in stage]
        return list(zip(self.block_names(), specs))

    def block(self, name: str) -> BlockSpec:
        for n, b in self.blocks():
            if n == name:
                return b
        raise SpecError(f"no block {_show(name)}; this network has {', '.join(self.block_names())}")

    def with_block(self, name: str, spec: BlockSpec) -> NetworkSpec:
        """A copy with one block replaced; downstream in_channels follow by construction."""
        self.block(name)  # raises for an unknown name
        names = iter(self.block_names())
        stages = tuple(tuple(spec if next(names) == name else b for b in stage) for stage in self.stages)
        return dataclasses.replace(self, stages=stages)

    def aux_blocks(self) -> tuple[str, ...]:
        """Blocks the auxiliary heads attach to: 4a and 4d, as in the paper."""
        return ("4a", "4d") if self.aux else ()

    # -- validation ------------------------------------------------------
    def validate_fields(self) -> NetworkSpec:
        """Check every field on its own. Whether the spatial sizes work out is the layer plan's
        check (`gnet.plan.layer_plan`) and whether the network fits the caps the analysis's
        (`gnet.analysis.validate_network` does all three): they walk the network, which
        this module, below them, cannot."""
        check_network_fields(self.name, self.in_channels, self.input_size, self.num_classes)
        if not isinstance(self.description, str) or len(self.description) > 2000:
            raise SpecError("description must be text of at most 2,000 characters")
        if (
            not isinstance(self.stem, tuple)
            or not isinstance(self.stages, tuple)
            or not all(isinstance(stage, tuple) for stage in self.stages)
            or not isinstance(self.stage_pools, tuple)
        ):
            raise SpecError("stem, stages (and each stage) and stage_pools must be tuples")
        _check_int("number of stem layers", len(self.stem), 0, 32)
        _check_bool("batch_norm", self.batch_norm)
        _check_bool("aux", self.aux)
        for i, layer in enumerate(self.stem):
            if not isinstance(layer, (ConvSpec, PoolSpec)):
                raise SpecError(f"stem layer {i + 1} must be a conv or a max-pool")
            layer.validate(f"stem layer {i + 1}")
        _check_int("number of stages", len(self.stages), 1, MAX_STAGES)
        for i, stage in enumerate(self.stages):
            _check_int(f"stage {i + 3} block count", len(stage), 1, MAX_BLOCKS_PER_STAGE)
        check_blocks(self.blocks(), BlockSpec, "a block spec")
        if len(self.stage_pools) != len(self.stages) - 1:
            raise SpecError(f"{len(self.stages)} stages need {len(self.stages) - 1} pools between them")
        for i, p in enumerate(self.stage_pools):
            p.validate(f"pool after stage {i + 3}")
        for name, value in (("dropout", self.dropout), ("aux_dropout", self.aux_dropout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise SpecError(f"{name} must be a number from 0 up to (not including) 1, got {_show(value)}")
        if not isinstance(self.aux_pool, str) or self.aux_pool not in ("paper", "torchvision"):
            raise SpecError(f"aux_pool must be 'paper' or 'torchvision', got {_show(self.aux_pool)}")
        if self.aux and not {"4a", "4d"} <= set(self.block_names()):
            raise SpecError("auxiliary heads attach to blocks 4a and 4d: stage 4 needs at least 4 blocks")
        return self

    # -- serialisation ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stem"] = [
            {"type": "conv" if isinstance(layer, ConvSpec) else "maxpool", **dataclasses.asdict(layer)}
            for layer in self.stem
        ]
        d["input_size"] = list(self.input_size)
        return d

    @staticmethod
    def from_dict(d: Any) -> NetworkSpec:
        """Parse untrusted JSON-like data into a spec whose fields are valid; raises SpecError, never
        anything else. `gnet.analysis.validate_network` checks that it can be built."""
        if not isinstance(d, dict):
            raise SpecError("a network spec must be a JSON object")
        _check_keys(d, NETWORK_FIELDS, "network spec")
        missing = [k for k in NETWORK_REQUIRED if k not in d]
        if missing:
            raise SpecError(f"network spec is missing the field(s) {', '.join(missing)}")
        for k in ("stem", "stages", "stage_pools", "input_size"):
            if not isinstance(d[k], (list, tuple)):
                raise SpecError(f"{k} must be a JSON list")
        stem = []
        for i, layer in enumerate(d["stem"]):
            where = f"stem layer {i + 1}"
            if not isinstance(layer, dict) or layer.get("type") not in ("conv", "maxpool"):
                raise SpecError(f'{where} must be an object with "type": "conv" or "maxpool"')
            cls = ConvSpec if layer["type"] == "conv" else PoolSpec
            stem.append(_from_fields(cls, {k: v for k, v in layer.items() if k != "type"}, where))
        stages = []
        for i, stage in enumerate(d["stages"]):
            if not isinstance(stage, (list, tuple)):
                raise SpecError(f"stage {i + 3} must be a list of blocks")
            stages.append(tuple(block_from_dict(b) for b in stage))
        pools = tuple(_from_fields(PoolSpec, p, f"pool after stage {i + 3}") for i, p in enumerate(d["stage_pools"]))
        spec = NetworkSpec(
            **{
                **d,
                "stem": tuple(stem),
                "stages": tuple(stages),
                "stage_pools": pools,
                "input_size": tuple(d["input_size"]),
            }
        )
        return spec.validate_fields()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_json(text: str | bytes) -> NetworkSpec:
        return NetworkSpec.from_dict(_parse_json(text))


def _parse_json(text: str | bytes) -> Any:
    if not isinstance(text, (str, bytes, bytearray)):
        raise SpecError("a spec must be JSON text")
    if len(text) > 1_000_000:
        raise SpecError("the JSON file is larger than 1 MB; a spec is a few kB")
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")  # an editor's byte-order mark is not an error
        except UnicodeDecodeError:
            raise SpecError("the file is not UTF-8 text; a spec is a JSON text file") from None
    try:
        return json.loads(text.removeprefix("\ufeff"))
    except ValueError as e:  # JSONDecodeError, a number too long to convert
        msg = str(e)
        raise SpecError(f"not valid JSON: {msg if len(msg) <= 120 else msg[:117] + '...'}") from None
    except RecursionError:
        raise SpecError("not valid JSON for a spec: nested too deeply") from None


NETWORK_FIELDS = tuple(f.name for f in dataclasses.fields(NetworkSpec))
NETWORK_REQUIRED = tuple(f.name for f in dataclasses.fields(NetworkSpec) if f.default is dataclasses.MISSING)


def _check_keys(d: dict, allowed: tuple[str, ...], what: str) -> None:
    unknown = set(d) - set(allowed)
    if unknown:
        names = ", ".join(sorted(_show(k) for k in unknown)[:5])
        raise SpecError(f"unknown {what} field(s): {names}; allowed: {', '.join(allowed)}")


def _from_fields(cls: type, d: Any, where: str) -> Any:
    """cls(**d) for untrusted data, with the missing or unknown field named."""
    if not isinstance(d, dict):
        raise SpecError(f"{where} must be a JSON object")
    fields = tuple(f.name for f in dataclasses.fields(cls))
    _check_keys(d, fields, where)
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    missing = [k for k in required if k not in d]
    if missing:
        raise SpecError(f"{where} is missing the field(s) {', '.join(missing)}")
    return cls(**d)


def block_from_dict(d: Any) -> BlockSpec:
    """Parse untrusted JSON-like data into a validated BlockSpec."""
    return _from_fields(BlockSpec, d, "block spec").validate()


# ---------------------------------------------------------------------------
# Block designs: a block together with its input shape (what the designer edits)


@dataclass(frozen=True)
class BlockDesign:
    block: BlockSpec
    input_shape: tuple[int, int, int]  # (C, H, W)

    def __post_init__(self) -> None:
        if isinstance(self.input_shape, (tuple, list)):
            object.__setattr__(self, "input_shape", tuple(_whole(x) for x in self.input_shape))

    def validate(self) -> BlockDesign:
        if not isinstance(self.block, BlockSpec):
            raise SpecError("a block design needs a block spec")
        if not isinstance(self.input_shape, tuple) or len(self.input_shape) != 3:
            raise SpecError(f"input shape must be (channels, height, width), got {_show(self.input_shape)}")
        c, h, w = self.input_shape
        _check_int("input channels", c, 1, MAX_CHANNELS)
        _check_int("input height", h, 1, MAX_SPATIAL)
        _check_int("input width", w, 1, MAX_SPATIAL)
        self.block.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "block": dataclasses.asdict(self.block)}

    @staticmethod
    def from_dict(d: Any) -> BlockDesign:
        if not isinstance(d, dict) or set(d) != {"input_shape", "block"}:
            raise SpecError('a block design must be a JSON object with "input_shape" and "block"')
        shape = d["input_shape"]
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            raise SpecError("input_shape must be [C, H, W]")
        return BlockDesign(block_from_dict(d["block"]), tuple(shape)).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_json(text: str | bytes) -> BlockDesign:
        return BlockDesign.from_dict(_parse_json(text))


# ---------------------------------------------------------------------------
# Presets

# The paper's table 1 (and d2l's code): (b1, b2_reduce, b2, b3_reduce, b3, b4)
PAPER_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
# Input (C, H, W) of each block in the ImageNet GoogLeNet at 224×224.
PAPER_BLOCK_INPUTS: dict[str, tuple[int, int, int]] = {
    "3a": (192, 28, 28),
    "3b": (256, 28, 28),
    "4a": (480, 14, 14),
    "4b": (512, 14, 14),
    "4c": (512, 14, 14),
    "4d": (512, 14, 14),
    "4e": (528, 14, 14),
    "5a": (832, 7, 7),
    "5b": (832, 7, 7),
}


def paper_block(name: str, **variant: Any) -> BlockSpec:
    if not isinstance(name, str) or name not in PAPER_BLOCKS:
        raise SpecError(f"the paper has no block {_show(name)}; its blocks are {', '.join(BLOCK_NAMES)}")
    b1, b2r, b2, b3r, b3, b4 = PAPER_BLOCKS[name]
    return BlockSpec(b1=b1, b2_reduce=b2r, b2=b2, b3_reduce=b3r, b3=b3, b4=b4, **variant)


def block_presets() -> dict[str, BlockDesign]:
    """Designs the Block Designer offers: the paper's nine blocks at their real
    input sizes, and Andrew Ng's 28×28×192 example (seed 002)."""
    presets = {f"Paper {n}": BlockDesign(paper_block(n), PAPER_BLOCK_INPUTS[n]) for n in BLOCK_NAMES}
    presets["Ng's example (28×28×192, seed 002)"] = BlockDesign(
        BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32), (192, 28, 28)
    )
    return presets


def _stages(**variant: Any) -> tuple[tuple[BlockSpec, ...], ...]:
    return (
        tuple(paper_block(n, **variant) for n in ("3a", "3b")),
        tuple(paper_block(n, **variant) for n in ("4a", "4b", "4c", "4d", "4e")),
        tuple(paper_block(n, **variant) for n in ("5a", "5b")),
    )


def d2l_fashion96() -> NetworkSpec:
    """Seed 001's network exactly: d2l's GoogLeNet for 1×96×96 Fashion-MNIST."""
    pool = PoolSpec(3, 2, padding=1)
    return NetworkSpec(
        name="d2l-fashion96",
        in_channels=1,
        input_size=(96, 96),
        num_classes=10,
        stem=(ConvSpec(64, 7, 2, 3), pool, ConvSpec(64, 1), ConvSpec(192, 3, 1, 1), pool),
        stages=_stages(),
        stage_pools=(pool, pool),
        description="d2l's GoogLeNet for Fashion-MNIST resized to 96×96 (seed 001): conv bias + ReLU, no BatchNorm, no aux heads.",
    )


def googlenet_imagenet(aux: bool = False) -> NetworkSpec:
    """torchvision's googlenet architecture (state_dict compatible).

    Differences from the paper, as in torchvision: BatchNorm after every conv,
    the "5×5" branch uses a 3×3 kernel (pytorch/vision#906), ceil-mode pools,
    a 2×2 pool before stage 5, dropout 0.2, aux heads with adaptive 4×4 pooling.
    """
    pool = PoolSpec(3, 2, ceil_mode=True)
    return NetworkSpec(
        name="googlenet-imagenet",
        in_channels=3,
        input_size=(224, 224),
        num_classes=1000,
        stem=(ConvSpec(64, 7, 2, 3), pool, ConvSpec(64, 1), ConvSpec(192, 3, 1, 1), pool),
        stages=_stages(b3_kernel=3, batch_norm=True),
        stage_pools=(pool, PoolSpec(2, 2, ceil_mode=True)),
        batch_norm=True,
        dropout=0.2,
        aux=aux,
        aux_pool="torchvision",
        description="torchvision's GoogLeNet for ImageNet (224×224, 1000 classes): BatchNorm, 3×3 kernel in the '5×5' branch (pytorch/vision#906).",
    )


def mini() -> NetworkSpec:
    """A small GoogLeNet that trains on a 2-core CPU in minutes (32×32 input)."""
    pool = PoolSpec(3, 2, padding=1)
    return NetworkSpec(
        name="mini",
        in_channels=3,
        input_size=(32, 32),
        num_classes=10,
        stem=(ConvSpec(32, 3, 1, 1), pool),
        stages=(
            (
                BlockSpec(b1=16, b2_reduce=16, b2=24, b3_reduce=4, b3=8, b4=8, batch_norm=True),
                BlockSpec(b1=24, b2_reduce=24, b2=32, b3_reduce=8, b3=16, b4=16, batch_norm=True),
            ),
            (
                BlockSpec(b1=32, b2_reduce=32, b2=48, b3_reduce=8, b3=16, b4=16, batch_norm=True),
                BlockSpec(b1=48, b2_reduce=32, b2=64, b3_reduce=12, b3=24, b4=24, batch_norm=True),
            ),
        ),
        stage_pools=(pool,),
        batch_norm=True,
        description="A small two-stage GoogLeNet for 32×32 images that trains on a laptop CPU in minutes.",
    )


NETWORK_PRESETS = {
    "d2l-fashion96": d2l_fashion96,
    "googlenet-imagenet": googlenet_imagenet,
    "googlenet-imagenet-aux": lambda: googlenet_imagenet(aux=True),
    "mini": mini,
}


def network_preset(name: str) -> NetworkSpec:
    if not isinstance(name, str) or name not in NETWORK_PRESETS:
        raise SpecError(f"unknown preset {_show(name)}; choose one of {', '.join(NETWORK_PRESETS)}")
    return NETWORK_PRESETS[name]()


def with_input(spec: NetworkSpec, in_channels: int | None = None, size: tuple[int, int] | None = None) -> NetworkSpec:
    return dataclasses.replace(
        spec,
        in_channels=spec.in_channels if in_channels is None else in_channels,
        input_size=spec.input_size if size is None else size,  # validation refuses a malformed size
    )


__all__ = [
    "BlockSpec",
    "BlockDesign",
    "ConvSpec",
    "PoolSpec",
    "NetworkSpec",
    "SpecError",
    "block_presets",
    "network_preset",
    "paper_block",
    "d2l_fashion96",
    "googlenet_imagenet",
    "mini",
    "NETWORK_PRESETS",
    "PAPER_BLOCKS",
    "PAPER_BLOCK_INPUTS",
    "BLOCK_NAMES",
    "BRANCHES",
]
