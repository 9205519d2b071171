"""The bundled fonts, so text renders the same on every machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

_FONT_DIR = Path(__file__).parent / "fonts"


def font_path(bold: bool = False) -> Path:
    """Path of the bundled DejaVu Sans TTF (regular or bold)."""
    return _FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")


@lru_cache(maxsize=64)
def load_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at `size` pixels; cached because overlays ask for the same sizes every frame."""
    if size < 1:
        raise ValueError(f"font size must be positive, got {size}")
    return ImageFont.truetype(str(font_path(bold)), size)
