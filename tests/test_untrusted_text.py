"""Names from files are text, never markup, wherever a page shows them.

Markup variants (images, raw HTML, links, entities, autolinks, Streamlit directives, maths, a blank line before
an image) are written into real files: a checkpoint's classes and network name, a run's status and config, the
run's samples, a sweep's JSON, an uploaded network's file name. Each page is run on them and everything it sends
is checked (tests/markup.py): no hostile name reaches the browser as live markup.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from gnet.spec import mini
from tests.fuzzing import fuzz_settings
from tests.markup import MARKER, hostile_run, hostile_sweep, live_markup, payloads, problems, sent
from tests.pagetest import offline_env
from ui.common import WORD_JOINER, plain, show_html

PAGES = Path(__file__).resolve().parent.parent / "pages"
PAYLOADS = payloads()


@pytest.fixture
def env(tmp_path, monkeypatch):
    offline_env(tmp_path, monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def run_page(name: str, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=300)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rotated(i: int) -> list[str]:
    """Every payload, starting at the i-th: each single-valued field sees each payload across the cases."""
    return PAYLOADS[i:] + PAYLOADS[:i]


# -- the two doors -------------------------------------------------------------------------------------------------
def rendered(markdown: str) -> str:
    """What the browser shows for plain()'s output: each escape is its character, the joiner is invisible."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


@fuzz_settings(300)
@given(st.text(max_size=120) | st.sampled_from(PAYLOADS))
def test_plain_shows_any_text_as_typed_and_never_as_markup(text):
    out = plain(text)
    # a joiner typed in the text is as invisible as the ones plain() adds (CI's hypothesis found text='\u2060')
    shown = re.sub(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+", " ", text).replace(WORD_JOINER, "")
    assert rendered(out) == shown
    assert problems("Markdown", "Markdown.body", MARKER + out, {}) == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_show_html_sends_one_html_block(payload, monkeypatch):
    from html import escape

    sent_bodies: list[str] = []
    monkeypatch.setattr("ui.common.st.markdown", lambda body, **kw: sent_bodies.append(body))
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" aria-label="{escape(payload)}">\n\n'
        f"<text>{escape(payload, quote=False)}</text></svg>"
    )
    show_html(svg)
    (body,) = sent_bodies
    assert problems("Markdown", "Markdown.body", body, {"allowHtml": True}) == []
    assert body.startswith("<svg ") and body.endswith("</svg>")


# -- the pages -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(PAYLOADS)))
def test_training_page_shows_a_hostile_run_as_text(env, i):
    hostile_run(env / "runs", "hostile", rotated(i))
    at = run_page("training")
    assert len(sent(at)) >= 8  # the names did reach the page: status, device, notes, predictions ...
    assert live_markup(at) == []


@pytest.mark.parametrize("names", [PAYLOADS, [p for p in PAYLOADS if "<a href" in p]], ids=["all", "html"])
def test_feature_maps_shows_hostile_classes_and_network_name_as_text(env, names):
    run = hostile_run(env / "runs", "hostile", names)
    state = {"fm_checkpoint": str(run / "checkpoints" / "last.pt"), "fm_ablate_inception3a": ["b1"]}
    at = run_page("feature_maps", state)
    kinds = {kind for kind, *_ in sent(at)}
    assert "PlotlyChart" in kinds  # the ablation's bars name the classes
    assert live_markup(at) == []


def test_explain_shows_hostile_classes_as_text(env):
    run = hostile_run(env / "runs", "hostile", PAYLOADS)
    at = run_page("explain", {"ex_checkpoint": str(run / "checkpoints" / "last.pt")})
    assert len(sent(at)) >= 5  # target line, headings, captions, the SVG charts
    assert live_markup(at) == []


@pytest.mark.parametrize("i", range(0, len(PAYLOADS), 2))
def test_network_explorer_shows_a_hostile_sweep_and_file_name_as_text(env, i):
    names = rotated(i)
    hostile_sweep(env / "runs", "hsweep", names)
    at = run_page("network_explorer")
    at.radio(key="ne_cmp_source").set_value("a JSON file").run()
    html_name = next(p for p in PAYLOADS if "<a href" in p)  # plotly draws its own HTML subset in names
    upload = (f"{html_name}-{i}.json", mini().to_json().encode(), "application/json")
    at.file_uploader(key="ne_cmp_file").set_value(upload).run()
    assert not at.exception
    assert any(kind == "PlotlyChart" for kind, *_ in sent(at))  # the file's name is in the depth chart
    assert any("hsweep" in text for _, _, text, _ in sent(at))  # the sweep's line
    assert live_markup(at) == []


def test_no_sweeps_names_the_runs_folder_as_the_app_does_never_its_server_path(env):
    at = run_page("network_explorer")
    shown = " ".join(str(e.value) for kind in ("caption", "info", "markdown", "error") for e in at.get(kind))
    assert "No sweeps yet in the runs folder (GNET_RUNS_DIR)." in shown
    assert str(env) not in shown


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_download_message_is_text(payload):
    script = (
        "from gnet.downloads import Progress\n"
        "from ui.download_panel import show_progress\n"
        f"show_progress(Progress('running', 10, 100, 5.0, 1, 3, {payload!r}), 'the weights')\n"
    )
    at = AppTest.from_string(script, default_timeout=30).run()
    assert not at.exception
    assert any(kind == "Markdown" for kind, *_ in sent(at)) and live_markup(at) == []
