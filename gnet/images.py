"""Uploaded bytes → validated RGB image → model input tensor.

Every image the app shows or feeds to a network goes through `load`, the one
validation path: size limit, format sniffed from the content (never the file
name), pixel and aspect-ratio limits checked from the header before anything
is decoded, corrupt or truncated files, unusual modes (palette with
transparency, RGBA, 16-bit, CMYK, grayscale) and EXIF orientation. Anything
wrong raises `ImageError` with a message a user understands.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

MAX_BYTES = 25 * 1024 * 1024  # matches server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = 50_000_000  # a 48 MP camera photo fits; a decompression bomb does not
MAX_ASPECT = 20  # a 10000×1 strip would become gigapixels once its short side is resized to 256
WORK_SIDE = 512  # the decoded working copy keeps its short side at most this long
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG includes MPO, what many phone cameras write
FORMAT_NAMES = "JPEG, PNG, WebP, BMP, GIF or TIFF"


class ImageError(ValueError):
    """An uploaded file is not a usable image; the message says why."""


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB, orientation applied, short side ≤ WORK_SIDE
    format: str  # what the content is, e.g. "PNG"
    original_size: tuple[int, int]  # (W, H) as stored in the file, before orientation
    original_mode: str  # e.g. "P", "I;16", "CMYK"
    notes: tuple[str, ...] = ()  # what was done to make it RGB, for the UI


def load(data: bytes, work_side: int = WORK_SIDE) -> LoadedImage:
    """Validate and decode an uploaded file into an RGB working copy."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError("expected the bytes of an image file")
    data = bytes(data)
    if len(data) == 0:
        raise ImageError("the file is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        return _decode(data, work_side)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("the image needs too much memory to decode") from None
    except Exception as e:
        # (OSError, SyntaxError, struct.error, IndexError ...): to a user all mean "corrupt"
        raise ImageError(
            f"the file could not be decoded as an image (corrupt or truncated?): {type(e).__name__}: {str(e)[:150]}"
        ) from None


def _decode(data: bytes, work_side: int) -> LoadedImage:
    with warnings.catch_warnings():
        # PIL's own bomb check is a process-wide warning; make it an error here, locally.
        # (Our MAX_PIXELS check below is stricter, so this stays correct even if another
        # thread's catch_warnings restores the filters meanwhile.) Malformed-tag chatter is noise.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except Image.UnidentifiedImageError:
            raise ImageError(f"this is not a supported image: upload a {FORMAT_NAMES} file") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"the image has more than {MAX_PIXELS:,} pixels") from None
        fmt = img.format or "?"
        w, h = img.size
        if w < 1 or h < 1:
            raise ImageError("the image has no pixels")
        if w * h > MAX_PIXELS:
            raise ImageError(
                f"the image is {w}×{h} = {w * h:,} pixels; the limit is {MAX_PIXELS:,} "
                "(a very large image or a decompression bomb)"
            )
        if max(w, h) / min(w, h) > MAX_ASPECT:
            raise ImageError(f"the image is {w}×{h}: sides more than {MAX_ASPECT}:1 apart are not supported")
        mode = img.mode
        if fmt in ("JPEG", "MPO"):
            # Decode straight at a reduced DCT scale (1/2, 1/4, 1/8) that still
            # covers work_side: a 12 MP photo decodes ~10× faster.
            s = work_side / min(w, h)
            if s < 1:
                img.draft("RGB", (math.ceil(w * s), math.ceil(h * s)))  # keeps L/CMYK as they are
        img.load()
        notes: list[str] = []
        if _orientation(img) not in (None, 1):
            img = ImageOps.exif_transpose(img)
            notes.append("rotated/flipped as its EXIF orientation says")
        rgb = to_rgb(img, notes)
        if min(rgb.size) > work_side:
            s = work_side / min(rgb.size)
            rgb = rgb.resize(
                (max(1, round(rgb.width * s)), max(1, round(rgb.height * s))),
                Image.Resampling.BILINEAR,
                reducing_gap=2.0,
            )
        return LoadedImage(rgb, fmt, (w, h), mode, tuple(notes))


