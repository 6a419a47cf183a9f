"""The pages during a first run online (AppTest), against a real HTTP server on 127.0.0.1 given
through the mirror variables: Feature Maps shows the download's progress, stays usable and switches
to the pretrained network by itself; a failed download says why and offers a retry; Training offers
a missing dataset, downloads it, then starts the run. No page ever shows a server path."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet import downloads, pretrained, runs
from gnet.pretrained import hub_weights_path
from tests.loopback import FileServer, md5, mnist_files, sha256, torchvision_weights_bytes

PAGES = Path(__file__).resolve().parent.parent / "pages"
WEIGHTS_PATH = f"/weights/{pretrained.WEIGHTS_FILE}"


@pytest.fixture
def server():
    s = FileServer()
    yield s
    downloads.cancel_all()
    s.close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty caches under tmp_path, downloads allowed (only to the loopback server)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(downloads, "RETRY_WAIT_S", 0.05)
    for var in (
        "GNET_OFFLINE",
        "GNET_NO_DOWNLOAD",
        "GNET_WEIGHTS",
        "GNET_WEIGHTS_URL",
        "GNET_WEIGHTS_SHA256",
        "GNET_DATASET_MIRROR",
        "GNET_DATASET_CHECKSUMS",
    ):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    for info in runs.list_runs(tmp_path / "runs"):  # never leave a training process behind
        pid = info.status.get("pid")
        if info.active and isinstance(pid, int) and pid != os.getpid() and runs.pid_alive(pid):
            os.kill(pid, 9)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    """The elements' text with the pages' markdown escapes removed (as a browser shows it)."""
    return re.sub(r"\\(.)", r"\1", " ".join(str(e.value) for e in elements))


def shown(at: AppTest) -> str:
    """Everything the page sends to the browser: every element's protobuf, labels and help included,
    with markdown escapes removed (pages escape '-', '_', '.' in quoted text)."""
    raw = "\n".join(str(node.proto) for node in at._tree if getattr(node, "proto", None) is not None)
    return re.sub(r"\\+(.)", r"\1", raw)


def assert_no_server_path(at: AppTest, tmp_path: Path) -> None:
    text = shown(at)
    assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text


def weights_job() -> downloads.Download:
    job = downloads.find(pretrained.weights_source()[0], hub_weights_path())
    assert job is not None
    return job


def test_feature_maps_shows_progress_and_switches_to_pretrained_by_itself(env, server, monkeypatch):
    blob = torchvision_weights_bytes()
    served = server.add(WEIGHTS_PATH, blob, pause_at=len(blob) // 2)
    monkeypatch.setenv("GNET_WEIGHTS_URL", server.url(WEIGHTS_PATH))
    monkeypatch.setenv("GNET_WEIGHTS_SHA256", sha256(blob))
    at = run(AppTest.from_file(str(PAGES / "feature_maps.py"), default_timeout=120))
    assert at.progress and at.progress[0].text.startswith("Downloading the pretrained GoogLeNet weights")
    assert "Cancel download" in [b.label for b in at.button] and "Retry download" not in [b.label for b in at.button]
    md = texts(at.markdown)
    assert "UNTRAINED" in md  # meanwhile: the stand-in network, labelled
    assert "switches to the pretrained network by itself" in texts(at.caption)
    assert not at.warning or all("UNTRAINED" in w.value for w in at.warning)  # no "download failed" warning

    assert served.paused.wait(60)  # half sent; the client has it once its counter passes half
    while weights_job().progress().done < len(blob) // 2:
        assert not weights_job().wait(0.02)
    at.selectbox(key="fm_layer").set_value("4b")  # the page stays usable during the download
    run(at)
    assert any("Layer 4b" in h.value for h in at.subheader)
    assert 45 <= at.progress[0].value < 100 and f"of {len(blob) / 1e6:.1f} MB" in at.progress[0].text
    assert_no_server_path(at, env)

    served.release.set()
    assert weights_job().wait(60)
    run(at)  # what the fragment's own rerun does in the browser (tests/e2e: no click, no reload)
    md = texts(at.markdown)
    assert "torchvision GoogLeNet, ImageNet weights (IMAGENET1K_V1)" in md and "UNTRAINED" not in md
    assert not at.progress and not at.warning and "Retry download" not in [b.label for b in at.button]
    assert server.requests[WEIGHTS_PATH] == 1
    assert_no_server_path(at, env)


def test_feature_maps_refuses_wrong_bytes_then_a_retry_succeeds(env, server, monkeypatch):
    blob = torchvision_weights_bytes()
    server.add(WEIGHTS_PATH, blob)
    monkeypatch.setenv("GNET_WEIGHTS_URL", server.url(WEIGHTS_PATH))
    monkeypatch.setenv("GNET_WEIGHTS_SHA256", "f" * 64)  # not what the mirror serves
    at = run(AppTest.from_file(str(PAGES / "feature_maps.py"), default_timeout=120))
    assert weights_job().wait(60)
    run(at)
    warning = texts(at.warning)
    assert "wrong SHA-256" in warning and "refused" in warning and "$TORCH_HOME/hub/checkpoints/" in warning
    assert "Retry download" in [b.label for b in at.button] and not at.progress
    assert not hub_weights_path().exists()
    assert_no_server_path(at, env)
    monkeypatch.setenv("GNET_WEIGHTS_SHA256", sha256(blob))  # the operator fixes the setting
    at.button(key="fm_retry").click()
    run(at)
    assert weights_job().wait(60)
    run(at)
    assert "ImageNet weights (IMAGENET1K_V1)" in texts(at.markdown)
    assert server.requests[WEIGHTS_PATH] == 2


@pytest.mark.parametrize("cache", ["missing", "corrupt"])
def test_no_server_path_on_feature_maps_offline_or_with_a_corrupt_cache(env, monkeypatch, cache):
    """Issue 18 item 3: instructions name $TORCH_HOME/hub/checkpoints/ symbolically; the real path is logged."""
    monkeypatch.setenv("GNET_OFFLINE", "1")
    if cache == "corrupt":
        hub_weights_path().parent.mkdir(parents=True)
        hub_weights_path().write_bytes(b"PK\x03\x04 not really a zip")
    at = run(AppTest.from_file(str(PAGES / "feature_maps.py"), default_timeout=120))
    text = shown(at)
    if cache == "missing":
        assert "$TORCH_HOME/hub/checkpoints/" in text and "Retry download" in text
    else:
        assert f"$TORCH_HOME/hub/checkpoints/{pretrained.WEIGHTS_FILE}" in text and "server log" in text
    assert_no_server_path(at, env)


def start_fashion_run(at: AppTest, name: str) -> None:
    at.selectbox(key="tr_network").set_value("mini")
    at.selectbox(key="tr_dataset").set_value("fashion-mnist")
    run(at)
    at.number_input(key="tr_size_mini").set_value(12)
    at.number_input(key="tr_epochs_improved").set_value(1)
    at.number_input(key="tr_batch_improved").set_value(20)
    at.selectbox(key="tr_device").set_value("cpu")
    at.text_input(key="tr_name").set_value(name)
    at.button(key="tr_start").click()
    run(at)


def test_training_offers_a_missing_dataset_downloads_it_then_the_run_trains(env, server, monkeypatch):
    files = mnist_files(60, 20)
    paused = None
    for name, blob in files.items():
        opts = {"pause_at": len(blob) // 2} if name.startswith("train-images") else {}
        s = server.add(f"/mirror/FashionMNIST/{name}", blob, **opts)
        paused = s if opts else paused
    sums = env / "md5sums.txt"
    sums.write_text("".join(f"{md5(b)}  FashionMNIST/{n}\n" for n, b in files.items()))
    monkeypatch.setenv("GNET_DATASET_MIRROR", server.url("/mirror/"))
    monkeypatch.setenv("GNET_DATASET_CHECKSUMS", str(sums))
    at = run(AppTest.from_file(str(PAGES / "training.py"), default_timeout=60))
    start_fashion_run(at, "fm-download")
    info = texts(at.info)
    assert "needs Fashion-MNIST (about 30 MB), which is not in the data folder yet" in info
    assert not runs.list_runs(env / "runs") and server.requests.total() == 0  # nothing without the user's yes
    at.button(key="tr_dataset_dl_start").click()
    run(at)
    assert paused.paused.wait(60)
    run(at)
    assert at.progress and re.sub(r"\\(.)", r"\1", at.progress[0].text).startswith(
        "Downloading Fashion-MNIST for run fm-download: "
    )
    assert at.progress[0].value < 100 and " of " in at.progress[0].text
    assert not runs.list_runs(env / "runs")  # the run waits for its data
    paused.release.set()
    for f in files:
        job = downloads.find(server.url(f"/mirror/FashionMNIST/{f}"), env / "data" / "FashionMNIST" / "raw" / f)
        assert job is not None and job.wait(60)
    run(at)  # the fragment's rerun: the run starts by itself
    assert "Fashion-MNIST is downloaded. Started run fm-download." in texts(at.success)
    assert_no_server_path(at, env)
    info = runs.read_run(env / "runs" / "fm-download")
    assert info.state != "missing" and info.setting("dataset") == "fashion-mnist" and info.setting("epochs") == 1
    # That these files train is test_downloads.py::test_fashion_mnist_from_a_mirror_then_trains (in-process,
    # cheaper than waiting for this run's own process); the fixture stops this one.


def test_training_dataset_download_failure_says_why_and_offers_a_retry(env, server, monkeypatch):
    files = mnist_files(20, 10)
    for name, blob in files.items():
        server.add(f"/mirror/FashionMNIST/{name}", blob)
    sums = env / "md5sums.txt"  # the operator's checksums disagree with one served file
    sums.write_text(
        "".join(
            f"{md5(b if n != 't10k-labels-idx1-ubyte.gz' else b'other')}  FashionMNIST/{n}\n" for n, b in files.items()
        )
    )
    monkeypatch.setenv("GNET_DATASET_MIRROR", server.url("/mirror/"))
    monkeypatch.setenv("GNET_DATASET_CHECKSUMS", str(sums))
    at = run(AppTest.from_file(str(PAGES / "training.py"), default_timeout=60))
    start_fashion_run(at, "fm-bad")
    at.button(key="tr_dataset_dl_start").click()
    run(at)
    for f in files:
        job = downloads.find(server.url(f"/mirror/FashionMNIST/{f}"), env / "data" / "FashionMNIST" / "raw" / f)
        assert job is not None and job.wait(60)
    run(at)
    err = texts(at.error)
    assert "Could not download Fashion-MNIST" in err and "wrong MD5" in err and "t10k-labels-idx1-ubyte.gz" in err
    assert at.button(key="tr_dataset_dl_retry") and not runs.list_runs(env / "runs") and not at.progress
    assert_no_server_path(at, env)


def test_training_offline_says_which_files_go_where_without_server_paths(env, monkeypatch):
    monkeypatch.setenv("GNET_OFFLINE", "1")
    at = run(AppTest.from_file(str(PAGES / "training.py"), default_timeout=60))
    assert_no_server_path(at, env)  # "No runs yet in the runs folder (GNET_RUNS_DIR)"
    start_fashion_run(at, "offline-run")
    err = texts(at.error)
    assert "downloads are switched off" in err and "$GNET_DATA_DIR/FashionMNIST/raw/" in err
    assert "train-images-idx3-ubyte" in err and not runs.list_runs(env / "runs")
    assert_no_server_path(at, env)
