"""Page rerun time under AppTest after a widget change (median of repeats).

    python bench/page_rerun.py [--repeats 15]

Targets: ≤ 250 ms per rerun for the Block Designer, ≤ 500 ms for the
Network Explorer. A baseline, a one-widget page, is measured in the same run so
AppTest's own overhead is visible: ratio = page / baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

BASELINE = "import streamlit as st\nst.number_input('n', key='n', value=1)\n"


def _time_reruns(at: AppTest, change: Callable[[AppTest, int], None], repeats: int) -> list[float]:
    at.run()  # first render: imports, caches
    change(at, 0)
    at.run()  # one warm rerun not counted
    times = []
    for i in range(1, repeats + 1):
        change(at, i)
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        if at.exception:
            raise SystemExit(f"the page raised: {at.exception[0].value}")
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()

    cases = {
        "baseline (one number_input)": (
            AppTest.from_string(BASELINE, default_timeout=60),
            lambda at, i: at.number_input(key="n").set_value(i + 2),
            None,
        ),
        "Block Designer: b1 channels": (
            AppTest.from_file(str(ROOT / "pages" / "block_designer.py"), default_timeout=60),
            lambda at, i: at.number_input(key="bd_b1").set_value(64 + i),
            0.250,
        ),
        "Block Designer: 4096 ch at 224×224, b2": (
            AppTest.from_file(str(ROOT / "pages" / "block_designer.py"), default_timeout=60),
            lambda at, i: (
                at.number_input(key="bd_c").set_value(4096),
                at.number_input(key="bd_h").set_value(224),
                at.number_input(key="bd_w").set_value(224),
                at.number_input(key="bd_b2").set_value(4000 + i),
            ),
            0.250,
        ),
        "Network Explorer: input height (d2l-fashion96)": (
            AppTest.from_file(str(ROOT / "pages" / "network_explorer.py"), default_timeout=60),
            lambda at, i: at.number_input(key="ne_h").set_value(96 + 8 * (i % 4)),
            0.500,
        ),
    }
    # the aux preset has the most rows and figures: the slow case for the network page
    aux = AppTest.from_file(str(ROOT / "pages" / "network_explorer.py"), default_timeout=60)
    aux.run()
    aux.selectbox(key="ne_preset").set_value("googlenet-imagenet-aux")
    cases["Network Explorer: input height (googlenet-imagenet-aux)"] = (
        aux,
        lambda at, i: at.number_input(key="ne_h").set_value(224 + 32 * (i % 3)),
        0.500,
    )

    baseline = None
    print(f"{'case':56s} {'median':>9s} {'min':>9s} {'max':>9s} {'× base':>7s}  target")
    for name, (at, change, target) in cases.items():
        times = _time_reruns(at, change, args.repeats)
        med = statistics.median(times)
        baseline = baseline or med
        verdict = "" if target is None else f"≤ {target * 1000:.0f} ms: {'ok' if med <= target else 'MISSED'}"
        print(
            f"{name:56s} {med * 1000:7.1f}ms {min(times) * 1000:7.1f}ms {max(times) * 1000:7.1f}ms "
            f"{med / baseline:7.1f}  {verdict}"
        )


if __name__ == "__main__":
    main()
