"""Every training option, defined once: name, type, range or choices, help text and recipe defaults.

`TrainConfig` is the table: each field carries its `Option` (in the field's metadata). Validation,
the `python -m gnet train` flags (gnet.train.add_train_arguments) and the Training page's widgets all
read `OPTIONS`, so adding an option is one field here (and, to use it, a line in the trainer).

Recipes:
  * "seed": seed 001 exactly — d2l-fashion96 as given (Kaiming/Xavier init, no BatchNorm), plain SGD
    lr 0.005, batch 128, 30 epochs, constant lr, inputs x/255 (ToTensor, no normalisation), no augmentation.
  * "improved" (the dataclass defaults): BatchNorm, Nesterov momentum 0.9, weight decay 5e-4, one-cycle lr,
    label smoothing 0.1, per-channel normalisation, random horizontal flips where the dataset allows them.
This module is torch-free, and so is the dataset list it reads (gnet.data imports torch only where it loads
data): the page and the CLI parser read it without importing the trainer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gnet.data import DATASET_CHOICES, is_dataset_name
from gnet.spec import NETWORK_PRESETS, NetworkSpec, network_preset
from gnet.v3 import V3_PRESETS, InceptionV3Spec, network_from_dict

MAX_EPOCHS = 1000
MAX_BATCH = 4096
MIN_IMAGE, MAX_IMAGE = 8, 512
OPTIMIZERS = ("sgd", "momentum", "adamw")
SCHEDULES = ("constant", "onecycle")
AMP_MODES = ("auto", "bf16", "off")
DEVICES = ("auto", "cpu", "cuda", "mps")
RECIPE_NAMES = ("seed", "improved")
# The GoogLeNet presets the Training and sweep forms offer: every preset but the one with aux heads, which a run
# gets from the aux option instead. Sweeps (gnet.sweeps) vary GoogLeNet blocks only, so these are their bases.
TRAIN_PRESETS = tuple(n for n in NETWORK_PRESETS if not network_preset(n).aux)
# The Inception v3 presets the Training page offers besides: the small one, which trains on a CPU (its aux head
# is its own; the full ImageNet v3 is for the pretrained weights).
TRAIN_V3_PRESETS = ("mini-v3",)
# Everything the Training page offers, in its order.
TRAINING_PAGE_PRESETS = TRAIN_PRESETS + TRAIN_V3_PRESETS


def train_preset(name: str) -> NetworkSpec | InceptionV3Spec:
    """A preset of TRAINING_PAGE_PRESETS by name (KeyError for another name)."""
    if name in TRAIN_V3_PRESETS:
        return V3_PRESETS[name]()
    if name in TRAIN_PRESETS:
        return network_preset(name)
    raise KeyError(f"no training preset {name!r}; choose one of {', '.join(TRAINING_PAGE_PRESETS)}")


class ConfigError(ValueError):
    """A training option is out of range; the message names it and the allowed range."""


@dataclass(frozen=True)
class Option:
    """One training option. `name` and `kind` are filled in from the TrainConfig field."""

    help: str
    label: str = ""  # the page's widget label; "" = not a widget on the page
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is not allowed (lr > 0)
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is allowed (means "automatic")
    recipes: dict[str, Any] = field(default_factory=dict)  # recipe name -> default under that recipe
    flag: str | None = ""  # CLI flag; "" = --name-with-dashes, None = not on the command line
    metavar: str | None = None
    check: Callable[[Any], bool] | None = None  # extra rule for values a range cannot express
    expected: str = ""  # what `check` accepts, for its error message
    name: str = ""
    kind: type = object
    default: Any = None

    @property
    def cli_flag(self) -> str | None:
        return None if self.flag is None else (self.flag or "--" + self.name.replace("_", "-"))

    @property
    def words(self) -> str:
        return self.name.replace("_", " ")

    def validate(self, v: Any) -> None:
        if self.optional and v is None:
            return
        if self.kind is bool:
            if not isinstance(v, bool):
                raise ConfigError(f"{self.words} must be true or false, got {v!r}")
        elif self.kind is int:
            if isinstance(v, bool) or not isinstance(v, int) or not self.lo <= v <= self.hi:
                raise ConfigError(f"{self.words} must be a whole number from {self.lo:,} to {self.hi:,}, got {v!r}")
        elif self.kind is float:
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < self.lo
                or v > self.hi
                or (self.lo_open and v == self.lo)
            ):
                raise ConfigError(
                    f"{self.words} must be a number {'above' if self.lo_open else 'from'} {self.lo:g} "
                    f"{'and at most' if self.lo_open else 'to'} {self.hi:g}, got {v!r}"
                )
        elif self.choices and v not in self.choices:
            raise ConfigError(f"{self.words} must be one of {', '.join(self.choices)}, got {v!r}")
        elif self.kind is str and not isinstance(v, str):
            raise ConfigError(f"{self.words} must be text, got {v!r}")
        if self.check is not None and not self.check(v):
            raise ConfigError(f"{self.words} must be {self.expected}, got {v!r}")


def option(default: Any, help: str, kind: type | None = None, **kw: Any) -> Any:
    """A TrainConfig field carrying its Option; kind defaults to the default's type."""
    meta = Option(help=help, kind=kind or type(default), default=default, **kw)
    return field(default=default, metadata={"option": meta})


