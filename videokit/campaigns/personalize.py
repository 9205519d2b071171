"""Per-recipient overlays: text that fits its box, logos, and compositing straight onto YUV 4:2:0 frames.

An overlay is drawn once per recipient with Pillow (RGBA), premultiplied and converted to Y, U, V and alpha
planes, with U, V and alpha at chroma resolution. Compositing is then a multiply-add on the overlay's own
region of each frame's planes: no RGB round trip, and nothing outside the region is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from videokit.campaigns.spec import Entrance, Font, ImageSlot, TextSlot, parse_color
from videokit.media.images import ImageRejected
from videokit.media.images import open_image as open_untrusted_image
from videokit.media.text import load_font

MAX_IMAGE_PIXELS = 25_000_000

# Limited-range Y'CbCr from 0..255 R'G'B': rows Y, Cb, Cr; offsets 16, 128, 128.
MATRICES: dict[str, np.ndarray] = {
    "bt601": np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255,
    "bt709": np.array([[46.559, 156.629, 15.812], [-25.664, -86.336, 112.0], [112.0, -101.730, -10.270]]) / 255,
}
OFFSETS = np.array([16.0, 128.0, 128.0])


class OverlayError(ValueError):
    """A recipient's overlay cannot be made (text does not fit, image unreadable); the message says why."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class TextLayout:
    size: int
    lines: tuple[str, ...]
    line_height: int
    width: int  # widest line, pixels
    height: int  # all lines, pixels


