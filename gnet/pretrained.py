"""The networks the Feature Maps page runs, and where their weights come from.

Four sources, each loaded into one `gnet.net.Net` (module, plan, preprocessing, content key):
- "pretrained": torchvision's GoogLeNet with IMAGENET1K_V1 weights, read through
  torchvision's weights API from the torch hub cache
  ($TORCH_HOME/hub/checkpoints/googlenet-1378be20.pth). A missing file is
  downloaded in the background with progress (gnet.downloads: one download per
  process, verified, never half-written; GNET_WEIGHTS_URL/GNET_WEIGHTS_SHA256 give
  a mirror); a failure is remembered for the process so reruns don't retry
  (`ensure_pretrained_weights(retry=True)` tries again).
- "weights": a torchvision GoogLeNet state_dict file the user points to
  (GNET_WEIGHTS or a text field).
- "checkpoint": a checkpoint from this project's training runs (gnet.checkpoints):
  it carries its own network spec, classes and preprocessing.
- "untrained": the ImageNet GoogLeNet with seeded random weights, labelled as such.

Every file is read with torch.load(weights_only=True). torchvision's own
`googlenet(weights=...)` builder loads the cached file with weights_only=False
(a crafted file could run code), so we call the same weights API
(`GoogLeNet_Weights.get_state_dict`) with weights_only=True and then do what
the builder does (load, drop the untrained aux heads).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import GoogLeNet_Weights, Inception_V3_Weights, WeightsEnum
from torchvision.models import googlenet as tv_googlenet
from torchvision.models import inception_v3 as tv_inception_v3

from gnet import downloads, fsio
from gnet.checkpoints import FORMAT as CHECKPOINT_FORMAT
from gnet.checkpoints import (
    CheckpointError,
    describe_load_failure,
    load_checkpoint,
    sniff_torch_file,
    torch_load_safely,
)
from gnet.images import Preprocess
from gnet.net import Net
from gnet.runs import SWEEP_FILE, runs_root
from gnet.v3 import MODELS

WEIGHTS = GoogLeNet_Weights.IMAGENET1K_V1
WEIGHTS_FILE = "googlenet-1378be20.pth"  # torchvision's file name; "1378be20" is its SHA-256 prefix
HASH_PREFIX = "1378be20"
SOURCES = ("pretrained", "checkpoint", "weights", "untrained")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    kind: str  # one of SOURCES
    path: str = ""  # the file for "weights" and "checkpoint"
    model: str = "googlenet"  # the family: one of MODELS


@dataclass(frozen=True)
class _Loaded:
    """What a source's loader read, before it is placed on its device and shared as a Net."""

    module: nn.Module
    label: str  # what the UI says this model is
    trained: bool
    classes: list[str]
    preprocess: Preprocess
    note: str = ""  # e.g. how torchvision's weights expect their input


def imagenet_categories() -> list[str]:
    """ImageNet class names from the weights' metadata (no download needed)."""
    return list(WEIGHTS.meta["categories"])


def imagenet_preprocess() -> Preprocess:
    t = WEIGHTS.transforms()  # torchvision's recipe for these weights: resize 256, crop 224, ImageNet mean/std
    return Preprocess(t.resize_size[0], (t.crop_size[0], t.crop_size[0]), tuple(t.mean), tuple(t.std), 3)


TRANSFORM_NOTE = (
    "torchvision's GoogLeNet weights were ported from TensorFlow: the model first maps the "
    "ImageNet-normalised input back to (x − 0.5) / 0.5 per channel (transform_input=True)"
)


# ---------------------------------------------------------------------------
# The pretrained weights: cache, background download with progress, mirror


