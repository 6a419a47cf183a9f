"""pages/anatomy.py through AppTest: the offline fallback (untrained, clearly labelled), a checkpoint opened by a link
with a unit selected (the page's numbers are the library's on the same model and image), a click on the unit picker,
the animation player, and links with bad fields."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from streamlit.testing.v1 import AppTest

from gnet import anatomy as A
from gnet.charts.anatomy import fmt
from gnet.images import load, preprocess
from gnet.pretrained import ModelSource, load_model
from gnet.spec import block_presets
from gnet.urlstate import design_to_query
from tests.pagetest import offline_env, run_page, texts
from tests.test_checkpoint_loading import write_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "anatomy.py")
SAMPLES = ROOT / "assets" / "samples"


@pytest.fixture
def env(tmp_path, monkeypatch):
    return offline_env(tmp_path, monkeypatch)


def run(at: AppTest | None = None) -> AppTest:
    return run_page(PAGE, at, 120)


def svgs(at: AppTest) -> list[ET.Element]:
    return [ET.fromstring(m.value) for m in at.markdown if m.value.startswith("<svg")]


def unit_line(at: AppTest) -> str:
    return next(str(m.value) for m in at.markdown if str(m.value).startswith("**Unit:**"))


def player_data(at: AppTest) -> dict:
    (frame,) = at.get("iframe")
    html = frame.proto.srcdoc
    for button in ("Play", "Pause", "Step"):
        assert f">{button}</button>" in html
    return json.loads(re.search(r"const D = (\{.*?\});\n", html).group(1))


def test_offline_untrained_shows_the_chain(env):
    at = run()
    assert "UNTRAINED" in texts(at, "warning") and "UNTRAINED" in texts(at, "markdown")
    heading = texts(at, "subheader")
    assert re.search(r"How 3a·b2 \(\d+, \d+\), channel \d+, is computed", heading)
    md = texts(at, "markdown")
    assert "Layer 1 of 2: `inception3a.branch2.0`**, 1×1 convolution — a 1×1 conv is a dot product" in md
    assert "Layer 2 of 2: `inception3a.branch2.1`**, 3×3 convolution — it reads the previous layer's output" in md
    labels = [s.get("aria-label") for s in svgs(at)]
    assert labels == [
        "inception3a.branch2.0.conv: conv step",
        "BatchNorm and ReLU",
        "inception3a.branch2.1.conv: conv step",
        "BatchNorm and ReLU",
        "concatenation of 3a",
    ]
    ns = "{http://www.w3.org/2000/svg}"
    (group,) = [g for g in svgs(at)[0].iter(f"{ns}g") if g.get("class") == "strip"]
    strip = list(group.iter(f"{ns}rect"))
    assert len(strip) == 192  # one cell per input channel of 3a
    player = player_data(at)  # the animation: frames precomputed for the browser, 250 ms per step by default
    assert player["ms"] == 250 and len(player["frames"]) == 28 * 28 and (player["h"], player["w"]) == (28, 28)


def test_checkpoint_link_click_and_numbers(env):
    path = env / "runs" / "r1" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["an_checkpoint"] = str(path)
    at.query_params.update({"block": "4a", "branch": "b4", "channel": "3", "row": "2", "col": "5"})
    run(at)
    assert not at.warning, texts(at, "warning")
    assert "How 4a·b4 (2, 5), channel 3, is computed" in texts(at, "subheader")
    # the page's numbers are the library's, on the same checkpoint and sample image
    net = load_model(ModelSource("checkpoint", str(path)))
    sample = sorted(SAMPLES.glob("*.jpg"))[0]
    _, x = preprocess(load(sample.read_bytes()).image, net.preprocess)
    a = A.anatomy(net, x, "inception4a", "b4", 3, 2, 5)
    line = unit_line(at)
    assert f"= **{fmt(a.value)}**" in line and f"channel {a.concat_channel} of {a.trace.block_channels}" in line
    labels = [s.get("aria-label") for s in svgs(at)]
    assert labels[0] == "inception4a.branch4.0: pool step" and labels[1] == "inception4a.branch4.1.conv: conv step"
    pool_text = " ".join("".join(t.itertext()) for t in svgs(at)[0].iter("{http://www.w3.org/2000/svg}text"))
    assert f"max at {a.steps[0].argmax} = {fmt(a.steps[0].out)}" in pool_text
    conv_text = " ".join("".join(t.itertext()) for t in svgs(at)[1].iter("{http://www.w3.org/2000/svg}text"))
    assert (
        f"Σ w·x = {fmt(a.steps[1].dot)}, no bias (BatchNorm follows): the conv outputs {fmt(a.steps[1].out)}"
        in conv_text
    )
    bn = a.steps[2]
    bn_text = " ".join("".join(t.itertext()) for t in svgs(at)[2].iter("{http://www.w3.org/2000/svg}text"))
    assert f"BatchNorm: {fmt(bn.input)} × {fmt(bn.scale)} + ({fmt(bn.shift)}) = {fmt(bn.out)}" in bn_text
    # a click on the picker moves the unit; the chain follows
    at.session_state["an_pick"] = {"unit": [6, 1]}  # what the picker's click sends (row, col)
    run(at)
    del at.session_state["an_pick"]  # a click is sent once (a trigger); AppTest keeps what a test sets
    assert "How 4a·b4 (6, 1), channel 3, is computed" in texts(at, "subheader")
    b = A.anatomy(net, x, "inception4a", "b4", 3, 6, 1)
    assert f"= **{fmt(b.value)}**" in unit_line(at)
    # what no click of the picker sends (off the map, not whole numbers) moves nothing
    for bad in ({"unit": [99, 1]}, {"unit": ["2", 2]}, {"unit": [True, 2]}, {"unit": [1]}, "junk"):
        at.session_state["an_pick"] = bad
        run(at)
        assert not at.exception and "How 4a·b4 (6, 1), channel 3, is computed" in texts(at, "subheader")
    del at.session_state["an_pick"]
    # typing a channel works too; the animated layer can be switched
    at.number_input(key="an_channel").set_value(0)
    at.selectbox(key="an_anim_layer").set_value("inception4a.branch4.0")
    run(at)
    assert "How 4a·b4 (6, 1), channel 0, is computed" in texts(at, "subheader")
    assert "frames, one per output position" in texts(at, "caption")
    an = A.animation(A.anatomy(net, x, "inception4a", "b4", 0, 6, 1), "inception4a.branch4.0")
    player = player_data(at)
    assert [tuple(f[:6]) for f in player["frames"]] == [f[:6] for f in an.frames]
    assert (player["hin"], player["win"]) == an.input_map.shape


@pytest.mark.parametrize(
    "query, message",
    [
        ({"block": "9z"}, "no block '9z'; choose one of 3a"),
        ({"block": "3a", "channel": "٣"}, "link parameter channel must be a whole number"),
        ({"block": "3a", "branch": "x;y"}, "link parameter branch must be b1"),
    ],
)
def test_bad_links_are_reported_not_used(env, query, message):
    path = env / "runs" / "r1" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["an_checkpoint"] = str(path)
    at.query_params.update(query)
    run(at)
    assert message in texts(at, "warning")
    assert re.search(r"How 3a·b\d \(\d+, \d+\), channel \d+, is computed", texts(at, "subheader"))


def anatomy_links(at: AppTest) -> list[dict[str, str]]:
    """The query of every link to the Anatomy page on a page run outside the app's navigation (plain links)."""
    found = re.findall(r"\]\(/anatomy\?([^)]*)\)", "\n".join(str(m.value) for m in at.markdown))
    return [dict(parse_qsl(q)) for q in found]


