"""How long a test waits for a job that runs in a process of its own.

The app starts runs, sweep runs and visualisations at nice 10 in an autogroup at nice 10 (`gnet.jobs.spawn`), so
that they yield the CPU to the pages. Beside the browser tests on the other pytest-xdist worker such a job gets
about a tenth of what each busy session gets: a visualisation that reaches its third step in 6 s on a quiet
2-core machine took over two minutes beside four busy sessions, and CI once gave up on it at 120 s. So a wait on
a job is bounded by what a starved job needs, not by how fast it is on a quiet machine: a passing test still
takes only as long as its job, and a job that truly hangs still fails, with what it last reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

BACKGROUND_S = 600.0


def wait_until(ok: Callable[[], T], why: Callable[[], str], timeout: float = BACKGROUND_S, every: float = 0.2) -> T:
    """ok()'s first true value, polled every `every` seconds; AssertionError with why() after `timeout`."""
    end = time.monotonic() + timeout
    while True:
        if value := ok():
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:.0f} s: {why()}")
        time.sleep(every)