def hub_weights_path() -> Path:
    """Where torchvision's weights API looks (torch.hub.get_dir() reads TORCH_HOME at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


# What pages show instead of the real path: the operator's path goes to the server log only.
SYMBOLIC_WEIGHTS_PATH = f"$TORCH_HOME/hub/checkpoints/{WEIGHTS_FILE}"


@dataclass(frozen=True)
class WeightsStatus:
    ok: bool
    path: Path
    message: str  # on failure: what could not be fetched and why (no server paths)
    state: str = "ready"  # "ready", "downloading", "failed" or "off" (GNET_OFFLINE)
    progress: downloads.Progress | None = None  # while downloading


def offline() -> bool:
    return os.environ.get("GNET_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def weights_source(url: str | None = None) -> tuple[str, downloads.Check]:
    """The URL to fetch and what the file must hash to. The official file keeps torchvision's
    check (its SHA-256 starts with the 8 digits in its name); a mirror set with GNET_WEIGHTS_URL
    is held to GNET_WEIGHTS_SHA256 when given, else to the same torchvision prefix."""
    url = url or os.environ.get("GNET_WEIGHTS_URL", "").strip() or WEIGHTS.url
    sha = os.environ.get("GNET_WEIGHTS_SHA256", "").strip().lower()
    if sha and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise CheckpointError("GNET_WEIGHTS_SHA256 must be the file's SHA-256 as 64 hexadecimal digits")
    return url, downloads.Check(sha256=sha or HASH_PREFIX, what=f"the pretrained weights ({WEIGHTS_FILE})")


def how_to_get_weights() -> str:
    return (
        f"To use the pretrained weights, put torchvision's file `{WEIGHTS_FILE}` (from {WEIGHTS.url}) into "
        "`$TORCH_HOME/hub/checkpoints/` (TORCH_HOME defaults to `~/.cache/torch`), or set GNET_WEIGHTS to the "
        "file's path, or GNET_WEIGHTS_URL (+ GNET_WEIGHTS_SHA256) to a mirror, then press “Retry download”."
    )


def ensure_pretrained_weights(
    timeout: float | None = 0.0, url: str | None = None, retry: bool = False, stall_s: float | None = None
) -> WeightsStatus:
    """The cached weights file, or the state of its download (started here if none is running).

    Waits at most `timeout` seconds (0: returns at once with the progress, as the pages do;
    None: until the download ends, as the CLI does; a stalled one ends by itself). One download per
    process however many callers wait; its failure is remembered until `retry=True`.
    GNET_OFFLINE=1 skips the attempt.
    """
    return _ensure("GoogLeNet", hub_weights_path(), WEIGHTS_FILE, lambda: weights_source(url), timeout, retry, stall_s)


def _ensure(
    model: str,
    path: Path,
    file: str,
    source: Callable[[], tuple[str, downloads.Check]],
    timeout: float | None,
    retry: bool,
    stall_s: float | None,
) -> WeightsStatus:
    """ensure_pretrained_weights for one model's file (its URL and check from `source`)."""
    if path.is_file():
        return WeightsStatus(True, path, "")
    if offline():
        log.info("pretrained weights not at %s; GNET_OFFLINE is set", path)
        return WeightsStatus(
            False,
            path,
            f"could not get the pretrained {model} weights ({file}): downloads are switched off (GNET_OFFLINE is set)",
            "off",
        )
    try:
        src, check = source()
    except CheckpointError as e:
        return WeightsStatus(False, path, f"could not get the pretrained {model} weights: {e}", "failed")
    job = downloads.fetch(src, path, check, retry=retry, stall_s=stall_s)
    if timeout is None or timeout > 0:
        job.wait(timeout)
    p = job.progress()
    if p.state == "done" and path.is_file():
        return WeightsStatus(True, path, "")
    if p.state == "running":
        return WeightsStatus(False, path, f"downloading the pretrained weights ({file})", "downloading", p)
    return WeightsStatus(
        False,
        path,
        f"could not get the pretrained {model} weights ({file}): "
        f"{p.message or 'the download finished but the file is missing'}",
        "failed",
        p,
    )


def cancel_weights_download(url: str | None = None) -> None:
    """Stop the running download of the weights (a retry starts a new one)."""
    try:
        src, _ = weights_source(url)
    except CheckpointError:
        return
    job = downloads.find(src, hub_weights_path())
    if job is not None:
        job.cancel()


# ---------------------------------------------------------------------------
# Loading


