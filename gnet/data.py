"""Datasets for training, all returned the same way: whole splits as uint8 tensors.

Every dataset becomes a `Dataset` holding (N, C, H, W) uint8 images and int64
labels on the CPU; the trainer moves them to the training device once and
resizes/normalises whole batches there (no per-sample PIL work per step).

- "synthetic": generated locally and deterministically (the default, works offline):
  ten classes of shapes and textures at random scales, so multi-scale branches matter.
- "fashion-mnist", "mnist", "cifar10": torchvision's dataset classes (downloaded on first
  use into the data directory through gnet.downloads, from GNET_DATASET_MIRROR when set;
  offline, the error names the folder to put the files in).
- "folder:NAME": an ImageFolder at <data dir>/NAME (class sub-folders, optionally
  under train/ and test/); unreadable files are skipped and counted.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gnet import downloads

if TYPE_CHECKING:
    import torch

# torch and torchvision are imported by the functions that need them: the dataset list above them is read
# by the option table and the CLI's parser, which `python -m gnet block` and `summary` build without torch.


@dataclass(frozen=True)
class NamedDataset:
    """What the forms, the option table and the preflight know of a named dataset without loading it."""

    title: str  # for people: messages and the page's download offer
    channels: int
    classes: int
    flip_ok: bool  # is a horizontal flip label-preserving (augmentation)?
    torchvision: str = ""  # torchvision's class name; "" = made here
    folder: str = ""  # the folder that class creates under the data dir
    download_mb: int = 0  # the archives' sizes, for the page's offer


# The dataset list, defined once: the option table, the CLI help, the forms and the loader read it.
NAMED_DATASETS: dict[str, NamedDataset] = {
    "synthetic": NamedDataset("synthetic shapes", channels=3, classes=10, flip_ok=False),
    "fashion-mnist": NamedDataset("Fashion-MNIST", 1, 10, True, "FashionMNIST", "FashionMNIST", download_mb=30),
    "mnist": NamedDataset("MNIST", 1, 10, False, "MNIST", "MNIST", download_mb=11),
    "cifar10": NamedDataset("CIFAR-10", 3, 10, True, "CIFAR10", "cifar-10-batches-py", download_mb=163),
}
TORCHVISION_DATASETS = {n: d for n, d in NAMED_DATASETS.items() if d.torchvision}
FOLDER = "folder:"  # folder:NAME, an ImageFolder in the data dir (decoded as RGB)
DATASET_CHOICES = f"{', '.join(NAMED_DATASETS)} or {FOLDER}NAME"
SYNTHETIC_CLASSES = [
    "disc",
    "ring",
    "square",
    "frame",
    "triangle",
    "cross",
    "h-stripes",
    "v-stripes",
    "checkers",
    "dots",
]
MAX_FOLDER_IMAGES = 200_000
MAX_FOLDER_CLASSES = 1000
MAX_IMAGE_PIXELS = 50_000_000  # a decoded image larger than this is skipped (decompression bombs)
log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset cannot be loaded; the message says why and what to do."""


@dataclass
class Dataset:
    name: str
    classes: list[str]
    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    flip_ok: bool = False  # is a horizontal flip label-preserving (augmentation)?
    notes: list[str] = field(default_factory=list)  # e.g. "skipped 3 unreadable files"

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def stored_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        import torch

        x = self.train_x[:10_000].to(torch.float64) / 255.0
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.test_x, self.test_y))


def data_root() -> Path:
    return Path(os.environ.get("GNET_DATA_DIR", "data"))


def is_dataset_name(name: object) -> bool:
    """A named dataset or folder:NAME (whether that folder exists is checked when it is read)."""
    return isinstance(name, str) and (name in NAMED_DATASETS or name.startswith(FOLDER))


def dataset_choices(root: Path | None = None) -> list[str]:
    """What a form offers: the named datasets, then folder:NAME for each image folder in the data dir."""
    return [*NAMED_DATASETS, *(f"{FOLDER}{n}" for n in list_image_folders(root))]


