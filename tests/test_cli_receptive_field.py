"""`python -m gnet receptive-field --preset NAME [--json]`: every layer and every branch output of
every block, with the plan's receptive field (which tests/test_plan.py checks against the gradient
of the built module)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gnet.__main__ import main
from gnet.plan import layer_plan
from gnet.spec import NETWORK_PRESETS, network_preset

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("preset", list(NETWORK_PRESETS))
def test_json_lists_every_layer_and_branch_output(capsys, preset):
    assert main(["receptive-field", "--preset", preset, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1  # one JSON object on one line
    data = json.loads(out)
    spec = network_preset(preset)
    plan = layer_plan(spec)
    assert set(data) == {"preset", "input", "layers"}
    assert data["preset"] == preset and data["input"] == [spec.in_channels, *spec.input_size]
    layers = {d["name"]: d for d in data["layers"]}
    for d in data["layers"]:
        assert set(d) == {"name", "block", "branch", "size", "jump", "start"}
        assert isinstance(d["size"], int) and isinstance(d["jump"], int) and isinstance(d["start"], float)
        s = plan.step(d["name"])
        assert (d["block"], d["branch"], d["size"], d["jump"], d["start"]) == (
            s.block,
            s.branch,
            s.rf.size,
            s.rf.jump,
            s.rf.start,
        )
    for block in plan.blocks():  # every branch path of every block, and the block itself
        assert block in layers
        for branch, path in plan.branch_paths(block).items():
            assert layers[path]["block"] == block and layers[path]["branch"] == branch
    assert [d["name"] for d in data["layers"]] == [s.path for s in plan.steps if s.rf is not None]
    assert {"conv1", "fc"} <= set(layers)


def test_text_table(capsys):
    assert main(["receptive-field", "--preset", "googlenet-imagenet-aux"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("googlenet-imagenet-aux: input 3×224×224; receptive field in input pixels")
    assert lines[1].split() == ["layer", "block", "branch", "size", "jump", "start"]
    assert lines[2].split() == ["conv1", "7", "2", "0"]  # torchvision's 7×7/2 stem conv
    assert [line.split() for line in lines if line.startswith("inception3a.branch3 ")] == [
        ["inception3a.branch3", "inception3a", "b3", "43", "8", "6"]
    ]  # torchvision's 3×3 "5×5" branch
    assert lines[-1] == "no single receptive field for aux1, aux2: adaptive pooling with unequal windows"


def test_bad_preset_exits_2_with_one_line(capsys):
    assert main(["receptive-field", "--preset", "vgg"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "invalid choice: 'vgg'" in err


def test_subprocess_without_torch():
    code = (
        "import sys; from gnet.__main__ import main; "
        "main(['receptive-field', '--preset', 'mini', '--json']); assert 'torch' not in sys.modules"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["layers"][0] == {
        "name": "conv1",
        "block": None,
        "branch": None,
        "size": 3,
        "jump": 1,
        "start": 0.0,
    }