def load_model(source: ModelSource, device: torch.device | None = None) -> Net:
    """Build the network for a source, in eval mode without gradients on `device` (CPU by default), as the
    Net every view reads; its content key is computed here, once.

    Raises CheckpointError for a file that is missing, not loadable with
    weights_only=True, or does not fit the network.
    """
    device = device or torch.device("cpu")
    if source.model not in MODELS:
        raise CheckpointError(f"unknown model {source.model!r}; choose one of {', '.join(MODELS)}")
    if source.model == "inception-v3":
        lm = _load_v3(source)
    elif source.kind == "pretrained":
        lm = _load_pretrained(source)
    elif source.kind == "weights":
        lm = _load_weights_file(source)
    elif source.kind == "checkpoint":
        lm = _load_project_checkpoint(source)
    elif source.kind == "untrained":
        lm = _load_untrained(source)
    else:
        raise CheckpointError(f"unknown model source {source.kind!r}; choose one of {', '.join(SOURCES)}")
    net = Net.of(
        lm.module.to(device),
        lm.preprocess,
        label=lm.label,
        trained=lm.trained,
        classes=lm.classes,
        note=lm.note,
        source=source,
    )
    net.content  # noqa: B018 (hash the weights now, at load time, not on a page's first request)
    return net


def _load_pretrained(source: ModelSource) -> _Loaded:
    state = _cached_state(
        WEIGHTS,
        hub_weights_path(),
        SYMBOLIC_WEIGHTS_PATH,
        "pretrained weights",
        f"the pretrained weights are not in the cache ({SYMBOLIC_WEIGHTS_PATH}). {how_to_get_weights()}",
    )
    model = _torchvision_model(state, "the cached pretrained weights")
    return _Loaded(
        module=model,
        label="torchvision GoogLeNet, ImageNet weights (IMAGENET1K_V1)",
        trained=True,
        classes=imagenet_categories(),
        preprocess=imagenet_preprocess(),
        note=TRANSFORM_NOTE,
    )


def _load_weights_file(source: ModelSource) -> _Loaded:
    path = Path(source.path).expanduser()
    if not source.path.strip() or not path.is_file():
        log.warning("no weights file at %r", source.path)
        raise CheckpointError(f"no weights file at the path given ({path.name!r} not found)")
    raw = torch_load_safely(path)
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        return _load_project_checkpoint(ModelSource("checkpoint", source.path))
    state = _tensor_state(raw, "torchvision GoogLeNet weights such as googlenet-1378be20.pth")
    model = _torchvision_model(state, f"the weights in {path.name}")
    return _Loaded(
        module=model,
        label=f"torchvision GoogLeNet, weights file {path.name}",
        trained=True,
        classes=_classes(model.fc.out_features),
        preprocess=imagenet_preprocess(),
        note=TRANSFORM_NOTE,
    )


def _cached_state(
    weights: WeightsEnum, path: Path, shown_path: str, what: str, missing: str
) -> dict[str, torch.Tensor]:
    """The state dict of torchvision's cached weights file at `path` (`shown_path` is what the user is told):
    CheckpointError with `missing` where there is none, and with how to fix it where it is unreadable."""
    if not path.is_file():
        log.warning("%s not found at %s", what, path)
        raise CheckpointError(missing)
    try:  # torchvision's weights API, as googlenet/inception_v3(weights=...) call it, but with weights_only=True
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as e:
        log.warning("unreadable pretrained weights at %s: %s", path, e)
        raise CheckpointError(
            describe_load_failure(path, e) + f" Delete `{shown_path}` on the server "
            "(its real path is in the server log) and download it again."
        ) from None


