"""Command line: python -m gnet block | summary | receptive-field | compare | sweep | train | explain | anatomy | visualize |
export.

Bad arguments exit with status 2 and a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gnet.analysis import BlockReport, NetworkReport, block_report, plan_report
from gnet.compare import Comparison, Side, compare, load_design, read_design_file
from gnet.data import DATASET_CHOICES, FOLDER, NAMED_DATASETS
from gnet.plan import Plan, layer_plan
from gnet.spec import NETWORK_PRESETS, BlockDesign, BlockSpec, NetworkSpec, SpecError, network_preset, with_input
from gnet.v3 import (
    KIND_SPECS,
    KINDS,
    MODELS,
    V3_PRESETS,
    KindSpec,
    default_kind,
    kind_fields,
    kind_report,
    kind_with,
    v3_plan,
)

if TYPE_CHECKING:  # the CLI imports torch only for the commands that need it
    import torch

    from gnet.export import Exportable
    from gnet.net import Net
    from gnet.pretrained import ModelSource


MODEL_HELP = "the network family: googlenet (default) or inception-v3 (torchvision's IMAGENET1K_V1)"


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


def _ints(text: str, n: int, what: str) -> tuple[int, ...]:
    parts = text.split(",")
    if len(parts) != n:
        raise UsageError(f"{what} takes {n} comma-separated whole numbers, got {text!r}")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"{what} takes whole numbers, got {text!r}") from None


def _v3_kind(argv: list[str]) -> bool:
    """Whether `block` is asked for an Inception v3 kind (then the v1 flags --b1..--b4 are not required)."""
    for i, a in enumerate(argv):
        value = (
            a.partition("=")[2]
            if a.startswith("--kind=")
            else argv[i + 1]
            if a == "--kind" and i + 1 < len(argv)
            else None
        )
        if value is not None:
            return value != "v1"
    return False


def make_parser(with_train: bool = True, v3_kind: bool = False) -> Parser:
    """with_train=False leaves the train options out, so `block` and `summary`
    (pure arithmetic) start without importing torch and the trainer. v3_kind: `block --kind A..E`, whose
    channels come from --set instead of v1's required --b1..--b4."""
    p = Parser(prog="python -m gnet", description="Inception Explorer: analyse and train GoogLeNets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    b = sub.add_parser("block", help="shapes, params and mult-adds of one Inception block")
    b.add_argument("--input", required=True, metavar="C,H,W")
    b.add_argument(
        "--kind",
        choices=KINDS,
        help="v1 (GoogLeNet's block, the default: --b1..--b4) or Inception v3's A-E, whose defaults are "
        "torchvision's " + ", ".join(f"{k}: {KIND_SPECS[k].BLOCK}" for k in KIND_SPECS),
    )
    b.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a v3 kind's field (out-channels of the conv of that name; C's n): "
        + "; ".join(f"{k}: {', '.join(kind_fields(k))}" for k in KIND_SPECS),
    )
    b.add_argument("--b1", required=not v3_kind, metavar="N")
    b.add_argument("--b2", required=not v3_kind, metavar="R,N")
    b.add_argument("--b3", required=not v3_kind, metavar="R,N")
    b.add_argument("--b4", required=not v3_kind, metavar="N")
    b.add_argument("--no-reduce", action="store_true", help="the naive module: no 1×1 reductions (R ignored)")
    b.add_argument("--b3-kernel", type=int, choices=(3, 5), default=5)
    b.add_argument("--factorize", action="store_true", help="b3 as two stacked 3×3 convs")
    b.add_argument("--bn", action="store_true", help="BatchNorm after each conv, no conv bias")
    b.add_argument("--json", action="store_true")

    s = sub.add_parser("summary", help="layer by layer summary of a GoogLeNet preset")
    s.add_argument("--preset", required=True, choices=[*NETWORK_PRESETS, *V3_PRESETS])
    s.add_argument("--input", metavar="C,H,W")
    s.add_argument("--torchinfo", action="store_true", help="also print torchinfo's summary of the real module")
    s.add_argument("--json", action="store_true")

    rf = sub.add_parser("receptive-field", help="receptive field of every layer and branch output of a preset")
    rf.add_argument("--preset", required=True, choices=[*NETWORK_PRESETS, *V3_PRESETS])
    rf.add_argument("--json", action="store_true")
    c = sub.add_parser("compare", help="two block designs or two networks (the app's JSON exports): A, B, Δ = B − A")
    c.add_argument("a", metavar="A.json")
    c.add_argument("b", metavar="B.json")
    c.add_argument("--branches", action="store_true", help="networks: also a row per branch of every block")
    c.add_argument("--json", action="store_true")

    w = sub.add_parser("sweep", help="train design variants of one network as ordinary runs in one sweep folder")
    net = w.add_mutually_exclusive_group()
    net.add_argument("--preset", choices=list(NETWORK_PRESETS), help="the base network")
    net.add_argument("--spec", metavar="FILE.json", help="the base network, as the Network Explorer exports it")
    w.add_argument("--edits", metavar="FILE.json", help="the edited network the 'edits' variant trains")
    w.add_argument(
        "--variants",
        default="base",
        help="comma-separated: base, edits, no-reduce, factorize, b3-3x3, "
        "width=F (e.g. width=0.5, width=2), aux=on, aux=off",
    )
    w.add_argument(
        "--dataset",
        default="synthetic",
        help=", ".join([*(f"{n} (default)" if n == "synthetic" else n for n in NAMED_DATASETS), f"{FOLDER}NAME"]),
    )
    w.add_argument("--recipe", default="improved", help="seed or improved (default)")
    w.add_argument("--epochs", type=int, default=3)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--image-size", type=int, default=None)
    w.add_argument("--batch-size", type=int, default=None)
    w.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    w.add_argument("--synthetic-train", type=int, default=None)
    w.add_argument("--synthetic-test", type=int, default=None)
    w.add_argument("--max-train-samples", type=int, default=None)
    w.add_argument("--max-test-samples", type=int, default=None)
    w.add_argument("--parallel", type=int, default=None, help="runs at once (default 1; never above GNET_MAX_RUNS)")
    w.add_argument("--sweep-dir", required=True, help="the sweep's folder; its runs are its subfolders")
    w.add_argument("--resume", action="store_true", help="continue a killed or stopped sweep in --sweep-dir")
    w.add_argument("--json", action="store_true", help='print {"rows": [...]} at the end, one row per variant')
    w.add_argument("--quiet", action="store_true", help="no progress lines")
    e = sub.add_parser("explain", help="which branch of which block carries the evidence for a class")
    e.add_argument("image", metavar="IMAGE")
    _add_model_source(e, "random weights (seed 0): the numbers mean nothing")
    e.add_argument("--target", metavar="INDEX_OR_NAME", help="class index or name (default: the top-1 class)")
    e.add_argument("--model", choices=MODELS, default="googlenet", help=MODEL_HELP)
    e.add_argument("--json", action="store_true")

    an = sub.add_parser("anatomy", help="how one unit of one branch is computed from the image, layer by layer")
    an.add_argument("image", metavar="IMAGE")
    an.add_argument("--block", required=True, metavar="PATH", help="an Inception block, e.g. inception3a or 3a")
    an.add_argument("--branch", required=True, metavar="bK", help="b1, b2, ... in concatenation order")
    an.add_argument("--channel", required=True, type=int, metavar="C", help="a channel of the branch's output")
    an.add_argument("--at", required=True, metavar="ROW,COL", help="the unit's position on the branch's output map")
    _add_model_source(an, "random weights (seed 0): the numbers mean nothing")
    an.add_argument("--model", choices=MODELS, default="googlenet", help=MODEL_HELP)
    an.add_argument("--json", action="store_true")

    v = sub.add_parser("visualize", help="activation maximisation: the image a channel, branch or block wants to see")
    v.add_argument("--layer", metavar="BLOCK", help="an Inception block, e.g. inception4b or 4b")
    v.add_argument("--branch", choices=("b1", "b2", "b3", "b4"), help="default: the whole block (v3's B, D: b1-b3)")
    v.add_argument("--channel", type=int, metavar="N", help="in the branch (without --branch: in the block output)")
    _add_model_source(v, "random weights (seed 0)")
    v.add_argument("--model", choices=MODELS, default="googlenet", help=MODEL_HELP)
    v.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    v.add_argument("--steps", type=int, default=256)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--lr", type=float, default=0.05)
    v.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    v.add_argument("--out", metavar="FILE.png")
    v.add_argument("--json", action="store_true")
    v.add_argument("--job-dir", help=argparse.SUPPRESS)  # the app's background jobs (gnet.featurevis.start_job)

    x = sub.add_parser("export", help="a network or block as ONNX (Netron, ONNX Runtime) or torch.export (.pt2)")
    xnet = x.add_mutually_exclusive_group()
    xnet.add_argument("--preset", choices=[*NETWORK_PRESETS, *V3_PRESETS])
    xnet.add_argument("--network", metavar="FILE.json", help="a network, as the Network Explorer exports it")
    xnet.add_argument("--block", metavar="FILE.json", help="a block design, as the Block Designer exports it")
    xsrc = x.add_mutually_exclusive_group()
    xsrc.add_argument("--weights", metavar="FILE", help="a torchvision GoogLeNet state_dict (default: random weights)")
    xsrc.add_argument("--checkpoint", metavar="FILE", help="a checkpoint of a training run (carries its network)")
    x.add_argument("--format", required=True, choices=("onnx", "pt2"))
    x.add_argument("--out", required=True, metavar="PATH")
    x.add_argument("--input", metavar="C,H,W", help="another input shape (default: the network's or block's own)")
    xbatch = x.add_mutually_exclusive_group()
    xbatch.add_argument("--batch", type=int, default=1, metavar="N", help="the fixed batch size (default 1)")
    xbatch.add_argument("--dynamic-batch", action="store_true", help="any batch size (a symbolic 'batch' dimension)")

    t = sub.add_parser("train", help="train a network; writes a run directory")
    if with_train:
        try:
            from gnet.train import add_train_arguments
        except ImportError:  # the trainer is optional until it lands
            add_train_arguments = None
        if add_train_arguments is not None:
            add_train_arguments(t)
    return p


