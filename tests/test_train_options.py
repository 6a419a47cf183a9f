"""Each training option is defined once (gnet.train_options): the CLI, validation, recipes and the Training
page's widgets all read that definition. Every test here walks OPTIONS, so a new option is covered by them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gnet import data, train_options
from gnet.__main__ import make_parser
from gnet.spec import network_preset
from gnet.train import config_from_args
from gnet.train_options import OPTIONS, RECIPES, ConfigError, Option, TrainConfig

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")
# The flags `python -m gnet train` had before the table (none may disappear), plus the ones added since.
FLAGS = {
    "--dataset",
    "--data-dir",
    "--recipe",
    "--image-size",
    "--epochs",
    "--batch-size",
    "--lr",
    "--optimizer",
    "--weight-decay",
    "--schedule",
    "--label-smoothing",
    "--aux",
    "--device",
    "--seed",
    "--compile",
    "--amp",
    "--max-train-samples",
    "--max-test-samples",
    "--synthetic-train",
    "--synthetic-test",
    "--checkpoint-every",
    "--log-every",
    "--telemetry-every",
}


def other_value(o: Option):
    """A valid value different from the option's default."""
    if o.choices:
        return next(c for c in o.choices if c != o.default)
    if o.kind is bool:
        return not o.default
    if o.kind is int:
        return int(o.lo) + 1 if o.default != int(o.lo) + 1 else int(o.lo) + 2
    if o.kind is float:
        return (o.lo + min(o.hi, 1.0)) / 2 if o.default != (o.lo + min(o.hi, 1.0)) / 2 else o.lo + 1e-3
    return {"dataset": "mnist", "data_dir": "somewhere"}[o.name]


def train_flags(parser) -> dict[str, str]:
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    return {s: a.dest for a in sub._actions for s in a.option_strings}


def test_every_field_but_the_network_is_an_option_and_the_cli_has_every_flag():
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert fields == ["network", *OPTIONS]
    flags = train_flags(make_parser())
    assert {o.cli_flag for o in OPTIONS.values() if o.cli_flag} == FLAGS
    assert FLAGS <= set(flags) and all(flags[o.cli_flag] == o.name for o in OPTIONS.values() if o.cli_flag)


@pytest.mark.parametrize("name", [n for n, o in OPTIONS.items() if o.cli_flag and n != "recipe"])
def test_each_flag_reaches_the_config(name):
    o = OPTIONS[name]
    value = other_value(o)
    argv = ["train", "--preset", "mini", "--run-dir", "x"]
    argv += [o.cli_flag] if o.kind is bool else [o.cli_flag, str(value)]
    cfg = config_from_args(make_parser().parse_args(argv))
    assert getattr(cfg, name) == value
    assert getattr(TrainConfig.from_recipe("improved", network_preset("mini")), name) == o.default


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_refuses_a_bad_value_naming_itself(name):
    o = OPTIONS[name]
    bad = (
        "nonsense"
        if o.choices or o.check
        else o.lo - 1
        if o.kind in (int, float) and o.lo is not None
        else "yes"
        if o.kind is bool
        else 12
    )
    good = TrainConfig.from_recipe("improved", network_preset("mini"))
    with pytest.raises(ConfigError, match=o.words):
        dataclasses.replace(good, **{name: bad}).validate()


def test_recipes_come_from_the_table_and_the_improved_one_is_the_default():
    assert set(RECIPES) == set(train_options.RECIPE_NAMES)
    assert RECIPES["seed"] == {
        "epochs": 30,
        "batch_size": 128,
        "lr": 0.005,
        "optimizer": "sgd",
        "weight_decay": 0.0,
        "schedule": "constant",
        "label_smoothing": 0.0,
        "batch_norm": False,
        "normalize": False,
        "flip": False,
    }
    assert all(OPTIONS[k].default == v for k, v in RECIPES["improved"].items())
    assert train_options.TORCHVISION_DATASET_NAMES == tuple(data.TORCHVISION_DATASETS)


def test_old_configs_without_new_options_load_with_their_defaults():
    d = TrainConfig.from_recipe("seed", network_preset("mini")).to_dict()
    del d["telemetry_every"]
    assert TrainConfig.from_dict(d).telemetry_every == OPTIONS["telemetry_every"].default


def test_the_page_widgets_read_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    widgets = {w.label: w for kind in ("number_input", "selectbox", "checkbox") for w in at.get(kind)}
    shown = [o for o in OPTIONS.values() if o.label and o.name != "recipe"]
    assert len(shown) >= 10
    for o in shown:
        w = widgets[o.label]
        assert w.help == o.help, o.name
        if o.kind in (int, float) and not o.choices:
            assert (w.min, w.max) == (o.lo, o.hi), o.name
    assert widgets[OPTIONS["optimizer"].label].options == list(OPTIONS["optimizer"].choices)
    assert at.radio(key="tr_recipe").help == OPTIONS["recipe"].help
