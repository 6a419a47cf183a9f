"""gnet.pretrained: torchvision weights through the real weights API (from a file the
test writes into a temporary torch hub cache), bounded offline download, weights files."""

from __future__ import annotations

import os
import pathlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import torchvision

from gnet import downloads, pretrained
from gnet import features as F
from gnet.checkpoints import CheckpointError
from gnet.pretrained import ModelSource, ensure_pretrained_weights, hub_weights_path, load_model


def torchvision_state() -> dict[str, torch.Tensor]:
    """What torchvision's googlenet-1378be20.pth holds (random values, real keys and shapes)."""
    return torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()


def write_hub_weights(torch_home: pathlib.Path) -> dict[str, torch.Tensor]:
    state = torchvision_state()
    path = torch_home / "hub" / "checkpoints" / pretrained.WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


class Marker:
    """A pickle whose loading would create a file (what a malicious checkpoint does)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def write_malicious(path: pathlib.Path, marker: pathlib.Path) -> None:
    torch.save({"format": "gnet-checkpoint-v1", "model": Marker(marker)}, path)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("GNET_OFFLINE", raising=False)
    monkeypatch.setattr(downloads, "RETRY_WAIT_S", 0.05)  # the retries themselves are real; only shorter waits
    monkeypatch.delenv("GNET_WEIGHTS_URL", raising=False)
    monkeypatch.delenv("GNET_WEIGHTS_SHA256", raising=False)
    yield home
    downloads.cancel_all()


# -- the pretrained path --------------------------------------------------------


def test_pretrained_loads_from_the_hub_cache_through_torchvision(torch_home):
    state = write_hub_weights(torch_home)
    assert hub_weights_path() == torch_home / "hub" / "checkpoints" / "googlenet-1378be20.pth"
    status = ensure_pretrained_weights(url="http://127.0.0.1:9/never-used")  # cached: no network at all
    assert status.ok and status.path == hub_weights_path()
    lm = load_model(ModelSource("pretrained"))
    assert isinstance(lm.module, torchvision.models.GoogLeNet) and lm.trained
    assert lm.module.transform_input and lm.module.aux1 is None  # what googlenet(weights=...) builds
    got = lm.module.state_dict()
    for key in ("conv1.conv.weight", "inception4c.branch3.1.conv.weight", "fc.weight", "fc.bias"):
        assert torch.equal(got[key], state[key]), key  # the weights really came from the file
    assert len(lm.classes) == 1000 and lm.classes[0] == "tench"
    assert lm.preprocess.resize == 256 and lm.preprocess.crop == (224, 224)


def test_pretrained_branch_labels_say_3x3(torch_home):
    write_hub_weights(torch_home)
    lm = load_model(ModelSource("pretrained"))
    blocks = [l for l in F.layers(lm.module) if l.is_block]
    assert [l.label for l in blocks] == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    for layer in blocks:  # pytorch/vision#906: torchvision's "5×5" branch is 3×3
        assert F.branch_kernel_labels(getattr(lm.module, layer.module))["b3"] == "1×1 → 3×3", layer
    ex = F.extract(lm.module, torch.randn(1, 3, 224, 224), "3a")
    assert ex.kernel_labels == {"b1": "1×1", "b2": "1×1 → 3×3", "b3": "1×1 → 3×3", "b4": "3×3 max-pool → 1×1"}


def test_missing_cache_file_is_a_clear_error(torch_home):
    with pytest.raises(CheckpointError, match="googlenet-1378be20.pth"):
        load_model(ModelSource("pretrained"))


def test_malicious_file_in_the_hub_cache_is_refused(torch_home, tmp_path):
    marker = tmp_path / "pwned"
    path = torch_home / "hub" / "checkpoints" / pretrained.WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save({"fc.weight": Marker(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_model(ModelSource("pretrained"))
    assert not marker.exists()


# -- the download: bounded, reported, remembered -----------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_download_fails_fast_and_is_remembered(torch_home):
    """A real attempt with an empty cache, against a local port nobody listens on (tests never touch
    the internet): refused at once, reported, remembered. No clock: the download's own end event."""
    url = f"http://127.0.0.1:{closed_port()}/googlenet-1378be20.pth"
    first = ensure_pretrained_weights(url=url)
    job = downloads.find(url, hub_weights_path())
    assert job is not None and first.state in ("downloading", "failed")
    assert job.wait(60)
    status = ensure_pretrained_weights(url=url)
    assert not status.ok and status.state == "failed"
    assert "googlenet-1378be20.pth" in status.message and "URLError" in status.message
    assert "refused" in status.message.lower()
    assert not hub_weights_path().exists()
    again = ensure_pretrained_weights(url=url)
    assert again.message == status.message and downloads.find(url, hub_weights_path()) is job  # remembered
    how = pretrained.how_to_get_weights()
    assert "$TORCH_HOME/hub/checkpoints/" in how and str(torch_home) not in how  # symbolic, no server path


