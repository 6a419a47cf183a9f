"""Two designs side by side: A, B and Δ = B − A per branch or per layer, and in total.

Works on two block designs (a BlockSpec with its input shape, rows per branch) or two
network specs (rows per layer of the layer plan, optionally each block's branches too).
Every number is read from the two ordinary reports (gnet.analysis) and the receptive
fields from the layer plan, so a row's Δ is exactly the difference of what each report
says on its own. Rows are aligned by module path; a layer that only one side has shows
an empty other side (its cost counts as 0 in Δ, its shape and receptive field as absent).

Receptive fields (gnet.plan) are in input pixels (network rows) or in the block's input
pixels (block rows); None where the plan has none (the auxiliary heads' adaptive pools).

A GoogLeNet and an Inception v3 share no module names beyond the head, so they are compared per stage
instead: the stem, then each grid of Inception blocks in order (GoogLeNet's 28×28, 14×14 and 7×7 at 224²
against v3's 35×35, 17×17 and 8×8 at 299²; a stage pool or grid-reduction block counts in the grid it
outputs), the head and the aux heads. Each stage's values are the sums of its layers' from the same reports.
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass
from typing import Any

from gnet.analysis import BlockReport, LayerRow, NetworkReport, block_report, plan_report, total
from gnet.plan import Plan, block_steps, layer_plan, short_label
from gnet.spec import BlockDesign, BlockSpec, NetworkSpec, SpecError, _parse_json
from gnet.v3 import InceptionV3Spec, v3_plan

AnyNetwork = NetworkSpec | InceptionV3Spec
Design = BlockDesign | AnyNetwork
COSTS = ("params", "mult_adds", "multiplications")
METRICS = (*COSTS, "rf")
DETAILS = ("layers", "branches", "stages")


@dataclass(frozen=True)
class Side:
    """One design's values in one row."""

    shape: tuple[int, ...]
    params: int
    mult_adds: int
    multiplications: int
    rf: int | None  # receptive field size in pixels; None: the whole input (global pool, classifier)

    def as_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), **{m: getattr(self, m) for m in METRICS}}


@dataclass(frozen=True)
class Row:
    name: str  # module path ("conv1", "inception3a", "inception3a.branch2") or branch ("b1") or "total"
    kind: str  # "conv 7×7/2", "inception", "1×1 → 3×3" ...; "A's vs B's" where they differ
    a: Side | None
    b: Side | None

    def value(self, side: str, metric: str) -> int | None:
        s = self.a if side == "a" else self.b
        if s is None:
            return None if metric == "rf" else 0  # a layer one design lacks costs nothing there
        return getattr(s, metric)

    def delta(self, metric: str) -> int | None:
        """B − A; None for a receptive field that either side lacks or that is global."""
        va, vb = self.value("a", metric), self.value("b", metric)
        return None if va is None or vb is None else vb - va

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "a": self.a.as_dict() if self.a else None,
            "b": self.b.as_dict() if self.b else None,
            "delta": {m: self.delta(m) for m in METRICS},
        }


@dataclass(frozen=True)
class Comparison:
    kind: str  # "block" or "network"
    label_a: str
    label_b: str
    rows: tuple[Row, ...]
    total: Row

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "a": self.label_a,
            "b": self.label_b,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
        }


# ---------------------------------------------------------------------------
# Receptive fields: the layer plan's (Araujo et al. 2019), sizes in input pixels


def block_receptive_fields(spec: BlockSpec) -> dict[str, int]:
    """Each branch's receptive field in the block's input pixels, and the block's ("total")."""
    rf = {s.branch: s.rf.size for s in block_steps(spec, (1, 1, 1)) if s.depth == 0 and s.branch and s.rf}
    return {**rf, "total": max(rf.values())}


def plan_of_spec(spec: AnyNetwork) -> Plan:
    """The layer plan of a GoogLeNet or an Inception v3 spec (SpecError for one that cannot be built)."""
    return v3_plan(spec) if isinstance(spec, InceptionV3Spec) else layer_plan(spec)


def report_of(spec: AnyNetwork) -> NetworkReport:
    """gnet.analysis's report of either family, read from its layer plan."""
    return plan_report(plan_of_spec(spec))


def network_receptive_fields(spec: AnyNetwork) -> dict[str, int | None]:
    """Receptive field size (input pixels) at the output of every module, by module path."""
    return {s.path: s.rf.size if s.rf else None for s in plan_of_spec(spec).steps}


# ---------------------------------------------------------------------------
# Building rows


