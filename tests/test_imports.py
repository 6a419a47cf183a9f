"""gnet/ is a library whose imports run one way: spec → plan → analysis → blocks → network →
features, train, codegen, ... The test reads the source with `ast` (nothing is imported), counts
imports inside functions too, and fails on any cycle, on a module that imports one above its layer,
and on any import of Streamlit. A package (gnet/charts/) counts as one module. One test does import: the chart
modules, in a fresh interpreter, to see that neither torch nor Streamlit comes with them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

GNET = Path(__file__).resolve().parent.parent / "gnet"

# The bottom of the library, in order: each may import only those before it.
LAYERS = ["colors", "spec", "plan", "analysis", "blocks", "network"]


def _imports(path: Path) -> dict[str, list[int]]:
    """Every module this file imports (gnet.x as "x"; others by their top-level name) → line numbers,
    at any depth of the file: module level, functions, try blocks."""
    found: dict[str, list[int]] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                names = [f"gnet.{node.module}"] if node.module else [f"gnet.{a.name}" for a in node.names]
            elif node.module == "gnet":  # from gnet import charts, codegen
                names = [f"gnet.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        for name in names:
            key = name.split(".")[1] if name.startswith("gnet.") else name.split(".")[0]
            found.setdefault(key if name.startswith("gnet.") else f"<{key}>", []).append(node.lineno)
    return found


def _graph() -> dict[str, dict[str, list[int]]]:
    """gnet's modules → what each imports; a package (gnet/charts/) is one node, the union of its files."""
    files = {p.stem: [p] for p in GNET.glob("*.py")}
    files |= {d.name: sorted(d.glob("*.py")) for d in GNET.iterdir() if (d / "__init__.py").is_file()}
    graph: dict[str, dict[str, list[int]]] = {}
    for name, paths in sorted(files.items()):
        graph[name] = {}
        for p in paths:
            for m, lines in _imports(p).items():
                if (m in files and m != name) or m.startswith("<"):
                    graph[name].setdefault(m, []).extend(lines)
    return graph


def _cycles(graph: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """Every strongly connected set of modules larger than one (Tarjan), as a readable path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in (m for m in graph[v] if not m.startswith("<")):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b": [1]}, "b": {"c": [1]}, "c": {"a": [3]}, "d": {"a": [1]}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": [1]}, "b": {"<torch>": [1]}}) == []


def test_function_level_imports_are_counted(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef f():\n    from gnet.analysis import x\n    from . import plan\n")
    assert set(_imports(f)) == {"<os>", "analysis", "plan"}


def test_gnet_has_no_import_cycle():
    graph = _graph()
    cycles = _cycles(graph)
    detail = [
        " ↔ ".join(
            f"{m} (imports {', '.join(n for n in c if n in graph[m])} at line "
            f"{', '.join(str(line) for n in c if n in graph[m] for line in graph[m][n])})"
            for m in c
        )
        for c in cycles
    ]
    assert not cycles, "import cycles in gnet/: " + "; ".join(detail)


def test_imports_run_one_way():
    graph = _graph()
    for i, name in enumerate(LAYERS):
        above = {m for m in graph[name] if not m.startswith("<")} - set(LAYERS[:i])
        assert not above, f"gnet/{name}.py imports {sorted(above)}, which sit above it ({' → '.join(LAYERS)})"
    # torch-free: the CLI's block/summary start without torch; the charts draw from reports and numbers
    for name in ("spec", "plan", "analysis", "charts", "raster"):
        assert "<torch>" not in graph[name], f"gnet/{name}.py imports torch"


def test_gnet_imports_no_streamlit():
    offenders = [
        f"{m}.py line {graph_lines[0]}"
        for m, imports in _graph().items()
        for k, graph_lines in imports.items()
        if k == "<streamlit>"
    ]
    assert not offenders, f"gnet/ must not import streamlit: {offenders}"


def test_charts_import_neither_torch_nor_streamlit():
    """Every chart module loads in a fresh interpreter without torch or streamlit in sys.modules: charts draw
    from reports and plain numbers, so the CLI and the chart tests start without either."""
    charts = [f"gnet.charts.{p.stem}" for p in sorted((GNET / "charts").glob("*.py")) if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        "for m in sys.argv[1:]:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'torchvision', 'streamlit')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *charts], capture_output=True, text=True, cwd=GNET.parent, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert len(charts) >= 8 and out.stdout.strip() == "[]", f"importing {charts} loaded {out.stdout.strip()}"
