"""`python -m gnet block --kind {v1,A..E}` and the Inception v3 preset in `summary` and `receptive-field`:
the numbers are the analysis's (which tests/test_v3.py holds to torch, torchinfo and torchvision)."""

from __future__ import annotations

import json

import pytest

from gnet.__main__ import main
from gnet.analysis import plan_report
from gnet.v3 import KIND_SPECS, InceptionCSpec, default_kind, inception_v3_imagenet, kind_report, v3_plan
from tests.test_cli import NG, run_main


@pytest.mark.parametrize("kind", list(KIND_SPECS))
def test_block_kind_defaults_are_torchvisions_first_block(capsys, kind):
    spec = default_kind(kind)
    shape = ",".join(map(str, spec.DEFAULT_INPUT))
    code, out, _ = run_main(capsys, "block", "--kind", kind, "--input", shape, "--json")
    assert code == 0
    data = json.loads(out)
    report = kind_report(spec, spec.DEFAULT_INPUT)
    assert {"input_shape", "output_shape", "params", "mult_adds", "multiplications", "branches"} <= set(data)
    assert data["kind"] == kind and data["params"] == report.cost.params
    assert data["mult_adds"] == report.cost.mult_adds and data["multiplications"] == report.cost.multiplications
    assert [b["name"] for b in data["branches"]] == [f"b{i + 1}" for i in range(len(report.branches))]
    assert sum(b["output_shape"][0] for b in data["branches"]) == data["output_shape"][0]
    assert sum(b["params"] for b in data["branches"]) == data["params"]
    expected_out = {"A": [256, 35, 35], "B": [768, 17, 17], "C": [768, 17, 17], "D": [1280, 8, 8], "E": [2048, 8, 8]}
    assert data["output_shape"] == expected_out[kind]


def test_block_e_lists_its_halves_and_c_takes_set(capsys):
    _, out, _ = run_main(capsys, "block", "--kind", "E", "--input", "1280,8,8", "--json")
    b2 = json.loads(out)["branches"][1]
    assert b2["modules"] == ["branch3x3_1", "branch3x3_2a", "branch3x3_2b"]
    assert [h["name"] for h in b2["halves"]] == ["branch3x3_2a", "branch3x3_2b"]
    assert [h["label"] for h in b2["halves"]] == ["conv 1×3", "conv 3×1"]
    assert b2["output_shape"] == [768, 8, 8] == [sum(h["output_shape"][0] for h in b2["halves"]), 8, 8]
    code, out, _ = run_main(capsys, "block", "--kind", "C", "--input", "768,17,17", "--set", "c7=160", "--set", "n=5")
    assert code == 0
    assert "c7=160" in out and "b2 1×1 → 1×5 → 5×1" in out
    assert f"{kind_report(InceptionCSpec(c7=160, n=5), (768, 17, 17)).cost.params:,}" in out.splitlines()[-1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--kind", "A", "--set", "c7=3"], "kind A has no field 'c7'; its fields are branch1x1, branch5x5_1"),
        (["--kind", "B", "--set", "branch3x3=0"], "branch3x3 must be from 1 to 8,192, got 0"),
        (["--kind", "C", "--set", "n=4"], "n must be odd"),
        (["--kind", "D", "--set", "branch3x3_1=x"], "--set branch3x3_1 takes whole numbers"),
        (["--kind", "E", "--set", "branch1x1"], "--set takes FIELD=VALUE"),
        (["--kind", "A", "--b1", "3"], "--b1 is for --kind v1"),
        (["--kind", "F"], "invalid choice: 'F'"),
        (["--b1", "3", "--set", "b1=3", *NG[4:]], "--set is for the Inception v3 kinds"),
    ],
)
def test_block_kind_refusals_name_the_field(capsys, argv, message):
    code, _, err = run_main(capsys, "block", "--input", "288,35,35", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_kind_v1_is_todays_block(capsys):
    assert main(["block", *NG, "--json"]) == 0
    today = capsys.readouterr().out
    assert main(["block", "--kind", "v1", *NG, "--json"]) == 0
    assert capsys.readouterr().out == today
    code, _, err = run_main(capsys, "block", "--kind", "v1", "--input", "192,28,28")
    assert code == 2 and "the following arguments are required: --b1, --b2, --b3, --b4" in err


def test_summary_of_the_v3_preset(capsys):
    code, out, _ = run_main(capsys, "summary", "--preset", "inception-v3-imagenet", "--json")
    assert code == 0
    data = json.loads(out)
    report = plan_report(v3_plan(inception_v3_imagenet()))
    assert set(data) == {"preset", "input_shape", "output_shape", "params", "mult_adds", "multiplications", "blocks"}
    assert data["params"] == 27_161_264 and data["mult_adds"] == report.cost.mult_adds
    assert data["input_shape"] == [3, 299, 299] and data["output_shape"] == [1000, 1, 1]
    assert [b["name"] for b in data["blocks"]] == ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]
    assert [b["output_shape"] for b in data["blocks"]][-1] == [2048, 8, 8]
    _, text, _ = run_main(capsys, "summary", "--preset", "inception-v3-imagenet")
    lines = text.splitlines()
    assert lines[0].startswith("inception-v3-imagenet: input 3×299×299")
    assert any(line.startswith("Mixed_6a ") and "768×17×17" in line for line in lines)
    assert lines[-1].split()[-2:] == ["27,161,264", f"{report.cost.mult_adds:,}"]


def test_receptive_field_of_the_v3_preset_per_axis(capsys):
    code, out, _ = run_main(capsys, "receptive-field", "--preset", "inception-v3-imagenet", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["layers"]}
    plan = v3_plan(inception_v3_imagenet())
    convs = [s.path for s in plan.steps if s.kind == "conv"]
    pools = [s.path for s in plan.steps if s.kind in ("maxpool", "avgpool")]
    assert set(convs) | set(pools) | set(plan.blocks()) <= set(rows)
    assert rows["Mixed_7c"]["size_hw"] == [1311, 1311] and rows["Mixed_7c"]["jump"] == 32
    one_by_seven = rows["Mixed_6b.branch7x7_2"]
    assert one_by_seven["size"] is None and one_by_seven["size_hw"] == [159, 255]
    last = rows["Mixed_6b.branch7x7_3"]  # the last conv of a branch names its block and branch
    assert (last["block"], last["branch"], last["size_hw"]) == ("Mixed_6b", "b2", [255, 255])
    assert rows["Mixed_7b.branch3x3_2b"]["half"] == "b"
    _, text, _ = run_main(capsys, "receptive-field", "--preset", "inception-v3-imagenet")
    assert any(line.startswith("Mixed_6b.branch7x7_2 ") and "159×255" in line for line in text.splitlines())
