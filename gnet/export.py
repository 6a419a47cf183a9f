"""Export a network or a designed block as ONNX (for Netron and ONNX Runtime) or as a torch.export program (.pt2).

    ex = network_exportable(network_preset("mini"))         # or block_exportable(design), checkpoint_exportable(path)
    data = export_bytes(ex, "onnx", dynamic_batch=True)      # bytes of the file, or export_file(ex, "pt2", out)

ONNX: `torch.onnx.export(dynamo=True)` (torch.export underneath, onnxscript's ops), then
`onnx.shape_inference.infer_shapes`, so every tensor of the file carries its shape: Netron cannot infer
shapes itself. The exporter records each node's module scopes in its metadata
(`pkg.torch.onnx.name_scopes`); from them every node is named `<module path>/<op>` (`inception3a.branch2.1/Conv`)
and the output of every top-level module and branch is named after the module (`inception3a`,
`inception3a.branch2`), so Netron shows the names the app shows. Stack traces (server paths) are dropped.

Both formats carry what is needed to use the file elsewhere: the network spec (or the block design) as JSON,
the preprocessing, the weights' origin and, for a checkpoint, its run and epoch; ONNX in `metadata_props`,
.pt2 in `extra_files` (`torch.export.load(f, extra_files={"gnet.network": ""})` reads them back).

`onnx` and `onnxscript` are optional extras, like TensorBoard: without them ONNX export raises ExportError
with the pip command (ONNX_INSTALL); .pt2 needs torch only.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import io
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gnet.analysis import plan_report
from gnet.checkpoints import CheckpointError, atomic_write_bytes, load_checkpoint
from gnet.plan import Plan, block_steps, layer_plan
from gnet.spec import BlockDesign, NetworkSpec, SpecError, googlenet_imagenet
from gnet.v3 import InceptionV3Spec, KindSpec, block_plan_steps, kind_to_json, v3_plan

AnyNetwork = NetworkSpec | InceptionV3Spec  # a GoogLeNet or an Inception v3

FORMATS = ("onnx", "pt2")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2"}
MIME = {"onnx": "application/octet-stream", "pt2": "application/zip"}
ONNX_INSTALL = "pip install onnx onnxscript"
MAX_BATCH = 256  # a fixed batch's example input is allocated: 256 Inception v3 images are 275 MB
OPSET = 20  # what this torch's dynamo exporter targets; ONNX Runtime 1.16+ runs it
# Metadata keys, the same in ONNX metadata_props and .pt2 extra_files.
KEY_NETWORK = "gnet.network"  # a NetworkSpec as JSON (network exports)
KEY_BLOCK = "gnet.block"  # a BlockDesign as JSON (block exports)
KEY_PREPROCESS = "gnet.preprocess"
KEY_WEIGHTS = "gnet.weights"
KEY_CHECKPOINT = "gnet.checkpoint"  # {"run", "file", "epoch"}
KEY_INPUT = "gnet.input"  # {"name", "shape": [N or "batch", C, H, W]}
# Node metadata the exporter writes that must not leave the server: file paths of this checkout.
DROPPED_NODE_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")
# torch.export's tracer (dynamo, fake tensors, the ONNX registry) keeps process-wide state: the app's sessions
# export one at a time.
_EXPORT_LOCK = threading.Lock()


class ExportError(ValueError):
    """An export that cannot be made; the message says why and what to do."""


def onnx_available() -> bool:
    """The dynamo ONNX exporter needs both onnx and onnxscript (torch does not install them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))


def onnx_missing_message() -> str:
    return f"ONNX export needs the optional packages onnx and onnxscript: `{ONNX_INSTALL}` (.pt2 export needs neither)"


