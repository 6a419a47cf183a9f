"""Background downloads with progress: one per file per process, verified, never half-written.

The pages must stay usable while a 50 MB file arrives, and every session waiting for the
same file must share one transfer. So a download is a daemon thread in a process-wide
registry keyed by (URL, destination); callers poll `Download.progress()` and never block.

Each attempt streams into `<dest>.<random>.partial` in the destination folder, hashing as it
goes, and only a complete, verified file is moved into place with os.replace. Refused:
an HTML page in place of the file (captive portals, login pages, error pages), fewer bytes
than the server announced (a cut connection), a wrong SHA-256 (full digest, or the 8-digit
prefix torchvision puts in its file names) or a wrong MD5 (torchvision's dataset checksums).
A connection that sends nothing for `stall_s` seconds is given up (the socket timeout), and
cut or stalled transfers are retried a few times; wrong bytes are not, since the same server
would send them again. A retry resumes: it asks for the rest with `Range: bytes=N-` (and
If-Range, so a changed file comes whole) and appends to the same partial file; a server that
ignores Range (a 200 with the whole body) or answers another range starts the file over. A finished or failed download is remembered for the
process, so reruns do not fetch again; `fetch(..., retry=True)` starts over after a failure.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # read1 returns what has arrived, up to this
STALL_S = 30.0  # no byte for this long: the attempt is given up (GNET_DOWNLOAD_STALL_S overrides it)
ATTEMPTS = 3  # a cut or stalled transfer is tried this many times in all
RETRY_WAIT_S = 1.0  # before the 2nd attempt; doubled before each later one
SPEED_WINDOW_S = 3.0  # the speed shown is measured over this many recent seconds
STALE_PARTIAL_S = 120.0  # a .partial file untouched this long was left by a killed process
USER_AGENT = "inception-explorer (urllib)"


class Refused(Exception):
    """The server sent bytes that are not the file (HTML, wrong hash, empty): retrying won't help."""


class _Cut(OSError):
    """The connection closed before all announced bytes arrived."""


class _Cancelled(Exception):
    pass


@dataclass(frozen=True)
class Check:
    """What the finished file must satisfy. sha256 may be a full digest or a prefix."""

    sha256: str = ""
    md5: str = ""
    what: str = "the file"  # for messages: "the pretrained weights (googlenet-1378be20.pth)"


@dataclass(frozen=True)
class Progress:
    state: str  # "running", "done", "failed" or "cancelled"
    done: int  # bytes of the file so far (a resumed attempt goes on from what the earlier ones wrote)
    total: int | None  # bytes announced by the server (Content-Length), None if not sent
    speed: float  # bytes per second over the last few seconds
    attempt: int  # 1-based
    attempts: int
    message: str = ""  # why it failed, or what it is waiting for

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None

    @property
    def eta_s(self) -> float | None:
        if not self.total or self.speed <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.speed)

    def describe(self) -> str:
        """One line for a progress bar: '12.3 of 49.7 MB · 4.1 MB/s · about 9 s left'."""
        text = f"{format_bytes(self.done)} of {format_bytes(self.total)}" if self.total else format_bytes(self.done)
        text += f" · {format_bytes(self.speed)}/s" if self.speed > 0 else " · waiting for data"
        eta = self.eta_s
        if eta is not None:
            text += f" · about {format_seconds(eta)} left"
        if self.attempt > 1:
            text += f" · attempt {self.attempt} of {self.attempts}"
        return text


def stall_seconds() -> float:
    """GNET_DOWNLOAD_STALL_S (e.g. longer for a satellite link), else STALL_S."""
    try:
        value = float(os.environ.get("GNET_DOWNLOAD_STALL_S", "") or STALL_S)
    except ValueError:
        return STALL_S
    return value if 0 < value <= 3600 else STALL_S


def format_bytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def format_seconds(s: float) -> str:
    if not s < 100 * 3600:  # also inf and nan: a trickle of bytes
        return "more than 100 h"
    s = int(round(s))
    return f"{s} s" if s < 90 else f"{s // 60} min {s % 60:02d} s"