@dataclass
class TrainConfig:
    network: dict[str, Any]  # NetworkSpec.to_dict(): a preset or a network edited in the app
    dataset: str = option(
        "synthetic",
        DATASET_CHOICES.replace("synthetic", "synthetic (default)", 1),
        label="Dataset",
        check=is_dataset_name,
        expected=DATASET_CHOICES,
    )
    data_dir: str | None = option(None, "datasets folder (default: GNET_DATA_DIR or ./data)", kind=str, optional=True)
    image_size: int | None = option(
        None,
        "image side in pixels (default: the network's input size)",
        kind=int,
        optional=True,
        lo=MIN_IMAGE,
        hi=MAX_IMAGE,
        label="Image size (pixels)",
    )
    recipe: str = option("improved", "seed: seed 001 exactly; improved (default)", choices=RECIPE_NAMES, label="Recipe")
    epochs: int = option(
        10, "passes over the training set", lo=1, hi=MAX_EPOCHS, label="Epochs", recipes={"seed": 30, "improved": 10}
    )
    batch_size: int = option(
        128,
        "images per step (all processes together)",
        lo=1,
        hi=MAX_BATCH,
        label="Batch size",
        recipes={"seed": 128, "improved": 128},
    )
    # huge learning rates are allowed: they end in a clear "loss became NaN"
    lr: float = option(
        0.05,
        "peak learning rate",
        lo=0.0,
        hi=1e30,
        lo_open=True,
        label="Learning rate",
        recipes={"seed": 0.005, "improved": 0.05},
    )
    optimizer: str = option(
        "momentum",
        "sgd: plain SGD (seed 001); momentum: SGD with Nesterov momentum 0.9; adamw",
        choices=OPTIMIZERS,
        label="Optimizer",
        recipes={"seed": "sgd", "improved": "momentum"},
    )
    weight_decay: float = option(
        5e-4, "L2 weight decay (not on biases and BatchNorm)", lo=0.0, hi=1.0, recipes={"seed": 0.0, "improved": 5e-4}
    )
    schedule: str = option(
        "onecycle",
        "constant, or onecycle: warm-up over a fifth of the steps, then linear decay",
        choices=SCHEDULES,
        recipes={"seed": "constant", "improved": "onecycle"},
    )
    label_smoothing: float = option(
        0.1, "label smoothing of the cross-entropy", lo=0.0, hi=0.5, recipes={"seed": 0.0, "improved": 0.1}
    )
    batch_norm: bool = option(
        True, "add BatchNorm to every conv of the network", flag=None, recipes={"seed": False, "improved": True}
    )
    normalize: bool = option(
        True,
        "per-channel mean/std of the training set; off: x/255 as ToTensor",
        flag=None,
        recipes={"seed": False, "improved": True},
    )
    flip: bool = option(
        True,
        "random horizontal flips where the dataset allows them",
        flag=None,
        recipes={"seed": False, "improved": True},
    )
    aux: bool = option(
        False, "auxiliary classifiers (loss weight 0.3)", label="Auxiliary classifiers (loss weight 0.3)"
    )
    aux_weight: float = option(0.3, "weight of each aux head's loss", lo=0.0, hi=10.0, flag=None)
    device: str = option("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda or mps", choices=DEVICES, label="Device")
    seed: int = option(0, "random seed (data order, initialisation, augmentation)", lo=0, hi=2**31 - 1, label="Seed")
    compile: bool = option(False, "torch.compile the model")
    amp: str = option(
        "auto", "bf16 autocast: auto (CUDA with bf16, CPUs with AMX), bf16, or off (fp32)", choices=AMP_MODES
    )
    max_train_samples: int | None = option(
        None, "use at most this many training images", kind=int, optional=True, lo=1, hi=10_000_000
    )
    max_test_samples: int | None = option(
        None, "use at most this many test images", kind=int, optional=True, lo=1, hi=10_000_000
    )
    synthetic_train: int = option(10_000, "synthetic training images (default 10000)", lo=10, hi=200_000)
    synthetic_test: int = option(2_000, "synthetic test images (default 2000)", lo=10, hi=50_000)
    checkpoint_every_s: float = option(
        60.0,
        "seconds between checkpoints (also at every epoch end and on stop)",
        lo=0.0,
        hi=86_400.0,
        flag="--checkpoint-every",
        metavar="SECONDS",
    )
    log_every: int = option(
        0, "steps between metric records; 0: about 50 per epoch", lo=0, hi=1_000_000, metavar="STEPS"
    )
    telemetry_every: int = option(
        20,
        "steps between per-branch telemetry records (also step 1); 0: off",
        lo=0,
        hi=1_000_000,
        metavar="STEPS",
        label="Telemetry every (steps)",
    )

    @staticmethod
    def from_recipe(
        recipe: str, network: NetworkSpec | InceptionV3Spec | dict[str, Any], **overrides: Any
    ) -> TrainConfig:
        """A recipe's settings, with any non-None override on top."""
        if recipe not in RECIPES:
            raise ConfigError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
        net = network.to_dict() if isinstance(network, (NetworkSpec, InceptionV3Spec)) else network
        values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}}
        return TrainConfig(network=net, recipe=recipe, **values).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: Any) -> TrainConfig:
        """From config.json or a checkpoint; options it lacks (older runs) take their defaults."""
        if not isinstance(d, dict):
            raise ConfigError("the run's training config is not a JSON object")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        try:
            return TrainConfig(**{k: v for k, v in d.items() if k in known}).validate()
        except TypeError as e:
            raise ConfigError(f"the run's training config is incomplete: {e}") from None

    def validate(self) -> TrainConfig:
        for o in OPTIONS.values():
            o.validate(getattr(self, o.name))
        network_from_dict(self.network)  # SpecError names the bad field
        return self


OPTIONS: dict[str, Option] = {
    f.name: dataclasses.replace(f.metadata["option"], name=f.name)
    for f in dataclasses.fields(TrainConfig)
    if "option" in f.metadata
}
RECIPES: dict[str, dict[str, Any]] = {
    r: {o.name: o.recipes[r] for o in OPTIONS.values() if r in o.recipes} for r in RECIPE_NAMES
}
