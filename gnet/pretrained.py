"""The networks the Feature Maps page runs, and where their weights come from.

Four sources, one `LoadedModel`:
- "pretrained": torchvision's GoogLeNet with IMAGENET1K_V1 weights, read through
  torchvision's weights API from the torch hub cache
  ($TORCH_HOME/hub/checkpoints/googlenet-1378be20.pth). A missing file is
  downloaded with a bounded wait; a failure is remembered for the process so
  reruns don't retry (`ensure_pretrained_weights(retry=True)` tries again).
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

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import GoogLeNet_Weights
from torchvision.models import googlenet as tv_googlenet

from gnet.checkpoints import FORMAT as CHECKPOINT_FORMAT
from gnet.checkpoints import CheckpointError, describe_load_failure, load_checkpoint, torch_load_safely
from gnet.runs import SWEEP_FILE, runs_root
from gnet.images import Preprocess

WEIGHTS = GoogLeNet_Weights.IMAGENET1K_V1
WEIGHTS_FILE = "googlenet-1378be20.pth"  # torchvision's file name; "1378be20" is its SHA-256 prefix
HASH_PREFIX = "1378be20"
DOWNLOAD_TIMEOUT_S = 5.0
SOURCES = ("pretrained", "checkpoint", "weights", "untrained")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # one of SOURCES
    path: str = ""  # the file for "weights" and "checkpoint"


@dataclass
class LoadedModel:
    """A network ready for inference. Shared by all sessions: never mutate it."""

    model: nn.Module  # eval mode, on `device`
    source: ModelSource
    label: str  # what the UI says this model is
    trained: bool
    classes: list[str]
    preprocess: Preprocess
    device: torch.device
    note: str = ""  # e.g. how torchvision's weights expect their input


def imagenet_categories() -> list[str]:
    """ImageNet class names from the weights' metadata (no download needed)."""
    return list(WEIGHTS.meta["categories"])


def imagenet_preprocess() -> Preprocess:
    t = WEIGHTS.transforms()  # torchvision's recipe for these weights: resize 256, crop 224, ImageNet mean/std
    return Preprocess(t.resize_size[0], (t.crop_size[0], t.crop_size[0]), tuple(t.mean), tuple(t.std), 3)


TRANSFORM_NOTE = ("torchvision's GoogLeNet weights were ported from TensorFlow: the model first maps the "
                  "ImageNet-normalised input back to (x − 0.5) / 0.5 per channel (transform_input=True)")


# ---------------------------------------------------------------------------
# The pretrained weights: cache, bounded download, remembered failure