def test_a_server_that_never_answers_is_cut_off(torch_home):
    with socket.socket() as server:  # accepts connections (kernel backlog) but never replies
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/googlenet-1378be20.pth"
        assert ensure_pretrained_weights(url=url, stall_s=0.3).state == "downloading"
        job = downloads.find(url, hub_weights_path())
        assert job is not None and job.wait(60)  # the stall detector ends it; no wall-clock bound here
        status = ensure_pretrained_weights(url=url)
    assert not status.ok and "stalled (no data for 0.3 s)" in status.message
    assert job.progress().attempt == downloads.ATTEMPTS  # a stall is retried before giving up


def test_retry_tries_again(torch_home):
    hits = []

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/googlenet-1378be20.pth"
        assert "404" in ensure_pretrained_weights(timeout=30, url=url).message
        ensure_pretrained_weights(timeout=30, url=url)
        assert len(hits) == 1  # the failure was remembered (and a 404 is not retried by itself)
        ensure_pretrained_weights(timeout=30, url=url, retry=True)
        assert len(hits) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_gnet_offline_skips_the_attempt(torch_home, monkeypatch):
    monkeypatch.setenv("GNET_OFFLINE", "1")
    status = ensure_pretrained_weights(timeout=3, url="http://127.0.0.1:9/x")
    assert not status.ok and "GNET_OFFLINE" in status.message


# -- a weights file the user points to -----------------------------------------


def test_weights_file(tmp_path):
    state = torchvision_state()
    path = tmp_path / "my-googlenet.pth"
    torch.save(state, path)
    lm = load_model(ModelSource("weights", str(path)))
    assert lm.trained and "my-googlenet.pth" in lm.label and lm.classes[0] == "tench"
    assert torch.equal(
        lm.module.state_dict()["inception5b.branch4.1.conv.weight"], state["inception5b.branch4.1.conv.weight"]
    )


def test_weights_file_rejections(tmp_path):
    with pytest.raises(CheckpointError, match="no weights file"):
        load_model(ModelSource("weights", str(tmp_path / "missing.pth")))
    bad = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), bad)
    with pytest.raises(CheckpointError, match="not GoogLeNet weights|do not fit"):
        load_model(ModelSource("weights", str(bad)))
    state = torchvision_state()
    state["inception3a.branch3.1.conv.weight"] = torch.zeros(32, 16, 5, 5)  # the paper's 5×5 shape
    wrong = tmp_path / "wrong.pth"
    torch.save(state, wrong)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(ModelSource("weights", str(wrong)))
    text = tmp_path / "notes.pth"
    text.write_text("not a tensor file")
    with pytest.raises(CheckpointError, match="not a PyTorch file"):
        load_model(ModelSource("weights", str(text)))
    truncated = tmp_path / "truncated.pth"
    torch.save(state, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        load_model(ModelSource("weights", str(truncated)))
    listy = tmp_path / "list.pth"
    torch.save([1, 2, 3], listy)
    with pytest.raises(CheckpointError, match="no state_dict"):
        load_model(ModelSource("weights", str(listy)))
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    write_malicious(evil, marker)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(ModelSource("weights", str(evil)))
    assert not marker.exists()


def test_untrained_is_labelled_and_reproducible():
    a, b = load_model(ModelSource("untrained")), load_model(ModelSource("untrained"))
    assert not a.trained and "UNTRAINED" in a.label
    assert all(torch.equal(p, q) for p, q in zip(a.module.state_dict().values(), b.module.state_dict().values()))


def test_unknown_source():
    with pytest.raises(CheckpointError, match="unknown model source"):
        load_model(ModelSource("imagenet22k"))


def test_find_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path))
    for run in ("a", "b"):
        (tmp_path / run / "checkpoints").mkdir(parents=True)
    # Explicit mtimes, not a sleep between writes: "a" is older although it is written last.
    (tmp_path / "b" / "checkpoints" / "best.pt").write_bytes(b"x")
    (tmp_path / "b" / "metrics.jsonl").write_text("")
    (tmp_path / "a" / "checkpoints" / "last.pt").write_bytes(b"x")
    os.utime(tmp_path / "a" / "checkpoints" / "last.pt", (1_000_000, 1_000_000))
    os.utime(tmp_path / "b" / "checkpoints" / "best.pt", (2_000_000, 2_000_000))
    assert pretrained.find_checkpoints() == [
        tmp_path / "b" / "checkpoints" / "best.pt",
        tmp_path / "a" / "checkpoints" / "last.pt",
    ]
    assert pretrained.find_checkpoints(tmp_path / "nothing-here") == []
