"""gnet.images: the one validation path for uploaded images, and preprocessing."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from gnet import images
from gnet.images import ImageError, Preprocess, load, preprocess
from gnet.pretrained import WEIGHTS, imagenet_preprocess
from tests.fuzzing import fuzz_settings

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient(w: int = 40, h: int = 30) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), np.full_like(x, 128)], -1)
    return Image.fromarray(a.astype(np.uint8), "RGB")


def png_with_size(w: int, h: int) -> bytes:
    """A real 1×1 PNG whose IHDR claims w×h (valid CRC): what a decompression bomb's header looks like."""
    data = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


# -- formats and modes -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.jpg")))
def test_samples_load_as_rgb(name):
    li = load((SAMPLES / name).read_bytes())
    assert li.format == "JPEG" and li.image.mode == "RGB"
    assert li.image.size == li.original_size and max(li.image.size) <= 512


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_supported_format_decodes_to_the_same_picture(fmt):
    src = gradient()
    li = load(encode(src, fmt))
    assert li.format == fmt and li.image.mode == "RGB" and li.image.size == src.size
    err = np.abs(np.asarray(li.image, np.int16) - np.asarray(src, np.int16)).mean()
    assert err < (12 if fmt in ("JPEG", "WEBP", "GIF") else 0.01)


def test_format_is_sniffed_not_taken_from_the_name():
    # the loader never sees a file name: PNG bytes are PNG whatever the upload was called
    assert load(encode(gradient(), "PNG")).format == "PNG"
    with pytest.raises(ImageError, match="not a supported image"):
        load(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    with pytest.raises(ImageError, match="not a supported image"):
        load(b"%PDF-1.4 hello")


def test_palette_with_transparency_is_composited_on_white():
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 4, 8))
    li = load(encode(img, "PNG", transparency=0))  # index 0 (red) is transparent
    a = np.asarray(li.image)
    assert a[0, 0].tolist() == [0, 0, 255] and a[0, 7].tolist() == [255, 255, 255]
    assert li.original_mode == "P" and any("white" in n for n in li.notes)


def test_rgba_half_transparent_blends_with_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    a = np.asarray(load(encode(img, "PNG")).image)
    assert np.all(np.abs(a.astype(int) - 127) <= 1)


def test_16_bit_grayscale_is_scaled_not_clipped():
    a = np.array([[0, 32896, 65535, 1000]], dtype=np.uint16)
    li = load(encode(Image.fromarray(a), "PNG"))
    out = np.asarray(li.image)[0, :, 0]
    assert out.tolist() == [0, 128, 255, 4]  # v / 257, rounded
    assert li.original_mode.startswith("I")


def test_float_tiff_is_stretched():
    a = np.array([[0.25, 0.5], [0.75, 1.25]], dtype=np.float32)
    out = np.asarray(load(encode(Image.fromarray(a, "F"), "TIFF")).image)[:, :, 0]
    assert out[0, 0] == 0 and out[1, 1] == 255 and 0 < out[0, 1] < out[1, 0] < 255


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_converts_to_rgb(fmt):
    li = load(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), fmt))  # pure red in CMYK
    r, g, b = np.asarray(li.image)[8, 8].tolist()
    assert li.original_mode == "CMYK" and r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("mode", ["L", "1", "LA"])
def test_grayscale_modes(mode):
    li = load(encode(Image.new(mode, (6, 6), 255 if mode != "LA" else (255, 255)), "PNG"))
    assert li.image.mode == "RGB" and np.asarray(li.image).min() == 255


def test_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    r, g, b = np.asarray(load(buf.getvalue()).image)[5, 5].tolist()
    assert r > 200 and b < 50


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    li = load(encode(img, "JPEG", exif=exif, quality=95))
    a = np.asarray(li.image)
    assert li.image.size == (20, 40) and li.original_size == (40, 20)
    assert a[2, 10].min() > 200 and a[-3, 10].max() < 60  # the stripe is now on top
    assert any("EXIF" in n for n in li.notes)