def _v3_block(args: argparse.Namespace) -> int:
    c, h, w = _ints(args.input, 3, "--input")
    given = [f"--{n.replace('_', '-')}" for n in ("b1", "b2", "b3", "b4") if getattr(args, n) is not None]
    given += [
        f for f, on in (("--no-reduce", args.no_reduce), ("--factorize", args.factorize), ("--bn", args.bn)) if on
    ]
    if given:
        raise UsageError(f"{given[0]} is for --kind v1; kind {args.kind} takes --set FIELD=VALUE")
    values: dict[str, int] = {}
    for item in args.set:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise UsageError(
                f"--set takes FIELD=VALUE, got {item!r}; {args.kind}'s fields: {', '.join(kind_fields(args.kind))}"
            )
        if field not in kind_fields(args.kind):
            raise UsageError(
                f"kind {args.kind} has no field {field!r}; its fields are {', '.join(kind_fields(args.kind))}"
            )
        (values[field],) = _ints(text, 1, f"--set {field}")
    spec = kind_with(default_kind(args.kind), values)
    report = kind_report(spec, (c, h, w))
    print(json.dumps(v3_block_json(report, spec)) if args.json else v3_block_text(report, spec))
    return 0


def v3_block_json(r: BlockReport, spec: KindSpec) -> dict:
    """block_json's keys, plus the kind, its fields and each branch's modules (E's split branches: their halves)."""
    out = block_json(r)
    out = {"kind": spec.KIND, "fields": dataclasses.asdict(spec), **out}
    for b, row in zip(r.branches, out["branches"]):
        row["modules"] = [x.name for x in b.layers]
        if b.halves:
            row["halves"] = [
                {
                    "name": x.name,
                    "label": x.kind,
                    "output_shape": list(x.output_shape),
                    "params": x.cost.params,
                    "mult_adds": x.cost.mult_adds,
                    "multiplications": x.cost.multiplications,
                }
                for x in b.halves
            ]
    return out