def _orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(0x0112)
    except Exception:
        return None


def to_rgb(img: Image.Image, notes: list[str] | None = None) -> Image.Image:
    """Any PIL mode → 8-bit RGB. Transparency is composited onto white; 16-bit and
    float data are scaled to 0..255 rather than clipped."""
    notes = notes if notes is not None else []
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            a = a / 257.0
            notes.append("16-bit grayscale scaled to 8 bits")
        elif mode == "I":
            hi = 65535.0 if a.max(initial=0) > 255 else 255.0
            a = np.clip(a, 0, hi) * (255.0 / hi)
            notes.append("integer grayscale scaled to 8 bits")
        else:
            if not np.isfinite(a).all():  # one NaN pixel too: it would become an arbitrary grey
                raise ImageError("the floating-point image contains NaN or infinite values")
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
            notes.append("floating-point image stretched to 0..255")
        g = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
        return g.convert("RGB")
    if mode == "P" and "transparency" in img.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("transparent pixels shown on white")
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in ("L", "1", "P"):
        notes.append("grayscale or palette image converted to RGB" if mode != "P" else "palette image converted to RGB")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
    try:
        return img.convert("RGB")
    except ValueError:
        raise ImageError(f"images in PIL mode {mode!r} are not supported") from None


# ---------------------------------------------------------------------------
# Preprocessing: what the network sees


@dataclass(frozen=True)
class Preprocess:
    """Resize the short side to `resize`, centre-crop to `crop` (H, W), scale to
    0..1, normalise with mean/std per channel. torchvision's ImageNet recipe is
    resize 256, crop 224, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    stretch=True resizes the whole image to `crop` instead, as this project's
    trainer does (its checkpoints say so), so a checkpoint sees what it trained on."""

    resize: int
    crop: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_channels: int = 3
    stretch: bool = False

    def describe(self) -> str:
        m = ", ".join(f"{v:.3f}" for v in self.mean)
        s = ", ".join(f"{v:.3f}" for v in self.std)
        gray = "converted to grayscale, " if self.in_channels == 1 else ""
        size = (
            f"whole image resized to {self.crop[0]}×{self.crop[1]} (H×W), as in training"
            if self.stretch
            else f"short side resized to {self.resize} px, centre crop {self.crop[0]}×{self.crop[1]} (H×W)"
        )
        return f"{size}, {gray}scaled to 0..1, normalised (x − mean) / std with mean ({m}) and std ({s})"


def crop_for_model(img: Image.Image, pre: Preprocess) -> Image.Image:
    """Resize + centre crop: the image the network sees, before normalisation."""
    w, h = img.size
    if pre.stretch:
        img = img.resize((pre.crop[1], pre.crop[0]), Image.Resampling.BILINEAR)
        return img.convert("L") if pre.in_channels == 1 else img
    # Sizes and offsets rounded exactly as torchvision's Resize(int) and CenterCrop round them,
    # so the tensor equals WEIGHTS.transforms() on the same image.
    if w <= h:
        nw, nh = pre.resize, int(pre.resize * h / w)
    else:
        nw, nh = int(pre.resize * w / h), pre.resize
    nw, nh = max(nw, pre.crop[1]), max(nh, pre.crop[0])
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = int(round((nw - pre.crop[1]) / 2.0)), int(round((nh - pre.crop[0]) / 2.0))
    img = img.crop((left, top, left + pre.crop[1], top + pre.crop[0]))
    return img.convert("L") if pre.in_channels == 1 else img


def to_tensor(cropped: Image.Image, pre: Preprocess) -> torch.Tensor:
    """A cropped image → a normalised (1, C, H, W) float tensor."""
    a = np.asarray(cropped, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] != len(pre.mean) or len(pre.mean) != len(pre.std):
        raise ImageError(f"preprocessing expects {len(pre.mean)} channel(s), the image has {a.shape[2]}")
    a = (a - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def preprocess(img: Image.Image, pre: Preprocess) -> tuple[Image.Image, torch.Tensor]:
    cropped = crop_for_model(img, pre)
    return cropped, to_tensor(cropped, pre)