# -- bad input ----------------------------------------------------------------


def test_empty_file():
    with pytest.raises(ImageError, match="empty"):
        load(b"")


def test_too_many_bytes():
    with pytest.raises(ImageError, match="limit is 25 MB"):
        load(b"\x89PNG" + bytes(images.MAX_BYTES))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(fmt):
    data = encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)), fmt)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load(data[: len(data) // 2])


def test_pixel_limit_before_decoding():
    with pytest.raises(ImageError, match="50,000,000"):
        load(png_with_size(9000, 6000))  # 54 MP: under PIL's own limit, over ours


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_decompression_bomb_never_warns_globally(recwarn, side):
    """100 MP is in PIL's warning band (above MAX_IMAGE_PIXELS, at most twice it), 400 MP in its error band:
    both are refused with a clear message, and neither leaves a process-wide warning or filter behind."""
    warn_band = Image.MAX_IMAGE_PIXELS < side * side <= 2 * Image.MAX_IMAGE_PIXELS
    assert warn_band == (side == 10_000)  # the oracle: PIL's own thresholds
    filters = list(warnings.filters)
    with pytest.raises(ImageError, match="pixels"):
        load(png_with_size(side, side))
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == filters


def test_a_file_that_makes_pillow_warn_still_loads_and_leaves_no_warning(recwarn):
    """A PNG with an acTL chunk that claims 0 frames: Pillow warns "Invalid APNG" and decodes the plain PNG.
    Only decompression bombs are errors; this warning is neither raised as corruption nor leaked."""
    src = gradient(12, 9)
    data = encode(src, "PNG")
    actl = b"acTL" + struct.pack(">II", 0, 0)
    bad = data[:33] + struct.pack(">I", 8) + actl + struct.pack(">I", zlib.crc32(actl)) + data[33:]
    with warnings.catch_warnings(record=True) as pillow:  # the oracle: Pillow itself warns on this file
        warnings.simplefilter("always")
        Image.open(io.BytesIO(bad)).load()
    assert any("Invalid APNG" in str(w.message) for w in pillow)
    li = load(bad)
    assert li.format == "PNG" and np.array_equal(np.asarray(li.image), np.asarray(src))
    assert not list(recwarn)


def test_extreme_aspect_ratio():
    with pytest.raises(ImageError, match="20:1"):
        load(encode(Image.new("RGB", (2100, 100)), "PNG"))


def test_not_bytes():
    with pytest.raises(ImageError):
        load("a string")  # type: ignore[arg-type]


# -- fuzz ----------------------------------------------------------------------


def _seeds() -> list[bytes]:
    img = gradient(12, 9)
    gif = io.BytesIO()
    img.save(gif, format="GIF")
    return [
        encode(img, "PNG"),
        encode(img, "JPEG"),
        gif.getvalue(),
        encode(img, "TIFF"),
        encode(img.convert("RGBA"), "WEBP"),
        encode(img, "BMP"),
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 64))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@fuzz_settings(100)
@given(st.one_of(st.binary(max_size=512), mutated()))
def test_fuzz_only_image_error_comes_out(data):
    try:
        li = load(data)
    except ImageError as e:
        assert str(e)
    else:
        assert li.image.mode == "RGB" and min(li.image.size) >= 1


# -- preprocessing -------------------------------------------------------------


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (224, 224), (37, 500), (1, 1)])
def test_preprocess_equals_torchvision_transforms(size):
    img = gradient(*size)
    cropped, x = preprocess(img, imagenet_preprocess())
    assert cropped.size == (224, 224) and x.shape == (1, 3, 224, 224)
    assert torch.allclose(x, WEIGHTS.transforms()(img)[None], atol=1e-6)


def test_preprocess_grayscale_network():
    pre = Preprocess(32, (32, 32), (0.5,), (0.25,), in_channels=1)
    cropped, x = preprocess(Image.new("RGB", (64, 48), (255, 255, 255)), pre)
    assert cropped.mode == "L" and x.shape == (1, 1, 32, 32)
    assert torch.allclose(x, torch.full_like(x, (1.0 - 0.5) / 0.25))