def v3_block_text(r: BlockReport, spec: KindSpec) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(spec).items())
    halves = [
        f"  {b.name} halves (concatenated): "
        + " + ".join(f"{x.name} {x.kind} {_shape(x.output_shape)}" for x in b.halves)
        for b in r.branches
        if b.halves
    ]
    return "\n".join([f"Inception v3 block {spec.TITLE}: {fields}", block_text(r), *halves])


def _block(args: argparse.Namespace) -> int:
    if args.kind not in (None, "v1"):
        return _v3_block(args)
    if args.set:
        raise UsageError("--set is for the Inception v3 kinds A-E; v1 takes --b1, --b2, --b3 and --b4")
    c, h, w = _ints(args.input, 3, "--input")
    b2r, b2 = _ints(args.b2, 2, "--b2")
    b3r, b3 = _ints(args.b3, 2, "--b3")
    (b1,) = _ints(args.b1, 1, "--b1")
    (b4,) = _ints(args.b4, 1, "--b4")
    spec = BlockSpec(
        b1=b1,
        b2_reduce=b2r,
        b2=b2,
        b3_reduce=b3r,
        b3=b3,
        b4=b4,
        reduce=not args.no_reduce,
        b3_kernel=args.b3_kernel,
        factorize=args.factorize,
        batch_norm=args.bn,
    )
    report = block_report(spec, (c, h, w))
    print(json.dumps(block_json(report)) if args.json else block_text(report))
    return 0


def block_json(r: BlockReport) -> dict:
    def costs(cost) -> dict:
        return {"params": cost.params, "mult_adds": cost.mult_adds, "multiplications": cost.multiplications}

    return {
        "input_shape": list(r.input_shape),
        "output_shape": list(r.output_shape),
        **costs(r.cost),
        "branches": [
            {"name": b.name, "label": b.label, "output_shape": list(b.output_shape), **costs(b.cost)}
            for b in r.branches
        ],
    }


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    )


def _shape(s: tuple[int, ...]) -> str:
    return "×".join(map(str, s))