def align_names(names_a: list[str], names_b: list[str]) -> list[tuple[str | None, str | None]]:
    """Pairs of row names in display order: equal names paired, the rest one-sided."""
    pairs: list[tuple[str | None, str | None]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=names_a, b=names_b, autojunk=False).get_opcodes():
        if op == "equal":
            pairs += [(names_a[i], names_b[j]) for i, j in zip(range(i1, i2), range(j1, j2))]
        else:
            pairs += [(names_a[i], None) for i in range(i1, i2)] + [(None, names_b[j]) for j in range(j1, j2)]
    return pairs


def _merge(
    kind: str,
    label_a: str,
    label_b: str,
    rows_a: dict[str, tuple[str, Side]],
    rows_b: dict[str, tuple[str, Side]],
    total_a: Side,
    total_b: Side,
    total_kind: str,
) -> Comparison:
    rows = []
    for na, nb in align_names(list(rows_a), list(rows_b)):
        name = na or nb
        assert name is not None
        ka, sa = rows_a[na] if na else ("", None)
        kb, sb = rows_b[nb] if nb else ("", None)
        rows.append(Row(name, ka if ka == kb or not kb else kb if not ka else f"{ka} vs {kb}", sa, sb))
    return Comparison(kind, label_a, label_b, tuple(rows), Row("total", total_kind, total_a, total_b))


def _block_rows(report: BlockReport) -> tuple[dict[str, tuple[str, Side]], Side]:
    rf = block_receptive_fields(report.spec)
    rows = {
        b.name: (b.label, Side(b.output_shape, b.cost.params, b.cost.mult_adds, b.cost.multiplications, rf[b.name]))
        for b in report.branches
    }
    c = report.cost
    return rows, Side(report.output_shape, c.params, c.mult_adds, c.multiplications, rf["total"])


def compare_blocks(a: BlockDesign, b: BlockDesign, label_a: str = "A", label_b: str = "B") -> Comparison:
    """Rows b1..b4 and a total: output shape, params, mult-adds, multiplications, receptive field."""
    rows_a, total_a = _block_rows(block_report(a.block, a.input_shape))
    rows_b, total_b = _block_rows(block_report(b.block, b.input_shape))
    return _merge("block", label_a, label_b, rows_a, rows_b, total_a, total_b, "concat")


def _block_kind(report: NetworkReport, row: LayerRow) -> str:
    """ "inception" for a GoogLeNet block (as before); an Inception v3 block names its kind, e.g. "inception C"."""
    kind = getattr(report.blocks[row.group].spec, "KIND", None)
    return f"inception {kind}" if isinstance(report.spec, InceptionV3Spec) and kind else row.kind


def _network_rows(report: NetworkReport, detail: str) -> tuple[dict[str, tuple[str, Side]], Side]:
    if detail == "stages":
        return _stage_rows(report)
    rf = network_receptive_fields(report.spec)
    rows: dict[str, tuple[str, Side]] = {}
    for r in report.summary_rows():
        c = r.cost
        kind = _block_kind(report, r) if r.group in report.blocks else r.kind
        rows[r.name] = (kind, Side(r.output_shape, c.params, c.mult_adds, c.multiplications, rf.get(r.name)))
        if detail == "branches" and r.group in report.blocks:
            paths = report.plan.branch_paths(r.name) if report.plan else {}
            for i, br in enumerate(report.blocks[r.group].branches):
                path = paths.get(br.name, f"{r.name}.branch{i + 1}")  # GoogLeNet's: inception3a.branch2
                bc = br.cost
                rows[path] = (
                    f"{br.name} {br.label}",
                    Side(br.output_shape, bc.params, bc.mult_adds, bc.multiplications, rf.get(path)),
                )
    return rows, _network_total(report, rf)


def _network_total(report: NetworkReport, rf: dict[str, int | None]) -> Side:
    c = report.cost
    # params: the whole module (aux heads included); mult-adds: the eval forward (aux heads not run), as torchinfo
    return Side(report.output_shape, report.params_total, c.mult_adds, c.multiplications, rf["fc"])