@pytest.mark.parametrize("size", [(50, 40), (40, 50)])
def test_centre_crop_to_a_non_square_target_equals_torchvision(size):
    """Height and width kept apart: torchvision's Resize(int) + CenterCrop((H, W)) on the same PIL image."""
    from torchvision import transforms as T

    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    cropped = images.crop_for_model(img, Preprocess(32, (24, 28), (0.5,) * 3, (0.25,) * 3))
    expected = T.Compose([T.Resize(32), T.CenterCrop((24, 28))])(img)
    assert cropped.size == (28, 24) and np.array_equal(np.asarray(cropped), np.asarray(expected))


@pytest.mark.parametrize("crop", [(40, 56), (12, 16), (33, 21)])
def test_stretch_sees_what_the_trainer_sees(crop):
    """stretch=True (this project's checkpoints): the whole image resized to crop (H, W), bilinearly, as the
    trainer's batches are (gnet.data.to_model_input), to within the 8-bit rounding of the picture."""
    from gnet.data import to_model_input

    a = np.random.default_rng(3).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    pre = Preprocess(999, crop, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), stretch=True)
    cropped, x = preprocess(Image.fromarray(a), pre)
    expected = to_model_input(
        torch.from_numpy(a).permute(2, 0, 1)[None], crop, torch.tensor(pre.mean), torch.tensor(pre.std)
    )
    assert cropped.mode == "RGB" and x.shape == expected.shape == (1, 3, *crop)
    assert torch.allclose(x, expected, atol=1.01 / 255 / min(pre.std), rtol=0)
    gray = Preprocess(999, crop, (0.5,), (0.25,), in_channels=1, stretch=True)
    assert images.crop_for_model(Image.fromarray(a), gray).mode == "L"


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I;16N"])
def test_every_16_bit_layout_is_scaled_not_clipped(mode):
    """PIL's own convert("RGB") clips 16-bit values at 255; each byte order must be scaled (v / 257) instead,
    not stretched to its range (the values here span neither 0 nor 65535)."""
    a = np.array([[257, 32896, 1000, 2570]], dtype=np.uint16)
    order = {"I;16B": ">u2", "I;16N": "=u2"}.get(mode, "<u2")
    img = Image.frombytes(mode, (4, 1), a.astype(order).tobytes())
    assert np.asarray(img).tolist() == a.tolist()  # the layout is read back as written
    notes: list[str] = []
    assert np.asarray(images.to_rgb(img, notes))[0, :, 0].tolist() == [1, 128, 4, 10]
    assert len(notes) == 1 and "16-bit" in notes[0]


def test_32_bit_integer_grayscale_is_scaled_by_its_range():
    """Mode "I": values above 255 are taken as 16-bit (v / 257, negatives 0, beyond 65535 white), 8-bit ones kept."""
    cases = [
        ([-5, 0, 256, 1000, 51529, 65535, 70000], [0, 0, 1, 4, 201, 255, 255]),  # 51529 / 257 = 200.502
        ([0, 128, 256], [0, 0, 1]),  # 256 is already more than 8 bits
        ([0, 100, 255], [0, 100, 255]),
    ]
    for values, expected in cases:
        img = Image.fromarray(np.array([values], dtype=np.int32))
        assert img.mode == "I"
        notes: list[str] = []
        assert np.asarray(images.to_rgb(img, notes))[0, :, 0].tolist() == expected, values
        assert len(notes) == 1 and "integer" in notes[0]