def block_text(r: BlockReport) -> str:
    rows = [["branch", "output (C×H×W)", "params", "mult-adds", "multiplications"]]
    for b in r.branches:
        rows.append(
            [
                f"{b.name} {b.label}",
                _shape(b.output_shape),
                f"{b.cost.params:,}",
                f"{b.cost.mult_adds:,}",
                f"{b.cost.multiplications:,}",
            ]
        )
    rows.append(
        ["total", _shape(r.output_shape), f"{r.cost.params:,}", f"{r.cost.mult_adds:,}", f"{r.cost.multiplications:,}"]
    )
    return f"input {_shape(r.input_shape)} (C×H×W); output H×W×C: {r.concat_text()}\n" + _table(rows)


def _preset_plan(name: str, shape: tuple[int, ...] | None = None) -> Plan:
    """The layer plan of a GoogLeNet or an Inception v3 preset, at another input (C, H, W) if given."""
    if name in V3_PRESETS:
        spec = V3_PRESETS[name]()
        if shape:
            spec = dataclasses.replace(spec, in_channels=shape[0], input_size=tuple(shape[1:]))
        return v3_plan(spec)
    spec = network_preset(name)
    return layer_plan(with_input(spec, shape[0], tuple(shape[1:])) if shape else spec)


def _summary(args: argparse.Namespace) -> int:
    plan = _preset_plan(args.preset, _ints(args.input, 3, "--input") if args.input else None)
    report = plan_report(plan)
    if args.json:
        print(json.dumps(summary_json(report)))
    else:
        print(summary_text(report))
        if args.torchinfo:
            from gnet.network import torchinfo_summary  # torch only when asked: `summary` starts without it

            model = None
            if args.preset in V3_PRESETS:
                from gnet.v3_modules import InceptionV3

                model = InceptionV3(plan.spec)
            print(str(torchinfo_summary(plan.spec, model=model)))
    return 0


def summary_json(r: NetworkReport) -> dict:
    return {
        "preset": r.spec.name,
        "input_shape": list(r.input_shape),
        "output_shape": list(r.output_shape),
        "params": r.params_total,
        "mult_adds": r.cost.mult_adds,
        "multiplications": r.cost.multiplications,
        "blocks": [
            {"name": n, "output_shape": list(b.output_shape), "params": b.cost.params} for n, b in r.blocks.items()
        ],
    }


def summary_text(r: NetworkReport) -> str:
    rows = [["layer", "type", "output (C×H×W)", "params", "mult-adds"]]
    for row in r.summary_rows():
        rows.append([row.name, row.kind, _shape(row.output_shape), f"{row.cost.params:,}", f"{row.cost.mult_adds:,}"])
    rows.append(["total", "", _shape(r.output_shape), f"{r.params_total:,}", f"{r.cost.mult_adds:,}"])
    note = " (aux heads: training only, mult-adds not in the total)" if r.aux_cost.params else ""
    return f"{r.spec.name}: input {_shape(r.input_shape)}{note}\n" + _table(rows)


def _receptive_field(args: argparse.Namespace) -> int:
    plan = _preset_plan(args.preset)
    if args.preset in V3_PRESETS:
        print(
            json.dumps(receptive_field_json_hw(plan, args.preset))
            if args.json
            else receptive_field_text_hw(plan, args.preset)
        )
        return 0
    print(json.dumps(receptive_field_json(plan, args.preset)) if args.json else receptive_field_text(plan, args.preset))
    return 0


def receptive_field_json_hw(plan: Plan, preset: str) -> dict:
    """Per axis, for networks with non-square kernels (Inception v3): size_hw, jump_hw, start_hw as [h, w];
    size, jump and start where both axes agree, else null. Virtual steps (functional pools, branches that are
    no module) are named as gnet.v3 names them."""
    layers = []
    for s in plan.steps:
        if s.rf is None:
            continue
        square = s.rf_w is None
        layers.append(
            {
                "name": s.path,
                "kind": s.kind,
                "block": s.block,
                "branch": s.branch,
                "size": s.rf.size if square else None,
                "jump": s.rf.jump if square else None,
                "start": s.rf.start if square else None,
                "size_hw": list(s.size_hw),
                "jump_hw": list(s.jump_hw),
                "start_hw": list(s.start_hw),
                **({"half": s.half} if s.half else {}),
            }
        )
    return {"preset": preset, "input": list(plan.input_shape), "layers": layers}


