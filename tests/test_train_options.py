"""Each training option is defined once (gnet.train_options): the CLI, validation, recipes and the Training
page's widgets all read that definition. Every test here walks OPTIONS, so a new option is covered by them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from streamlit.testing.v1 import AppTest

from gnet import data, train_options
from gnet.__main__ import make_parser
from gnet.spec import NETWORK_PRESETS, network_preset
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


def test_the_dataset_list_is_gnet_data_s():
    o = OPTIONS["dataset"]
    for name in (*data.NAMED_DATASETS, "folder:shapes"):
        o.validate(name)
    with pytest.raises(ConfigError, match="synthetic, fashion-mnist, mnist, cifar10 or folder:NAME"):
        o.validate("imagenet")
    assert o.help == "synthetic (default), fashion-mnist, mnist, cifar10 or folder:NAME" and o.default == "synthetic"
    assert data.dataset_choices(Path("/nonexistent")) == list(data.NAMED_DATASETS)
    assert set(data.TORCHVISION_DATASETS) == {"fashion-mnist", "mnist", "cifar10"}
    with pytest.raises(data.DataError, match="choose synthetic, fashion-mnist, mnist, cifar10 or folder:NAME"):
        data.load_dataset("imagenet")


def test_the_option_table_and_the_dataset_list_import_no_torch():
    code = "import sys, gnet.train_options, gnet.data; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-500:]


def test_the_training_forms_offer_every_preset_but_the_aux_one():
    assert train_options.TRAIN_PRESETS == ("d2l-fashion96", "googlenet-imagenet", "mini")
    # the Training page also trains the small Inception v3; sweeps vary GoogLeNet blocks, so their bases stay these
    assert train_options.TRAINING_PAGE_PRESETS == (*train_options.TRAIN_PRESETS, "mini-v3")
    with pytest.raises(KeyError, match="no training preset 'inception-v3-imagenet'"):
        train_options.train_preset("inception-v3-imagenet")


def test_preflight_reads_the_dataset_s_channels_and_classes(tmp_path):
    from gnet.train import preflight

    base = TrainConfig.from_recipe("improved", network_preset("mini"), data_dir=str(tmp_path))
    assert (preflight(base).in_channels, preflight(base).num_classes) == (3, 10)
    fashion = preflight(dataclasses.replace(base, dataset="fashion-mnist"))
    assert (fashion.in_channels, fashion.num_classes) == (1, 10)
    for c in ("cat", "dog", "fox"):  # an image folder's classes are its sub-folders (not 10)
        (tmp_path / "pets" / c).mkdir(parents=True)
    pets = preflight(dataclasses.replace(base, dataset="folder:pets"))
    assert (pets.in_channels, pets.num_classes) == (3, 3)
    for d in ("train/cat", "train/dog", "test/cat", "test/dog"):  # split folders: the classes of train/
        (tmp_path / "split" / d).mkdir(parents=True)
    assert preflight(dataclasses.replace(base, dataset="folder:split")).num_classes == 2
    with pytest.raises(ConfigError, match="no image folder 'missing'"):
        preflight(dataclasses.replace(base, dataset="folder:missing"))


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


def test_the_sweep_form_reads_the_table_and_offers_the_training_form_s_presets_and_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("GNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GNET_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "pets" / "cat").mkdir(parents=True)
    at = AppTest.from_file(str(Path(PAGE).parent / "network_explorer.py"), default_timeout=60)
    at.run()
    assert not at.exception
    for name, kind in (
        ("dataset", "selectbox"),
        ("recipe", "selectbox"),
        ("epochs", "number_input"),
        ("seed", "number_input"),
    ):
        w = at.get(kind)[[x.key for x in at.get(kind)].index(f"sw_{name}")]
        o = OPTIONS[name]
        assert (w.label, w.help) == (o.label, o.help), name
        if kind == "number_input":
            assert (w.min, w.max) == (o.lo, o.hi), name
    assert at.selectbox(key="sw_dataset").options == [*data.NAMED_DATASETS, "folder:pets"]
    assert at.selectbox(key="sw_recipe").options == list(train_options.RECIPE_NAMES)
    assert at.selectbox(key="sw_base").options[1:] == list(train_options.TRAIN_PRESETS)
    assert at.number_input(key="sw_image").max == OPTIONS["image_size"].hi
    training = AppTest.from_file(PAGE, default_timeout=60)
    training.run()
    assert training.selectbox(key="tr_dataset").options == at.selectbox(key="sw_dataset").options
    assert [n for n in training.selectbox(key="tr_network").options if n in NETWORK_PRESETS] == list(
        train_options.TRAIN_PRESETS
    )


def test_train_help_lists_every_flag_with_its_help(capsys):
    with pytest.raises(SystemExit) as e:
        make_parser().parse_args(["train", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for o in OPTIONS.values():
        if o.cli_flag:
            assert o.cli_flag in text and " ".join(o.help.split()) in text, o.name


NUMERIC = [n for n, o in OPTIONS.items() if o.kind in (int, float) and not o.choices]


@settings(max_examples=25, deadline=None)
@given(name=hst.sampled_from(NUMERIC), x=hst.floats(-1e7, 1e7, allow_nan=False))
def test_numeric_options_accept_exactly_their_range(name, x):
    o = OPTIONS[name]
    v = int(x) if o.kind is int else x
    inside = o.lo <= v <= o.hi and not (o.lo_open and v == o.lo)
    try:
        o.validate(v)
        accepted = True
    except ConfigError as e:
        accepted = False
        assert o.words in str(e)
    assert accepted == inside
