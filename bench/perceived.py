"""Perceived latency in a real browser: from the input event to the changed value visible and the app idle.

    .venv/bin/python bench/perceived.py [--tries 10] [--with-training] [--only feature] [--json out.json]

Starts the app on loopback (tests/appserver.py), drives Debian's headless Chromium with Playwright and, for each
interaction, times N tries in the browser's own clock: from the user's input event (the last keydown / click /
pointer event) to the first animation frame where
  - the expected new value is on the page (a shape, a count, a heading computed with gnet from the new input),
  - the server has answered after the event, no script run (whole page or fragment) is in flight and Streamlit's
    status widget is gone,
  - every image in the main area is decoded and every visible plotly chart has drawn its SVG.
Prints the median and p90 per interaction, and a baseline measured in the same run: a one-widget page served by
its own Streamlit server (a number input and the text it writes), i.e. the floor Streamlit and the browser set.
Ratio = interaction median / baseline median. The medians of the parts follow: until the server's first answer
(answer), from it to its last message (server: the script run) and from that to the done frame (render).

The Training page is measured per poll of a running run (its st.fragment(run_every=...)): from the rerun request
sent on the websocket to the end of that run, and the bytes the browser receives per poll (websocket frames plus
/media files such as images).

--with-training runs every interaction while a training run (a mini network on the synthetic data set) trains
beside the app, as it would on a user's machine.

Only the UI labels and test ids that the pages have had since commit a719a69 are used; an interaction whose
widget cannot be found prints "n/a" with the reason, and the others still run. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gnet import runs  # noqa: E402
from gnet.analysis import block_report, network_report  # noqa: E402
from gnet.charts.network import layer_rows  # noqa: E402
from gnet.spec import BlockSpec, block_presets, network_preset  # noqa: E402
from gnet.train import TrainConfig  # noqa: E402
from tests.appserver import CHROMIUM_ARGS, app_server  # noqa: E402

TIMEOUT_MS = 120_000
NG_NAME = "Ng's example (28×28×192, seed 002)"
SAMPLES = sorted(p.name for p in (ROOT / "assets" / "samples").glob("*.jpg"))

# Installed before any page script: the time of the latest user input event, script-state transitions, and the
# times the page sent on its websocket (a fragment's auto-rerun request is one).
INIT_JS = """
(() => {
  const g = window.__perceived = {last: 0, states: [], sends: [], recvs: []};
  for (const t of ['keydown', 'pointerdown', 'mousedown', 'click']) {
    document.addEventListener(t, () => { g.last = performance.now(); }, true);
  }
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    g.sends.push(performance.now());
    if (!this.__perceived) {
      this.__perceived = true;
      this.addEventListener('message', () => { g.recvs.push(performance.now()); });
    }
    return send.call(this, data);
  };
  new MutationObserver(muts => {
    for (const m of muts) {
      const s = m.target.getAttribute('data-test-script-state');
      if (m.attributeName === 'data-test-script-state' && s !== m.oldValue) g.states.push([s, performance.now()]);
    }
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""

# The "done" condition, polled every animation frame; returns the latency in ms once it holds.
DONE_JS = """
([kind, arg]) => {
  const g = window.__perceived;
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector("[data-testid='stStatusWidget']")) return false;
  // the server answered after the event (a fast run's running/notRunning states can render in one frame)
  if (!g.recvs.some(t => t >= g.last)) return false;
  const main = document.querySelector("[data-testid='stMain']") || document.body;
  if (kind === 'text') {
    const text = main.textContent;
    if (!arg.every(s => text.includes(s))) return false;
  } else if (kind === 'metric') {  // the first st.metric's value (Parameters on the designer and explorer pages)
    const m = main.querySelector("[data-testid='stMetricValue']");
    if (!m || m.textContent.trim() !== arg) return false;
  } else if (kind === 'new_images') {
    const fresh = [...main.querySelectorAll('img')].filter(i => !arg.before.includes(i.src));
    if (fresh.length < arg.n) return false;
  } else if (kind === 'grid_rows') {  // rows with the header: st.dataframe's grid, or an HTML table (since 17)
    const grid = main.querySelector("[data-testid='stDataFrame'] [aria-rowcount]");
    const table = main.querySelector('.gnet-table table');
    const n = grid ? grid.getAttribute('aria-rowcount') : table ? String(table.rows.length) : null;
    if (n !== String(arg)) return false;
  }
  for (const img of main.querySelectorAll('img')) if (!(img.complete && img.naturalWidth > 0)) return false;
  for (const chart of main.querySelectorAll("[data-testid='stPlotlyChart']")) {
    if (chart.offsetParent !== null && !chart.querySelector('.main-svg')) return false;
  }
  const now = performance.now(), after = g.recvs.filter(t => t >= g.last);
  // total; and its parts: until the server's first answer, the server's run, the browser's rendering after it
  return [now - g.last, after[0] - g.last, after[after.length - 1] - after[0], now - after[after.length - 1]];
}
"""

Check = tuple[str, Any]  # (kind, arg) for DONE_JS


@dataclass
class Result:
    name: str
    ms: list[float] = field(default_factory=list)
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    parts: list[tuple[float, float, float]] = field(default_factory=list)  # (to first answer, run, render) ms

    def row(self, base: float | None) -> str:
        if not self.ms:
            return f"{self.name:58s} {'n/a':>8s}  {self.note}"
        med = statistics.median(self.ms)
        p90 = _quantile(self.ms, 0.9)
        ratio = f"{med / base:6.2f}" if base else "     –"
        flag = "ok " if med <= 250 else "SLOW"
        extra = dict(self.extra)
        if self.parts:
            extra |= {
                k: statistics.median(p[i] for p in self.parts) for i, k in enumerate(("answer", "server", "render"))
            }
        more = "  " + "  ".join(f"{k} {v:,.0f}" for k, v in extra.items()) if extra else ""
        return f"{self.name:58s} {med:8.0f} {p90:8.0f} {ratio}  {flag} (n={len(self.ms)}){more} {self.note}"


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# -- pages ---------------------------------------------------------------------------------------------------------


def _idle(page) -> None:
    """Wait (untimed) until no script run is in flight, then a short settle."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(250)


def _goto(page, url: str) -> None:
    page.goto(url)
    _idle(page)
    page.locator("[data-testid='stMain']").first.wait_for(timeout=TIMEOUT_MS)
    _idle(page)


def _timed(page, act: Callable[[], None], check: Check) -> list[float]:
    """Run one input; its latency in ms, measured in the page (event time to the done frame), and the parts."""
    page.evaluate("() => { window.__perceived.last = performance.now(); }")  # a floor if act sends no event
    act()
    handle = page.wait_for_function(DONE_JS, arg=list(check), polling="raf", timeout=TIMEOUT_MS)
    return [float(v) for v in handle.json_value()]


def _measure(
    page, name: str, tries: int, warmup: int, step: Callable[[int], tuple[Callable[[], None], Check]]
) -> Result:
    """N timed tries after `warmup` untimed ones; a widget the page lacks (older or newer code) gives n/a."""
    res = Result(name)
    try:
        for i in range(warmup + tries):
            act, check = step(i)
            total, first, run, render = _timed(page, act, check)
            if i >= warmup:
                res.ms.append(total)
                res.parts.append((first, run, render))
            _idle(page)
    except Exception as e:  # report it and keep measuring the other interactions
        res.ms.clear()
        res.note = f"failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:140]}"
        with contextlib.suppress(Exception):
            _idle(page)
    return res


def _srcs(page) -> list[str]:
    return page.eval_on_selector_all("[data-testid='stMain'] img", "els => els.map(e => e.src)")


def _fill(page, label: str, value: int | str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def _pick(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


# -- interactions ----------------------------------------------------------------------------------------------------


def block_designer(page, url: str, tries: int, warmup: int) -> list[Result]:
    ng = block_presets()[NG_NAME]
    _goto(page, url + "/block_designer?c=192&h=28&w=28&b1=64&b2r=96&b2=128&b3r=16&b3=32&b4=32&reduce=1&b3v=5&bn=0")
    out = []
    shape = ng.input_shape

    def b1(i: int):
        spec = BlockSpec(b1=64 + 1 + i % 7, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32)
        return (
            lambda: _fill(page, "b1 channels", spec.b1),
            ("text", [f"Output {block_report(spec, shape).concat_text()}"]),
        )

    out.append(_measure(page, "Block Designer: type a b1 channel count", tries, warmup, b1))
    _fill(page, "b1 channels", 64)
    _idle(page)

    def reduce(i: int):
        on = i % 2 == 1  # starts on: the first click turns the reductions off
        params = block_report(
            BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, reduce=on), shape
        ).cost.params
        toggle = page.locator("[data-testid='stCheckbox']", has_text="1×1 reductions").first
        return (lambda: toggle.locator("label").first.click(), ("metric", f"{params:,}"))

    out.append(_measure(page, "Block Designer: toggle the 1×1 reductions", tries, warmup, reduce))
    if (tries + warmup) % 2:  # leave the reductions on
        page.locator("[data-testid='stCheckbox']", has_text="1×1 reductions").first.locator("label").first.click()
        _idle(page)

    variants = [
        ("two 3×3 (factorized 5×5)", dict(factorize=True)),
        ("3×3 (torchvision's pretrained)", dict(b3_kernel=3)),
        ("5×5 (paper)", {}),
    ]

    def b3v(i: int):
        label, kw = variants[i % 3]
        params = block_report(
            BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32, **kw), shape
        ).cost.params
        radio = page.locator("[data-testid='stRadio']", has_text="b3 convolution").first
        return (lambda: radio.get_by_text(label, exact=True).click(), ("metric", f"{params:,}"))

    out.append(_measure(page, "Block Designer: switch the b3 convolution", tries, warmup, b3v))
    return out


def network_explorer(page, url: str, tries: int, warmup: int) -> list[Result]:
    _goto(page, url + "/network_explorer")
    page.locator("[data-testid='stMetricValue']").first.wait_for(timeout=TIMEOUT_MS)
    spec = network_preset("d2l-fashion96")
    out = []

    def edit(i: int):
        b1 = 100 + i
        edited = spec.with_block("3a", BlockSpec(b1=b1, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32))
        report = network_report(edited)

        def act() -> None:
            page.get_by_label("b1 channels", exact=True).fill(str(b1))
            page.get_by_role("button", name="Apply to 3a").click()

        return act, ("metric", f"{report.params_total:,}")

    out.append(_measure(page, "Network Explorer: edit a block (3a b1, Apply)", tries, warmup, edit))

    def expand(i: int):
        on = i % 2 == 0
        last = spec.with_block(
            "3a", BlockSpec(b1=100 + tries + warmup - 1, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32)
        )
        rows = len(layer_rows(network_report(last), expand=on)) + 1  # + the total row
        toggle = page.locator("[data-testid='stCheckbox']", has_text="Show the layers inside each block").first
        return (lambda: toggle.locator("label").first.click(), ("grid_rows", rows + 1))  # + the header row

    out.append(_measure(page, "Network Explorer: expand the layer table", tries, warmup, expand))
    return out


def _untrained(page) -> None:
    """The same model with or without a training run beside the app: offline, a run's checkpoint would be the
    stand-in for the missing pretrained weights (and it changes every epoch)."""
    page.get_by_text("Untrained (random weights)", exact=True).first.click()
    _idle(page)


def feature_maps(page, url: str, tries: int, warmup: int) -> list[Result]:
    _goto(page, url + "/feature_maps")
    _untrained(page)
    page.get_by_text("Layer 3a: ").first.wait_for(timeout=TIMEOUT_MS)
    _idle(page)
    out = []
    order = ["4a", "3b", "3a"]

    def layer(i: int):
        name = order[i % 3]
        return (lambda: _pick(page, "Layer", name), ("text", [f"Layer {name}: "]))

    out.append(_measure(page, "Feature Maps: switch the layer", tries, warmup, layer))
    if (tries + warmup) % 3:
        _pick(page, "Layer", "3a")
        _idle(page)

    def channels(i: int):
        key = "ArrowRight" if i % 2 == 0 else "ArrowLeft"
        thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
        before = _srcs(page)
        return (lambda: thumb.press(key), ("new_images", {"before": before, "n": 4}))  # the four branch mosaics

    out.append(_measure(page, "Feature Maps: move the channel-count slider", tries, warmup, channels))

    def sample(i: int):
        name = SAMPLES[(i + 1) % len(SAMPLES)]
        return (lambda: _pick(page, "…or use a sample image", name), ("text", [f"sample {name}: "]))

    out.append(_measure(page, "Feature Maps: switch the sample image", tries, warmup, sample))
    return out


def explain(page, url: str, tries: int, warmup: int) -> list[Result]:
    """Pick another of the top-5 classes; done when the page names it as the target (and its maps are drawn)."""
    name = "Explain: switch the target class"
    if not (ROOT / "pages" / "explain.py").exists():
        return [Result(name, note="skipped: pages/explain.py is not on this branch yet")]
    _goto(page, url + "/explain")
    _untrained(page)
    page.get_by_text("Target:").first.wait_for(timeout=TIMEOUT_MS)
    _idle(page)

    def target(i: int):
        box = page.get_by_label("Class", exact=True)
        box.click()
        option = page.get_by_role("option").nth(1 + i % 2)  # "#2 label (p %)" or "#3 …"
        label = re.sub(r"^#\d+ | \([^()]*\)$", "", option.inner_text().strip())
        page.keyboard.press("Escape")
        page.wait_for_timeout(100)

        def act() -> None:
            box.click()
            page.get_by_role("option").nth(1 + i % 2).click()

        return act, ("text", [f"Target: {label} (class"])

    return [_measure(page, name, tries, warmup, target)]


def anatomy(page, url: str, tries: int, warmup: int) -> list[Result]:
    """Block Anatomy on the untrained network, 3a·b2 (28×28): type a row, click a unit, switch the branch. The
    animation is not measured: it plays in the browser and sends nothing to the server."""
    if not (ROOT / "pages" / "anatomy.py").exists():
        return [Result("Block Anatomy", note="skipped: pages/anatomy.py is not on this branch yet")]
    _goto(page, url + "/anatomy")
    _untrained(page)
    page.get_by_text("How 3a·b2 (").first.wait_for(timeout=TIMEOUT_MS)
    _idle(page)
    out = []

    def row(i: int):
        r = (5 + i) % 28
        return (lambda: _fill(page, "Row (0–27)", r), ("text", [f"How 3a·b2 ({r}, "]))

    out.append(_measure(page, "Block Anatomy: type a row", tries, warmup, row))

    def click(i: int):
        k = 29 * (i + 1) % (28 * 28)  # row-major points of the picker
        point = page.locator(f".gnet-unit-picker rect[data-r='{k // 28}'][data-c='{k % 28}']")

        return (point.click, ("text", [f"How 3a·b2 ({k // 28}, {k % 28}), channel"]))

    out.append(_measure(page, "Block Anatomy: click a unit on the picker", tries, warmup, click))
    branches = ["b3 (1×1 → 3×3)", "b4 (3×3 max-pool → 1×1)", "b2 (1×1 → 3×3)"]

    def branch(i: int):
        label = branches[i % 3]
        return (lambda: _pick(page, "Branch", label), ("text", [f"How 3a·{label[:2]} ("]))

    out.append(_measure(page, "Block Anatomy: switch the branch", tries, warmup, branch))
    return out


# -- training --------------------------------------------------------------------------------------------------------


def start_run(root: Path, name: str) -> Path:
    """A mini network on synthetic 12×12 images for 1000 epochs: it trains for the whole bench."""
    cfg = TrainConfig.from_recipe(
        "improved",
        network_preset("mini"),
        dataset="synthetic",
        image_size=12,
        epochs=1000,
        batch_size=25,
        synthetic_train=400,
        synthetic_test=80,
    )
    runs.start(root, name, {"train": cfg.to_dict()})
    path = runs.run_dir(root, name)
    deadline = time.time() + 120
    while not runs.read_metrics(path, "step", ("step",)) and time.time() < deadline:
        time.sleep(0.5)
    return path


def stop_run(path: Path) -> None:
    with contextlib.suppress(Exception):
        runs.request_stop(path)


def training_polls(page, url: str, polls: int) -> list[Result]:
    name = "Training: one poll of a running run"
    frames: list[int] = []
    media: list[Any] = []

    def on_ws(ws) -> None:
        ws.on("framereceived", lambda payload: frames.append(len(payload)))

    page.on("websocket", on_ws)
    page.on("response", lambda r: media.append(r) if "/media/" in r.url else None)
    _goto(page, url + "/training")
    page.locator("[data-testid='stProgress']").first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_timeout(3000)  # the first polls: curves and predictions appear
    _idle(page)
    t0 = page.evaluate("() => performance.now()")
    n_frames, n_media = len(frames), len(media)
    page.wait_for_function(
        "([t0, n]) => window.__perceived.states.filter(([s, t]) => s === 'notRunning' && t > t0).length >= n",
        arg=[t0, polls],
        timeout=TIMEOUT_MS,
        polling=200,
    )
    _idle(page)
    states, sends = page.evaluate("() => [window.__perceived.states, window.__perceived.sends]")
    page.remove_listener("websocket", on_ws)
    ms = []
    started = None
    for s, t in states:
        if t <= t0:
            continue
        if s == "running" and started is None:
            started = max([x for x in sends if x <= t] or [t])  # the rerun request that began this run
        elif s == "notRunning" and started is not None:
            ms.append(t - started)
            started = None
    ms = ms[:polls]
    ws_bytes = sum(frames[n_frames:])
    media_bytes = 0
    for r in media[n_media:]:
        with contextlib.suppress(Exception):
            media_bytes += len(r.body())
    res = Result(
        name, ms, extra={"ws B/poll": ws_bytes / max(1, len(ms)), "media B/poll": media_bytes / max(1, len(ms))}
    )
    return [res]


# -- baseline ---------------------------------------------------------------------------------------------------------

BASELINE = textwrap.dedent("""
    import streamlit as st
    n = st.number_input("n", key="n", value=1)
    st.write(f"value {n}")
""")


@contextlib.contextmanager
def baseline_server(home: Path) -> Iterator[str]:
    """A one-widget page on its own Streamlit server, started like the app (same flags)."""
    script = home / "baseline.py"
    script.write_text(BASELINE)
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(home / "baseline.log", "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(script),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
            ],
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((home / "baseline.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()


def baseline(page, url: str, tries: int, warmup: int) -> Result:
    _goto(page, url)

    def step(i: int):
        return (lambda: _fill(page, "n", 2 + i), ("text", [f"value {2 + i}"]))

    return _measure(page, "baseline: one-widget page (number input → its text)", tries, warmup, step)


# -- main -------------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--polls", type=int, default=8)
    ap.add_argument("--with-training", action="store_true", help="a training run trains beside the app throughout")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated page names to measure (designer, network, feature, explain, anatomy, training); "
        "default all",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is required (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    only = {s.strip() for s in args.only.split(",") if s.strip()}

    def want(key: str) -> bool:
        return not only or key in only

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(
        f"commit {commit.strip() or '?'} · {os.cpu_count()} CPUs · load average {os.getloadavg()[0]:.1f} · "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} · tries {args.tries} (+{args.warmup} warm-up)"
        + (" · WITH a training run beside the app" if args.with_training else "")
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="perceived-") as tmp:
        home = Path(tmp)
        (home / "runs").mkdir()
        os.environ.update(
            GNET_RUNS_DIR=str(home / "runs"),
            GNET_DATA_DIR=str(home / "data"),
            TORCH_HOME=str(home / "torch"),
            GNET_OFFLINE="1",
        )  # what the app server gets too
        run_path = start_run(home / "runs", "bench-beside") if args.with_training else None
        try:
            with app_server(home) as server, baseline_server(home) as base_url, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                ctx = browser.new_context(viewport={"width": 1400, "height": 5000})  # everything in view
                ctx.add_init_script(INIT_JS)
                page = ctx.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                # a fresh server runs pages/ in Streamlit's folder mode until app.py's st.navigation has run once
                _goto(page, server.url)
                base = baseline(page, base_url, args.tries, args.warmup)
                results.append(base)
                print(base.row(None), flush=True)
                for key, fn in (
                    ("designer", block_designer),
                    ("network", network_explorer),
                    ("feature", feature_maps),
                    ("explain", explain),
                    ("anatomy", anatomy),
                ):
                    if want(key):
                        for r in fn(page, server.url, args.tries, args.warmup):
                            results.append(r)
                            print(r.row(statistics.median(base.ms)), flush=True)
                if want("training"):
                    path = run_path or start_run(home / "runs", "bench-polled")
                    try:
                        for r in _safe_list(lambda: training_polls(page, server.url, args.polls)):
                            results.append(r)
                            print(r.row(statistics.median(base.ms)), flush=True)
                    finally:
                        if run_path is None:
                            stop_run(path)
                browser.close()
        finally:
            if run_path is not None:
                stop_run(run_path)
            time.sleep(1.0)  # let a stopped run write its checkpoint before the folder goes
    print(f"{'':58s} {'median':>8s} {'p90':>8s} {'× base':>6s}  (ms, target: median ≤ 250)")
    if args.json:
        args.json.write_text(
            json.dumps({r.name: {"ms": r.ms, "parts": r.parts, "note": r.note, **r.extra} for r in results}, indent=1)
        )


def _safe_list(fn: Callable[[], list[Result]]) -> list[Result]:
    try:
        return fn()
    except Exception as e:
        return [Result("Training: one poll of a running run", note=f"failed: {type(e).__name__}: {str(e)[:120]}")]


if __name__ == "__main__":
    main()