def receptive_field_text_hw(plan: Plan, preset: str) -> str:
    rows = [["layer", "block", "branch", "size (h×w)", "jump (h×w)", "start (h, w)"]]
    rows += [
        [
            s.path,
            s.block or "",
            (s.branch or "") + (f" half {s.half}" if s.half else ""),
            _shape(s.size_hw),
            _shape(s.jump_hw),
            ", ".join(f"{v:g}" for v in s.start_hw),
        ]
        for s in plan.steps
        if s.rf is not None
    ]
    return (
        f"{preset}: input {_shape(plan.input_shape)}; receptive field in input pixels per axis (a 1×7 conv widens "
        "it along the width only)\n" + _table(rows)
    )


def receptive_field_json(plan: Plan, preset: str) -> dict:
    """Every step with a receptive field, in module order (containers before their layers)."""
    return {
        "preset": preset,
        "input": list(plan.input_shape),
        "layers": [
            {
                "name": s.path,
                "block": s.block,
                "branch": s.branch,
                "size": s.rf.size,
                "jump": s.rf.jump,
                "start": s.rf.start,
            }
            for s in plan.steps
            if s.rf is not None
        ],
    }


def receptive_field_text(plan: Plan, preset: str) -> str:
    rows = [["layer", "block", "branch", "size", "jump", "start"]]
    rows += [
        [s.path, s.block or "", s.branch or "", str(s.rf.size), str(s.rf.jump), f"{s.rf.start:g}"]
        for s in plan.steps
        if s.rf is not None
    ]
    missing = [s.path for s in plan.steps if s.rf is None and s.depth == 0]
    note = (
        f"\nno single receptive field for {', '.join(missing)}: adaptive pooling with unequal windows"
        if missing
        else ""
    )
    return (
        f"{preset}: input {_shape(plan.input_shape)}; receptive field in input pixels (size, jump = "
        "cumulative stride, start = centre of the first unit, pixel index from 0)\n" + _table(rows) + note
    )


# -- compare ------------------------------------------------------------------------------------
def _compare(args: argparse.Namespace) -> int:
    designs = []
    for name in (args.a, args.b):
        try:
            text = read_design_file(name)  # type and size checked before a byte is read (/dev/zero, a FIFO)
        except SpecError as e:
            raise UsageError(str(e)) from None
        try:
            designs.append(load_design(text))
        except SpecError as e:
            raise UsageError(f"{name}: {e}") from None
    result = compare(*designs, detail="branches" if args.branches else "layers", label_a=args.a, label_b=args.b)
    print(json.dumps(result.as_dict()) if args.json else compare_text(result))
    return 0


def _signed(v: int | None) -> str:
    return "" if v is None else f"{v:+,}" if v else "0"


def compare_text(c: Comparison) -> str:
    def cell(side: Side | None, metric: str) -> str:
        if side is None:
            return ""
        v = getattr(side, metric)
        return "" if v is None else f"{v:,}"

    head = ["row", "type", "A (C×H×W)", "B (C×H×W)"]
    for m in ("params", "mult-adds", "RF"):
        head += [f"{m} A", f"{m} B", f"Δ {m}"]
    rows = [head]
    for r in (*c.rows, c.total):
        line = [r.name, r.kind, _shape(r.a.shape) if r.a else "–", _shape(r.b.shape) if r.b else "–"]
        for m in ("params", "mult_adds", "rf"):
            line += [cell(r.a, m), cell(r.b, m), _signed(r.delta(m))]
        rows.append(line)
    return (
        f"A: {c.label_a}\nB: {c.label_b}\n{c.kind} comparison, Δ = B − A; RF = receptive field in "
        + ("input pixels" if c.kind == "network" else "the block's input pixels")
        + "\n"
        + _table(rows)
    )


# -- sweep --------------------------------------------------------------------------------------
def _spec_file(name: str) -> NetworkSpec:
    try:
        text = read_design_file(name)
    except SpecError as e:
        raise UsageError(str(e)) from None
    try:
        return NetworkSpec.from_json(text)
    except SpecError as e:
        raise UsageError(f"{name}: {e}") from None


def _check_sweep_args(args: argparse.Namespace) -> None:
    """What can be refused before a sweep folder is written or a run is started."""
    path = Path(args.sweep_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--sweep-dir {args.sweep_dir!r} is a file, not a folder")
    if not path.exists() and path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"--sweep-dir {args.sweep_dir!r}: {str(path.parent)!r} is a file, not a folder")
    if args.parallel is not None and args.parallel < 1:
        raise UsageError(f"--parallel must be 1 or more (runs at once), got {args.parallel}")
    if args.resume:
        return
    from gnet.data import FOLDER_NAME, list_image_folders

    dataset = args.dataset
    if dataset.startswith("folder:"):
        folder = dataset.removeprefix("folder:")
        if not FOLDER_NAME.fullmatch(folder) or folder in (".", ".."):
            raise UsageError(
                f"--dataset {dataset!r}: an image folder is named by a folder directly inside the data folder "
                "(GNET_DATA_DIR), in letters, digits, '.', '_' or '-' (no '/' or '..')"
            )
        if folder not in list_image_folders():
            raise UsageError(f"--dataset {dataset!r}: no image folder {folder!r} in the data folder (GNET_DATA_DIR)")
    elif dataset not in NAMED_DATASETS:
        raise UsageError(f"--dataset {dataset!r} is unknown; choose {DATASET_CHOICES}")