def hub_weights_path() -> Path:
    """Where torchvision's weights API looks (torch.hub.get_dir() reads TORCH_HOME at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


@dataclass(frozen=True)
class WeightsStatus:
    ok: bool
    path: Path
    message: str  # on failure: what could not be fetched and why


_failures: dict[str, str] = {}  # hub path → failure message, remembered for this process
_failures_lock = threading.Lock()
_download_lock = threading.Lock()  # one download at a time per process


def how_to_get_weights() -> str:
    return (f"To use the pretrained weights, put torchvision's file `{WEIGHTS_FILE}` "
            f"(from {WEIGHTS.url}) into `$TORCH_HOME/hub/checkpoints/` (here: `{hub_weights_path().parent}`), "
            "or set GNET_WEIGHTS to the file's path, then press “Retry download”.")


def ensure_pretrained_weights(timeout: float = DOWNLOAD_TIMEOUT_S, url: str | None = None,
                              retry: bool = False) -> WeightsStatus:
    """The cached weights file, downloading it if needed within `timeout` seconds.

    Never blocks longer than `timeout` (the download runs in a daemon thread; if it
    finishes later the file simply appears in the cache). Offline, it fails fast and
    the failure is remembered until `retry=True`. GNET_OFFLINE=1 skips the attempt.
    """
    path = hub_weights_path()
    if path.is_file():
        return WeightsStatus(True, path, "")
    key = str(path)
    with _failures_lock:
        if retry:
            _failures.pop(key, None)
        elif key in _failures:
            return WeightsStatus(False, path, _failures[key])
    if os.environ.get("GNET_OFFLINE", "") not in ("", "0"):
        msg = "downloads are switched off (GNET_OFFLINE is set)"
    else:
        msg = _download(url or WEIGHTS.url, path, timeout)
        if not msg:
            return WeightsStatus(True, path, "")
    msg = f"could not get the pretrained GoogLeNet weights ({WEIGHTS_FILE}): {msg}"
    with _failures_lock:
        _failures[key] = msg
    return WeightsStatus(False, path, msg)


def _download(url: str, path: Path, timeout: float) -> str:
    """'' on success, else why it failed."""
    if not _download_lock.acquire(timeout=timeout):
        return "another download is still running; try again in a moment"
    try:
        error: list[BaseException] = []

        def fetch() -> None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Writes a temp file and moves it into place only after the hash matched.
                torch.hub.download_url_to_file(url, str(path), hash_prefix=HASH_PREFIX, progress=False)
            except BaseException as e:  # noqa: BLE001 - reported to the caller as text
                error.append(e)

        t = threading.Thread(target=fetch, name="gnet-weights-download", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            return (f"the download did not finish within {timeout:g} s (offline, or a slow connection: "
                    "if it is still running the file will appear in the cache; press Retry download later)")
        if error:
            e = error[0]
            return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else 'download failed'}"
        return "" if path.is_file() else "the download finished but the file is missing"
    finally:
        _download_lock.release()


# ---------------------------------------------------------------------------
# Loading


def load_model(source: ModelSource, device: torch.device | None = None) -> LoadedModel:
    """Build the network for a source, in eval mode on `device` (CPU by default).

    Raises CheckpointError for a file that is missing, not loadable with
    weights_only=True, or does not fit the network.
    """
    device = device or torch.device("cpu")
    if source.kind == "pretrained":
        lm = _load_pretrained(source)
    elif source.kind == "weights":
        lm = _load_weights_file(source)
    elif source.kind == "checkpoint":
        lm = _load_project_checkpoint(source)
    elif source.kind == "untrained":
        lm = _load_untrained(source)
    else:
        raise CheckpointError(f"unknown model source {source.kind!r}; choose one of {', '.join(SOURCES)}")
    lm.model.eval().to(device)
    lm.model.requires_grad_(False)
    lm.device = device
    return lm


def _load_pretrained(source: ModelSource) -> LoadedModel:
    path = hub_weights_path()
    if not path.is_file():
        raise CheckpointError(f"the pretrained weights are not in the cache ({path}). {how_to_get_weights()}")
    try:
        # torchvision's weights API, as googlenet(weights=...) calls it, but with weights_only=True.
        state = WEIGHTS.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure reading the cache file is "corrupt file"
        raise CheckpointError(describe_load_failure(path, e) + f" Delete {path} and download it again.") from None
    model = _torchvision_model(state, "the cached pretrained weights")
    return LoadedModel(model, source, "torchvision GoogLeNet, ImageNet weights (IMAGENET1K_V1)", True,
                       imagenet_categories(), imagenet_preprocess(), torch.device("cpu"), TRANSFORM_NOTE)


def _load_weights_file(source: ModelSource) -> LoadedModel:
    path = Path(source.path).expanduser()
    if not source.path.strip() or not path.is_file():
        raise CheckpointError(f"no weights file at {source.path!r}")
    raw = torch_load_safely(path)
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        return _load_project_checkpoint(ModelSource("checkpoint", source.path))
    state = raw
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        state = raw["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("this file holds no state_dict (a dict of tensors); "
                              "expected torchvision GoogLeNet weights such as googlenet-1378be20.pth")
    model = _torchvision_model(state, f"the weights in {path.name}")
    n = model.fc.out_features
    classes = imagenet_categories() if n == 1000 else [f"class {i}" for i in range(n)]
    return LoadedModel(model, source, f"torchvision GoogLeNet, weights file {path.name}", True,
                       classes, imagenet_preprocess(), torch.device("cpu"), TRANSFORM_NOTE)


def _torchvision_model(state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """What torchvision's googlenet(weights=...) builds: transform_input on, aux heads dropped."""
    fc = state.get("fc.weight")
    if not isinstance(fc, torch.Tensor) or fc.ndim != 2:
        raise CheckpointError(f"{what} are not GoogLeNet weights (no fc.weight)")
    aux = any(k.startswith(("aux1.", "aux2.")) for k in state)
    model = tv_googlenet(weights=None, aux_logits=aux, transform_input=True, init_weights=False,
                         num_classes=fc.shape[0])
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        detail = " ".join(lines[1:3])[:300] if len(lines) > 1 else lines[0][:300]
        raise CheckpointError(f"{what} do not fit torchvision's GoogLeNet: {detail}") from None
    if aux:  # the pretrained aux heads are not trained (torchvision drops them too)
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    return model