@dataclass
class Exportable:
    """A module ready to export, with the input it takes and the metadata its file carries."""

    module: nn.Module  # eval mode, CPU
    input_shape: tuple[int, int, int]  # (C, H, W)
    paths: tuple[str, ...]  # module paths of the plan's steps: what nodes are named after
    outputs: tuple[str, ...]  # the modules whose output tensors are named after them: top-level steps, branches
    metadata: dict[str, str] = field(default_factory=dict)
    input_name: str = "image"
    output_name: str = "logits"

    @property
    def label(self) -> str:
        spec = self.metadata.get(KEY_NETWORK)
        return json.loads(spec)["name"] if spec else "inception_block"


# ---------------------------------------------------------------------------
# What to export


def _seeded_untrained(make: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same random weights in every process, so a file can be checked against them
        return make()


def _plan(spec: AnyNetwork) -> Plan:
    return v3_plan(spec) if isinstance(spec, InceptionV3Spec) else layer_plan(spec)


def _input_spec(spec: AnyNetwork, input_shape: tuple[int, int, int] | None) -> AnyNetwork:
    """The spec at another input (C, H, W), checked as the analysis checks it (fields, sizes, caps):
    SpecError if the network cannot take it."""
    if input_shape is None:
        plan_report(_plan(spec))
        return spec
    c, h, w = input_shape
    try:
        spec = dataclasses.replace(spec, in_channels=c, input_size=(h, w))
        plan_report(_plan(spec))
    except SpecError as e:
        raise SpecError(f"{spec.name} cannot take a {c}×{h}×{w} input: {e}") from None
    return spec


def _same_channels(spec: NetworkSpec, input_shape: tuple[int, int, int] | None, what: str) -> None:
    if input_shape is not None and input_shape[0] != spec.in_channels:
        raise SpecError(f"{what} take {spec.in_channels}-channel images, not {input_shape[0]}")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # metadata is UTF-8 text: Netron shows "3×224×224", not "\u00d7"


def _preprocess_json(pre: Any) -> str:
    """A gnet.images.Preprocess as JSON, with its description in words."""
    return _json(
        {
            "resize": pre.resize,
            "image_size": list(pre.crop),
            "resize_mode": "stretch" if pre.stretch else "short side, centre crop",
            "in_channels": pre.in_channels,
            "mean": list(pre.mean),
            "std": list(pre.std),
            "description": pre.describe(),
        }
    )


def _untrained_preprocess(c: int, h: int, w: int) -> str:
    return _json(
        {
            "image_size": [h, w],
            "in_channels": c,
            "description": f"{c}×{h}×{w} (C×H×W) input; random weights: no dataset's normalisation belongs to them",
        }
    )


def _network_paths(spec: AnyNetwork) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every step's module path, and those whose outputs get names: the top-level modules and the ones below."""
    plan = _plan(spec)
    # One level below the top: GoogLeNet's branches; Inception v3's layers, which sit on the block itself (its
    # multi-layer branches are virtual: no module, so no scope to find them by).
    inner = [s.path for s in plan.steps if s.depth == 1 and not s.virtual]
    return tuple(s.path for s in plan.steps), tuple(s.path for s in plan.top_level()) + tuple(inner)


def _block_paths(design: BlockDesign) -> tuple[tuple[str, ...], tuple[str, ...]]:
    paths = tuple(s.path for s in block_steps(design.block, design.input_shape))
    return paths, tuple(p for p in paths if "." not in p)  # branch1 … branch4


def _build(spec: AnyNetwork) -> nn.Module:
    if isinstance(spec, InceptionV3Spec):
        from gnet.v3_modules import build_v3

        return build_v3(spec)
    from gnet.network import build

    return build(spec)


def _untrained_exportable(
    make: Callable[[], nn.Module],
    input_shape: tuple[int, int, int],
    paths: tuple[str, ...],
    outputs: tuple[str, ...],
    design_key: str,
    design_json: str,
    input_name: str = "image",
    output_name: str = "logits",
) -> Exportable:
    """A network or block with seeded random weights: its design (JSON) under `design_key` in the metadata, beside
    the untrained preprocessing and weights notes."""
    c, h, w = input_shape
    return Exportable(
        _seeded_untrained(make).eval(),
        (c, h, w),
        paths,
        outputs,
        {
            design_key: design_json,
            KEY_PREPROCESS: _untrained_preprocess(c, h, w),
            KEY_WEIGHTS: "untrained: random weights (seed 0)",
        },
        input_name=input_name,
        output_name=output_name,
    )


def network_exportable(spec: AnyNetwork, input_shape: tuple[int, int, int] | None = None) -> Exportable:
    """A GoogLeNet or an Inception v3 with seeded random weights (untrained), at its own input or `input_shape`."""
    spec = _input_spec(spec, input_shape)
    c, (h, w) = spec.in_channels, spec.input_size
    return _untrained_exportable(lambda: _build(spec), (c, h, w), *_network_paths(spec), KEY_NETWORK, spec.to_json())


def block_exportable(design: BlockDesign, input_shape: tuple[int, int, int] | None = None) -> Exportable:
    """A designed Inception block on its own (seeded random weights), at its input or `input_shape`."""
    from gnet.blocks import InceptionBlock

    design = BlockDesign(design.block, input_shape or design.input_shape).validate()
    c = design.input_shape[0]
    return _untrained_exportable(
        lambda: InceptionBlock(c, design.block),
        design.input_shape,
        *_block_paths(design),
        KEY_BLOCK,
        design.to_json(),
        input_name="input",
        output_name="output",
    )


def v3_block_exportable(spec: KindSpec, input_shape: tuple[int, int, int]) -> Exportable:
    """An Inception v3 block of any kind (A–E) on its own (seeded random weights), as the Block Designer shows it."""
    from gnet.v3_modules import InceptionV3Block

    steps, _ = block_plan_steps(spec, input_shape)  # validates the spec and the input
    c, h, w = input_shape
    design = {"input_shape": [c, h, w], "block": json.loads(kind_to_json(spec))}
    return _untrained_exportable(
        lambda: InceptionV3Block(c, spec),
        (c, h, w),
        tuple(s.path for s in steps),
        tuple(s.path for s in steps if not s.virtual),  # its layers are the block's own modules: name each output
        KEY_BLOCK,
        _json(design),
        input_name="input",
        output_name="output",
    )


def checkpoint_run(path: Path) -> str:
    """The run a checkpoint belongs to: <run>/checkpoints/best.pt → <run>."""
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name


def checkpoint_exportable(path: str | os.PathLike, input_shape: tuple[int, int, int] | None = None) -> Exportable:
    """A checkpoint of this project's training runs: its own network, weights and preprocessing.
    CheckpointError for a file that is not one; SpecError for an input the network cannot take."""
    from gnet.pretrained import checkpoint_preprocess

    path = Path(path)
    ckpt = load_checkpoint(path)
    _same_channels(ckpt.spec, input_shape, "its weights")
    spec = _input_spec(ckpt.spec, input_shape)
    pre = checkpoint_preprocess(ckpt.preprocess, ckpt.spec.in_channels)
    epoch = ckpt.extra.get("epoch")
    c, (h, w) = spec.in_channels, spec.input_size
    return Exportable(
        ckpt.build_model(),  # eval mode; at another H×W the same weights (an adaptive pool before the classifier)
        (c, h, w),
        *_network_paths(spec),
        {
            KEY_NETWORK: spec.to_json(),
            KEY_PREPROCESS: _preprocess_json(pre),
            KEY_WEIGHTS: f"checkpoint {checkpoint_run(path)}/{path.name}",
            KEY_CHECKPOINT: _json(
                {
                    "run": checkpoint_run(path),
                    "file": path.name,
                    "epoch": epoch if isinstance(epoch, int) else None,
                    "classes": list(ckpt.classes),
                }
            ),
        },
    )


def weights_exportable(path: str | os.PathLike, input_shape: tuple[int, int, int] | None = None) -> Exportable:
    """A torchvision GoogLeNet state_dict file (e.g. googlenet-1378be20.pth), loaded as the app loads it
    (gnet.pretrained: weights_only, transform_input on). A project checkpoint given here exports as one."""
    from gnet.network import GoogLeNet
    from gnet.pretrained import ModelSource, load_model

    path = Path(path)
    loaded = load_model(ModelSource("weights", str(path)))
    module = loaded.module if hasattr(loaded, "module") else loaded.model  # gnet.net.Net, or the older LoadedModel
    if isinstance(module, GoogLeNet):  # the file was a project checkpoint: export it as one (its spec, run, epoch)
        return checkpoint_exportable(path, input_shape)
    base = dataclasses.replace(googlenet_imagenet(), num_classes=module.fc.out_features)
    _same_channels(base, input_shape, "torchvision's GoogLeNet weights")
    spec = _input_spec(base, input_shape)
    c, (h, w) = spec.in_channels, spec.input_size
    return Exportable(
        module.eval(),
        (c, h, w),
        *_network_paths(spec),
        {
            KEY_NETWORK: spec.to_json(),
            KEY_PREPROCESS: _preprocess_json(loaded.preprocess),
            KEY_WEIGHTS: f"torchvision GoogLeNet weights file {path.name} (transform_input: the model maps the "
            "ImageNet-normalised input to (x − 0.5) / 0.5 itself)",
        },
    )


# ---------------------------------------------------------------------------
# Exporting


def _example(ex: Exportable, batch: int, dynamic_batch: bool) -> tuple[torch.Tensor, Any]:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ExportError(f"the batch size must be a whole number from 1 to {MAX_BATCH}, got {batch!r}")
    if dynamic_batch:
        # Traced at batch 2: a size-1 example would let the tracer treat the batch as the constant 1.
        dims = ({0: torch.export.Dim("batch", min=1, max=4096)},)
        return torch.zeros(2, *ex.input_shape), dims
    return torch.zeros(batch, *ex.input_shape), None  # only traced: its values do not matter


def _metadata(ex: Exportable, batch: int, dynamic_batch: bool) -> dict[str, str]:
    shape = ["batch" if dynamic_batch else batch, *ex.input_shape]
    return {**ex.metadata, KEY_INPUT: _json({"name": ex.input_name, "shape": shape, "layout": "NCHW"})}


def export_pt2(ex: Exportable, batch: int = 1, dynamic_batch: bool = False) -> bytes:
    """A torch.export program saved with torch.export.save, the metadata in its extra_files."""
    x, dims = _example(ex, batch, dynamic_batch)
    with _EXPORT_LOCK, torch.no_grad():
        program = torch.export.export(ex.module, (x,), dynamic_shapes=dims)
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files=_metadata(ex, batch, dynamic_batch))
    return buf.getvalue()


