"""The Training page's telemetry charts (AppTest) for finished runs: heatmap, lines, aux vs main, compare."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet import runs
from gnet.spec import network_preset
from gnet.train import TrainConfig, train

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tel_page") / "runs"
    for name, every, lr in (("quiet", 0, 0.05), ("slow", 1, 0.01), ("fast", 1, 0.2)):
        cfg = TrainConfig.from_recipe(
            "improved",
            network_preset("mini"),
            image_size=12,
            synthetic_train=60,
            synthetic_test=20,
            batch_size=20,
            epochs=1,
            device="cpu",
            lr=lr,
            telemetry_every=every,
        )
        run = runs.create(root / name, {"train": cfg.to_dict()})
        assert train(cfg, run) == "finished"
    return root


def page(root: Path, monkeypatch, run: str) -> AppTest:
    monkeypatch.setenv("GNET_RUNS_DIR", str(root))
    monkeypatch.setenv("GNET_DATA_DIR", str(root.parent / "data"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.selectbox(key="tr_selected").set_value(run).run()
    assert not at.exception
    return at


def chart(at: AppTest, key_prefix: str) -> dict:
    found = [
        c
        for c in at.get("plotly_chart")
        if key_prefix in str(c.proto.id)
        or key_prefix in json.dumps(json.loads(c.proto.spec).get("layout", {}).get("title", {}))
    ]
    assert found, [json.loads(c.proto.spec)["layout"].get("title") for c in at.get("plotly_chart")]
    return json.loads(found[0].proto.spec)


def titles(at: AppTest) -> list[str]:
    return [str(json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "")) for c in at.get("plotly_chart")]


def test_finished_run_shows_heatmap_lines_and_aux_charts(root, monkeypatch):
    at = page(root, monkeypatch, "fast")
    assert "Branch telemetry" in [str(m.value).strip("*") for m in at.markdown]
    recs = runs.read_telemetry(root / "fast")
    assert [r["step"] for r in recs] == [1, 2, 3]
    heat = chart(at, "per block and branch")
    assert heat["data"][0]["type"] == "heatmap" and len(heat["data"][0]["z"]) == 4  # mini: 3a 3b 4a 4b
    assert len(heat["frames"]) == 3 and "output RMS" in heat["layout"]["title"]["text"]
    assert not any("per block, by branch" in t for t in titles(at))  # lazy tabs: only the open one is drawn
    for tab, title in (("Lines per block", "per block, by branch"), ("Aux heads vs main loss", "Main loss")):
        at.session_state["tr_tel_tab"] = tab  # what a click on the tab sets
        at.run()
        assert any(title in t for t in titles(at)) and not any("per block and branch" in t for t in titles(at))
    at.session_state["tr_tel_tab"] = "Blocks × branches"
    # another statistic redraws the charts with it
    at.selectbox(key="tr_tel_stat").set_value("grad_rms").run()
    assert not at.exception
    heat = chart(at, "per block and branch")
    assert "output-gradient RMS" in heat["layout"]["title"]["text"]
    z = heat["data"][0]["z"][0][0]
    assert z == pytest.approx(math.log10(recs[-1]["branches"]["inception3a"]["b1"]["grad_rms"]))
    captions = " ".join(str(c.value) for c in at.caption)
    assert "3 telemetry records" in captions and "tensorboard --logdir" in captions
    assert str(root) not in captions  # the runs folder is named symbolically, never by its server path


def test_run_without_telemetry_says_so_and_two_runs_compare(root, monkeypatch):
    at = page(root, monkeypatch, "quiet")
    assert "No telemetry in this run: it is off" in " ".join(str(c.value) for c in at.caption)
    # compare: only runs with telemetry are offered
    assert sorted(at.selectbox(key="tr_tel_a").options) == ["fast", "slow"]
    at.selectbox(key="tr_tel_a").set_value("slow").run()
    at.selectbox(key="tr_tel_b").set_value("fast").run()
    at.selectbox(key="tr_tel_cmp_stat").set_value("update_norm").run()
    assert not at.exception
    cmp = chart(at, "latest telemetry step of each run")
    assert [d["type"] for d in cmp["data"]] == ["heatmap", "heatmap"]
    assert "last update norm" in cmp["layout"]["title"]["text"]
    assert [a["text"] for a in cmp["layout"]["annotations"]] == ["slow (step 3)", "fast (step 3)"]


def test_page_says_how_to_turn_tensorboard_on_when_it_is_missing(root, monkeypatch):
    from gnet import telemetry

    monkeypatch.setattr(telemetry, "tensorboard_available", lambda: False)
    at = page(root, monkeypatch, "fast")
    captions = " ".join(str(c.value) for c in at.caption)
    assert "pip install tensorboard" in captions and "tensorboard --logdir" not in captions


def test_a_live_runs_telemetry_is_redrawn_at_most_every_few_seconds(root, monkeypatch, tmp_path):
    """While a run trains, a poll that finds new telemetry keeps showing the same records (and so sends the same
    figure) until TELEMETRY_REDRAW_S has passed; a finished run always shows all of them. The run is "live" as
    the page judges it: status running, this process's pid on this host, a fresh heartbeat."""
    import os
    import shutil
    import socket
    import time

    live = tmp_path / "runs" / "live"
    shutil.copytree(root / "fast", live)
    runs.write_status(live, "running", pid=os.getpid(), host=socket.gethostname())
    runs.touch_heartbeat(live)
    at = page(live.parent, monkeypatch, "live")
    assert runs.read_run(live).active
    caption = next(c.value for c in at.caption if "telemetry record" in c.value)
    assert caption.startswith("3 telemetry records, last at step 3 (redrawn every 15 s while the run trains)")
    spec = chart(at, "per block and branch")
    more = runs.read_telemetry(live)[-1]
    runs.append_jsonl(live / runs.TELEMETRY, [{**more, "step": 4}, {**more, "step": 5}])
    at.run()  # the next poll, within the redraw interval: the same records, the same figure
    assert any(c.value.startswith("3 telemetry records, last at step 3") for c in at.caption)
    assert chart(at, "per block and branch") == spec
    run, _, n = at.session_state["tr_tel_shown"]
    at.session_state["tr_tel_shown"] = (run, time.monotonic() - 60, n)  # as if the interval had passed
    at.run()
    assert any(c.value.startswith("5 telemetry records, last at step 5") for c in at.caption)
    assert len(chart(at, "per block and branch")["frames"]) == 5
    runs.write_status(live, "finished", pid=os.getpid(), host=socket.gethostname())
    runs.append_jsonl(live / runs.TELEMETRY, [{**more, "step": 6}])
    at.run()  # ended: everything, at once
    assert any(c.value.startswith("6 telemetry records, last at step 6.") for c in at.caption)