def _tensor_state(raw: object, expected: str) -> dict[str, torch.Tensor]:
    """A weights file's state dict: the file itself or its "state_dict" entry, a non-empty dict of tensors."""
    state = raw
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        state = raw["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"this file holds no state_dict (a dict of tensors); expected {expected}")
    return state


def _classes(n: int) -> list[str]:
    """ImageNet's category names for a 1000-way head, numbered classes for any other."""
    return imagenet_categories() if n == 1000 else [f"class {i}" for i in range(n)]


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], misfit: str) -> None:
    """load_state_dict, its RuntimeError cut to the first lines after `misfit` as a CheckpointError."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = " ".join(lines[1:3])[:300] if len(lines) > 1 else lines[0][:300]
        raise CheckpointError(f"{misfit}: {detail}") from None


def _torchvision_model(state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """What torchvision's googlenet(weights=...) builds: transform_input on, aux heads dropped."""
    fc = state.get("fc.weight")
    if not isinstance(fc, torch.Tensor) or fc.ndim != 2:
        raise CheckpointError(f"{what} are not GoogLeNet weights (no fc.weight)")
    aux = any(k.startswith(("aux1.", "aux2.")) for k in state)
    model = tv_googlenet(
        weights=None, aux_logits=aux, transform_input=True, init_weights=False, num_classes=fc.shape[0]
    )
    _load_state(model, state, f"{what} do not fit torchvision's GoogLeNet")
    if aux:  # the pretrained aux heads are not trained (torchvision drops them too)
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    return model


# ---------------------------------------------------------------------------
# Inception v3: torchvision's IMAGENET1K_V1 through the same weights API, cache and checks as GoogLeNet's

V3_WEIGHTS = Inception_V3_Weights.IMAGENET1K_V1
V3_WEIGHTS_FILE = "inception_v3_google-0cc3c7bd.pth"  # torchvision's file name; "0cc3c7bd": its SHA-256 prefix
V3_HASH_PREFIX = "0cc3c7bd"
V3_SOURCES = ("pretrained", "weights", "untrained")
V3_TRANSFORM_NOTE = (
    "torchvision's Inception v3 weights were ported from TensorFlow: the model first maps the "
    "ImageNet-normalised input back to (x − 0.5) / 0.5 per channel (transform_input=True)"
)


def v3_hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / V3_WEIGHTS_FILE


def v3_preprocess() -> Preprocess:
    t = V3_WEIGHTS.transforms()  # the weights' own recipe: resize 342, centre crop 299, ImageNet mean/std
    return Preprocess(t.resize_size[0], (t.crop_size[0], t.crop_size[0]), tuple(t.mean), tuple(t.std), 3)


def v3_weights_source(url: str | None = None) -> tuple[str, downloads.Check]:
    """GNET_V3_WEIGHTS_URL / GNET_V3_WEIGHTS_SHA256: a mirror for Inception v3's file, as GNET_WEIGHTS_URL /
    GNET_WEIGHTS_SHA256 are for GoogLeNet's."""
    url = url or os.environ.get("GNET_V3_WEIGHTS_URL", "").strip() or V3_WEIGHTS.url
    sha = os.environ.get("GNET_V3_WEIGHTS_SHA256", "").strip().lower()
    if sha and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise CheckpointError("GNET_V3_WEIGHTS_SHA256 must be the file's SHA-256 as 64 hexadecimal digits")
    return url, downloads.Check(sha256=sha or V3_HASH_PREFIX, what=f"the pretrained weights ({V3_WEIGHTS_FILE})")


def ensure_v3_weights(
    timeout: float | None = 0.0, url: str | None = None, retry: bool = False, stall_s: float | None = None
) -> WeightsStatus:
    """ensure_pretrained_weights for Inception v3's file."""
    return _ensure(
        "Inception v3", v3_hub_weights_path(), V3_WEIGHTS_FILE, lambda: v3_weights_source(url), timeout, retry, stall_s
    )