def open_link(query: dict[str, str], path: Path) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["an_checkpoint"] = str(path)
    at.query_params.update(query)
    return run(at)


def test_links_from_feature_maps_explain_and_designer_land_on_the_same_unit(env):
    path = env / "runs" / "r1" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    # Feature Maps: the channel shown large, at its peak
    fm = AppTest.from_file(str(ROOT / "pages" / "feature_maps.py"), default_timeout=120)
    fm.session_state["fm_checkpoint"] = str(path)
    run_page("", fm, 120)
    fm.number_input(key="fm_ch_inception3a_b1").set_value(4)
    run_page("", fm, 120)
    (query,) = anatomy_links(fm)
    assert (query["block"], query["branch"], query["channel"]) == ("3a", "b1", "4")
    at = open_link(query, path)
    assert f"How 3a·b1 ({query['row']}, {query['col']}), channel 4, is computed" in texts(at, "subheader")
    # Explain: the receptive-field unit (block, branch, position); the page picks the strongest channel there
    ex = AppTest.from_file(str(ROOT / "pages" / "explain.py"), default_timeout=120)
    ex.session_state["ex_checkpoint"] = str(path)
    run_page("", ex, 120)
    ex.number_input(key="ex_row").set_value(2)
    ex.number_input(key="ex_col").set_value(3)
    run_page("", ex, 120)
    (query,) = anatomy_links(ex)
    assert set(query) == {"block", "branch", "row", "col"} and (query["row"], query["col"]) == ("2", "3")
    at = open_link(query, path)
    heading = texts(at, "subheader")
    assert re.search(rf"How {query['block']}·{query['branch']} \(2, 3\), channel \d+, is computed", heading)
    # Block Designer: a paper block links to that block
    bd = AppTest.from_file(str(ROOT / "pages" / "block_designer.py"), default_timeout=60)
    bd.query_params.update(design_to_query(block_presets()["Paper 4a"]))
    run_page("", bd, 60)
    (query,) = anatomy_links(bd)
    assert query == {"block": "4a"}
    at = open_link(query, path)
    assert re.search(r"How 4a·b2 \(\d+, \d+\), channel \d+, is computed", texts(at, "subheader"))


def test_inception_v3_untrained_halves(env):
    at = run()
    at.radio(key="an_family").set_value("inception-v3")
    run(at)
    at.radio(key="an_v3_source").set_value("untrained")
    run(at)
    at.selectbox(key="an_block").set_value("Mixed_7b")
    run(at)
    at.number_input(key="an_channel").set_value(400)
    run(at)
    assert re.search(r"How 7b·b2 \(\d+, \d+\), channel 400, is computed", texts(at, "subheader"))
    assert "its channel 400 is channel 16 of `Mixed_7b.branch3x3_2b`" in texts(at, "caption")
    labels = [s.get("aria-label") for s in svgs(at)]
    assert labels[:3] == [
        "Mixed_7b.branch3x3_1.conv: conv step",
        "BatchNorm and ReLU",
        "Mixed_7b.branch3x3_2b.conv: conv step",
    ]