def export_onnx(ex: Exportable, batch: int = 1, dynamic_batch: bool = False) -> bytes:
    """An ONNX model from the dynamo exporter, named after the modules, with every tensor's shape inferred."""
    if not onnx_available():
        raise ExportError(onnx_missing_message())
    import onnx

    x, dims = _example(ex, batch, dynamic_batch)
    with _EXPORT_LOCK, torch.no_grad():
        program = torch.onnx.export(
            ex.module,
            (x,),
            dynamo=True,
            input_names=[ex.input_name],
            output_names=[ex.output_name],
            dynamic_shapes=dims,
            opset_version=OPSET,
            external_data=False,
            optimize=True,  # BatchNorm folded into the convs, as a deployed model runs
            verbose=False,
        )
    if program is None:  # the exporter's contract for dynamo=True; a None would be a torch bug
        raise ExportError("torch.onnx.export returned no program")
    _name_after_modules(program.model, ex.paths, ex.outputs)
    proto = onnx.shape_inference.infer_shapes(program.model_proto, check_type=True, strict_mode=True)
    proto.doc_string = f"{ex.label}, exported by Inception Explorer (gnet)"
    proto.graph.name = ex.label
    for k, v in _metadata(ex, batch, dynamic_batch).items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _module_path(scopes: list[str], paths: set[str]) -> str:
    """The deepest of a node's module scopes that is a step of the plan (a conv's `.conv`/`.bn`/`.relu`
    children are one step), else the deepest scope; "" for the network's own forward."""
    modules = scopes[:-1]  # the last entry is the traced op's own name
    for s in reversed(modules):
        if s in paths:
            return s
    return next((s for s in reversed(modules) if s), "")