def _load_v3(source: ModelSource) -> _Loaded:
    if source.kind == "pretrained":
        state = _cached_state(
            V3_WEIGHTS,
            v3_hub_weights_path(),
            f"$TORCH_HOME/hub/checkpoints/{V3_WEIGHTS_FILE}",
            "pretrained Inception v3 weights",
            f"the pretrained Inception v3 weights are not in the cache ($TORCH_HOME/hub/checkpoints/"
            f"{V3_WEIGHTS_FILE}); put torchvision's file there (from {V3_WEIGHTS.url}) or set "
            "GNET_V3_WEIGHTS_URL (+ GNET_V3_WEIGHTS_SHA256) to a mirror",
        )
        model = _torchvision_v3(state, "the cached pretrained Inception v3 weights")
        label = "torchvision Inception v3, ImageNet weights (IMAGENET1K_V1)"
        return _Loaded(model, label, True, imagenet_categories(), v3_preprocess(), V3_TRANSFORM_NOTE)
    if source.kind == "weights":
        path = Path(source.path).expanduser()
        if not source.path.strip() or not path.is_file():
            raise CheckpointError(f"no weights file at the path given ({path.name!r} not found)")
        state = _tensor_state(torch_load_safely(path), f"torchvision Inception v3 weights such as {V3_WEIGHTS_FILE}")
        model = _torchvision_v3(state, f"the weights in {path.name}")
        label = f"torchvision Inception v3, weights file {path.name}"
        return _Loaded(model, label, True, _classes(model.fc.out_features), v3_preprocess(), V3_TRANSFORM_NOTE)
    if source.kind == "untrained":
        from gnet.v3 import inception_v3_imagenet
        from gnet.v3_modules import build_v3

        torch.manual_seed(0)
        model = build_v3(inception_v3_imagenet())
        label = "Inception v3, random weights (seed 0): the numbers mean nothing"
        return _Loaded(model, label, False, imagenet_categories(), v3_preprocess(), V3_TRANSFORM_NOTE)
    raise CheckpointError(f"Inception v3 has no {source.kind!r} source; choose one of {', '.join(V3_SOURCES)}")