def dataset_shape(name: str, data_dir: str | os.PathLike | None = None) -> tuple[int, int]:
    """(image channels, classes) of a dataset without loading its images: the catalogue's for a named one,
    3 (decoded as RGB) and its class sub-folders for an image folder."""
    if name in NAMED_DATASETS:
        return NAMED_DATASETS[name].channels, NAMED_DATASETS[name].classes
    if not name.startswith(FOLDER):
        raise DataError(f"unknown dataset {name!r}; choose {DATASET_CHOICES}")
    folder = name.removeprefix(FOLDER)
    base = _folder_base(Path(data_dir) if data_dir is not None else data_root(), folder)
    return 3, len(_folder_classes(base, folder)[1])


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: int = 32,
    synthetic_train: int = 10_000,
    synthetic_test: int = 2_000,
    seed: int = 0,
    download: bool | None = None,
) -> Dataset:
    """Load a dataset by name. image_size only matters where the images are made or
    decoded here (synthetic, folder); torchvision sets keep their native size and the
    trainer resizes batches on the device. download=None: allowed unless GNET_NO_DOWNLOAD=1 or GNET_OFFLINE=1."""
    root = Path(data_dir) if data_dir is not None else data_root()
    if name == "synthetic":
        return synthetic(synthetic_train, synthetic_test, image_size, seed)
    if name in TORCHVISION_DATASETS:
        if download is None:
            download = downloads_allowed()
        return _torchvision(name, root, download)
    if name.startswith(FOLDER):
        return image_folder(root, name.removeprefix(FOLDER), image_size)
    raise DataError(f"unknown dataset {name!r}; choose {DATASET_CHOICES}")


# ---------------------------------------------------------------------------
# Synthetic shapes and textures


def synthetic(n_train: int, n_test: int, size: int = 32, seed: int = 0) -> Dataset:
    """Ten classes, balanced, identical for identical arguments on every machine.

    Shapes (disc, ring, square, frame, triangle, cross) appear at 15–45 % of the
    image at a random place; textures (stripes, checkers, dots) have periods from
    2 to 8 pixels (times size/32). Colours, positions and noise are random, so
    the class is carried by form and scale, not by colour.
    """
    if not (10 <= n_train <= 200_000 and 10 <= n_test <= 50_000):
        raise DataError("synthetic dataset size must be 10 to 200,000 training and 10 to 50,000 test images")
    if not 8 <= size <= 256:
        raise DataError(f"synthetic image size must be 8 to 256 pixels, got {size}")
    x_tr, y_tr = _synthetic_split(n_train, size, seed * 2 + 1)
    x_te, y_te = _synthetic_split(n_test, size, seed * 2 + 2)
    flip_ok = NAMED_DATASETS["synthetic"].flip_ok  # the shapes are symmetric, but keep the seed's recipe
    return Dataset("synthetic", list(SYNTHETIC_CLASSES), x_tr, y_tr, x_te, y_te, flip_ok=flip_ok)