def test_float_image_is_stretched_over_its_own_range():
    a = np.array([[-2.0, 0.0, 2.0, 4.0, 6.0]], dtype=np.float32)  # (v + 2) / 8 of the way from min to max
    notes: list[str] = []
    assert np.asarray(images.to_rgb(Image.fromarray(a, "F"), notes))[0, :, 0].tolist() == [0, 64, 128, 191, 255]
    assert len(notes) == 1 and "floating-point" in notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 on the way
        flat = images.to_rgb(Image.fromarray(np.full((2, 2), 3.5, np.float32), "F"))
    assert np.asarray(flat).max() == 0
    for bad in ([[0.0, 1.0, np.inf]], [[-np.inf, 0.0]], [[np.nan, np.nan]], [[0.0, np.nan, 1.0]]):
        with pytest.raises(ImageError, match="NaN or infinite"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "All-NaN slice"
            images.to_rgb(Image.fromarray(np.array(bad, np.float32), "F"))


@pytest.mark.parametrize("mode", ["LA", "PA", "RGBa"])
def test_every_alpha_mode_is_composited_on_white(mode):
    transparent = Image.new(mode, (2, 2), (0,) * len(mode))  # fully transparent black
    notes: list[str] = []
    assert images.to_rgb(transparent, notes).getpixel((0, 0)) == (255, 255, 255)
    assert any("white" in n for n in notes)


def test_an_opaque_palette_image_is_only_converted():
    img = Image.new("P", (4, 4), 1)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    li = load(encode(img, "PNG"))  # no transparency
    assert li.image.getpixel((0, 0)) == (0, 0, 255)
    assert len(li.notes) == 1 and "palette" in li.notes[0] and not any(w in li.notes[0] for w in ("white", "grayscale"))


def test_to_rgb_without_a_notes_list_and_rgb_passes_through():
    rgb = Image.new("RGB", (3, 2), (1, 2, 3))
    notes: list[str] = []
    assert images.to_rgb(rgb, notes) is rgb and notes == []  # nothing to do: no copy, no note
    assert images.to_rgb(Image.new("L", (3, 2), 9)).getpixel((0, 0)) == (9, 9, 9)  # notes=None is fine


def test_to_tensor_refuses_a_channel_mismatch():
    rgb = Preprocess(4, (4, 4), (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(ImageError, match=r"expects 3 channel\(s\), the image has 1"):
        images.to_tensor(Image.new("L", (4, 4)), rgb)  # would broadcast silently to 3 channels
    with pytest.raises(ImageError, match="channel"):
        images.to_tensor(Image.new("RGB", (4, 4)), Preprocess(4, (4, 4), (0.5,) * 3, (0.25,)))


def test_describe_states_the_numbers_in_use():
    text = Preprocess(256, (224, 200), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).describe()
    assert "256 px" in text and "224×200 (H×W), scaled to 0..1" in text and "whole image" not in text
    assert "(0.485, 0.456, 0.406)" in text and "(0.229, 0.224, 0.225)" in text
    text = Preprocess(64, (40, 56), (0.5,), (0.25,), in_channels=1, stretch=True).describe()
    assert "whole image resized to 40×56 (H×W)" in text and "px" not in text
    assert "grayscale" in text and "(0.500)" in text and "(0.250)" in text


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "PCX", "ICO"])
def test_formats_pillow_reads_but_the_app_does_not_accept_are_refused(fmt):
    data = encode(gradient(16, 16), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would decode it
    with pytest.raises(ImageError, match="not a supported image"):
        load(data)


def test_limits_are_inclusive_and_the_pixel_message_counts_them():
    for size in ((1, 1), (20, 1), (1, 20)):  # one-pixel sides; exactly MAX_ASPECT:1
        assert load(encode(Image.new("RGB", size), "PNG")).image.size == size
    # exactly MAX_PIXELS passes the header check (then fails to decode: the header lies about a 1×1 picture)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load(png_with_size(10_000, images.MAX_PIXELS // 10_000))
    with pytest.raises(ImageError, match=r"9000×6000 = 54,000,000 pixels"):
        load(png_with_size(9000, 6000))


@pytest.mark.parametrize("fmt", ["JPEG", "MPO"])  # MPO: what many phone cameras write
def test_big_jpeg_is_decoded_at_a_reduced_dct_scale_that_still_covers_the_work_side(fmt, monkeypatch):
    from PIL import ImageFile

    decoded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def load_spy(self):
        decoded.append(self.size)  # the size the decoder is about to produce
        return real_load(self)

    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), dtype=np.uint8))
    data = encode(big, fmt, quality=80, **({"save_all": True, "append_images": [big]} if fmt == "MPO" else {}))
    monkeypatch.setattr(ImageFile.ImageFile, "load", load_spy)
    li = load(data)
    assert li.format == fmt and li.original_size == (2000, 1500)
    assert li.image.size == (round(2000 * images.WORK_SIDE / 1500), images.WORK_SIDE)  # aspect kept: 683×512
    assert images.WORK_SIDE <= min(decoded[0]) < 1500  # 1/2 scale here: 1000×750


