"""Act on the Streamlit app in the browser only when it is idle.

A Streamlit widget that is clicked while the script is still running (or just before the rerun that an earlier
action asked for has begun) can be re-rendered under the click: a select box's option list closes, an element is
replaced, a typed value is overwritten. Every e2e test acts through this module, which

- waits until the app is idle: the app root reads "notRunning", no status widget is shown, no request the page sent
  is still unanswered and nothing went over the websocket for a short quiet period (the running indicator alone
  appears only after half a second of running, so a short rerun never shows it);
- re-opens a select box whose option list closed under a rerun, and checks that the widget shows the value it was
  given once the rerun is over (a widget that loses its value is an app bug: it fails with that message);
- retries an action a bounded number of times and, on the last failure, raises with the page's visible text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Locator, Page
from playwright.sync_api import Error as PlaywrightError

ATTEMPTS = 3
IDLE_TIMEOUT_MS = 120_000  # a rerun on 2 shared cores beside a training job can take tens of seconds
STEP_TIMEOUT_MS = 10_000  # finding one element of an idle page
UNTIL_TIMEOUT_MS = 120_000  # what an action brings about: a cheap wait where the machine is fast
QUIET_MS = 300  # no websocket traffic and no run for this long reads as idle
AFTER_ACTION_MS = 500  # after an action: covers a widget's debounce before it sends its rerun request
PAGE_TEXT_CHARS = 6_000

# Installed before the page's scripts (and again, idempotently, into a page opened without it): timestamps of the
# websocket traffic and of the app root's script-state changes, and how many runs this document has seen start.
# Patching the prototype's send also watches a socket that already exists, from its next send.
_WATCH_JS = """
(() => {
  if (window.__gnetIdle) return;
  const w = (window.__gnetIdle = { lastSend: 0, lastRecv: 0, lastBusy: 0, runs: 0 });
  new MutationObserver((records) => {
    for (const r of records) {
      w.lastBusy = performance.now();
      if (r.target.getAttribute("data-test-script-state") === "running") w.runs += 1;
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-test-script-state"] });
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (...args) {
    w.lastSend = performance.now();
    if (!this.__gnetWatched) {
      this.__gnetWatched = true;
      this.addEventListener("message", () => { w.lastRecv = performance.now(); });
    }
    return send.apply(this, args);
  };
})();
"""

_IDLE_JS = """
([quiet, minRuns]) => {
  const w = window.__gnetIdle;
  const t = performance.now();
  const app = document.querySelector("[data-testid='stApp']");
  const unanswered = w.lastSend > w.lastRecv && t - w.lastSend < 10000;  // a heartbeat may go unanswered
  const busy = !app || app.getAttribute("data-test-script-state") !== "notRunning"
    || document.querySelector("[data-testid='stStatusWidget']") !== null || unanswered;
  if (busy || w.runs < minRuns) { w.lastBusy = t; return false; }
  return t - Math.max(w.lastBusy, w.lastSend, w.lastRecv) >= quiet;
}
"""


class AppNotReady(AssertionError):
    """An action on the app failed for good; the message carries the page's visible text."""


def page_text(page: Page, chars: int = PAGE_TEXT_CHARS) -> str:
    try:
        text = page.inner_text("body", timeout=5_000)
    except PlaywrightError as e:
        return f"(the page's text could not be read: {e})"
    if len(text) <= chars:
        return text
    head = chars // 4  # the navigation and the page's top; the rest from the end, where the latest output is
    return f"{text[:head]}\n… ({len(text) - chars:,} characters left out) …\n{text[-(chars - head) :]}"


def fail(page: Page, what: str) -> AppNotReady:
    return AppNotReady(f"{what}\n--- page {page.url} ---\n{page_text(page)}")


def install(target: Page | BrowserContext) -> None:
    """Watch the websocket from the first script of every document (a context: all its pages)."""
    target.add_init_script(_WATCH_JS)


@contextlib.contextmanager
def new_page(browser: Browser, width: int = 1400, height: int = 1000, timeout_ms: int = 60_000) -> Iterator[Page]:
    """A page in its own browser context, watched from the start. Its default timeout for every wait is generous:
    waiting costs nothing where the machine is fast, and 2 shared cores beside a training job are not."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    install(ctx)
    try:
        page = ctx.new_page()
        page.set_default_timeout(timeout_ms)
        yield page
    finally:
        ctx.close()


def wait_idle(
    page: Page, timeout_ms: int = IDLE_TIMEOUT_MS, after_action: bool = False, first_run: bool = False
) -> None:
    """Until the app has finished every run (see the module's docstring). `after_action`: an action has just been
    made, so the quiet period counts from now (its rerun request may not have been sent yet). `first_run`: a page
    just loaded; its first run must have started (a new session reads "notRunning" before its run begins)."""
    page.wait_for_selector("[data-testid='stApp']", state="attached", timeout=timeout_ms)
    page.evaluate(_WATCH_JS)
    quiet = QUIET_MS
    if after_action:
        page.evaluate("() => { window.__gnetIdle.lastBusy = performance.now(); }")
        quiet = AFTER_ACTION_MS
    try:
        page.wait_for_function(_IDLE_JS, arg=[quiet, 1 if first_run else 0], polling=50, timeout=timeout_ms)
    except PlaywrightError as e:
        first = e.message.splitlines()[0] if e.message else type(e).__name__
        raise fail(page, f"the app did not become idle within {timeout_ms / 1000:.0f} s ({first})") from None


def goto(page: Page, url: str, timeout_ms: int = IDLE_TIMEOUT_MS) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    wait_idle(page, timeout_ms, first_run=True)


def open_app(page: Page, server: str, path: str = "", timeout_ms: int = IDLE_TIMEOUT_MS) -> None:
    """The entry page first, then `path`: a fresh server treats pages/ as Streamlit's old multipage folder until
    app.py has called st.navigation once (PagesManager.uses_pages_directory)."""
    goto(page, server, timeout_ms)
    if path:
        goto(page, server + path, timeout_ms)


def _retry(page: Page, what: str, attempt: Callable[[], str | None], attempts: int = ATTEMPTS) -> None:
    """Run `attempt` on an idle app until it returns None (done); a string says why this try did not take.
    Playwright's errors (an element detached or covered by a rerun, a timeout) count as a failed try."""
    why = "not tried"
    for _ in range(attempts):
        wait_idle(page)
        try:
            why = attempt()
        except PlaywrightError as e:
            why = e.message.splitlines()[0] if e.message else type(e).__name__
        if why is None:
            return
    raise fail(page, f"{what}: failed {attempts} times; last: {why}")


def click(page: Page, target: Locator, until: Locator | None = None, timeout_ms: int = UNTIL_TIMEOUT_MS) -> None:
    """Click `target` on an idle app, then wait for the rerun it starts to finish (and for `until` to show).
    Only a click that did not happen (the element was missing, replaced or covered) is tried again: a button that
    starts something is never pressed twice."""

    def attempt() -> None:
        target.click(timeout=STEP_TIMEOUT_MS)

    _retry(page, f"click {target}", attempt)
    wait_idle(page, after_action=True)
    if until is not None:
        try:
            until.first.wait_for(timeout=timeout_ms)
        except PlaywrightError:
            raise fail(
                page, f"after a click on {target}, {until} did not show within {timeout_ms / 1000:.0f} s"
            ) from None
        wait_idle(page)


def button(page: Page, name: str, until: Locator | None = None, timeout_ms: int = UNTIL_TIMEOUT_MS) -> None:
    """A button of the page's own (Streamlit's status widget has a "Stop" button of its own while a script runs)."""
    target = page.locator("[data-testid='stMain']").get_by_role("button", name=name, exact=True)
    click(page, target, until, timeout_ms)


def _open_list(page: Page, box: Locator) -> Locator | None:
    """Open a (multi)select box's option list; the list, which the box names while it is open, or None."""
    if box.get_attribute("aria-expanded", timeout=STEP_TIMEOUT_MS) != "true":
        box.click(timeout=STEP_TIMEOUT_MS)
    try:
        page.wait_for_function(
            "e => e.getAttribute('aria-expanded') === 'true' && e.getAttribute('aria-controls')",
            arg=box.element_handle(timeout=STEP_TIMEOUT_MS),
            timeout=STEP_TIMEOUT_MS,
        )
    except PlaywrightError:
        return None
    return page.locator(f"[id='{box.get_attribute('aria-controls', timeout=STEP_TIMEOUT_MS)}']")


def choose(page: Page, label: str, option: str | int) -> str:
    """Pick `option` (its text, or its index in the list) in the select box labelled `label`; return its text.
    A list that closed under a rerun is opened again; the box must still show the option once the app is idle."""
    box = page.get_by_label(label, exact=True)
    picked: list[str] = []

    def attempt() -> str | None:
        if picked and box.input_value(timeout=STEP_TIMEOUT_MS) == picked[0]:
            return None  # an earlier try took after all
        listbox = _open_list(page, box)
        if listbox is None:
            return "the option list did not open"
        if isinstance(option, int):
            item = listbox.get_by_role("option").nth(option)
        else:
            item = listbox.get_by_role("option", name=option, exact=True)
        try:
            item.wait_for(timeout=STEP_TIMEOUT_MS)
        except PlaywrightError:
            return "the option list closed (or never opened): open it again"
        text = item.inner_text(timeout=STEP_TIMEOUT_MS).strip()
        picked[:] = [text]
        item.click(timeout=STEP_TIMEOUT_MS)
        wait_idle(page, after_action=True)
        shown = box.input_value(timeout=STEP_TIMEOUT_MS)
        return None if shown == text else f"the box shows {shown!r} after the rerun, not {text!r}"

    _retry(page, f"choose {option!r} in the select box {label!r}", attempt)
    return picked[0]


def choose_many(page: Page, label: str, option: str) -> None:
    """Add `option` to the multiselect labelled `label` (a no-op when it is already chosen)."""
    widget = page.locator("[data-testid='stMultiSelect']").filter(has=page.get_by_label(label, exact=True))
    chip = widget.locator("[data-tag]").filter(has=page.get_by_title(option, exact=True))

    def attempt() -> str | None:
        if chip.count():
            return None
        listbox = _open_list(page, widget.get_by_role("combobox"))
        if listbox is None:
            return "the option list did not open"
        item = listbox.get_by_role("option", name=option, exact=True)
        try:
            item.wait_for(timeout=STEP_TIMEOUT_MS)
        except PlaywrightError:
            return "the option list closed (or never opened): open it again"
        item.click(timeout=STEP_TIMEOUT_MS)
        page.keyboard.press("Escape")  # a multiselect's list stays open for the next pick
        wait_idle(page, after_action=True)
        return None if chip.count() else f"{option!r} is not among the chosen after the rerun"

    _retry(page, f"add {option!r} to the multiselect {label!r}", attempt)


def fill(page: Page, label: str, value: object, commit: str = "Enter", expect: str | None = None) -> None:
    """Type `value` into the text or number input labelled `label` and commit it (Enter; Tab in a form, where a
    field commits on blur); the field must still read `expect` (default: the value typed) once the app is idle."""
    box = page.get_by_label(label, exact=True)
    want = str(value) if expect is None else expect

    def attempt() -> str | None:
        box.fill(str(value), timeout=STEP_TIMEOUT_MS)
        box.press(commit, timeout=STEP_TIMEOUT_MS)
        wait_idle(page, after_action=True)
        shown = box.input_value(timeout=STEP_TIMEOUT_MS)
        return None if shown == want else f"the field reads {shown!r} after the rerun, not {want!r}"

    _retry(page, f"fill {label!r} with {value!r}", attempt)


def press(page: Page, target: Locator, key: str) -> None:
    """Focus `target` (a slider, say) and press `key`, then wait for the rerun."""

    def attempt() -> None:
        target.focus(timeout=STEP_TIMEOUT_MS)
        target.press(key, timeout=STEP_TIMEOUT_MS)

    _retry(page, f"press {key} on {target}", attempt)
    wait_idle(page, after_action=True)


def open_expander(page: Page, title: str) -> None:
    """Open the expander whose title contains `title` (a no-op when it is open); it must stay open."""
    details = page.locator("[data-testid='stExpander'] details").filter(has=page.locator("summary", has_text=title))

    def is_open() -> bool:
        return bool(details.first.evaluate("e => e.open", timeout=STEP_TIMEOUT_MS))

    def attempt() -> str | None:
        if not is_open():
            details.first.locator("summary").click(timeout=STEP_TIMEOUT_MS)
            wait_idle(page, after_action=True)
        return None if is_open() else "it is closed again after the rerun"

    _retry(page, f"open the expander {title!r}", attempt)


def select_tab(page: Page, name: str) -> None:
    tab = page.get_by_role("tab", name=name, exact=True)

    def attempt() -> str | None:
        if tab.get_attribute("aria-selected", timeout=STEP_TIMEOUT_MS) != "true":
            tab.click(timeout=STEP_TIMEOUT_MS)
            wait_idle(page, after_action=True)
        return None if tab.get_attribute("aria-selected", timeout=STEP_TIMEOUT_MS) == "true" else "not selected"

    _retry(page, f"select the tab {name!r}", attempt)


def set_checkbox(page: Page, label: str, checked: bool) -> None:
    """Tick or clear the checkbox whose label contains `label`."""
    widget = page.locator("[data-testid='stCheckbox']", has_text=label)

    def attempt() -> str | None:
        if widget.locator("input").is_checked(timeout=STEP_TIMEOUT_MS) != checked:
            widget.locator("label").first.click(timeout=STEP_TIMEOUT_MS)
            wait_idle(page, after_action=True)
        now = widget.locator("input").is_checked(timeout=STEP_TIMEOUT_MS)
        return None if now == checked else f"still {'ticked' if now else 'clear'} after the rerun"

    _retry(page, f"set the checkbox {label!r} to {checked}", attempt)


def choose_radio(page: Page, group: str, option: str) -> None:
    """Pick `option` in the radio group whose label contains `group`."""
    choice = page.locator("[data-testid='stRadio']", has_text=group).get_by_role("radio", name=option, exact=True)

    def attempt() -> str | None:
        if not choice.is_checked(timeout=STEP_TIMEOUT_MS):
            choice.check(timeout=STEP_TIMEOUT_MS, force=True)  # the input is hidden behind its styled label
            wait_idle(page, after_action=True)
        return None if choice.is_checked(timeout=STEP_TIMEOUT_MS) else "not picked after the rerun"

    _retry(page, f"pick {option!r} in the radio group {group!r}", attempt)


def upload(page: Page, path: Path) -> None:
    """Give the page's (first) file uploader `path`."""

    def attempt() -> None:
        page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(
            str(path), timeout=STEP_TIMEOUT_MS
        )

    _retry(page, f"upload {path.name}", attempt)
    wait_idle(page, after_action=True)


def wait_text(page: Page, text: str | re.Pattern[str], timeout_ms: int = UNTIL_TIMEOUT_MS) -> None:
    """Until `text` shows somewhere on the page; on a timeout, fail with the page's text."""
    try:
        page.get_by_text(text).first.wait_for(timeout=timeout_ms)
    except PlaywrightError:
        raise fail(page, f"{text!r} did not show within {timeout_ms / 1000:.0f} s") from None


def images_decoded(page: Page, images: Locator, timeout_ms: int = 30_000) -> int:
    """Scroll to each of `images` (the browser may load them lazily) until it is decoded; return how many."""
    n = images.count()
    for i in range(n):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function(
            "e => e.complete && e.naturalWidth > 0", arg=images.nth(i).element_handle(), timeout=timeout_ms
        )
    return n