def _synthetic_split(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=g)]

    def u(lo: float, hi: float) -> torch.Tensor:  # one uniform number per image, shaped to broadcast over H, W
        return (lo + (hi - lo) * torch.rand(n, generator=g)).view(n, 1, 1)

    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32) + 0.5, torch.arange(size, dtype=torch.float32) + 0.5, indexing="ij"
    )
    r = u(0.08, 0.23) * size  # half-width in pixels: shapes span 15–45 % of the image
    cy, cx = u(0.3, 0.7) * size, u(0.3, 0.7) * size
    dy, dx = ys - cy, xs - cx
    dist = (dy**2 + dx**2).sqrt()
    period = u(2.0, 8.0) * size / 32
    phase = u(0.0, 1.0) * period
    thick = (r * 0.3).clamp_min(1.0)

    def mask_of(c: int, i: torch.Tensor) -> torch.Tensor:  # class c's pattern for the images i
        y, x, ry, rx, rr, t, p = ys, xs, dy[i], dx[i], r[i], thick[i], period[i]
        ay, ax, d = ry.abs(), rx.abs(), dist[i]
        sy, sx = torch.remainder(y + phase[i], p), torch.remainder(x + phase[i], p)
        return [
            lambda: d <= rr,  # disc
            lambda: (d <= rr) & (d >= rr - t),  # ring
            lambda: (ay <= rr) & (ax <= rr),  # square
            lambda: (ay <= rr) & (ax <= rr) & ((ay >= rr - t) | (ax >= rr - t)),  # frame
            lambda: (ry <= rr) & (ry >= -rr) & (ax <= (ry + rr) / 2),  # triangle, apex up
            lambda: ((ay <= t / 2) & (ax <= rr)) | ((ax <= t / 2) & (ay <= rr)),  # cross
            lambda: (sy < p / 2).expand_as(d),  # horizontal stripes
            lambda: (sx < p / 2).expand_as(d),  # vertical stripes
            lambda: (sy < p / 2) ^ (sx < p / 2),  # checkers
            lambda: ((sy - p / 2) ** 2 + (sx - p / 2) ** 2) <= (p / 4) ** 2,  # dots
        ][c]()

    mask = torch.zeros(n, size, size)
    for c in range(10):  # one pattern per class, computed only for that class's images
        i = (labels == c).nonzero().flatten()
        mask[i] = mask_of(c, i).float()
    mask = mask.unsqueeze(1)  # (N, 1, H, W)
    fg = torch.rand(n, 3, 1, 1, generator=g)
    bg = torch.rand(n, 3, 1, 1, generator=g)
    # Keep foreground and background apart in brightness so every image shows its pattern.
    sign = torch.where(fg.mean(1, keepdim=True) >= bg.mean(1, keepdim=True), 1.0, -1.0)
    fg = (bg + sign * 0.35 + (fg - bg) * 0.5).clamp(0, 1)
    img = mask * fg + (1 - mask) * bg + 0.06 * torch.randn(n, 3, size, size, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels.to(torch.int64)


# ---------------------------------------------------------------------------
# torchvision datasets


def downloads_allowed() -> bool:
    """GNET_NO_DOWNLOAD=1 or GNET_OFFLINE=1 switch every dataset download off."""
    return all(
        os.environ.get(v, "").strip().lower() in ("", "0", "false", "no") for v in ("GNET_NO_DOWNLOAD", "GNET_OFFLINE")
    )


def dataset_mirror() -> str:
    """GNET_DATASET_MIRROR as a base URL ending in '/' ('' when unset)."""
    base = os.environ.get("GNET_DATASET_MIRROR", "").strip()
    return base.rstrip("/") + "/" if base else ""


def _checksums() -> dict[str, str]:
    """GNET_DATASET_CHECKSUMS: a local file in `md5sum` format ('<md5>  <Class>/<file>' per line) giving
    the MD5s of a mirror that serves other files than the official ones (e.g. a classroom subset).
    It is the operator's file on the server, not the mirror's: the mirror cannot vouch for itself."""
    path = os.environ.get("GNET_DATASET_CHECKSUMS", "").strip()
    if not path:
        return {}
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        log.warning("cannot read GNET_DATASET_CHECKSUMS file %s: %s", path, e)
        raise DataError("the GNET_DATASET_CHECKSUMS file is unreadable (the server log says why)") from None
    sums = {}
    for line in lines:
        m = re.fullmatch(r"\s*([0-9a-fA-F]{32})\s+\*?(\S+)\s*", line)
        if m:
            sums[m.group(2)] = m.group(1).lower()
        elif line.strip() and not line.lstrip().startswith("#"):
            raise DataError("the GNET_DATASET_CHECKSUMS file must hold lines '<md5>  <Class>/<file>' (md5sum format)")
    return sums


def dataset_class(name: str) -> type:
    """torchvision's dataset class for `name`, with its download location replaced by
    GNET_DATASET_MIRROR (`<mirror>/<Class>/<official file name>`: MNIST's `mirrors`, CIFAR10's
    `url`) and its MD5s by GNET_DATASET_CHECKSUMS. A subclass of the same name, since torchvision
    names the dataset's folder after its class; torchvision's own class is never modified."""
    import torchvision.datasets as tvd

    cls_name = TORCHVISION_DATASETS[name].torchvision
    cls = getattr(tvd, cls_name)
    mirror, sums = dataset_mirror(), _checksums()
    if not mirror and not sums:
        return cls
    attrs: dict = {}
    if issubclass(cls, tvd.MNIST):
        if mirror:
            attrs["mirrors"] = [f"{mirror}{cls_name}/"]
        attrs["resources"] = [(f, sums.get(f"{cls_name}/{f}", md5)) for f, md5 in cls.resources]
    else:
        if mirror:
            attrs["url"] = f"{mirror}{cls_name}/{cls.filename}"
        if f"{cls_name}/{cls.filename}" in sums:
            # The unpacked batches come out of an archive whose MD5 was just checked; a subset's
            # batches have other MD5s than torchvision lists, so only their presence is checked.
            attrs["tgz_md5"] = sums[f"{cls_name}/{cls.filename}"]
            attrs["train_list"] = [[f, None] for f, _ in cls.train_list]
            attrs["test_list"] = [[f, None] for f, _ in cls.test_list]
            attrs["meta"] = {**cls.meta, "md5": None}
    return type(cls_name, (cls,), attrs)


@dataclass(frozen=True)
class RemoteFile:
    url: str
    dest: Path  # where torchvision's class looks for the downloaded archive
    md5: str


def _remote_files(name: str, root: Path) -> tuple[list[RemoteFile], list[Path]]:
    """The archives the class downloads, and the unpacked files it reads."""
    import torchvision.datasets as tvd

    cls = dataset_class(name)
    if issubclass(cls, tvd.MNIST):
        raw = root / cls.__name__ / "raw"
        files = [RemoteFile(f"{cls.mirrors[0]}{f}", raw / f, md5) for f, md5 in cls.resources]
        return files, [raw / f.removesuffix(".gz") for f, _ in cls.resources]
    folder = root / cls.base_folder
    unpacked = [folder / f for f, _ in cls.train_list + cls.test_list] + [folder / cls.meta["filename"]]
    return [RemoteFile(cls.url, root / cls.filename, cls.tgz_md5)], unpacked


def dataset_download(
    name: str, root: Path | None = None, start: bool = False, retry: bool = False
) -> downloads.Progress | None:
    """None when a torchvision dataset's files are in place (unpacked, or archives downloaded
    and verified); else the combined progress of its archives' downloads, started here when
    `start` (one download per file per process, shared by every caller). State "idle": none started."""
    root = data_root() if root is None else root
    files, unpacked = _remote_files(name, root)
    if all(p.is_file() for p in unpacked):
        return None
    missing = [f for f in files if not f.dest.is_file()]
    if not missing:
        return None
    what = TORCHVISION_DATASETS[name].title
    jobs = [
        downloads.fetch(f.url, f.dest, downloads.Check(md5=f.md5, what=f"{what} file {f.dest.name}"), retry=retry)
        if start
        else downloads.find(f.url, f.dest)
        for f in missing
    ]
    if any(j is None for j in jobs):
        return downloads.Progress("idle", 0, None, 0.0, 1, downloads.ATTEMPTS)
    ps = [j.progress() for j in jobs if j is not None]
    bad = [p for p in ps if p.state in ("failed", "cancelled")]
    state = bad[0].state if bad else "running" if any(p.state == "running" for p in ps) else "done"
    totals = [p.total for p in ps]
    return downloads.Progress(
        state,
        sum(p.done for p in ps),
        sum(totals) if all(t is not None for t in totals) else None,
        sum(p.speed for p in ps if p.state == "running"),
        max(p.attempt for p in ps),
        downloads.ATTEMPTS,
        bad[0].message if bad else next((p.message for p in ps if p.message), ""),
    )


def cancel_dataset_download(name: str, root: Path | None = None) -> None:
    root = data_root() if root is None else root
    for f in _remote_files(name, root)[0]:
        job = downloads.find(f.url, f.dest)
        if job is not None:
            job.cancel()


def how_to_get_dataset(name: str) -> str:
    """What to do without a network connection; names folders symbolically (no server path on a page)."""
    if name == "cifar10":
        return (
            "Without a network connection, put CIFAR-10's python version (cifar-10-python.tar.gz, or its unpacked "
            "data_batch_1..5, test_batch and batches.meta) into `$GNET_DATA_DIR/cifar-10-batches-py/` "
            "(the archive itself into `$GNET_DATA_DIR/`; the data folder is GNET_DATA_DIR or --data-dir, default `./data`), "
            "or set GNET_DATASET_MIRROR to a mirror."
        )
    folder = TORCHVISION_DATASETS[name].folder
    return (
        f"Without a network connection, put train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (or their .gz files) into "
        f"`$GNET_DATA_DIR/{folder}/raw/` (the data folder is GNET_DATA_DIR or --data-dir, default `./data`), "
        "or set GNET_DATASET_MIRROR to a mirror."
    )


def _torchvision(name: str, root: Path, download: bool = True) -> Dataset:
    import torch

    cls = dataset_class(name)
    info = TORCHVISION_DATASETS[name]
    folder, flip_ok, pretty = info.folder, info.flip_ok, info.title
    if download:
        # Our downloader first (verified, atomic, retried); torchvision's class then finds the
        # archives in place, checks their MD5s again and unpacks them.
        dataset_download(name, root, start=True, retry=True)
        for f in _remote_files(name, root)[0]:
            job = downloads.find(f.url, f.dest)
            if job is not None:
                job.wait()
        progress = dataset_download(name, root)
        if progress is not None:
            log.warning("download of %s into %s failed: %s", pretty, root, progress.message)
            raise DataError(
                f"could not download {pretty}: {progress.message or progress.state}. {how_to_get_dataset(name)}"
            )
    try:
        root.mkdir(parents=True, exist_ok=True)
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except Exception as e:
        log.warning("could not load %s from %s: %r", pretty, root / folder, e)
        raise DataError(
            f"could not load {pretty} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no details'}). "
            f"{how_to_get_dataset(name)}"
        ) from None

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(ds.data)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # MNIST (N,H,W); CIFAR (N,H,W,C)
        return x.contiguous().to(torch.uint8), torch.as_tensor(ds.targets, dtype=torch.int64)

    where = f"`$GNET_DATA_DIR/{folder}/`"
    try:
        x_tr, y_tr = tensors(train)
        x_te, y_te = tensors(test)
    except (TypeError, ValueError, RuntimeError) as e:
        raise DataError(f"the {pretty} files in {where} are unreadable: {e}") from None
    if len(x_tr) == 0 or len(x_te) == 0 or len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise DataError(f"the {pretty} files in {where} are empty or inconsistent (images vs labels)")
    classes = [str(c) for c in train.classes]
    if int(torch.cat([y_tr, y_te]).max()) >= len(classes) or int(torch.cat([y_tr, y_te]).min()) < 0:
        raise DataError(f"the {pretty} label files in {where} contain labels outside 0..{len(classes) - 1}")
    return Dataset(name, classes, x_tr, y_tr, x_te, y_te, flip_ok=flip_ok)


# ---------------------------------------------------------------------------
# Image folders

FOLDER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def list_image_folders(root: Path | None = None) -> list[str]:
    """Sub-folders of the data directory that look like ImageFolders (not torchvision's own)."""
    root = root or data_root()
    if not root.is_dir():
        return []
    skip = {d.folder for d in TORCHVISION_DATASETS.values()}
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and p.name not in skip and FOLDER_NAME.fullmatch(p.name) and not p.name.startswith(".")
    )