class Download:
    """One background transfer of `url` into `dest`. Use `fetch()` to get the process's one."""

    def __init__(self, url: str, dest: Path, check: Check, stall_s: float = STALL_S, attempts: int = ATTEMPTS):
        self.url, self.dest, self.check = url, Path(dest), check
        self.stall_s, self.attempts = float(stall_s), max(1, int(attempts))
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._cancel = threading.Event()
        self._state, self._message = "running", ""
        self._done, self._total, self._attempt = 0, None, 0
        self._samples: deque[tuple[float, int]] = deque()  # (time, bytes so far) for the speed
        self._response: object | None = None  # the open HTTP response, so cancel() can wake a blocked read
        self._tmp: Path | None = None  # the partial file, kept between attempts so a cut one resumes
        self._validator = ""  # the first answer's ETag or Last-Modified, for If-Range
        self._size: int | None = None  # the file's size as first announced
        self._thread = threading.Thread(target=self._run, name=f"gnet-download-{self.dest.name}", daemon=True)

    def start(self) -> Download:
        self._thread.start()
        return self

    def progress(self) -> Progress:
        with self._lock:
            # bytes per second up to now, so a connection that went quiet shows 0, not its last speed
            now, speed = time.monotonic(), 0.0
            if self._samples and now - self._samples[-1][0] <= SPEED_WINDOW_S:
                t0, b0 = self._samples[0]
                speed = (self._done - b0) / (now - t0) if now > t0 else 0.0
            return Progress(
                self._state, self._done, self._total, speed, max(1, self._attempt), self.attempts, self._message
            )

    def wait(self, timeout: float | None = None) -> bool:
        """True once the download has ended (done, failed or cancelled)."""
        return self._finished.wait(timeout)

    def cancel(self) -> None:
        """Stop the transfer now: a read blocked on a silent server is woken by shutting its socket down."""
        self._cancel.set()
        with self._lock:
            resp = self._response
        # http.client keeps the socket in a private attribute; without it, the cancel takes effect
        # at the next chunk or when the stall timeout ends the read.
        sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- the worker thread -----------------------------------------------------------------------

    def _run(self) -> None:
        last = ""
        try:
            for attempt in range(1, self.attempts + 1):
                with self._lock:
                    self._attempt = attempt  # done and total stay: a resumed attempt goes on from them
                    self._samples.clear()
                try:
                    self._fetch_once()
                    self._end("done", "")
                    return
                except Refused as e:
                    self._end("failed", str(e))
                    return
                except _Cancelled:
                    self._end("cancelled", "the download was cancelled")
                    return
                except urllib.error.HTTPError as e:
                    last = f"the server answered HTTP {e.code} {e.reason} for {self.url}"
                    if e.code < 500:  # 404, 403: asking again gets the same answer
                        break
                except (OSError, http.client.HTTPException, ValueError) as e:  # URLError, resets, timeouts, cuts
                    if self._cancel.is_set():
                        self._end("cancelled", "the download was cancelled")
                        return
                    last = _describe(e, self.stall_s)
                if attempt < self.attempts:
                    with self._lock:
                        self._message = f"{last}; trying again"
                    if self._cancel.wait(RETRY_WAIT_S * 2 ** (attempt - 1)):
                        self._end("cancelled", "the download was cancelled")
                        return
            self._end("failed", last)
        except BaseException as e:  # a thread must always end in a state the pages can show
            self._end("failed", f"{type(e).__name__}: {str(e)[:200]}")
        finally:
            if self._tmp is not None:  # moved into place when done; otherwise nothing half-written stays
                self._tmp.unlink(missing_ok=True)
            self._finished.set()

    def _end(self, state: str, message: str) -> None:
        with self._lock:
            self._state, self._message = state, message
        if state == "failed":
            log.warning("download of %s into %s failed: %s", self.url, self.dest, message)

    def _advance(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._done += n
            self._samples.append((now, self._done))
            while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW_S:
                self._samples.popleft()

    def _fetch_once(self) -> None:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if self._tmp is None:  # one partial file per download: a later attempt resumes from its bytes
            self._tmp = self.dest.with_name(f"{self.dest.name}.{uuid.uuid4().hex[:12]}.partial")
        tmp = self._tmp
        offset = tmp.stat().st_size if tmp.is_file() else 0
        resp, offset, total = self._open(offset)
        # only the digests that are checked (each costs CPU per byte); a resumed file's first bytes are
        # hashed from the disk, so the check covers every byte of the file, not only this attempt's
        sha = hashlib.sha256() if self.check.sha256 else None
        md5 = hashlib.md5(usedforsecurity=False) if self.check.md5 else None
        try:
            with resp, open(tmp, "r+b" if offset else "wb") as f:
                if offset:
                    _hash_prefix(f, offset, sha, md5)
                    f.seek(offset)
                    f.truncate()
                with self._lock:
                    self._response = resp
                    self._total, self._done = total, offset
                    self._message = ""
                    self._samples.clear()
                    self._samples.append((time.monotonic(), offset))
                ctype = resp.headers.get("Content-Type", "")
                n = offset
                while chunk := resp.read1(CHUNK):  # what has arrived, so progress and stalls show at once
                    if self._cancel.is_set():
                        raise _Cancelled
                    if n == 0 and _looks_like_html(chunk, ctype):
                        raise Refused(
                            f"{self.check.what}: {self.url} sent a web page (HTML) instead of the file "
                            "(a login or proxy page, or a wrong URL?); nothing was saved"
                        )
                    f.write(chunk)
                    if sha is not None:
                        sha.update(chunk)
                    if md5 is not None:
                        md5.update(chunk)
                    n += len(chunk)
                    self._advance(len(chunk))
                if self._cancel.is_set():
                    raise _Cancelled
                if total is not None and n < total:
                    raise _Cut(f"the connection closed after {n:,} of {total:,} bytes")
                f.flush()
                os.fsync(f.fileno())
            if n == 0:
                raise Refused(f"{self.check.what}: {self.url} sent an empty file; nothing was saved")
            _verify(self.check, sha.hexdigest() if sha else "", md5.hexdigest() if md5 else "", n)
            os.replace(tmp, self.dest)
        finally:
            with self._lock:
                self._response = None

    def _open(self, offset: int) -> tuple[http.client.HTTPResponse, int, int | None]:
        """The response for the file from `offset` on, as (response, offset it starts at, file size if known).

        With bytes already written, asks for the rest (Range, and If-Range with the first answer's
        ETag or Last-Modified, so a changed file comes whole). The answer is used as a resumption
        only if it is a 206 whose Content-Range starts at `offset` and names the size seen before;
        a 200 (a server that ignores Range, or a changed file), a 416 or another range restarts
        from byte 0.
        """
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self._validator:
                headers["If-Range"] = self._validator
        request = urllib.request.Request(self.url, headers=headers)
        try:
            # The timeout applies to the connect and to every read: it is the stall detector.
            resp = urllib.request.urlopen(request, timeout=self.stall_s)
        except urllib.error.HTTPError as e:
            if offset and e.code == 416:  # the range lies beyond the file (it shrank): ask for all of it
                e.close()
                return self._open(0)
            raise
        if offset and resp.status == 206:
            start, size = _content_range(resp.headers.get("Content-Range", ""))
            if start == offset and size is not None and (self._size is None or size == self._size):
                return resp, offset, size
            resp.close()  # not the rest of the same file: start over
            return self._open(0)
        if resp.status != 200:
            resp.close()
            raise Refused(f"{self.check.what}: {self.url} answered HTTP {resp.status}, not the file")
        length = resp.headers.get("Content-Length", "")
        total = _whole(length)
        etag = resp.headers.get("ETag", "").strip()
        # a weak ETag may not be used in If-Range (RFC 9110 13.1.5); Last-Modified then stands in
        self._validator = etag if etag and not etag.startswith("W/") else resp.headers.get("Last-Modified", "")
        self._size = total
        return resp, 0, total


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, full size) of a `bytes first-last/size` Content-Range; None where absent or malformed."""
    unit, _, rest = value.strip().partition(" ")
    span, _, size = rest.partition("/")
    first, _, last = span.partition("-")
    if unit.lower() != "bytes" or _whole(first) is None or _whole(last) is None:
        return None, None
    return _whole(first), _whole(size)


def _whole(text: str) -> int | None:
    """A header's byte count: ASCII digits only (str.isdigit() also takes '²', which int() refuses)."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def _hash_prefix(f, n: int, *digests) -> None:
    """Feed the first `n` bytes of the open file `f` to each digest that is not None."""
    f.seek(0)
    left = n
    while left > 0 and (block := f.read(min(CHUNK, left))):
        for d in digests:
            if d is not None:
                d.update(block)
        left -= len(block)
    if left:
        raise _Cut("the partial file is shorter than it was")


