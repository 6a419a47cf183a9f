"""A real HTTP server on 127.0.0.1 for the download tests, and small files in the real formats.

`FileServer` serves bytes per path and can throttle, pause at a byte offset until the test
releases it (progress seen mid-way without timing), cut the connection at a byte offset for
the first K requests, or send a web page instead. It answers `Range: bytes=N-` with a 206
(honouring If-Range against its ETag), or ignores Range when told to, and it can replace a
file by a new version after a cut. It counts requests, Range headers and bytes sent per
path. Nothing here reaches beyond loopback.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch
import torchvision


@dataclass
class Served:
    data: bytes
    content_type: str = "application/octet-stream"
    rate: float | None = None  # bytes per second
    pause_at: int | None = None  # stop sending at this offset until `release` is set
    release: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)  # set when a transfer reached pause_at
    cut_after: int | None = None  # close the connection when the transfer reaches this offset of the file ...
    cut_times: int = 0  # ... for this many requests; later requests get the rest
    ranges: bool = True  # False: Range is ignored, every answer is a 200 with the whole file
    then: bytes | None = None  # after the first cut, the file is replaced by these bytes (a new version)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.data).hexdigest()[:16] + '"'


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: Counter[str] = Counter()
        self.range_headers: dict[str, list[str | None]] = {}  # per path, each request's Range header
        self.sent: Counter[str] = Counter()  # body bytes written per path
        self._lock = threading.Lock()
        self._closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served = outer.files.get(self.path)
                with outer._lock:
                    outer.requests[self.path] += 1
                    n_request = outer.requests[self.path]
                if served is None:
                    self.send_error(404)
                    return
                with outer._lock:
                    outer.range_headers.setdefault(self.path, []).append(self.headers.get("Range"))
                data = served.data
                start = _range_start(self.headers.get("Range"), len(data)) if served.ranges else None
                if_range = self.headers.get("If-Range")
                if start is not None and if_range is not None and if_range != served.etag:
                    start = None  # the client's copy is of another version: send the whole file
                if start is None:
                    self.send_response(200)
                    start = 0
                else:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", served.etag)
                if served.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                cut = served.cut_after if n_request <= served.cut_times else None
                try:
                    outer._send(self, served, data, start, cut)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (cancelled, or the test ended)
                if cut is not None and served.then is not None:
                    served.data, served.then = served.then, None

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _send(self, handler: BaseHTTPRequestHandler, served: Served, data: bytes, sent: int, cut: int | None) -> None:
        path, step = handler.path, 16 * 1024
        while sent < len(data):
            if served.pause_at is not None and sent >= served.pause_at and not served.release.is_set():
                served.paused.set()
                while not served.release.wait(0.05):
                    if self._closing.is_set():
                        return
            end = min(len(data), sent + step)
            if served.pause_at is not None and sent < served.pause_at:
                end = min(end, served.pause_at)
            if cut is not None and end >= cut:
                handler.wfile.write(data[sent:cut])
                handler.wfile.flush()
                with self._lock:
                    self.sent[path] += max(0, cut - sent)
                handler.close_connection = True
                return  # fewer bytes than Content-Length said: a cut connection
            handler.wfile.write(data[sent:end])
            with self._lock:
                self.sent[path] += end - sent
            sent = end
            if served.rate:
                time.sleep(step / served.rate)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, path: str, data: bytes, **options) -> Served:
        self.files[path] = served = Served(data, **options)
        return served

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self._closing.set()
        for served in self.files.values():
            served.release.set()
        self.server.shutdown()
        self.server.server_close()


def _range_start(header: str | None, size: int) -> int | None:
    """N of a `bytes=N-` Range header within the file, else None (no header, another form, out of range)."""
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return None
    first = header[len("bytes=") : -1]
    return int(first) if first.isdigit() and int(first) < size else None


# ---------------------------------------------------------------------------
# Files in the real formats


@functools.cache
def torchvision_weights_bytes() -> bytes:
    """A state_dict in the format of torchvision's googlenet-1378be20.pth (random values, real keys and shapes)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        state = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_images(n: int, seed: int) -> tuple[bytes, np.ndarray]:
    """An IDX3 file (MNIST's format): magic 0x00000803, N, 28, 28, then uint8 pixels; gzipped."""
    x = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    return gzip.compress(struct.pack(">IIII", 0x803, n, 28, 28) + x.tobytes(), mtime=0), x


def idx_labels(n: int, seed: int) -> tuple[bytes, np.ndarray]:
    """An IDX1 file: magic 0x00000801, N, then uint8 labels; gzipped."""
    y = (np.arange(n) % 10).astype(np.uint8)
    np.random.default_rng(seed).shuffle(y)
    return gzip.compress(struct.pack(">II", 0x801, n) + y.tobytes(), mtime=0), y


def mnist_files(n_train: int = 60, n_test: int = 20) -> dict[str, bytes]:
    """The four .gz files torchvision's (Fashion)MNIST class downloads, tiny."""
    return {
        "train-images-idx3-ubyte.gz": idx_images(n_train, 1)[0],
        "train-labels-idx1-ubyte.gz": idx_labels(n_train, 2)[0],
        "t10k-images-idx3-ubyte.gz": idx_images(n_test, 3)[0],
        "t10k-labels-idx1-ubyte.gz": idx_labels(n_test, 4)[0],
    }


def cifar_archive(per_batch: int = 10, n_test: int = 10) -> bytes:
    """cifar-10-python.tar.gz: cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}, pickles of
    {'data': (N, 3072) uint8, 'labels': [...]} as in the real archive."""
    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name: str, obj: object) -> None:
            raw = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))

        for i in range(1, 6):
            add(
                f"data_batch_{i}",
                {
                    "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                    "labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                },
            )
        add(
            "test_batch",
            {
                "data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
                "labels": [int(v) for v in np.arange(n_test) % 10],
            },
        )
        add(
            "batches.meta",
            {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]},
        )
    return buf.getvalue()