def image_folder(root: Path, name: str, size: int, test_fraction: float = 0.2) -> Dataset:
    """<root>/NAME/<class>/*.png, or <root>/NAME/{train,test}/<class>/*.png.

    Images are decoded once with Pillow, converted to RGB and resized to size×size.
    Files that are not images, or that Pillow cannot decode, are skipped and counted.
    Without train/ and test/, every 1/test_fraction-th file of each class (sorted by name) is a test image.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    base = _folder_base(root, name)
    if not 8 <= size <= 512:
        raise DataError(f"image size must be 8 to 512 pixels, got {size}")
    split_dirs, classes, class_to_idx = _folder_classes(base, name)

    def files(d: Path) -> list[tuple[str, int]]:
        # Every file counts, so the ones that are not images are reported as skipped, not silently ignored.
        items = make_dataset(
            str(d), class_to_idx, is_valid_file=lambda p: not os.path.basename(p).startswith("."), allow_empty=True
        )
        if len(items) > MAX_FOLDER_IMAGES:
            raise DataError(f"image folder {name!r} has more than {MAX_FOLDER_IMAGES:,} files; use a subset")
        return items

    if split_dirs:
        train_items, test_items = files(base / "train"), files(base / "test")
    else:
        every = max(2, round(1 / test_fraction))
        train_items, test_items = [], []
        by_class: dict[int, list[tuple[str, int]]] = {}
        for item in files(base):
            by_class.setdefault(item[1], []).append(item)
        for items in by_class.values():
            for i, item in enumerate(sorted(items)):
                (test_items if i % every == every - 1 else train_items).append(item)
    skipped: list[str] = []
    x_tr, y_tr = _decode(train_items, size, skipped, IMG_EXTENSIONS)
    x_te, y_te = _decode(test_items, size, skipped, IMG_EXTENSIONS)
    if len(x_tr) == 0 or len(x_te) == 0:
        raise DataError(
            f"image folder {name!r} has no readable images for training and testing "
            f"({len(skipped)} files skipped as unreadable or not images)"
        )
    notes = (
        [f"skipped {len(skipped)} unreadable or non-image file(s), e.g. {', '.join(skipped[:3])}"] if skipped else []
    )
    return Dataset(f"folder:{name}", classes, x_tr, y_tr, x_te, y_te, flip_ok=True, notes=notes)


def _folder_base(root: Path, name: str) -> Path:
    """<root>/NAME, refused unless it is a plain folder inside the data dir."""
    if not FOLDER_NAME.fullmatch(name) or name in (".", ".."):
        raise DataError(f"image folder name {name!r} must be letters, digits, '.', '_' or '-'")
    base = root / name
    if base.is_symlink() or not base.resolve().is_relative_to(root.resolve()) or not base.is_dir():
        raise DataError(f"no image folder {name!r} in the data folder (GNET_DATA_DIR)")
    return base


def _folder_classes(base: Path, name: str) -> tuple[bool, list[str], dict[str, int]]:
    """Whether the folder has train/ and test/, and its classes (the sub-folders, as ImageFolder reads them)."""
    from torchvision.datasets.folder import find_classes

    split_dirs = (base / "train").is_dir() and (base / "test").is_dir()
    try:
        classes, class_to_idx = find_classes(str(base / "train" if split_dirs else base))
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"image folder {name!r} has no class sub-folders ({e})") from None
    if not 2 <= len(classes) <= MAX_FOLDER_CLASSES:
        raise DataError(
            f"image folder {name!r} needs 2 to {MAX_FOLDER_CLASSES} class sub-folders, found {len(classes)}"
        )
    return split_dirs, classes, class_to_idx


def _decode(
    items: list[tuple[str, int]], size: int, skipped: list[str], extensions: tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    import torch
    from PIL import Image

    xs, ys = [], []
    for path, label in items:
        if not path.lower().endswith(extensions):
            skipped.append(os.path.basename(path))
            continue
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise ValueError("image too large")
                im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                xs.append(torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, 3))
                ys.append(label)
        except Exception:
            skipped.append(os.path.basename(path))
    if not xs:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    return torch.stack(xs).permute(0, 3, 1, 2).contiguous(), torch.tensor(ys, dtype=torch.int64)


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic random subset of n samples (all of them when n is None or larger)."""
    import torch

    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return x[idx], y[idx]


def to_model_input(x_uint8: torch.Tensor, size: tuple[int, int], mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, h, w) → float (N, C, H, W), resized bilinearly and normalised.

    The same preprocessing the trainer does inline, for evaluation outside it (the page's predictions)."""
    import torch.nn.functional as F

    x = x_uint8.float().div_(255)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=x.shape[-1] > size[1])
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