def _looks_like_html(first: bytes, content_type: str) -> bool:
    head = first[:512].lstrip().lower()
    return "text/html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _verify(check: Check, sha256: str, md5: str, n: int) -> None:
    want = check.sha256.strip().lower()
    if want and not sha256.startswith(want):
        raise Refused(
            f"{check.what} has the wrong SHA-256 ({sha256[:16]}…, expected {want[:16]}…; "
            f"{n:,} bytes): refused, nothing was saved"
        )
    want = check.md5.strip().lower()
    if want and md5 != want:
        raise Refused(
            f"{check.what} has the wrong MD5 ({md5}, expected {want}; {n:,} bytes): refused, nothing was saved"
        )


def _describe(e: BaseException, stall_s: float) -> str:
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"the connection stalled (no data for {stall_s:g} s)"
    if isinstance(reason, _Cut):
        return str(reason)
    text = str(reason).splitlines()[0][:200] if str(reason) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ---------------------------------------------------------------------------
# The process-wide registry: one download per (URL, destination)

_jobs: dict[tuple[str, str], Download] = {}
_jobs_lock = threading.Lock()


def fetch(
    url: str,
    dest: str | os.PathLike,
    check: Check,
    *,
    retry: bool = False,
    stall_s: float | None = None,
    attempts: int = ATTEMPTS,
) -> Download:
    """The process's download of `url` into `dest`, started if there is none yet.

    A running one is shared by every caller. A finished or failed one is returned as it
    is (its outcome is remembered), unless `retry` and it did not succeed, or its file
    has since been deleted: then a new one starts.
    """
    dest = Path(dest)
    key = (url, str(dest))
    with _jobs_lock:
        job = _jobs.get(key)
        if job is not None:
            state = job.progress().state
            if state == "running" or (state == "done" and dest.is_file()) or (state != "done" and not retry):
                return job
        _remove_stale_partials(dest)
        job = Download(url, dest, check, stall_seconds() if stall_s is None else stall_s, attempts)
        _jobs[key] = job
        return job.start()


def find(url: str, dest: str | os.PathLike) -> Download | None:
    """The process's download of `url` into `dest`, if one was started."""
    with _jobs_lock:
        return _jobs.get((url, str(Path(dest))))


def cancel_all(wait_s: float = 5.0) -> None:
    """Cancel every running download and forget all outcomes (a server shutting down; test isolation)."""
    with _jobs_lock:
        jobs = list(_jobs.values())
        _jobs.clear()
    for job in jobs:
        job.cancel()
    for job in jobs:
        job.wait(wait_s)


def _remove_stale_partials(dest: Path) -> None:
    """Temp files of a process that was killed mid-download (a live download touches its file constantly)."""
    try:
        for p in dest.parent.glob(f"{dest.name}.*.partial"):
            if time.time() - p.stat().st_mtime > STALE_PARTIAL_S:
                p.unlink(missing_ok=True)
    except OSError:
        pass