def wrap_words(text: str, font, max_width: float) -> list[str] | None:
    """Greedy word wrap; None when a single word is wider than the box (shrink the font instead of splitting)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        if font.getlength(word) > max_width:
            return None
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= max_width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def layout_at(text: str, font_spec: Font, size: int, box: tuple[int, int]) -> TextLayout | None:
    font = load_font(size, bold=font_spec.bold)
    lines = wrap_words(text, font, box[0])
    if not lines or len(lines) > font_spec.max_lines:
        return None
    ascent, descent = font.getmetrics()
    line_height = math.ceil((ascent + descent) * font_spec.line_spacing)
    height = line_height * (len(lines) - 1) + ascent + descent
    if height > box[1]:
        return None
    width = math.ceil(max(font.getlength(line) for line in lines))
    return TextLayout(size, tuple(lines), line_height, width, height)


def fit_text(text: str, font_spec: Font, box: tuple[int, int]) -> TextLayout:
    """The largest size in [min_size, max_size] at which the words wrap into max_lines inside the box."""
    if not text.strip():
        raise OverlayError("text", "text is empty")
    # Inset the box so the shadow and plate padding stay inside it.
    inner = (box[0] - 2 * pad_for(font_spec.min_size), box[1] - 2 * pad_for(font_spec.min_size))
    best = layout_at(text, font_spec, font_spec.min_size, inner)
    if best is None:
        raise OverlayError("text", f"{text!r} does not fit a {box[0]}x{box[1]} px box in {font_spec.max_lines} "
                           f"line(s) even at the minimum size {font_spec.min_size} px")
    low, high = font_spec.min_size, font_spec.max_size
    while low < high:  # larger text never needs fewer lines, so fitting is monotone in size
        mid = (low + high + 1) // 2
        inner = (box[0] - 2 * pad_for(mid), box[1] - 2 * pad_for(mid))
        layout = layout_at(text, font_spec, mid, inner)
        if layout is None:
            high = mid - 1
        else:
            low, best = mid, layout
    return best


def pad_for(size: int) -> int:
    return max(2, size // 6)


def _anchor(extent: int, content: int, how: str) -> int:
    if how in ("left", "top"):
        return 0
    if how in ("right", "bottom"):
        return extent - content
    return (extent - content) // 2


def render_text(slot: TextSlot, layout: TextLayout, box: tuple[int, int]) -> np.ndarray:
    """RGBA (h, w, 4) uint8 of the box: optional plate, soft shadow, then the lines."""
    width, height = box
    font = load_font(layout.size, bold=slot.font.bold)
    pad = pad_for(layout.size)
    left = _anchor(width - 2 * pad, layout.width, slot.align) + pad
    top = _anchor(height - 2 * pad, layout.height, slot.valign) + pad
    image = Image.new("RGBA", box, (0, 0, 0, 0))
    if slot.plate:
        plate = Image.new("RGBA", box, (0, 0, 0, 0))
        ImageDraw.Draw(plate).rounded_rectangle(
            (left - pad, top - pad, left + layout.width + pad, top + layout.height + pad),
            radius=pad, fill=parse_color(slot.plate))
        image = Image.alpha_composite(image, plate)
    color = parse_color(slot.font.color)
    if slot.font.shadow:
        shadow = Image.new("RGBA", box, (0, 0, 0, 0))
        offset = max(1, layout.size // 24)
        _draw_lines(ImageDraw.Draw(shadow), slot, layout, font, left + offset, top + offset, width, (0, 0, 0, 150))
        image = Image.alpha_composite(image, shadow.filter(ImageFilter.GaussianBlur(max(1.0, layout.size / 20))))
    text = Image.new("RGBA", box, (0, 0, 0, 0))
    _draw_lines(ImageDraw.Draw(text), slot, layout, font, left, top, width, color)
    return np.asarray(Image.alpha_composite(image, text))


def _draw_lines(draw, slot: TextSlot, layout: TextLayout, font, left: int, top: int, width: int, fill) -> None:
    ascent, _ = font.getmetrics()
    for index, line in enumerate(layout.lines):
        line_width = font.getlength(line)
        x = left + _anchor(layout.width, math.ceil(line_width), slot.align)
        draw.text((x, top + index * layout.line_height + ascent), line, font=font, fill=fill, anchor="ls")


def open_image(data: bytes) -> Image.Image:
    """Decode an image fully (not only its header), upright; raises OverlayError with the reason."""
    try:
        image = open_untrusted_image(data, max_pixels=MAX_IMAGE_PIXELS)
    except ImageRejected as error:
        raise OverlayError("image", f"cannot decode image: {error}") from None
    return image.convert("RGBA")


def render_image(slot: ImageSlot, image: Image.Image, box: tuple[int, int]) -> np.ndarray:
    """RGBA of the box with the image scaled to fit inside it (aspect kept), anchored by align/valign."""
    width, height = box
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Resample premultiplied so transparent pixels do not bleed their (arbitrary) colour into the edges.
    fitted = image.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")
    canvas = Image.new("RGBA", box, (0, 0, 0, 0))
    canvas.paste(fitted, (_anchor(width, size[0], slot.align), _anchor(height, size[1], slot.valign)))
    return np.asarray(canvas)


@dataclass(frozen=True)
class OverlayPlanes:
    """An overlay ready to composite: premultiplied Y/U/V and alpha, placed at (x, y) (even) in the frame."""

    x: int
    y: int
    luma: np.ndarray  # (h, w) float32: alpha * Y of the overlay colour
    alpha: np.ndarray  # (h, w) float32 in 0..1
    chroma: np.ndarray  # (2, h/2, w/2) float32: alpha * U, alpha * V, averaged over each 2x2 block
    chroma_alpha: np.ndarray  # (h/2, w/2) float32

    @property
    def size(self) -> tuple[int, int]:
        return self.alpha.shape[1], self.alpha.shape[0]


def overlay_planes(rgba: np.ndarray, x: int, y: int, matrix: str = "bt601") -> OverlayPlanes | None:
    """Premultiply, crop to the visible pixels (even-aligned) and convert; None when nothing is visible."""
    alpha8 = rgba[..., 3]
    rows, cols = np.nonzero(alpha8)
    if rows.size == 0:
        return None
    top, left = rows.min() & ~1, cols.min() & ~1
    bottom, right = rows.max() + 1, cols.max() + 1
    bottom, right = bottom + (bottom - top) % 2, right + (right - left) % 2
    crop = np.zeros((bottom - top, right - left, 4), np.float32)
    source = rgba[top:bottom, left:right].astype(np.float32)
    crop[: source.shape[0], : source.shape[1]] = source
    alpha = crop[..., 3] / 255.0
    premultiplied = crop[..., :3] * alpha[..., None]
    yuv = premultiplied @ MATRICES[matrix].T.astype(np.float32) + alpha[..., None] * OFFSETS.astype(np.float32)
    h, w = alpha.shape
    blocks = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    chroma_alpha = alpha.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return OverlayPlanes(
        x=x + int(left), y=y + int(top),
        luma=np.ascontiguousarray(yuv[..., 0]), alpha=alpha,
        chroma=np.ascontiguousarray(blocks.transpose(2, 0, 1)), chroma_alpha=chroma_alpha,
    )


def i420_planes(frame: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of Y, U and V inside a packed I420 array of shape (h * 3 / 2, w)."""
    flat = frame.reshape(-1)
    luma = flat[: width * height].reshape(height, width)
    quarter = (width // 2) * (height // 2)
    u = flat[width * height : width * height + quarter].reshape(height // 2, width // 2)
    v = flat[width * height + quarter :].reshape(height // 2, width // 2)
    return luma, u, v


def composite_i420(frame: np.ndarray, size: tuple[int, int], overlay: OverlayPlanes, dx: int = 0, dy: int = 0,
                   opacity: float = 1.0) -> None:
    """Blend the overlay into a packed I420 frame in place (premultiplied over), shifted by (dx, dy) even pixels."""
    composite_planes(i420_planes(frame, *size), overlay, dx, dy, opacity)


def composite_planes(planes: tuple[np.ndarray, np.ndarray, np.ndarray], overlay: OverlayPlanes, dx: int = 0,
                     dy: int = 0, opacity: float = 1.0) -> None:
    """Blend the overlay into Y, U, V plane arrays in place; only the overlay's own region is read or written."""
    luma, u, v = planes
    height, width = luma.shape
    if opacity <= 0:
        return
    x, y = overlay.x + dx, overlay.y + dy
    ow, oh = overlay.size
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + ow, width), min(y + oh, height)
    if x1 <= x0 or y1 <= y0:
        return
    src = np.s_[y0 - y : y1 - y, x0 - x : x1 - x]
    _blend(luma[y0:y1, x0:x1], overlay.luma[src], overlay.alpha[src], opacity)
    csrc = np.s_[(y0 - y) // 2 : (y1 - y) // 2, (x0 - x) // 2 : (x1 - x) // 2]
    cdst = np.s_[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    for plane, premultiplied in ((u, overlay.chroma[0]), (v, overlay.chroma[1])):
        _blend(plane[cdst], premultiplied[csrc], overlay.chroma_alpha[csrc], opacity)


def _blend(target: np.ndarray, premultiplied: np.ndarray, alpha: np.ndarray, opacity: float) -> None:
    if opacity >= 1.0:
        out = premultiplied + target * (1.0 - alpha)
    else:
        out = premultiplied * opacity + target * (1.0 - alpha * opacity)
    np.clip(out + 0.5, 0, 255, out=out)
    target[...] = out.astype(np.uint8)


def entrance_at(entrance: Entrance, since_start_s: float, box: tuple[int, int]) -> tuple[int, int, float]:
    """(dx, dy, opacity) of an overlay `since_start_s` after its slot opens; dx, dy are even pixels."""
    if entrance.kind == "none" or entrance.duration_s <= 0 or since_start_s >= entrance.duration_s:
        return 0, 0, 1.0
    progress = max(0.0, since_start_s / entrance.duration_s)
    if entrance.kind == "fade":
        return 0, 0, progress
    eased = 1.0 - (1.0 - progress) ** 3  # ease-out: fast in, gentle landing
    remaining = 1.0 - eased
    distance_x, distance_y = box[0] * 0.5, box[1] * 0.5
    sign = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}[entrance.side]
    dx = 2 * round(sign[0] * distance_x * remaining / 2)
    dy = 2 * round(sign[1] * distance_y * remaining / 2)
    return dx, dy, min(1.0, progress * 1.5)
