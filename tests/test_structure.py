"""The one model layer, checked on the source: only gnet.net walks a network at run time, only gnet.plan
translates module paths into labels, and only the module definitions name the branch attributes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("gnet", "pages", "ui") for p in (ROOT / d).rglob("*.py")) + [ROOT / "app.py"]

# The module definitions (they are the source of the names) and the two places that read them.
DEFINES_MODULES = {"gnet/blocks.py", "gnet/network.py"}
WALKS = {"gnet/net.py"}
LABELS = {"gnet/plan.py"}


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def violations(path: Path) -> list[str]:
    """What in one file breaks the rules: (line, what) as text."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = rel(path)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr == "_transform_input" and name not in WALKS:
            found.append(f"{line}: calls torchvision's _transform_input (Net.input applies it once)")
        if isinstance(node, (ast.Name, ast.Attribute)) and "BRANCH_ATTRS" in (
            getattr(node, "id", ""),
            node.__dict__.get("attr", ""),
        ):
            if name not in DEFINES_MODULES:
                found.append(f"{line}: names BRANCH_ATTRS (read branches from the plan: Net.branch_paths)")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"branch\d", node.value):
            if name not in DEFINES_MODULES:
                found.append(f"{line}: names the module attribute {node.value!r}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Call)
            and isinstance(node.func.func, ast.Name)
            and node.func.func.id == "getattr"
            and name not in WALKS | DEFINES_MODULES
        ):
            found.append(f"{line}: runs a module looked up by name (a hand-written walk: use Net.run)")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "removeprefix"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in ("inception", "Mixed_")
            and name not in LABELS
        ):
            found.append(f"{line}: makes a block label by hand (use gnet.plan.short_label)")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_one_walk_one_vocabulary(path):
    assert violations(path) == []


def test_the_checker_finds_a_hand_walk(tmp_path):
    """The rules above catch what the old code did (a checker that finds nothing proves nothing)."""
    bad = ROOT / "gnet" / "_structure_probe.py"
    bad.write_text(
        "def walk(model, x, names):\n"
        "    h = model._transform_input(x)\n"
        "    for n in names:\n"
        "        h = getattr(model, n)(h)\n"
        "    return getattr(model.inception3a, 'branch2'), 'inception3a'.removeprefix('inception')\n"
    )
    try:
        found = violations(bad)
    finally:
        bad.unlink()
    assert len(found) == 4, found


def test_the_pages_folder_holds_only_pages():
    """Every file in pages/ is a page app.py lists; the helpers they share live in ui/."""
    tree = ast.parse((ROOT / "app.py").read_text())
    listed = {
        n.args[0].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "st.Page" and isinstance(n.args[0], ast.Constant)
    }
    assert {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")} == listed