def _name_after_modules(model: Any, paths: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    """Node names `<module path>/<op>`; the output tensor of each module in `outputs` named after the module,
    every other tensor after its node; stack traces dropped. `model` is the exporter's onnx_ir Model."""
    steps, wanted = set(paths), set(outputs)
    graph_outputs = {v.name for v in model.graph.outputs}
    used_values = {v.name for v in model.graph.inputs} | graph_outputs | set(model.graph.initializers)
    used_nodes: set[str] = set()
    last_node: dict[str, Any] = {}  # module path → its last node in graph (topological) order: the module's output
    for node in model.graph:
        meta = node.metadata_props
        try:  # a Python list literal, e.g. "['', 'inception3a', 'inception3a.branch1', 'conv2d']"
            scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            scopes = []
        path = _module_path(scopes if isinstance(scopes, list) else [], steps)
        name = f"{path}/{node.op_type}" if path else node.op_type
        unique, i = name, 1
        while unique in used_nodes:
            i += 1
            unique = f"{name}_{i}"
        node.name = unique
        used_nodes.add(unique)
        for key in DROPPED_NODE_METADATA:
            meta.pop(key, None)
        parts = path.split(".") if path else []
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix in wanted:
                last_node[prefix] = node
    named: set[int] = set()
    for p in sorted(last_node):
        outs = last_node[p].outputs
        if outs and outs[0].name not in graph_outputs and p not in used_values:
            outs[0].name = p
            used_values.add(p)
            named.add(id(outs[0]))
    for node in model.graph:  # the other tensors after the node that makes them, not the tracer's `getitem_15`
        for i, value in enumerate(node.outputs):
            name = node.name if i == 0 else f"{node.name}:{i}"
            if id(value) not in named and value.name not in graph_outputs and name not in used_values:
                value.name = name
                used_values.add(name)


def export_bytes(ex: Exportable, fmt: str, batch: int = 1, dynamic_batch: bool = False) -> bytes:
    if fmt == "onnx":
        return export_onnx(ex, batch, dynamic_batch)
    if fmt == "pt2":
        return export_pt2(ex, batch, dynamic_batch)
    raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def check_out_path(out: str | os.PathLike) -> Path:
    """Where the file goes: its folder must exist, and the path must not be a folder."""
    path = Path(out)
    if not str(out).strip():
        raise ExportError("--out needs a file path")
    if path.is_dir():
        raise ExportError(f"--out {str(out)!r} is a folder; give a file path such as {path / 'model.onnx'}")
    if not path.parent.is_dir():
        raise ExportError(f"--out: the folder {str(path.parent)!r} does not exist")
    return path


def export_file(ex: Exportable, fmt: str, out: str | os.PathLike, batch: int = 1, dynamic_batch: bool = False) -> Path:
    """Export into `out` atomically (a temp file in the same folder, then os.replace): a failed export leaves
    no file behind, and an existing file stays as it was."""
    path = check_out_path(out)
    data = export_bytes(ex, fmt, batch, dynamic_batch)
    atomic_write_bytes(path, data)
    return path


__all__ = [
    "CheckpointError",
    "ExportError",
    "Exportable",
    "FORMATS",
    "ONNX_INSTALL",
    "block_exportable",
    "checkpoint_exportable",
    "export_bytes",
    "export_file",
    "export_onnx",
    "export_pt2",
    "network_exportable",
    "onnx_available",
    "v3_block_exportable",
    "weights_exportable",
]
