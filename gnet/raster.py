"""Raster-image primitives shared by the feature mosaics (gnet.features) and the explain charts: the Viridis
lookup table, Pillow's built-in font and the ASCII spelling its labels need. Torch-free."""

from __future__ import annotations

import numpy as np
from PIL import ImageFont

# viridis at 9 stops, interpolated to a 256-entry lookup table (no matplotlib needed)
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
LUT = np.stack([np.interp(np.linspace(0, 8, 256), np.arange(9), _VIRIDIS[:, c]) for c in range(3)], 1).astype(np.uint8)


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def ascii_label(text: str) -> str:
    """Pillow's built-in font has no ×, →, · or ‖ (E's halves side by side); images spell them in ASCII."""
    return text.replace("×", "x").replace("→", "->").replace("·", "|").replace("‖", "||")


def hex_rgb(hex_color: str) -> np.ndarray:
    """A colour such as #0072B2 as its [r, g, b] (float32)."""
    h = hex_color.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], np.float32)