def _stage_rows(report: NetworkReport) -> tuple[dict[str, tuple[str, Side]], Side]:
    """Rows "stem", "grid 1" … "grid N" (the Inception blocks by the grid they output, a stage pool or grid
    reduction with the grid it makes), "head" and "aux": each the sum of its summary rows, its shape and
    receptive field those of its last row."""
    rf = network_receptive_fields(report.spec)
    aux_heads = set(report.plan.aux_after().values()) if report.plan else set()
    groups: dict[str, list[LayerRow]] = {}
    grids: list[tuple[int, ...]] = []
    seen_block = False
    for r in report.summary_rows():
        if r.group in aux_heads or r.group.startswith("aux"):
            name = "aux"
        elif r.group == "head":
            name = "head"
        elif r.group in report.blocks or seen_block:
            seen_block = True
            hw = tuple(r.output_shape[1:])
            if not grids or grids[-1] != hw:
                grids.append(hw)
            name = f"grid {len(grids)}"
        else:
            name = "stem"
        groups.setdefault(name, []).append(r)
    rows: dict[str, tuple[str, Side]] = {}
    for name, members in groups.items():
        c, last = total(m.cost for m in members), members[-1]
        blocks = [short_label(m.name) for m in members if m.group in report.blocks]
        if name.startswith("grid"):
            h, w = last.output_shape[1:]
            others = len(members) - len(blocks)
            kind = f"{blocks[0]}–{blocks[-1]}" if len(blocks) > 1 else (blocks[0] if blocks else "")
            kind += f"{' + ' if blocks else ''}{others} pool{'s' * (others != 1)}" if others else ""
            kind += f" at {h}×{w}"
        else:
            kind = f"{len(members)} layer{'s' * (len(members) != 1)}"
        rows[name] = (kind, Side(last.output_shape, c.params, c.mult_adds, c.multiplications, rf.get(last.name)))
    return rows, _network_total(report, rf)


def same_family(a: AnyNetwork, b: AnyNetwork) -> bool:
    return isinstance(a, InceptionV3Spec) == isinstance(b, InceptionV3Spec)


def compare_networks(
    a: AnyNetwork, b: AnyNetwork, detail: str = "layers", label_a: str = "A", label_b: str = "B"
) -> Comparison:
    """Rows per layer (blocks summed; detail="branches" adds each block's branches), or per stage
    (detail="stages"; always for a GoogLeNet against an Inception v3, which share no layer names).

    The total's receptive field is the classifier's (the last block's, widened by the global pool's window)."""
    if detail not in DETAILS:
        raise SpecError(f"detail must be one of {', '.join(DETAILS)}, got {detail!r}")
    if not same_family(a, b):
        detail = "stages"
    rows_a, total_a = _network_rows(report_of(a), detail)
    rows_b, total_b = _network_rows(report_of(b), detail)
    return _merge("network", label_a, label_b, rows_a, rows_b, total_a, total_b, "network")


def compare(a: Design, b: Design, detail: str = "layers", label_a: str = "A", label_b: str = "B") -> Comparison:
    """Compare like with like: two block designs or two networks."""
    if isinstance(a, BlockDesign) and isinstance(b, BlockDesign):
        return compare_blocks(a, b, label_a, label_b)
    if isinstance(a, AnyNetwork) and isinstance(b, AnyNetwork):
        return compare_networks(a, b, detail, label_a, label_b)
    what = {True: "a block design", False: "a network"}
    raise SpecError(
        f"A is {what[isinstance(a, BlockDesign)]} and B is {what[isinstance(b, BlockDesign)]}: "
        "compare two block designs (Block Designer) or two networks (Network Explorer)"
    )


# ---------------------------------------------------------------------------
# Files, as the app exports them


MAX_DESIGN_BYTES = 1_000_000  # gnet.spec refuses JSON text above this: a spec is a few kB


def read_design_file(path: str | os.PathLike, limit: int = MAX_DESIGN_BYTES) -> bytes:
    """A design file's bytes, its type and size checked before anything is read (SpecError otherwise).

    Opened without blocking (a FIFO would wait for a writer) and read at most `limit` + 1 bytes, so a device
    (/dev/zero), a pipe or a huge file costs nothing; the message names the file as given."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise SpecError(f"cannot read {name}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{name} is a folder, not a JSON file")
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{name} is not a regular file (a device, pipe or socket); give a JSON file")
        if info.st_size > limit:
            raise SpecError(f"{name} is larger than {limit // 1_000_000} MB; a design is a few kB")
        chunks, left = [], limit + 1  # the file may grow after fstat: never read more than this
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as e:
        raise SpecError(f"cannot read {name}: {e.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise SpecError(f"{name} is larger than {limit // 1_000_000} MB; a design is a few kB")
    return data


def load_design(text: str | bytes) -> Design:
    """A block design ({"input_shape", "block"}), a GoogLeNet network spec or an Inception v3 spec
    ({"family": "inception-v3", ...}), from the app's JSON export."""
    data = _parse_json(text)
    if isinstance(data, dict) and data.get("family") == InceptionV3Spec.family:
        return InceptionV3Spec.from_dict(data)
    if isinstance(data, dict) and "block" in data and "stages" not in data:
        return BlockDesign.from_dict(data)
    if isinstance(data, dict) and "stages" in data:
        return NetworkSpec.from_dict(data)
    raise SpecError(
        'not a design the app exports: expected a block design ("input_shape", "block") '
        'or a network spec ("stages", ...)'
    )


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points: True where no other point is as cheap and as accurate, and better in one."""
    return [not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2 in points) for c, a in points]