def _torchvision_v3(state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """What torchvision's inception_v3(weights=...) builds: transform_input on, the aux head kept (v3's is trained)."""
    fc = state.get("fc.weight")
    if not isinstance(fc, torch.Tensor) or fc.ndim != 2:
        raise CheckpointError(f"{what} are not Inception v3 weights (no fc.weight)")
    aux = any(k.startswith("AuxLogits.") for k in state)
    model = tv_inception_v3(
        weights=None, aux_logits=aux, transform_input=True, init_weights=False, num_classes=fc.shape[0]
    )
    _load_state(model, state, f"{what} do not fit torchvision's Inception v3")
    return model


def _load_project_checkpoint(source: ModelSource) -> _Loaded:
    path = Path(source.path).expanduser()
    ckpt = load_checkpoint(path)  # CheckpointError for anything that isn't one
    model = ckpt.build_model()
    pre = checkpoint_preprocess(ckpt.preprocess, ckpt.spec.in_channels)
    epoch = ckpt.extra.get("epoch")
    run = path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name
    label = f"checkpoint {run}/{path.name} ({ckpt.spec.name}" + (f", epoch {epoch})" if isinstance(epoch, int) else ")")
    return _Loaded(module=model, label=label, trained=True, classes=list(ckpt.classes), preprocess=pre)


def checkpoint_preprocess(d: dict, in_channels: int) -> Preprocess:
    """A checkpoint's preprocessing dict → Preprocess (CheckpointError if malformed)."""
    try:
        h, w = (int(v) for v in d["image_size"])
        mean = tuple(float(v) for v in d["mean"])
        std = tuple(float(v) for v in d["std"])
        c = int(d.get("in_channels", in_channels))
        resize = int(d.get("resize", max(h, w)))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(
            "the checkpoint's preprocessing settings are malformed (need image_size [H, W], mean and std)"
        ) from None
    if not (1 <= h <= 4096 and 1 <= w <= 4096 and min(h, w) <= resize <= 8192):
        raise CheckpointError(f"the checkpoint's image size {h}×{w} is out of range")
    if c not in (1, 3) or c != in_channels or len(mean) != c or len(std) != c or min(std) <= 0:
        raise CheckpointError(f"the checkpoint's preprocessing does not fit a {in_channels}-channel network")
    return Preprocess(resize, (h, w), mean, std, c, stretch=d.get("resize_mode") == "stretch")


def _load_untrained(source: ModelSource) -> _Loaded:
    from gnet.network import build
    from gnet.spec import googlenet_imagenet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same "untrained" network in every process and test
        model = build(googlenet_imagenet())
    return _Loaded(
        module=model,
        label="UNTRAINED GoogLeNet (random weights, seed 0): its predictions mean nothing",
        trained=False,
        classes=imagenet_categories(),
        preprocess=imagenet_preprocess(),
    )


# ---------------------------------------------------------------------------
# Checkpoints written by training runs


NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits, in bytes: a longer name is refused by every call on it


def _checked_path_text(text: str) -> str:
    """A typed path the file system can be asked about at all (CheckpointError naming why not)."""
    if "\x00" in text:
        raise CheckpointError("the path contains a NUL character, which no file name can hold")
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        raise CheckpointError("the path holds characters that cannot be a file name on this server") from None
    if len(raw) >= PATH_MAX:
        raise CheckpointError(f"the path is longer than the {PATH_MAX:,}-byte limit of a path")
    if any(len(part) > NAME_MAX for part in raw.split(b"/")):
        raise CheckpointError(f"a folder or file name in the path is longer than the {NAME_MAX}-byte limit")
    return text


def user_file(text: str) -> Path:
    """A file path typed or chosen in the app, confined to the folders the app may read:
    the torch hub cache, GNET_DATA_DIR and GNET_RUNS_DIR (symlinks and '..' resolved
    first), or exactly the operator's GNET_WEIGHTS file. CheckpointError otherwise."""
    from gnet.data import data_root

    path = Path(_checked_path_text(text.strip())).expanduser()
    resolved = path.resolve()
    env = os.environ.get("GNET_WEIGHTS", "").strip()
    if env and resolved == Path(env).expanduser().resolve():
        return path
    roots = [hub_weights_path().parent, data_root(), runs_root()]
    if not any(resolved.is_relative_to(r.resolve()) for r in roots):
        raise CheckpointError(
            "for safety the app only reads weights from the torch hub cache, the data folder (GNET_DATA_DIR) "
            "or the runs folder (GNET_RUNS_DIR); copy the file there, or set GNET_WEIGHTS to its path"
        )
    return path


def find_checkpoints(root: Path | None = None, limit: int = 200) -> list[Path]:
    """`<runs>/*/checkpoints/*.pt`, and `<runs>/<sweep>/*/checkpoints/*.pt` of sweeps' runs, newest first;
    none reached through a symbolic link (a run folder, its checkpoints/ or the file: gnet.fsio.confined)."""
    root = runs_root() if root is None else root

    def ok(p: Path) -> bool:
        return fsio.is_confined(root, p) and fsio.is_plain_file(p)

    try:
        found = [p for p in root.glob("*/checkpoints/*.pt") if ok(p)]
        found += [
            p for p in root.glob("*/*/checkpoints/*.pt") if ok(p) and fsio.is_plain_file(p.parents[2] / SWEEP_FILE)
        ]
    except OSError:
        return []
    found.sort(key=lambda p: (-_mtime(p), str(p)))
    return found[:limit]


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def checkpoint_family(path: Path) -> str | None:
    """The network family ("googlenet", "inception-v3") a project checkpoint's own spec names; None for a file
    that is not readable as one. Cheap: memory-mapped (the tensors are not read), once per file version."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _checkpoint_family(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=512)
def _checkpoint_family(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        sniff_torch_file(Path(path))
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip torch file, or not loadable safely: not listed (loading it would say why)
        return None
    spec = raw.get("spec") if isinstance(raw, dict) else None
    if not isinstance(spec, dict):
        return None
    return "inception-v3" if spec.get("family") == "inception-v3" else "googlenet"


def find_v3_checkpoints(root: Path | None = None, limit: int = 200) -> list[Path]:
    """find_checkpoints' files whose network is an Inception v3 (an InceptionV3Spec), newest first."""
    return [p for p in find_checkpoints(root, limit) if checkpoint_family(p) == "inception-v3"]
