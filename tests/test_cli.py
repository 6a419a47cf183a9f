"""`python -m gnet block | summary`: in-process through main(argv) (most cases), and
a few real subprocesses for the exit status, stdout/stderr split and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gnet.__main__ import main
from gnet.analysis import block_report, network_report
from gnet.spec import BlockSpec, network_preset, with_input

ROOT = Path(__file__).resolve().parent.parent


NG = ["--input", "192,28,28", "--b1", "64", "--b2", "96,128", "--b3", "16,32", "--b4", "32"]
COST_KEYS = {"params", "mult_adds", "multiplications"}


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_block_json_has_the_documented_keys_and_seed_numbers(capsys):
    code, out, err = run_main(capsys, "block", *NG, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert out.count("\n") == 1  # one JSON object on one line
    assert data["output_shape"] == [256, 28, 28]
    assert COST_KEYS <= set(data)
    assert [b["name"] for b in data["branches"]] == ["b1", "b2", "b3", "b4"]
    for b in data["branches"]:
        assert COST_KEYS | {"output_shape"} <= set(b)
    assert data["params"] == sum(b["params"] for b in data["branches"]) == 163_696  # seed 001's block 3a
    assert [b["params"] for b in data["branches"]] == [12_352, 129_248, 15_920, 6_176]
    assert data["branches"][2]["multiplications"] == 12_443_648  # seed 002, with the bottleneck


@pytest.mark.parametrize(
    "flags, spec",
    [
        ([], BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32)),
        (["--no-reduce"], BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, reduce=False)),
        (["--b3-kernel", "3"], BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, b3_kernel=3)),
        (
            ["--factorize", "--bn"],
            BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, factorize=True, batch_norm=True),
        ),
    ],
)
def test_block_flags_select_the_variant(capsys, flags, spec):
    code, out, _ = run_main(capsys, "block", *NG, *flags, "--json")
    report = block_report(spec, (192, 28, 28))
    data = json.loads(out)
    assert code == 0
    assert (data["params"], data["mult_adds"], data["multiplications"]) == (
        report.cost.params,
        report.cost.mult_adds,
        report.cost.multiplications,
    )
    assert [b["output_shape"] for b in data["branches"]] == [list(b.output_shape) for b in report.branches]


def test_naive_b3_multiplications_match_seed_002(capsys):
    _, out, _ = run_main(capsys, "block", *NG, "--no-reduce", "--json")
    assert json.loads(out)["branches"][2]["multiplications"] == 120_422_400


def test_block_text_table(capsys):
    code, out, _ = run_main(capsys, "block", *NG)
    assert code == 0
    assert "28×28×(64+128+32+32) = 28×28×256" in out
    lines = out.splitlines()
    assert lines[1].split()[:2] == ["branch", "output"]
    total = lines[-1].split()
    assert total[:3] == ["total", "256×28×28", "163,696"]


def test_summary_json(capsys):
    code, out, _ = run_main(capsys, "summary", "--preset", "d2l-fashion96", "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["params"], round(data["mult_adds"] / 1e6, 2)) == (5_977_530, 276.66)
    assert data["multiplications"] == network_report(network_preset("d2l-fashion96")).cost.multiplications
    assert [b["name"] for b in data["blocks"]] == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    assert [b["output_shape"][0] for b in data["blocks"]] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    assert data["blocks"][0]["output_shape"] == [256, 12, 12]


def test_summary_with_input_and_text(capsys):
    code, out, _ = run_main(capsys, "summary", "--preset", "googlenet-imagenet", "--input", "3,160,160", "--json")
    expected = network_report(with_input(network_preset("googlenet-imagenet"), 3, (160, 160)))
    assert code == 0 and json.loads(out)["mult_adds"] == expected.cost.mult_adds
    assert json.loads(out)["params"] == 6_624_904  # params do not depend on the input size
    code, out, _ = run_main(capsys, "summary", "--preset", "googlenet-imagenet")
    assert code == 0
    assert out.splitlines()[-1].split()[:3] == ["total", "1000×1×1", "6,624,904"]
    assert any(line.startswith("inception4e ") for line in out.splitlines())


@pytest.mark.parametrize(
    "argv, words",
    [
        (["block", "--input", "192,28", *NG[2:]], "--input takes 3 comma-separated whole numbers"),
        (["block", "--input", "a,b,c", *NG[2:]], "--input takes whole numbers"),
        (["block", *NG[:2], "--b1", "0", *NG[4:]], "b1 must be from 1 to 8,192, got 0"),
        (["block", *NG[:4], "--b2", "96", *NG[6:]], "--b2 takes 2 comma-separated whole numbers"),
        (["block", *NG, "--b3-kernel", "7"], "invalid choice: 7"),
        (["block", *NG, "--b3-kernel", "3", "--factorize"], "needs b3_kernel 5"),
        (["block", "--input", "192,28,28"], "the following arguments are required"),
        (["block", "--input", "192,99999,28", *NG[2:]], "input height must be from 1 to 4,096"),
        (["summary", "--preset", "vgg"], "invalid choice: 'vgg'"),
        (["summary", "--preset", "googlenet-imagenet", "--input", "3,8,8"], "smallest square input it accepts is"),
        ([], "the following arguments are required: command"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, words):
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert words in err


def _gnet(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gnet", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120, encoding="utf-8"
    )


def test_subprocess_json_and_exit_codes():
    ok = _gnet("block", *NG, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["output_shape"] == [256, 28, 28]
    bad = _gnet("block", *NG, "--b4", "-1")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "error: b4 must be from 1 to 8,192, got -1"
    assert "Traceback" not in bad.stderr


def test_subprocess_summary_text():
    res = _gnet("summary", "--preset", "mini")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("mini: input 3×32×32")
    assert f"{network_report(network_preset('mini')).params_total:,}" in res.stdout.splitlines()[-1]


def test_summary_torchinfo_of_the_real_module(capsys):
    code, out, _ = run_main(capsys, "summary", "--preset", "mini", "--torchinfo")
    assert code == 0
    assert "Total params: 86,842" in out  # torchinfo's own line, after our table
    assert f"{network_report(network_preset('mini')).params_total:,}" == "86,842"


def test_block_and_summary_do_not_import_torch():
    """The analytic commands are arithmetic: they answer without loading torch (~2 s)."""
    code = (
        "import sys; from gnet.__main__ import main; "
        "main(['block', '--input', '3,8,8', '--b1', '1', '--b2', '1,1', '--b3', '1,1', '--b4', '1']); "
        "main(['summary', '--preset', 'mini', '--json']); assert 'torch' not in sys.modules"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