def _sweep(args: argparse.Namespace) -> int:
    from gnet import runs, sweeps  # imports torch: only for this command

    path = Path(args.sweep_dir)
    _check_sweep_args(args)
    try:
        if args.resume:
            sweep = sweeps.read(path)
        else:
            if not (args.preset or args.spec):
                raise UsageError("choose the base network with --preset NAME or --spec FILE.json")
            base = network_preset(args.preset) if args.preset else _spec_file(args.spec)
            settings = sweeps.Settings(
                **{
                    k: getattr(args, k)
                    for k in (
                        "dataset",
                        "recipe",
                        "epochs",
                        "seed",
                        "image_size",
                        "batch_size",
                        "device",
                        "synthetic_train",
                        "synthetic_test",
                        "max_train_samples",
                        "max_test_samples",
                    )
                }
            )
            sweep = sweeps.create(
                path,
                base,
                sweeps.parse_variants(args.variants),
                settings,
                _spec_file(args.edits) if args.edits else None,
                args.parallel or 1,
            )
        seen: dict[str, tuple] = {}

        def progress(rows: list) -> None:
            for r in rows:
                key = (r.state, r.epochs_done)
                if not args.quiet and seen.get(r.variant) != key:
                    acc = f", best test acc {r.best_test_acc:.2%}" if r.best_test_acc is not None else ""
                    print(
                        f"{time.strftime('%H:%M:%S')} {r.variant}: {r.state}, {r.epochs_done} epoch(s){acc}",
                        file=sys.stderr,
                        flush=True,
                    )
                seen[r.variant] = key

        rows = sweeps.run(sweep, resume=args.resume, parallel=args.parallel, on_update=progress)
    except (sweeps.SweepError, runs.RunError) as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps({"sweep_dir": str(path), "rows": [r.as_dict() for r in rows]}))
    else:
        table = [["variant", "state", "params", "mult-adds", "best test acc", "images/s", "seconds", "run"]]
        for r in rows:
            table.append(
                [
                    r.variant,
                    r.state,
                    f"{r.params:,}",
                    f"{r.mult_adds:,}",
                    "" if r.best_test_acc is None else f"{r.best_test_acc:.2%}",
                    "" if r.images_per_s is None else f"{r.images_per_s:,.0f}",
                    "" if r.seconds is None else f"{r.seconds:.1f}",
                    r.run_dir,
                ]
            )
        print(_table(table))
    if any(r.state != "finished" for r in rows):
        print("the sweep did not finish every run; continue it with --resume", file=sys.stderr)
        return 1
    return 0


def _add_model_source(p: argparse.ArgumentParser, untrained_help: str) -> None:
    """explain, anatomy, visualize: --weights, --checkpoint or --untrained (one at most; _model_source reads them)."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="FILE", help="a torchvision GoogLeNet state_dict (default: the pretrained)")
    src.add_argument("--checkpoint", metavar="FILE", help="a checkpoint of this project's training runs")
    src.add_argument("--untrained", action="store_true", help=untrained_help)


def _model_source(args: argparse.Namespace) -> ModelSource:
    """explain / visualize: --weights, --checkpoint, --untrained, or torchvision's pretrained weights (of --model)."""
    from gnet.pretrained import ModelSource, ensure_pretrained_weights, ensure_v3_weights

    if getattr(args, "model", "googlenet") == "inception-v3":
        if args.checkpoint:
            raise UsageError("--model inception-v3 takes --weights FILE, --untrained or the pretrained weights")
        if args.weights:
            return ModelSource("weights", args.weights, model="inception-v3")
        if args.untrained:
            return ModelSource("untrained", model="inception-v3")
        status = ensure_v3_weights(timeout=None)
        if not status.ok:
            raise UsageError(f"{status.message}; use --weights FILE or --untrained")
        return ModelSource("pretrained", model="inception-v3")

    if args.weights:
        return ModelSource("weights", args.weights)
    if args.checkpoint:
        return ModelSource("checkpoint", args.checkpoint)
    if args.untrained:
        return ModelSource("untrained")
    status = ensure_pretrained_weights(timeout=None)  # the CLI waits for a download (with stall detection)
    if not status.ok:
        raise UsageError(f"{status.message}; use --weights FILE, --checkpoint FILE or --untrained")
    return ModelSource("pretrained")


