"""The Training page trains the small Inception v3 (mini-v3) as it trains GoogLeNet (AppTest, real runs on the
synthetic dataset): the network's own summary, a live run with its curves, per-branch telemetry (the pool-only
branches of the B and D blocks without a weight norm) and predictions, then stop and resume."""

from __future__ import annotations

import json

from gnet import runs
from gnet.train_options import TRAIN_PRESETS, TRAIN_V3_PRESETS, TRAINING_PAGE_PRESETS, train_preset
from gnet.v3 import InceptionV3Spec
from tests.test_page_training import page, poll, root, shows_state, texts

__all__ = ["root"]  # the fixture, imported for the tests here


def start_mini_v3(at, name: str, epochs: int) -> None:
    at.selectbox(key="tr_network").set_value("mini-v3").run()
    assert not at.exception
    at.number_input(key="tr_max_train_synthetic").set_value(60)
    at.number_input(key="tr_epochs_improved").set_value(epochs)
    at.number_input(key="tr_batch_improved").set_value(20)
    at.number_input(key="tr_telemetry").set_value(1)
    at.selectbox(key="tr_device").set_value("cpu")
    at.text_input(key="tr_name").set_value(name)
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert f"Started run {name}" in texts(at), texts(at)


def test_the_page_offers_mini_v3_after_the_googlenet_presets():
    assert TRAINING_PAGE_PRESETS == (*TRAIN_PRESETS, "mini-v3") and TRAIN_V3_PRESETS == ("mini-v3",)
    assert isinstance(train_preset("mini-v3"), InceptionV3Spec)
    assert all(not isinstance(train_preset(n), InceptionV3Spec) for n in TRAIN_PRESETS)  # the sweeps' bases


def test_a_mini_v3_run_trains_live_with_telemetry_and_predictions_then_stops_and_resumes(root):
    at = page()
    assert at.selectbox(key="tr_network").options == list(TRAINING_PAGE_PRESETS)
    at.selectbox(key="tr_network").set_value("mini-v3").run()
    # what the page says about the network is read from the v3 spec: its blocks, its own aux head, its size
    shown = texts(at)
    assert "Inception v3: blocks A (Mixed_5b), B (Mixed_6a), C (Mixed_6b), D (Mixed_7a), E (Mixed_7b)" in shown
    assert "its own aux head after Mixed_6b" in shown
    aux = at.checkbox(key="tr_aux_v3")
    assert aux.value and aux.disabled
    assert at.number_input(key="tr_size_mini-v3").value == 36
    start_mini_v3(at, "v3run", epochs=1000)  # far longer than the test: stopped below
    cfg = json.loads((root / "v3run" / "config.json").read_text())["train"]
    assert cfg["network"]["family"] == "inception-v3" and cfg["network"]["name"] == "mini-v3"
    # live: curves, telemetry and the first epoch's checkpoint predictions while it trains
    poll(
        at,
        lambda a: (
            shows_state(a, "running")
            and any("training curves" in m.value[:300] for m in a.markdown)
            and "true:" in texts(a)
            and a.get("plotly_chart")
        ),
    )
    assert at.dataframe[0].value["network"].tolist() == ["mini-v3"]
    records = runs.read_telemetry(root / "v3run")
    assert set(records[0]["branches"]) == {"Mixed_5b", "Mixed_6a", "Mixed_6b", "Mixed_7a", "Mixed_7b"}
    for blk in ("Mixed_6a", "Mixed_7a"):  # B and D: b3 is a max-pool, without parameters
        pool = records[0]["branches"][blk]["b3"]
        assert pool["weight_norm"] is None and pool["update_norm"] is None
        assert pool["out_rms"] > 0 and pool["grad_rms"] > 0  # read from its channels of the block's output
    assert "aux1" in records[0]["aux_loss"]  # mini-v3's own aux head
    # the blocks × branches chart of the weight norm: the pool-only cells are gaps that say why
    at.selectbox(key="tr_tel_stat").set_value("weight_norm").run()
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    for row in ("6a", "7a"):
        i, j = heat["y"].index(row), heat["x"].index("b3")
        assert heat["z"][i][j] is None and "no parameters: a pool-only branch" in heat["customdata"][i][j]
        assert heat["z"][i][0] is not None  # b1 has a 3×3 conv
    i = heat["y"].index("6a")
    assert (
        heat["z"][i][heat["x"].index("b4")] is None and heat["customdata"][i][heat["x"].index("b4")] == "6a has no b4"
    )
    # stop, resume, stop: as for a GoogLeNet run
    at.button(key="tr_stop").click().run()
    assert not at.exception
    poll(at, lambda a: shows_state(a, "stopped") and a.button(key="tr_resume"))
    at.button(key="tr_resume").click().run()
    poll(at, lambda a: shows_state(a, "running"))
    runs.request_stop(runs.run_dir(root, "v3run"))
    poll(at, lambda a: shows_state(a, "stopped"))
    assert at.button(key="tr_open_fm")  # its checkpoint opens in the views (tests/test_page_v3_checkpoint.py)