@pytest.mark.parametrize("orientation", [1, 2])
def test_exif_orientation_1_is_left_alone_and_2_mirrors(orientation):
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 1, 2))  # white left column
    exif = Image.Exif()
    exif[0x0112] = orientation
    li = load(encode(img, "PNG", exif=exif))
    a = np.asarray(li.image)
    white_column = 0 if orientation == 1 else 3
    assert a[:, white_column].min() == 255 and a[:, 3 - white_column].max() == 0
    assert any("EXIF" in n for n in li.notes) == (orientation != 1)


@pytest.mark.parametrize(
    "mode, fill, word",
    [("L", 9, "grayscale"), ("1", 1, "grayscale"), ("CMYK", (0, 0, 0, 0), "CMYK"), ("YCbCr", (0, 128, 128), None)],
)
def test_each_conversion_leaves_its_own_note(mode, fill, word):
    notes: list[str] = []
    assert images.to_rgb(Image.new(mode, (2, 2), fill), notes).mode == "RGB"
    assert [word in n for n in notes] == ([True] if word else [])


def test_a_resize_shorter_than_the_crop_scales_up_to_cover_it_without_cutting():
    """resize 24 with crop 24×28 (H×W; gnet.pretrained allows min(H, W) <= resize): the short side is made
    at least as long as the crop's side in that direction, each direction on its own, so nothing is padded and
    a square picture loses nothing vertically."""
    y = np.repeat(np.arange(40, dtype=np.uint8)[:, None] * 6, 40, axis=1)  # brightness = 6 × row
    cropped = images.crop_for_model(
        Image.fromarray(y, "L").convert("RGB"), Preprocess(24, (24, 28), (0.5,) * 3, (0.25,) * 3)
    )
    a = np.asarray(cropped)[:, :, 0].astype(int)
    assert cropped.size == (28, 24)
    assert a[0].max() <= 6 and a[-1].min() >= 228  # the first and last rows of the picture are still there


def test_size_limit_is_inclusive_and_the_message_gives_the_size():
    with pytest.raises(ImageError, match="not a supported image"):  # exactly the limit: on to the format check
        load(b"\x89PNG" + bytes(images.MAX_BYTES - 4))
    with pytest.raises(ImageError, match=r"^the file is 25\.0 MB; the limit is 25 MB$"):
        load(bytes(images.MAX_BYTES + 4))
    with pytest.raises(ImageError, match="expected the bytes of an image file"):
        load(None)  # type: ignore[arg-type]


def test_decoder_failures_become_messages_a_user_can_read(monkeypatch):
    def out_of_memory(data, work_side):
        raise MemoryError

    monkeypatch.setattr(images, "_decode", out_of_memory)
    with pytest.raises(ImageError, match="^the image needs too much memory to decode$"):
        load(b"x")

    def odd(data, work_side):
        raise struct.error("a" * 150 + "b")  # what a decoder may raise on a garbled header

    monkeypatch.setattr(images, "_decode", odd)
    with pytest.raises(ImageError) as e:
        load(b"x")
    assert str(e.value).endswith("(corrupt or truncated?): error: " + "a" * 150)  # type name, detail cut at 150
