"""`visualize`, `sweep` and `compare` refuse unusable paths and values up front: exit 2, one line, nothing
written, nothing started, and (compare) nothing read from a device, a pipe or a huge file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gnet.__main__ import main
from gnet.compare import MAX_DESIGN_BYTES, read_design_file
from gnet.spec import SpecError, block_presets

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path


def refused(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def design_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.json"
    path.write_text(block_presets()["Paper 3a"].to_json())
    return path


# -- visualize --out ---------------------------------------------------------------------------------------------
VIS = ["visualize", "--layer", "3a", "--untrained", "--size", "32", "--steps", "2", "--device", "cpu"]


def test_visualize_out_a_folder_is_refused_before_any_work(tmp_path, capsys):
    folder = tmp_path / "picture.png"
    folder.mkdir()
    err = refused(capsys, *VIS, "--out", str(folder))
    assert "is a folder; give a file name ending in .png" in err
    assert list(folder.iterdir()) == []


def test_visualize_out_in_an_unwritable_folder_is_refused(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere permissions allow: a read-only kernel file system instead
        if not Path("/sys").is_dir() or os.access("/sys", os.W_OK, effective_ids=True) and _writable("/sys"):
            pytest.skip("no unwritable folder for root on this machine")
        target = "/sys/gnet-test.png"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "x.png")
    err = refused(capsys, *VIS, "--out", target)
    assert "--out: cannot write in the folder" in err


def _writable(folder: str) -> bool:
    try:
        Path(folder, ".gnet-probe").touch()
    except OSError:
        return False
    Path(folder, ".gnet-probe").unlink()
    return True


def test_visualize_out_still_writes_a_png(tmp_path, capsys):
    out = tmp_path / "ok.png"
    assert main([*VIS, "--out", str(out), "--json"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the probe left nothing


# -- sweep ---------------------------------------------------------------------------------------------------------
SWEEP = ["sweep", "--preset", "mini", "--epochs", "1", "--quiet"]


def test_sweep_dir_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    assert "--sweep-dir" in refused(capsys, *SWEEP, "--sweep-dir", str(f)) and f.read_text() == "x"
    assert "is a file, not a folder" in refused(capsys, *SWEEP, "--sweep-dir", str(f), "--resume")
    assert "is a file, not a folder" in refused(capsys, *SWEEP, "--sweep-dir", str(f / "inside"))


@pytest.mark.parametrize("n", ["0", "-3"])
def test_sweep_parallel_below_one_is_refused(tmp_path, capsys, n):
    err = refused(capsys, *SWEEP, "--parallel", n, "--sweep-dir", str(tmp_path / "runs" / "s"))
    assert f"--parallel must be 1 or more (runs at once), got {n}" in err
    assert not (tmp_path / "runs" / "s").exists()


@pytest.mark.parametrize(
    "dataset, words",
    [
        ("folder:../x", "an image folder is named by a folder directly inside the data folder"),
        ("folder:a/b", "no '/' or '..'"),
        ("folder:..", "no '/' or '..'"),
        ("folder:", "letters, digits"),
        ("folder:missing", "no image folder 'missing' in the data folder (GNET_DATA_DIR)"),
        ("imagenet", "--dataset 'imagenet' is unknown; choose synthetic"),
    ],
)
def test_sweep_dataset_says_why_before_anything_starts(tmp_path, capsys, dataset, words):
    err = refused(capsys, *SWEEP, "--dataset", dataset, "--sweep-dir", str(tmp_path / "runs" / "s"))
    assert words in err
    assert not (tmp_path / "runs" / "s").exists()  # no sweep folder, so no run was started


# -- compare -----------------------------------------------------------------------------------------------------------
def test_compare_refuses_a_pipe_a_folder_and_a_huge_file_without_reading_them(tmp_path, capsys):
    good = design_file(tmp_path)
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(50 * MAX_DESIGN_BYTES)  # sparse: big, without the disk
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading would block a naive reader until a writer came
    cases = {
        str(fifo): "pipe.json is not a regular file (a device, pipe or socket)",
        str(tmp_path): "is a folder, not a JSON file",
        str(huge): "huge.json is larger than 1 MB; a design is a few kB",
        str(tmp_path / "none.json"): "cannot read",
    }
    for path, words in cases.items():
        assert words in refused(capsys, "compare", str(good), path), path
        assert words in refused(capsys, "compare", path, str(good)), path
    assert main(["compare", str(good), str(good), "--json"]) == 0  # a real design file still reads
    assert json.loads(capsys.readouterr().out)["kind"] == "block"


def _cli_with_bounded_memory(*argv: str) -> subprocess.CompletedProcess:
    """A real process that cannot take the machine's memory if it reads a device to its (absent) end."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run(
        [sys.executable, "-m", "gnet", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=limit
    )


@pytest.mark.parametrize(
    "argv",
    [["compare", "/dev/zero", "/dev/zero"], ["sweep", "--spec", "/dev/zero", "--sweep-dir", "unused"]],
    ids=["compare", "sweep-spec"],
)
def test_a_device_file_is_refused_at_once_in_a_real_process(argv):
    proc = _cli_with_bounded_memory(*argv)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "error: /dev/zero is not a regular file (a device, pipe or socket); give a JSON file\n"


def test_read_design_file_reads_at_most_the_limit_even_if_the_file_grows(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b"x" * 10)
    assert read_design_file(path, limit=10) == b"x" * 10
    path.write_bytes(b"x" * 11)
    with pytest.raises(SpecError, match="larger than"):
        read_design_file(path, limit=10)
