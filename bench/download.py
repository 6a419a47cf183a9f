"""Download overhead: gnet.downloads (progress, hashing, stall detection, atomic move) against
torch.hub.download_url_to_file (the baseline: same temp-file-and-move, one SHA-256) in the same run,
both fetching the same random bytes from an HTTP server on 127.0.0.1 (tests/loopback.py).

Loopback is far faster than any real link, so this measures what the downloader costs on top
of the network, not the network: the ratio should stay near 1. Also prints what a real first
run costs for the 49.7 MB weights at a few link speeds.

    python bench/download.py [--mb 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gnet import downloads
from tests.loopback import FileServer, sha256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    blob = os.urandom(int(args.mb * 1e6))
    digest = sha256(blob)
    server = FileServer()
    server.add("/f", blob)
    ours, hub = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                dest = Path(tmp) / f"hub{i}.bin"
                t0 = time.perf_counter()
                torch.hub.download_url_to_file(server.url("/f"), str(dest), hash_prefix=digest[:8], progress=False)
                hub.append(time.perf_counter() - t0)
                dest = Path(tmp) / f"ours{i}.bin"
                t0 = time.perf_counter()
                job = downloads.fetch(server.url("/f"), dest, downloads.Check(sha256=digest))
                job.wait()
                ours.append(time.perf_counter() - t0)
                assert job.progress().state == "done", job.progress()
    finally:
        server.close()
    h, o = statistics.median(hub), statistics.median(ours)
    print(f"{args.mb:.0f} MB over loopback, median of {args.repeats}:")
    print(f"  torch.hub.download_url_to_file (baseline): {h:.3f} s ({args.mb / h:.0f} MB/s)")
    print(f"  gnet.downloads.fetch:                      {o:.3f} s ({args.mb / o:.0f} MB/s)   ratio {o / h:.2f}×")
    print("the 49.7 MB weights on a real link (size × 8 / rate):")
    for mbit in (10, 50, 100, 1000):
        print(f"  {mbit:>5} Mbit/s: {49.7 * 8 / mbit:6.1f} s")


if __name__ == "__main__":
    main()