def _network_and_input(args: argparse.Namespace) -> tuple[Net, torch.Tensor]:
    """explain / anatomy: the network the model flags choose and args.image prepared as its input; an unreadable
    image or network is a UsageError."""
    # torch is imported here, not at the top, so `block` and `summary` start without it.
    from gnet.checkpoints import CheckpointError
    from gnet.devices import pick_device
    from gnet.images import ImageError, load, preprocess
    from gnet.pretrained import load_model

    try:
        with open(args.image, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read the image {args.image!r}: {e.strerror or e}") from None
    source = _model_source(args)
    try:
        image = load(data).image
        lm = load_model(source, pick_device())
        _, x = preprocess(image, lm.preprocess)
    except ImageError as e:
        raise UsageError(f"cannot use the image {args.image!r}: {e}") from None
    except CheckpointError as e:
        raise UsageError(str(e).replace("\n", " ")) from None
    return lm, x


def _explain(args: argparse.Namespace) -> int:
    from gnet.attribution import AttributionError, explain, explain_text

    lm, x = _network_and_input(args)
    try:
        ex = explain(lm, x, args.target, lm.classes)
    except AttributionError as e:
        raise UsageError(str(e).replace("\n", " ")) from None
    print(json.dumps(ex.to_json()) if args.json else explain_text(ex, lm.label))
    return 0


def _anatomy(args: argparse.Namespace) -> int:
    # torch is imported here, not at the top, so `block` and `summary` start without it.
    from gnet.anatomy import AnatomyError, anatomy, anatomy_text
    from gnet.plan import parse_label

    row, col = _ints(args.at, 2, "--at")
    lm, x = _network_and_input(args)
    try:
        block, _ = parse_label(lm.plan, args.block)
        a = anatomy(lm, x, block, args.branch, args.channel, row, col)
    except KeyError as e:  # parse_label: the message names the valid blocks
        raise UsageError(str(e.args[0])) from None
    except AnatomyError as e:
        raise UsageError(str(e).replace("\n", " ")) from None
    print(json.dumps(a.to_json()) if args.json else anatomy_text(a, lm.label))
    return 0


def _check_writable(out: Path) -> None:
    """A file can be created beside `out` (what the atomic write does); permissions alone say too little (root,
    read-only mounts, /proc)."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"):
            pass
    except OSError as e:
        raise UsageError(f"--out: cannot write in the folder {str(out.parent)!r}: {e.strerror}") from None
    if out.exists() and not out.is_file():
        raise UsageError(f"--out {str(out)!r} exists and is not a regular file")


def _visualize(args: argparse.Namespace) -> int:
    # torch is imported here, not at the top, so `block` and `summary` start without it.
    import torch

    from gnet import featurevis as fv
    from gnet.checkpoints import CheckpointError, atomic_write_bytes
    from gnet.devices import inference_threads, pick_device
    from gnet.pretrained import ModelSource, load_model

    try:
        device = pick_device(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.job_dir:  # a background job started by the app: its status file says what happens
        torch.set_num_threads(inference_threads())  # the app's sessions share the cores with it
        path = Path(args.job_dir)
        try:
            kind, model_path = fv.job_source(path)  # job.json checked: its shape, the model path's confinement
            lm = load_model(ModelSource(kind, model_path, fv.job_model(path)), device)
            fv.run_job(path, lm.module, lm.preprocess)
        except (CheckpointError, fv.VisError) as e:
            fv.write_job_status(path, "failed", pid=os.getpid(), message=str(e).replace("\n", " "))
            return 2
        except BaseException as e:
            fv.write_job_status(
                path,
                "failed",
                pid=os.getpid(),
                message=f"the job failed ({type(e).__name__}); its log.txt in the cache folder has the details",
            )
            raise
        return 0
    if not args.layer:
        raise UsageError("visualize needs --layer (e.g. --layer inception4b)")
    if not args.out:
        raise UsageError("visualize needs --out FILE.png")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {args.out!r}")
    if not out.parent.is_dir():
        raise UsageError(f"--out: the folder {str(out.parent)!r} does not exist")
    if out.is_dir():
        raise UsageError(f"--out {args.out!r} is a folder; give a file name ending in .png")
    _check_writable(out)  # before minutes of optimisation, not after
    source = _model_source(args)
    cfg = fv.VisConfig(size=args.size, steps=args.steps, seed=args.seed, lr=args.lr)
    try:
        cfg.validate()
        lm = load_model(source, device)
        layer = args.layer  # "4b" or "inception4b": resolve() names the module
        if args.branch is None and args.channel is not None:
            target = fv.from_output_channel(lm, layer, args.channel)
        else:
            target = fv.Target(layer, args.branch, args.channel)
        resolved = fv.resolve(lm, target)

        def progress(step: int, steps: int, values: list[float]) -> None:
            if not args.json and (step == steps or step % max(1, steps // 20) == 0):
                print(
                    f"\r{resolved.caption()}: step {step}/{steps}, activation {values[0]:.3f}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )

        (vis,) = fv.visualize(fv.private_copy(lm.module), lm.preprocess, [resolved.target], cfg, progress)
    except (CheckpointError, fv.VisError) as e:
        raise UsageError(str(e).replace("\n", " ")) from None
    if not args.json:
        print(file=sys.stderr)
    try:
        atomic_write_bytes(out, vis.png())
    except OSError as e:  # the folder changed while the image was made
        raise UsageError(f"--out: cannot write {args.out!r}: {e.strerror}") from None
    result = fv.result_json(vis)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{resolved.caption()} of {lm.label}: mean activation {vis.activation_start:.4f} → "
            f"{vis.activation_end:.4f} in {vis.steps} steps, {vis.seconds:.1f} s on {vis.device}; wrote {out}"
        )
    return 0


# -- export -------------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    # torch (and onnx) are imported here, not at the top, so `block` and `summary` start without them.
    from gnet.checkpoints import CheckpointError
    from gnet.export import (
        ExportError,
        check_out_path,
        checkpoint_exportable,
        export_file,
        network_exportable,
        onnx_available,
        onnx_missing_message,
        weights_exportable,
    )

    shape = _ints(args.input, 3, "--input") if args.input else None
    if args.checkpoint and (args.preset or args.network or args.block):
        raise UsageError("--checkpoint carries its own network: leave out --preset, --network and --block")
    if args.weights and (args.network or args.block or args.preset not in (None, *TORCHVISION_PRESETS)):
        raise UsageError(
            f"--weights is torchvision's GoogLeNet: use it alone or with --preset {TORCHVISION_PRESETS[0]}"
        )
    if not (args.preset or args.network or args.block or args.checkpoint or args.weights):
        raise UsageError(
            "choose what to export: --preset NAME, --network FILE.json, --block FILE.json or --checkpoint FILE"
        )
    try:
        out = check_out_path(args.out)
        if args.format == "onnx" and not onnx_available():
            raise ExportError(onnx_missing_message())
        if args.checkpoint:
            ex = checkpoint_exportable(args.checkpoint, shape)
        elif args.weights:
            ex = weights_exportable(args.weights, shape)
        elif args.block:
            ex = _block_file(args.block, shape)
        else:
            if args.preset in V3_PRESETS:
                spec = V3_PRESETS[args.preset]()
            else:
                spec = network_preset(args.preset) if args.preset else _spec_file(args.network)
            ex = network_exportable(spec, shape)
        export_file(ex, args.format, out, args.batch, args.dynamic_batch)
    except (CheckpointError, ExportError) as e:
        raise UsageError(str(e).replace("\n", " ")) from None
    batch = "any batch" if args.dynamic_batch else f"batch {args.batch}"
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({args.format}, {ex.label}, input {batch}×{_shape(ex.input_shape)}, {size:.1f} MB)")
    return 0


TORCHVISION_PRESETS = ("googlenet-imagenet", "googlenet-imagenet-aux")


def _block_file(name: str, shape: tuple[int, ...] | None) -> Exportable:
    """The Block Designer's JSON: a v1 design (block + input shape), or an Inception v3 kind's spec
    (it has a "kind" and no input shape: --input gives it)."""
    from gnet.export import block_exportable, v3_block_exportable
    from gnet.v3 import kind_from_json

    try:
        raw = read_design_file(name)  # bounded: a device, a pipe or a huge file exits 2 at once
    except SpecError as e:
        raise UsageError(str(e)) from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None  # BlockDesign.from_json says what is wrong with it
    try:
        if isinstance(data, dict) and "kind" in data:
            if shape is None:
                raise UsageError(f"{name} is an Inception v3 block spec without an input shape: add --input C,H,W")
            return v3_block_exportable(kind_from_json(raw), shape)
        return block_exportable(BlockDesign.from_json(raw), shape)
    except SpecError as e:
        raise UsageError(f"{name}: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        v3_kind = argv[:1] == ["block"] and _v3_kind(argv)
        args = make_parser(with_train=argv[:1] == ["train"], v3_kind=v3_kind).parse_args(argv)
        if args.command == "block":
            return _block(args)
        if args.command == "summary":
            return _summary(args)
        if args.command == "receptive-field":
            return _receptive_field(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "anatomy":
            return _anatomy(args)
        if args.command == "visualize":
            return _visualize(args)
        if args.command == "export":
            return _export(args)
        try:
            from gnet.checkpoints import CheckpointError
            from gnet.train import run_from_args
        except ImportError:
            print("error: training is not available in this build", file=sys.stderr)
            return 2
        try:
            return run_from_args(args)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    except (UsageError, SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m gnet summary ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
