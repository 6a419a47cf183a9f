"""Start the real app (`streamlit run app.py`) on a free loopback port: used by the
e2e fixtures and by bench/load.py."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class AppServer:
    url: str
    proc: subprocess.Popen
    home: Path

    def rss_mb(self) -> float:
        """Resident memory of the server process, from /proc (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        return (self.home / "server.log").read_text(errors="replace")


def stop_children(home: Path) -> list[int]:
    """SIGKILL the processes the app started for `home` (training runs, sweep schedulers, picture jobs): they are
    detached from the server on purpose (they outlive a closed page), so a test that fails half-way, or the server's
    exit, would leave them running on the shared cores. Each is found by its command line, which names a path
    under `home` (its run directory, say); returns their process ids (Linux: /proc)."""
    mark = str(home.resolve()) + os.sep
    killed: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(mark in arg for arg in argv):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(home: Path, extra_env: dict[str, str] | None = None) -> Iterator[AppServer]:
    """The app with its own runs root, data dir and an empty torch hub cache under `home`."""
    port = _free_port()
    env = {
        **os.environ,
        "GNET_RUNS_DIR": str(home / "runs"),
        "TORCH_HOME": str(home / "torch"),
        "GNET_DATA_DIR": str(home / "data"),
        "PYTHONUNBUFFERED": "1",
        # No download attempts from tests, even on a machine with internet.
        "GNET_OFFLINE": "1",
        **(extra_env or {}),
    }
    with open(home / "server.log", "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = AppServer(f"http://127.0.0.1:{port}", proc, home)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"streamlit did not start; log:\n{server.log()[-3000:]}") from None
                    time.sleep(0.3)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            stop_children(home)  # after the server: it can start no more