def _load_project_checkpoint(source: ModelSource) -> LoadedModel:
    path = Path(source.path).expanduser()
    ckpt = load_checkpoint(path)  # CheckpointError for anything that isn't one
    model = ckpt.build_model()
    pre = checkpoint_preprocess(ckpt.preprocess, ckpt.spec.in_channels)
    epoch = ckpt.extra.get("epoch")
    run = path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name
    label = f"checkpoint {run}/{path.name} ({ckpt.spec.name}" + (f", epoch {epoch})" if isinstance(epoch, int) else ")")
    return LoadedModel(model, source, label, True, list(ckpt.classes), pre, torch.device("cpu"))


def checkpoint_preprocess(d: dict, in_channels: int) -> Preprocess:
    """A checkpoint's preprocessing dict → Preprocess (CheckpointError if malformed)."""
    try:
        h, w = (int(v) for v in d["image_size"])
        mean = tuple(float(v) for v in d["mean"])
        std = tuple(float(v) for v in d["std"])
        c = int(d.get("in_channels", in_channels))
        resize = int(d.get("resize", max(h, w)))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError("the checkpoint's preprocessing settings are malformed "
                              "(need image_size [H, W], mean and std)") from None
    if not (1 <= h <= 4096 and 1 <= w <= 4096 and min(h, w) <= resize <= 8192):
        raise CheckpointError(f"the checkpoint's image size {h}×{w} is out of range")
    if c not in (1, 3) or c != in_channels or len(mean) != c or len(std) != c or min(std) <= 0:
        raise CheckpointError(f"the checkpoint's preprocessing does not fit a {in_channels}-channel network")
    return Preprocess(resize, (h, w), mean, std, c, stretch=d.get("resize_mode") == "stretch")


def _load_untrained(source: ModelSource) -> LoadedModel:
    from gnet.network import build
    from gnet.spec import googlenet_imagenet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same "untrained" network in every process and test
        model = build(googlenet_imagenet())
    return LoadedModel(model, source, "UNTRAINED GoogLeNet (random weights, seed 0): its predictions mean nothing",
                       False, imagenet_categories(), imagenet_preprocess(), torch.device("cpu"))


# ---------------------------------------------------------------------------
# Checkpoints written by training runs


def user_file(text: str) -> Path:
    """A file path typed or chosen in the app, confined to the folders the app may read:
    the torch hub cache, GNET_DATA_DIR and GNET_RUNS_DIR (symlinks and '..' resolved
    first), or exactly the operator's GNET_WEIGHTS file. CheckpointError otherwise."""
    from gnet.data import data_root

    path = Path(text.strip()).expanduser()
    resolved = path.resolve()
    env = os.environ.get("GNET_WEIGHTS", "").strip()
    if env and resolved == Path(env).expanduser().resolve():
        return path
    roots = [hub_weights_path().parent, data_root(), runs_root()]
    if not any(resolved.is_relative_to(r.resolve()) for r in roots):
        raise CheckpointError(
            "for safety the app only reads weights from the torch hub cache, the data folder (GNET_DATA_DIR) "
            "or the runs folder (GNET_RUNS_DIR); copy the file there, or set GNET_WEIGHTS to its path")
    return path


def find_checkpoints(root: Path | None = None, limit: int = 200) -> list[Path]:
    """`<runs>/*/checkpoints/*.pt`, and `<runs>/<sweep>/*/checkpoints/*.pt` of sweeps' runs, newest first."""
    root = runs_root() if root is None else root
    try:
        found = [p for p in root.glob("*/checkpoints/*.pt") if p.is_file()]
        found += [p for p in root.glob("*/*/checkpoints/*.pt") if p.is_file() and (p.parents[2] / SWEEP_FILE).is_file()]
    except OSError:
        return []
    found.sort(key=lambda p: (-_mtime(p), str(p)))
    return found[:limit]


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0

