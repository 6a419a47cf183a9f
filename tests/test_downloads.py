"""The online first run against a real HTTP server on 127.0.0.1 (tests/loopback.py), through
the mirror variables and the real download code (no mock of urllib or torch.hub): weights
with progress, verified, never half-written, one download per process; datasets through
torchvision's own classes with their mirrors replaced, which then train."""

from __future__ import annotations

import os
import threading

import pytest
import torch
import torchvision.datasets as tvd
from hypothesis import given, settings
from hypothesis import strategies as st

from gnet import data, downloads, pretrained, runs
from gnet.data import DataError, dataset_download, load_dataset
from gnet.pretrained import ModelSource, ensure_pretrained_weights, hub_weights_path, load_model
from gnet.spec import network_preset
from gnet.train import TrainConfig, train
from tests.loopback import (
    FileServer,
    cifar_archive,
    idx_images,
    idx_labels,
    md5,
    mnist_files,
    sha256,
    torchvision_weights_bytes,
)

WEIGHTS_PATH = f"/weights/{pretrained.WEIGHTS_FILE}"


@pytest.fixture
def server():
    s = FileServer()
    yield s
    downloads.cancel_all()  # no transfer outlives its test
    s.close()


@pytest.fixture
def online(tmp_path, monkeypatch):
    """An empty torch hub cache and data folder, downloads allowed (only loopback URLs are ever given)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(downloads, "RETRY_WAIT_S", 0.05)  # the retries themselves are real; only shorter waits
    for var in (
        "GNET_OFFLINE",
        "GNET_NO_DOWNLOAD",
        "GNET_WEIGHTS_URL",
        "GNET_WEIGHTS_SHA256",
        "GNET_DATASET_MIRROR",
        "GNET_DATASET_CHECKSUMS",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def mirror_weights(server: FileServer, monkeypatch, **options) -> bytes:
    blob = torchvision_weights_bytes()
    server.add(WEIGHTS_PATH, blob, **options)
    monkeypatch.setenv("GNET_WEIGHTS_URL", server.url(WEIGHTS_PATH))
    monkeypatch.setenv("GNET_WEIGHTS_SHA256", sha256(blob))
    return blob


def job() -> downloads.Download:
    found = downloads.find(pretrained.weights_source()[0], hub_weights_path())
    assert found is not None
    return found


def leftovers() -> list[str]:
    folder = hub_weights_path().parent
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_progress_advances_then_the_verified_file_loads(online, server, monkeypatch):
    blob = mirror_weights(server, monkeypatch, pause_at=len(torchvision_weights_bytes()) // 2)
    served = server.files[WEIGHTS_PATH]
    first = ensure_pretrained_weights()
    assert first.state == "downloading" and not first.ok
    assert served.paused.wait(30)  # the server sent half and holds the rest back
    while job().progress().done < len(blob) // 2:  # the client has read what was sent
        assert not job().wait(0.02)
    mid = ensure_pretrained_weights().progress
    assert mid is not None and mid.state == "running" and mid.total == len(blob)
    assert len(blob) // 2 <= mid.done < len(blob) and 0.4 < mid.fraction < 1.0
    assert f"of {len(blob) / 1e6:.1f} MB" in mid.describe()
    assert not hub_weights_path().exists()  # nothing at the real name until verified
    served.release.set()
    assert job().wait(60)
    status = ensure_pretrained_weights()
    assert status.ok and status.state == "ready"
    assert sha256(hub_weights_path().read_bytes()) == sha256(blob)
    assert leftovers() == [pretrained.WEIGHTS_FILE]  # no .partial file
    lm = load_model(ModelSource("pretrained"))
    state = torch.load(hub_weights_path(), weights_only=True)
    assert lm.trained and torch.equal(
        lm.module.state_dict()["inception4a.branch2.1.conv.weight"], state["inception4a.branch2.1.conv.weight"]
    )
    assert server.requests[WEIGHTS_PATH] == 1


def test_eight_sessions_waiting_cause_one_download(online, server, monkeypatch):
    blob = mirror_weights(server, monkeypatch, pause_at=1)
    served = server.files[WEIGHTS_PATH]
    start = threading.Barrier(8)
    seen: list[str] = []

    def session() -> None:
        start.wait()
        seen.append(ensure_pretrained_weights().state)

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert served.paused.wait(30)
    assert seen == ["downloading"] * 8
    for _ in range(8):  # every later rerun of every session sees the same one download
        assert ensure_pretrained_weights().state == "downloading"
    served.release.set()
    assert job().wait(60) and ensure_pretrained_weights().ok
    assert server.requests[WEIGHTS_PATH] == 1
    assert hub_weights_path().read_bytes() == blob


def test_a_cut_download_is_retried_cleanly(online, server, monkeypatch):
    blob = mirror_weights(server, monkeypatch, cut_after=len(torchvision_weights_bytes()) // 3, cut_times=1)
    ensure_pretrained_weights()
    assert job().wait(60)
    assert ensure_pretrained_weights().ok
    assert server.requests[WEIGHTS_PATH] == 2  # the cut attempt, then one whole one
    assert hub_weights_path().read_bytes() == blob
    assert leftovers() == [pretrained.WEIGHTS_FILE]


def test_a_cut_download_resumes_from_its_partial_file(online, server, monkeypatch):
    size = len(torchvision_weights_bytes())
    cut, pause = size // 3, 2 * size // 3
    blob = mirror_weights(server, monkeypatch, cut_after=cut, cut_times=1, pause_at=pause)
    served = server.files[WEIGHTS_PATH]
    ensure_pretrained_weights()
    assert served.paused.wait(30)  # the second request resumed at `cut` and is held at `pause`
    while job().progress().done < pause:
        assert not job().wait(0.02)
    p = job().progress()
    assert p.state == "running" and p.attempt == 2 and p.total == size  # the file's size, not the rest's
    assert pause <= p.done < size and "attempt 2 of 3" in p.describe()
    (partial,) = [n for n in leftovers() if n.endswith(".partial")]  # one file, appended to
    assert (hub_weights_path().parent / partial).stat().st_size >= pause
    served.release.set()
    assert job().wait(60) and ensure_pretrained_weights().ok
    assert server.range_headers[WEIGHTS_PATH] == [None, f"bytes={cut}-"]
    assert server.sent[WEIGHTS_PATH] == size  # no byte was sent twice
    assert hub_weights_path().read_bytes() == blob  # and the full-file SHA-256 held
    assert leftovers() == [pretrained.WEIGHTS_FILE]


def test_a_server_that_ignores_range_restarts_cleanly_from_zero(online, server, monkeypatch):
    size = len(torchvision_weights_bytes())
    blob = mirror_weights(server, monkeypatch, cut_after=size // 3, cut_times=1, ranges=False)
    ensure_pretrained_weights()
    assert job().wait(60) and ensure_pretrained_weights().ok
    assert server.range_headers[WEIGHTS_PATH] == [None, f"bytes={size // 3}-"]  # asked, answered with a 200
    assert server.sent[WEIGHTS_PATH] == size // 3 + size
    assert hub_weights_path().read_bytes() == blob and job().progress().done == size
    assert leftovers() == [pretrained.WEIGHTS_FILE]


def test_a_file_changed_between_attempts_comes_whole(online, server):
    old, new = bytes(range(256)) * 2000, bytes(reversed(range(256))) * 1900
    server.add("/f.bin", old, cut_after=100_000, cut_times=1, then=new)
    dest = online / "out" / "f.bin"
    d = downloads.fetch(server.url("/f.bin"), dest, downloads.Check(sha256=sha256(new)))
    assert d.wait(60) and d.progress().state == "done", d.progress().message
    assert server.range_headers["/f.bin"] == [None, "bytes=100000-"]  # If-Range carried the old ETag
    assert server.sent["/f.bin"] == 100_000 + len(new) and dest.read_bytes() == new
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_a_resumed_file_with_the_wrong_hash_is_refused(online, server):
    blob = bytes(range(256)) * 2000
    server.add("/f.bin", blob, cut_after=200_000, cut_times=1)
    dest = online / "out" / "f.bin"
    d = downloads.fetch(server.url("/f.bin"), dest, downloads.Check(sha256="0" * 64, what="the file"))
    assert d.wait(60)
    p = d.progress()
    assert p.state == "failed" and "wrong SHA-256" in p.message and f"{len(blob):,} bytes" in p.message
    assert server.range_headers["/f.bin"] == [None, "bytes=200000-"] and server.sent["/f.bin"] == len(blob)
    assert list(dest.parent.iterdir()) == []  # neither the file nor its partial


def test_a_partial_file_left_by_a_killed_server_is_removed(online, server, monkeypatch):
    blob = mirror_weights(server, monkeypatch)
    folder = hub_weights_path().parent
    folder.mkdir(parents=True)
    dead, live = folder / f"{pretrained.WEIGHTS_FILE}.dead.partial", folder / f"{pretrained.WEIGHTS_FILE}.live.partial"
    dead.write_bytes(b"half a file")
    live.write_bytes(b"another process is writing this one")
    old = dead.stat().st_mtime - 2 * downloads.STALE_PARTIAL_S
    os.utime(dead, (old, old))  # explicit mtimes, no sleeping
    ensure_pretrained_weights()
    assert job().wait(60) and hub_weights_path().read_bytes() == blob
    assert not dead.exists() and live.exists()


def test_a_download_cut_every_time_fails_and_leaves_nothing(online, server, monkeypatch):
    mirror_weights(server, monkeypatch, cut_after=100_000, cut_times=99)
    ensure_pretrained_weights()
    assert job().wait(60)
    status = ensure_pretrained_weights()
    assert status.state == "failed" and "connection closed after 100,000 of" in status.message
    assert server.requests[WEIGHTS_PATH] == downloads.ATTEMPTS
    assert leftovers() == []


@pytest.mark.parametrize("case", ["wrong_hash", "html", "torchvision_prefix"])
def test_wrong_bytes_are_refused_with_a_clear_message(online, server, monkeypatch, case):
    if case == "html":
        server.add(
            WEIGHTS_PATH,
            b"<!DOCTYPE html><html><body>Please log in to the proxy</body></html>",
            content_type="text/html; charset=utf-8",
        )
        monkeypatch.setenv("GNET_WEIGHTS_URL", server.url(WEIGHTS_PATH))
    elif case == "wrong_hash":
        mirror_weights(server, monkeypatch)
        monkeypatch.setenv("GNET_WEIGHTS_SHA256", "0" * 64)
    else:  # no GNET_WEIGHTS_SHA256: the mirror's file is held to torchvision's own hash prefix
        server.add(WEIGHTS_PATH, torchvision_weights_bytes())
        monkeypatch.setenv("GNET_WEIGHTS_URL", server.url(WEIGHTS_PATH))
    ensure_pretrained_weights()
    assert job().wait(60)
    status = ensure_pretrained_weights()
    assert status.state == "failed" and not status.ok
    want = {
        "html": "sent a web page (HTML) instead of the file",
        "wrong_hash": "wrong SHA-256",
        "torchvision_prefix": "expected 1378be20",
    }[case]
    assert want in status.message and "refused" in status.message or case == "html"
    assert server.requests[WEIGHTS_PATH] == 1  # wrong bytes are not fetched again by themselves
    assert leftovers() == []
    ensure_pretrained_weights()  # remembered: a rerun does not ask again ...
    assert server.requests[WEIGHTS_PATH] == 1
    ensure_pretrained_weights(retry=True)  # ... the retry button does
    assert job().wait(60) and server.requests[WEIGHTS_PATH] == 2


def test_a_bad_sha256_setting_is_a_message(online, monkeypatch):
    monkeypatch.setenv("GNET_WEIGHTS_SHA256", "abc")
    status = ensure_pretrained_weights()
    assert status.state == "failed" and "64 hexadecimal digits" in status.message


def test_a_quiet_connection_shows_no_speed_then_cancel(online, server, monkeypatch):
    monkeypatch.setattr(downloads, "SPEED_WINDOW_S", 0.05)
    mirror_weights(server, monkeypatch, pause_at=50_000)
    ensure_pretrained_weights()
    assert server.files[WEIGHTS_PATH].paused.wait(30)
    while job().progress().done < 50_000 or job().progress().speed > 0:  # the server holds the rest back
        assert not job().wait(0.02)
    p = job().progress()
    assert p.eta_s is None and "50 kB of" in p.describe() and "waiting for data" in p.describe()
    pretrained.cancel_weights_download()
    assert job().wait(60)
    status = ensure_pretrained_weights()
    assert status.state == "failed" and "cancelled" in status.message and leftovers() == []


# -- datasets through torchvision's classes, from a mirror ----------------------------------------


def mirror_dataset(
    server: FileServer,
    tmp_path,
    monkeypatch,
    cls: str,
    files: dict[str, bytes],
    checksum_files: dict[str, bytes] | None = None,
) -> None:
    for name, blob in files.items():
        server.add(f"/mirror/{cls}/{name}", blob)
    sums = tmp_path / "md5sums.txt"
    sums.write_text("".join(f"{md5(b)}  {cls}/{n}\n" for n, b in (checksum_files or files).items()))
    monkeypatch.setenv("GNET_DATASET_MIRROR", server.url("/mirror"))
    monkeypatch.setenv("GNET_DATASET_CHECKSUMS", str(sums))


def test_fashion_mnist_from_a_mirror_then_trains(online, server, monkeypatch):
    files = mnist_files(60, 20)
    mirror_dataset(server, online, monkeypatch, "FashionMNIST", files)
    cls = data.dataset_class("fashion-mnist")
    assert cls.mirrors == [server.url("/mirror/FashionMNIST/")] and cls.__name__ == "FashionMNIST"
    assert tvd.FashionMNIST.mirrors == ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]  # untouched
    assert dataset_download("fashion-mnist").state == "idle"
    p = dataset_download("fashion-mnist", start=True)
    assert p is not None and p.state in ("running", "done")
    ds = load_dataset("fashion-mnist")  # waits for those downloads, then torchvision checks and unpacks
    assert dataset_download("fashion-mnist") is None
    assert {k: v for k, v in server.requests.items()} == {f"/mirror/FashionMNIST/{n}": 1 for n in files}
    assert ds.train_x.shape == (60, 1, 28, 28) and ds.test_x.shape == (20, 1, 28, 28)
    assert ds.classes[0] == "T-shirt/top" and ds.flip_ok
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(idx_images(60, 1)[1]))
    assert torch.equal(ds.test_y, torch.from_numpy(idx_labels(20, 4)[1]).long())
    # ... and it trains: one tiny epoch of the mini network on the downloaded files
    cfg = TrainConfig.from_recipe(
        "improved",
        network_preset("mini"),
        dataset="fashion-mnist",
        image_size=32,
        epochs=1,
        batch_size=20,
        device="cpu",
    )
    run = runs.create(online / "runs" / "fm", {"train": cfg.to_dict()})
    assert train(cfg, run) == "finished"
    epochs = runs.read_metrics(run, "epoch", ("epoch", "test_acc"))
    assert [e["epoch"] for e in epochs] == [1] and 0.0 <= epochs[0]["test_acc"] <= 1.0
    assert server.requests.total() == 4  # the run found the files in place: no second download


def test_dataset_with_a_wrong_checksum_is_refused(online, server, monkeypatch):
    files = mnist_files(20, 10)
    bad = {**files, "train-labels-idx1-ubyte.gz": b"not the same bytes"}
    mirror_dataset(server, online, monkeypatch, "MNIST", files, checksum_files=bad)
    with pytest.raises(DataError) as e:
        load_dataset("mnist")
    msg = str(e.value)
    assert "wrong MD5" in msg and "train-labels-idx1-ubyte.gz" in msg and "$GNET_DATA_DIR/MNIST/raw/" in msg
    assert str(online) not in msg  # no server path in what a page would show
    assert not (online / "data" / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").exists()


def test_cifar10_from_a_mirror(online, server, monkeypatch):
    archive = cifar_archive(per_batch=6, n_test=10)
    mirror_dataset(server, online, monkeypatch, "CIFAR10", {"cifar-10-python.tar.gz": archive})
    ds = load_dataset("cifar10")
    assert ds.train_x.shape == (30, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    assert ds.classes[-1] == "truck" and server.requests["/mirror/CIFAR10/cifar-10-python.tar.gz"] == 1


def test_offline_dataset_message_names_folders_symbolically(online, monkeypatch):
    monkeypatch.setenv("GNET_OFFLINE", "1")
    assert not data.downloads_allowed()
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist")
    assert "$GNET_DATA_DIR/FashionMNIST/raw/" in str(e.value) and str(online) not in str(e.value)


@settings(max_examples=25, deadline=None)
@given(done=st.integers(0, 10**9), extra=st.integers(0, 10**9), speed=st.floats(0, 1e9))
def test_progress_fraction_and_eta(done, extra, speed):
    total = done + extra
    p = downloads.Progress("running", done, total or None, speed, 1, 3)
    if total:
        assert p.fraction == pytest.approx(done / total) and 0 <= p.fraction <= 1
    if total and speed > 0:
        assert p.eta_s == pytest.approx(extra / speed) and p.eta_s >= 0
        assert "left" in p.describe()
    else:
        assert p.eta_s is None


def test_without_mirrors_the_official_sources_and_checks_apply(online):
    url, check = pretrained.weights_source()
    assert url == "https://download.pytorch.org/models/googlenet-1378be20.pth"  # never fetched in the suite
    assert check.sha256 == "1378be20" and check.sha256 == pretrained.WEIGHTS_FILE.split("-")[1].split(".")[0]
    assert data.dataset_class("fashion-mnist") is tvd.FashionMNIST and data.dataset_class("cifar10") is tvd.CIFAR10
    files, _ = data._remote_files("cifar10", online / "data")
    assert files[0].url == tvd.CIFAR10.url and files[0].md5 == tvd.CIFAR10.tgz_md5


def test_header_numbers_are_ascii_digits_only():
    """A Content-Length or Content-Range with '²' (str.isdigit() takes it, int() refuses) reads as absent."""
    from gnet.downloads import _content_range, _whole

    assert _whole(" 1234 ") == 1234 and _whole("²") is None and _whole("１２") is None and _whole("") is None
    assert _content_range("bytes 10-19/20") == (10, 20)
    assert _content_range("bytes 10-19/*") == (10, None)
    assert _content_range("bytes ²-19/20") == (None, None)
    assert _content_range("bytes 10-19/²") == (10, None)
