"""ONNX and torch.export files (gnet/export.py, `python -m gnet export`, the app's download buttons).

Every preset, a designed block and a checkpoint of a real (tiny) training run are exported once per test
module through the CLI, then: onnx.checker passes; ONNX Runtime equals PyTorch (≤ 1e-4) at batch 1 and, with
--dynamic-batch, at batch 3; the .pt2 reloads with torch.export.load and gives the same output; every tensor
has an inferred shape and the block and branch outputs are those `python -m gnet summary` / `block` report;
the module paths are in the node names and metadata; the metadata carries the spec, preprocessing, run and epoch.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from gnet import export, runs
from gnet.__main__ import main, summary_json
from gnet.analysis import network_report
from gnet.checkpoints import load_checkpoint
from gnet.plan import layer_plan
from gnet.spec import (
    NETWORK_PRESETS,
    BlockDesign,
    BlockSpec,
    ConvSpec,
    NetworkSpec,
    block_presets,
    network_preset,
    with_input,
)
from gnet.train import TrainConfig, train
from gnet.v3 import V3_PRESETS, InceptionV3Spec, default_kind, kind_from_json, kind_to_json, kind_with, v3_plan

ROOT = Path(__file__).resolve().parent.parent
# Non-square and odd-sized, with every variant switched on that changes the graph: H and W must not swap.
BLOCK = BlockDesign(
    BlockSpec(b1=8, b2_reduce=6, b2=12, b3_reduce=2, b3=4, b4=4, factorize=True, batch_norm=True), (16, 9, 7)
)
# A one-block network: the checkpoint's, and the file the Network Explorer test loads (small graphs export fast).
TINY = dataclasses.replace(
    network_preset("mini"), name="tiny", input_size=(12, 12), stages=network_preset("mini").stages[:1], stage_pools=()
)
FIXED = ("block",)  # also exported at a fixed batch of 1 (every export costs seconds: the others are dynamic only)
TARGETS = (*NETWORK_PRESETS, *V3_PRESETS, "block", "checkpoint")


def preset(name: str) -> NetworkSpec | InceptionV3Spec:
    return V3_PRESETS[name]() if name in V3_PRESETS else network_preset(name)


# -- the exports: each made once, through the CLI -----------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def checkpoint(workdir) -> Path:
    """best.pt of a real one-epoch training run of the tiny network at 12×12 on synthetic data."""
    cfg = TrainConfig.from_recipe(
        "improved",
        TINY,
        image_size=12,
        synthetic_train=40,
        synthetic_test=20,
        batch_size=20,
        epochs=1,
        device="cpu",
    )
    run = runs.create(workdir / "runs" / "tiny", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    return run / "checkpoints" / "best.pt"


def _source_args(target: str, workdir: Path, checkpoint: Path) -> list[str]:
    if target == "block":
        path = workdir / "block.json"
        path.write_text(BLOCK.to_json())
        return ["--block", str(path)]
    if target == "checkpoint":
        return ["--checkpoint", str(checkpoint)]
    return ["--preset", target]


class Exports:
    """`python -m gnet export` of a target in a format, made on first use and kept for the module, with the
    loaded ONNX models and the reference PyTorch modules (loading and building cost seconds for the big ones)."""

    def __init__(self, workdir: Path, checkpoint: Path) -> None:
        self.workdir, self.checkpoint = workdir, checkpoint
        self.files: dict[tuple, Path] = {}
        self.models: dict[Path, onnx.ModelProto] = {}
        self.modules: dict[str, torch.nn.Module] = {}

    def __call__(self, target: str, fmt: str, dynamic: bool = True) -> Path:
        key = (target, fmt, dynamic)
        if key not in self.files:
            out = self.workdir / f"{target}-{'dyn' if dynamic else 'b1'}.{fmt}"
            argv = ["export", *_source_args(target, self.workdir, self.checkpoint), "--format", fmt, "--out", str(out)]
            assert main([*argv, "--dynamic-batch"] if dynamic else argv) == 0
            self.files[key] = out
        return self.files[key]

    def onnx(self, target: str, dynamic: bool = True) -> onnx.ModelProto:
        path = self(target, "onnx", dynamic)
        if path not in self.models:
            self.models[path] = onnx.load(path)
        return self.models[path]

    def reference(self, target: str) -> torch.nn.Module:
        """The PyTorch module the file must equal: the same seeded random weights, or the checkpoint's."""
        if target not in self.modules:
            if target == "checkpoint":
                self.modules[target] = load_checkpoint(self.checkpoint).build_model()
            elif target == "block":
                self.modules[target] = export.block_exportable(BLOCK).module
            else:
                self.modules[target] = export.network_exportable(preset(target)).module
        return self.modules[target]

    def example(self, target: str, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """A random input batch and the reference output for it."""
        x = torch.randn(n, *input_shape(target, self.checkpoint), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            return x, self.reference(target)(x)


@pytest.fixture(scope="module")
def exported(workdir, checkpoint) -> Exports:
    return Exports(workdir, checkpoint)


def input_shape(target: str, checkpoint: Path) -> tuple[int, int, int]:
    if target == "block":
        return BLOCK.input_shape
    spec = load_checkpoint(checkpoint).spec if target == "checkpoint" else preset(target)
    return (spec.in_channels, *spec.input_size)


def session(data: bytes | Path | onnx.ModelProto) -> ort.InferenceSession:
    data = data.SerializeToString() if isinstance(data, onnx.ModelProto) else data
    return ort.InferenceSession(str(data) if isinstance(data, Path) else data, providers=["CPUExecutionProvider"])


def run_onnx(s: ort.InferenceSession | bytes, x: torch.Tensor) -> np.ndarray:
    s = s if isinstance(s, ort.InferenceSession) else session(s)
    (inp,) = s.get_inputs()
    return s.run(None, {inp.name: x.numpy()})[0]


def max_diff(a: np.ndarray, b: torch.Tensor) -> float:
    assert a.shape == tuple(b.shape)
    return float(np.abs(a - b.numpy()).max())


def shapes(model: onnx.ModelProto) -> dict[str, list]:
    """Every named tensor's inferred shape: dims as ints, the dynamic batch as its name."""
    out = {}
    for v in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        dims = v.type.tensor_type.shape.dim
        out[v.name] = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]
    return out


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


# -- ONNX ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", TARGETS)
def test_onnx_checks_and_equals_pytorch_at_batch_1_and_3(target, exported):
    model = exported.onnx(target)
    onnx.checker.check_model(model)
    x, ref = exported.example(target)  # batch 3; its first image is the batch-1 case (eval mode: images independent)
    s = session(exported(target, "onnx"))
    assert max_diff(run_onnx(s, x[:1]), ref[:1]) <= 1e-4
    assert max_diff(run_onnx(s, x), ref) <= 1e-4
    if target in FIXED:
        fixed = exported.onnx(target, dynamic=False)
        onnx.checker.check_model(fixed, full_check=True)
        assert max_diff(run_onnx(session(fixed), x[:1]), ref[:1]) <= 1e-4
        assert shapes(fixed)["input"][0] == 1 and shapes(model)["input"][0] == "batch"


def _summary(argv: list[str], capsys) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("target", TARGETS)
def test_every_tensor_has_a_shape_and_block_outputs_are_the_summarys(target, exported, checkpoint, capsys):
    model = exported.onnx(target)
    inferred = shapes(model)
    for node in model.graph.node:
        for name in node.output:
            dims = inferred[name]  # a KeyError: a tensor without an inferred shape
            assert dims and all(d == "batch" or (isinstance(d, int) and d > 0) for d in dims), (name, dims)
    if target == "block":
        c, h, w = BLOCK.input_shape
        b = BLOCK.block
        report = _summary(
            ["block", "--input", f"{c},{h},{w}", "--b1", str(b.b1), "--b2", f"{b.b2_reduce},{b.b2}"]
            + ["--b3", f"{b.b3_reduce},{b.b3}", "--b4", str(b.b4), "--factorize", "--bn", "--json"],
            capsys,
        )
        assert inferred["output"] == ["batch", *report["output_shape"]]
        for i, branch in enumerate(report["branches"]):
            assert inferred[f"branch{i + 1}"] == ["batch", *branch["output_shape"]], branch["name"]
        return
    if target == "checkpoint":  # `summary` takes presets: its JSON of the checkpoint's spec, from the same code
        spec = load_checkpoint(checkpoint).spec
        report = summary_json(network_report(spec))
    else:
        spec = preset(target)
        report = _summary(["summary", "--preset", target, "--json"], capsys)
    plan = v3_plan(spec) if isinstance(spec, InceptionV3Spec) else layer_plan(spec)
    assert len(report["blocks"]) == len(plan.blocks()) > 0
    for block, path in zip(report["blocks"], plan.blocks()):  # "3a" is inception3a, "5b" Mixed_5b
        assert path.endswith(block["name"])
        assert inferred[path] == ["batch", *block["output_shape"]], path
        for branch in plan.branch_paths(path).values():
            if plan.step(branch).virtual:  # an Inception v3 branch of several layers: no module, no tensor name
                continue
            assert inferred[branch] == ["batch", *plan.step(branch).out_shape], branch
    assert inferred["logits"] == ["batch", report["output_shape"][0]]


# Layers whose module path must name a node (and be in its scopes), as the app and `summary` name them.
PATHS = {
    "googlenet-imagenet": (
        ["conv1/Conv", "maxpool1/MaxPool", "inception3a.branch1/Conv", "inception3a.branch2.0/Conv"]
        + ["inception3a.branch2.1/Conv", "inception3a.branch3.1/Conv", "inception3a.branch4.0/MaxPool"]
        + ["inception3a/Concat", "inception5b/Concat"]
    ),
    "inception-v3-imagenet": [
        "Conv2d_1a_3x3/Conv",
        "Mixed_5b.branch5x5_2/Conv",
        "Mixed_5b.branch_pool/Conv",
        "Mixed_7b.branch3x3_2a/Conv",
        "Mixed_7b/Concat",
    ],
    "block": ["branch1/Conv", "branch2.0/Conv", "branch2.1/Conv", "branch3.1/Conv", "branch4.0/MaxPool"],
}


@pytest.mark.parametrize("target", list(PATHS))
def test_module_paths_are_in_node_names_and_metadata(target, exported):
    model = exported.onnx(target)
    names = {n.name for n in model.graph.node}
    scopes = " ".join(p.value for n in model.graph.node for p in n.metadata_props)
    for name in PATHS[target]:
        path = name.split("/")[0]
        assert name in names and f"'{path}'" in scopes, name
    assert len(names) == len(model.graph.node)  # unique
    if target == "inception-v3-imagenet":  # a layer of a branch that is no module: its tensor has its name
        assert shapes(model)["Mixed_7b.branch3x3_2a"] == ["batch", 384, 8, 8]
    assert "stack_trace" not in scopes and str(ROOT) not in model.SerializeToString().decode("latin-1")


def test_metadata_spec_preprocessing_run_and_epoch(exported, checkpoint):
    meta = metadata(exported.onnx("googlenet-imagenet"))
    assert NetworkSpec.from_json(meta[export.KEY_NETWORK]) == network_preset("googlenet-imagenet")
    assert json.loads(meta[export.KEY_PREPROCESS])["image_size"] == [224, 224]
    assert json.loads(meta[export.KEY_INPUT])["shape"] == ["batch", 3, 224, 224]
    assert "untrained" in meta[export.KEY_WEIGHTS]
    ckpt = load_checkpoint(checkpoint)
    for meta in (metadata(exported.onnx("checkpoint")), _pt2_extra(exported("checkpoint", "pt2"))):
        assert NetworkSpec.from_json(meta[export.KEY_NETWORK]) == ckpt.spec
        info = json.loads(meta[export.KEY_CHECKPOINT])
        assert (info["run"], info["file"], info["epoch"]) == ("tiny", "best.pt", ckpt.extra["epoch"])
        assert info["classes"] == ckpt.classes
        pre = json.loads(meta[export.KEY_PREPROCESS])
        assert (pre["image_size"], pre["mean"], pre["std"]) == (
            ckpt.preprocess["image_size"],
            ckpt.preprocess["mean"],
            ckpt.preprocess["std"],
        )
    block_meta = metadata(exported.onnx("block"))
    assert BlockDesign.from_json(block_meta[export.KEY_BLOCK]) == BLOCK


# -- torch.export ----------------------------------------------------------------------------------------
def _pt2_extra(path: Path) -> dict[str, str]:
    extra = dict.fromkeys((export.KEY_NETWORK, export.KEY_BLOCK, export.KEY_PREPROCESS, export.KEY_CHECKPOINT), "")
    torch.export.load(path, extra_files=extra)
    return extra


@pytest.mark.parametrize("target", TARGETS)
def test_pt2_reloads_and_gives_the_same_output(target, exported, checkpoint):
    path = exported(target, "pt2")
    extra = dict.fromkeys((export.KEY_NETWORK, export.KEY_BLOCK, export.KEY_INPUT), "")
    loaded = torch.export.load(path, extra_files=extra).module()
    x, ref = exported.example(target)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x[:1]), ref[:1], rtol=0, atol=1e-5)
        torch.testing.assert_close(loaded(x), ref, rtol=0, atol=1e-5)
    assert json.loads(extra[export.KEY_INPUT])["shape"] == ["batch", *input_shape(target, checkpoint)]
    assert extra[export.KEY_BLOCK if target == "block" else export.KEY_NETWORK]


@pytest.fixture(scope="module")
def tiny_json(workdir) -> str:
    path = workdir / "tiny.json"
    path.write_text(TINY.to_json())
    return str(path)


def test_fixed_batch_pt2_and_other_input(workdir, tiny_json):
    out = workdir / "tiny-16x24.pt2"
    argv = ["--network", tiny_json, "--input", "3,16,24", "--batch", "2", "--format", "pt2", "--out", str(out)]
    assert main(["export", *argv]) == 0
    loaded = torch.export.load(out).module()
    x = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        ref = export.network_exportable(TINY, (3, 16, 24)).module(x)
        torch.testing.assert_close(loaded(x), ref, rtol=0, atol=1e-5)
    with pytest.raises(AssertionError, match=r"size\(\)\[0\] == 2"):  # a fixed batch of 2: the program's guard
        loaded(torch.randn(3, 3, 16, 24))


def test_a_torchvision_weights_file_exports_as_torchvision_runs_it(tmp_path):
    """--weights: torchvision's GoogLeNet as the app loads it (transform_input on), at another input size."""
    from torchvision.models import googlenet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        tv = googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False).eval()
    torch.save(tv.state_dict(), tmp_path / "googlenet-weights.pth")
    out = tmp_path / "tv.pt2"
    argv = ["--weights", str(tmp_path / "googlenet-weights.pth"), "--input", "3,64,64", "--format", "pt2"]
    assert main(["export", *argv, "--out", str(out)]) == 0
    extra = dict.fromkeys((export.KEY_NETWORK, export.KEY_PREPROCESS, export.KEY_WEIGHTS), "")
    loaded = torch.export.load(out, extra_files=extra).module()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tv(x), rtol=0, atol=1e-5)
    assert "googlenet-weights.pth" in extra[export.KEY_WEIGHTS] and "transform_input" in extra[export.KEY_WEIGHTS]
    assert json.loads(extra[export.KEY_PREPROCESS])["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert NetworkSpec.from_json(extra[export.KEY_NETWORK]).input_size == (64, 64)


# A small Inception v3 kind E (its split branches: halves concatenated) on a non-square input.
V3_FIELDS = dict(branch1x1=8, branch3x3_1=8, branch3x3_2a=6, branch3x3_2b=6, branch3x3dbl_1=8, branch3x3dbl_2=8)
V3_FIELDS |= dict(branch3x3dbl_3a=4, branch3x3dbl_3b=4, branch_pool=4)


def test_an_inception_v3_block_spec_exports_at_the_input_given(workdir, capsys):
    spec = kind_with(default_kind("E"), V3_FIELDS)
    (workdir / "v3_E.json").write_text(kind_to_json(spec))  # what the Block Designer downloads for a v3 kind
    onnx_out, pt2_out = workdir / "v3_E.onnx", workdir / "v3_E.pt2"
    block = ["export", "--block", str(workdir / "v3_E.json"), "--dynamic-batch"]
    assert main([*block, "--format", "onnx", "--out", str(onnx_out)]) == 2  # no input shape in a v3 spec
    assert "add --input C,H,W" in capsys.readouterr().err
    assert main([*block, "--input", "16,5,7", "--format", "onnx", "--out", str(onnx_out)]) == 0
    assert main([*block, "--input", "16,5,7", "--format", "pt2", "--out", str(pt2_out)]) == 0
    model = onnx.load(onnx_out)
    onnx.checker.check_model(model, full_check=True)
    sets = [a for k, v in V3_FIELDS.items() for a in ("--set", f"{k}={v}")]
    report = _summary(["block", "--kind", "E", "--input", "16,5,7", *sets, "--json"], capsys)
    inferred = shapes(model)
    assert inferred["output"] == ["batch", *report["output_shape"]]
    for branch in report["branches"]:  # each layer's output is named after its module; E's halves add up
        mods, (c, h, w) = branch["modules"], branch["output_shape"]
        ends = mods[-2:] if mods[-1].endswith("b") and mods[-2].endswith("a") else mods[-1:]
        assert sum(inferred[m][1] for m in ends) == c and all(inferred[m][2:] == [h, w] for m in ends), branch
    assert {"branch3x3_2a/Conv", "branch3x3_2b/Conv", "branch_pool/Conv"} <= {n.name for n in model.graph.node}
    module = export.v3_block_exportable(spec, (16, 5, 7)).module
    x = torch.randn(3, 16, 5, 7)
    with torch.no_grad():
        ref = module(x)
        assert max_diff(run_onnx(onnx_out.read_bytes(), x[:1]), ref[:1]) <= 1e-4
        assert max_diff(run_onnx(onnx_out.read_bytes(), x), ref) <= 1e-4
        torch.testing.assert_close(torch.export.load(pt2_out).module()(x), ref, rtol=0, atol=1e-5)
    design = json.loads(metadata(model)[export.KEY_BLOCK])
    assert design["input_shape"] == [16, 5, 7] and kind_from_json(json.dumps(design["block"])) == spec


# -- bad input ------------------------------------------------------------------------------------------
def _tiny_stem_network(path: Path) -> Path:
    """mini with an unpadded 7×7 first conv: a 4×4 input cannot go through it."""
    spec = network_preset("mini")
    spec = NetworkSpec.from_dict({**spec.to_dict(), "stem": [{"type": "conv", **dataclasses.asdict(ConvSpec(32, 7))}]})
    path.write_text(spec.to_json())
    return path


@pytest.mark.parametrize(
    "args,message",
    [
        (["--preset", "nope", "--format", "onnx"], "invalid choice: 'nope'"),
        (["--preset", "mini", "--format", "tflite"], "invalid choice: 'tflite'"),
        (["--network", "{dir}/missing.json", "--format", "onnx"], "cannot read"),
        (["--block", "{dir}/missing.json", "--format", "pt2"], "cannot read"),
        (["--block", "/dev/zero", "--format", "pt2"], "not a regular file"),
        (["--checkpoint", "{dir}/missing.pt", "--format", "onnx"], "no checkpoint file"),
        (["--weights", "{dir}/missing.pth", "--format", "onnx"], "no weights file"),
        (["--network", "{dir}/small.json", "--input", "3,4,4", "--format", "onnx"], "conv1 would output 0×0"),
        (["--preset", "mini", "--input", "3,5000,32", "--format", "pt2"], "input height must be from 1 to 4,096"),
        (["--preset", "mini", "--input", "3,32", "--format", "pt2"], "--input takes 3 comma-separated"),
        (["--checkpoint", "{ckpt}", "--input", "1,16,16", "--format", "pt2"], "take 3-channel images, not 1"),
        (["--checkpoint", "{ckpt}", "--preset", "mini", "--format", "pt2"], "carries its own network"),
        (["--weights", "{ckpt}", "--preset", "mini", "--format", "pt2"], "--weights is torchvision's GoogLeNet"),
        (["--preset", "mini", "--batch", "0", "--format", "pt2"], "batch size must be a whole number from 1"),
        (["--preset", "mini", "--batch", "257", "--format", "onnx"], "from 1 to 256, got 257"),
        (["--format", "onnx"], "choose what to export"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, message, tmp_path, checkpoint, capsys):
    _tiny_stem_network(tmp_path / "small.json")
    out = tmp_path / "out" / "model.file"
    out.parent.mkdir()
    argv = [a.format(dir=tmp_path, ckpt=checkpoint) for a in args]
    assert main(["export", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert list(out.parent.iterdir()) == []  # no file, no temp file


def test_bad_output_paths(tmp_path, capsys):
    assert main(["export", "--preset", "mini", "--format", "pt2", "--out", str(tmp_path / "no" / "m.pt2")]) == 2
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "no").exists()
    assert main(["export", "--preset", "mini", "--format", "pt2", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_failed_export_leaves_the_old_file_and_no_temp_file(tmp_path, tiny_json, capsys):
    out = tmp_path / "model.pt2"
    out.write_bytes(b"the previous export")
    assert main(["export", "--network", tiny_json, "--input", "3,0,32", "--format", "pt2", "--out", str(out)]) == 2
    assert out.read_bytes() == b"the previous export" and list(tmp_path.iterdir()) == [out]
    assert main(["export", "--network", tiny_json, "--format", "pt2", "--out", str(out)]) == 0
    assert out.read_bytes() != b"the previous export" and list(tmp_path.iterdir()) == [out]
    assert f"wrote {out}" in capsys.readouterr().out


def test_without_onnx_the_cli_says_how_to_install_it(tmp_path, tiny_json, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed: find_spec() gives None
    out = tmp_path / "m.onnx"
    assert main(["export", "--network", tiny_json, "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert export.ONNX_INSTALL in err and "\n" not in err.strip() and not out.exists()
    assert main(["export", "--network", tiny_json, "--format", "pt2", "--out", str(tmp_path / "m.pt2")]) == 0


# -- the app's buttons ---------------------------------------------------------------------------------
@pytest.fixture
def deferred(monkeypatch) -> dict[str, object]:
    """The builders the pages register for their deferred download buttons, by file id: calling one is what
    the server does when the button is clicked (MediaFileManager.execute_deferred)."""
    found: dict[str, object] = {}
    real = MediaFileManager.add_deferred

    def spy(self, data_callable, *args, **kwargs):
        file_id = real(self, data_callable, *args, **kwargs)
        found[file_id] = data_callable
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return found


def download(at: AppTest, label: str, deferred: dict[str, object]) -> bytes:
    (button,) = [b for b in at.get("download_button") if b.proto.label == label]
    assert not button.proto.disabled and button.proto.deferred_file_id  # built on click, not on the rerun
    return deferred[button.proto.deferred_file_id]()


def test_block_designer_buttons_export_the_designed_block(deferred):
    at = AppTest.from_file(str(ROOT / "pages" / "block_designer.py"), default_timeout=60)
    at.run()
    at.session_state["bd_tab"] = "Export"
    at.run()
    assert not at.exception, [e.stack_trace for e in at.exception]
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:2] == ["Download PyTorch code (.py)", "Download design (.json)"]
    assert labels[2:] == ["Download ONNX", "Download .pt2"]
    design = block_presets()["Ng's example (28×28×192, seed 002)"]
    data = download(at, "Download ONNX", deferred)
    model = onnx.load_from_string(data)
    assert BlockDesign.from_json(metadata(model)[export.KEY_BLOCK]) == design
    x = torch.randn(2, *design.input_shape)
    with torch.no_grad():
        assert max_diff(run_onnx(data, x), export.block_exportable(design).module(x)) <= 1e-4
    program = torch.export.load(io.BytesIO(download(at, "Download .pt2", deferred)))
    assert program.module()(x).shape == (2, design.block.out_channels, 28, 28)


def test_block_designer_buttons_export_an_inception_v3_kind(deferred):
    at = AppTest.from_file(str(ROOT / "pages" / "block_designer.py"), default_timeout=60)
    at.run()
    next(r for r in at.radio if r.label == "Block kind").set_value("E").run()
    assert not at.exception, [e.stack_trace for e in at.exception]
    data = download(at, "Download ONNX", deferred)
    design = json.loads(metadata(onnx.load_from_string(data))[export.KEY_BLOCK])
    spec, shape = kind_from_json(json.dumps(design["block"])), tuple(design["input_shape"])
    assert spec == default_kind("E") and shape == (1280, 8, 8)  # the page's default: torchvision's Mixed_7b
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert max_diff(run_onnx(data, x), export.v3_block_exportable(spec, shape).module(x)) <= 1e-4


def test_network_explorer_buttons_export_the_shown_network(deferred):
    at = AppTest.from_file(str(ROOT / "pages" / "network_explorer.py"), default_timeout=60)
    at.run()
    at.file_uploader(key="ne_upload").set_value(("tiny.json", TINY.to_json().encode(), "application/json")).run()
    assert not at.exception, [e.stack_trace for e in at.exception]
    assert at.session_state["ne_network"] == TINY
    data = download(at, "Download ONNX", deferred)
    assert NetworkSpec.from_json(metadata(onnx.load_from_string(data))[export.KEY_NETWORK]) == TINY
    x = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        ref = export.network_exportable(TINY).module(x)
        assert max_diff(run_onnx(data, x), ref) <= 1e-4
        program = torch.export.load(io.BytesIO(download(at, "Download .pt2", deferred)))
        torch.testing.assert_close(program.module()(x), ref, rtol=0, atol=1e-5)
    at.selectbox(key="ne_preset").set_value("inception-v3-imagenet").run()  # its buttons too (built on click)
    assert not at.exception, [e.stack_trace for e in at.exception]
    labels = {b.proto.label: b.proto.deferred_file_id for b in at.get("download_button")}
    assert labels["Download ONNX"] and labels["Download .pt2"]


def test_training_buttons_export_the_runs_best_checkpoint(deferred, checkpoint, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(checkpoint.parents[2]))
    at = AppTest.from_file(str(ROOT / "pages" / "training.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.stack_trace for e in at.exception]
    data = download(at, "Download ONNX", deferred)
    meta = metadata(onnx.load_from_string(data))
    assert json.loads(meta[export.KEY_CHECKPOINT])["run"] == "tiny"
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert max_diff(run_onnx(data, x), load_checkpoint(checkpoint).build_model()(x)) <= 1e-4
    extra = {export.KEY_CHECKPOINT: ""}
    torch.export.load(io.BytesIO(download(at, "Download .pt2", deferred)), extra_files=extra)
    assert json.loads(extra[export.KEY_CHECKPOINT])["file"] == "best.pt"


def test_without_onnx_the_button_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    at = AppTest.from_file(str(ROOT / "pages" / "block_designer.py"), default_timeout=60)
    at.run()
    at.session_state["bd_tab"] = "Export"
    at.run()
    assert not at.exception, [e.stack_trace for e in at.exception]
    (button,) = [b for b in at.get("download_button") if b.proto.label == "Download ONNX"]
    assert button.proto.disabled
    assert any(export.ONNX_INSTALL in c.value for c in at.caption)
    (pt2,) = [b for b in at.get("download_button") if b.proto.label == "Download .pt2"]
    assert not pt2.proto.disabled


def test_other_input_shape_of_a_network_exports_at_that_shape():
    ex = export.network_exportable(network_preset("d2l-fashion96"), (1, 64, 48))
    assert ex.input_shape == (1, 64, 48)
    assert NetworkSpec.from_json(ex.metadata[export.KEY_NETWORK]) == with_input(
        network_preset("d2l-fashion96"), 1, (64, 48)
    )
