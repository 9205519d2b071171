"""Stills for training scenes: slides (title and bullets fitted to the frame), pictures, product clip cards,
and the module's title card.

Text is fitted with the same rules as personalized overlays (`personalize.fit_text`, `layout_at`): the largest
size that wraps into the allowed lines, never below a minimum; text that does not fit at the minimum is an
error before anything is rendered or paid for. With a presenter on screen the content keeps to the left and
the presenter's picture sits in a square at the right (`presenter_box`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from videokit.campaigns.personalize import OverlayError, TextLayout, fit_text, layout_at, open_image
from videokit.campaigns.spec import Font
from videokit.media.brand import parse_hex
from videokit.media.text import load_font

RGB = tuple[int, int, int]
BULLET_MAX_LINES = 3
MIN_TITLE_PX = 32 / 720  # of the frame height: 32 px at 720p
MIN_BULLET_PX = 22 / 720


class SlideError(ValueError):
    """A slide cannot be rendered (text too long for the frame at the minimum size, unreadable picture)."""


@dataclass(frozen=True)
class Look:
    background: RGB = (245, 242, 235)
    background_2: RGB = (230, 224, 212)
    text: RGB = (30, 42, 50)
    accent: RGB = (47, 111, 94)

    @classmethod
    def from_hex(cls, background: str, background_2: str, text: str, accent: str) -> Look:
        return cls(parse_hex(background), parse_hex(background_2), parse_hex(text), parse_hex(accent))


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


def _hex(color: RGB) -> str:
    return "#{:02X}{:02X}{:02X}".format(*color)


def presenter_box(size: tuple[int, int]) -> Box:
    """Where a presenter's picture goes: a square at the right, vertically centred, even-aligned."""
    width, height = size
    side = 2 * round(0.46 * height / 2)
    margin = 2 * round(0.045 * width / 2)
    return Box(width - margin - side, 2 * round((height - side) / 4), side, side)


def content_box(size: tuple[int, int], with_presenter: bool) -> Box:
    width, height = size
    left, top = round(0.07 * width), round(0.09 * height)
    right = presenter_box(size).x - round(0.04 * width) if with_presenter else width - left
    return Box(left, top, right - left, height - top - round(0.09 * height))


def background(size: tuple[int, int], look: Look) -> np.ndarray:
    """A soft vertical gradient with an accent bar at the left edge."""
    width, height = size
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    top, bottom = np.array(look.background, np.float32), np.array(look.background_2, np.float32)
    column = top[None, :] * (1 - ramp) + bottom[None, :] * ramp
    frame = np.repeat(column[:, None, :], width, axis=1)
    frame[:, : max(2, round(0.012 * width))] = look.accent
    return np.ascontiguousarray(np.clip(frame + 0.5, 0, 255).astype(np.uint8))


def _font(look: Look, min_px: int, max_px: int, max_lines: int, bold: bool, spacing: float = 1.12) -> Font:
    return Font(
        bold=bold,
        min_size=max(6, min_px),
        max_size=max(min_px, max_px),
        max_lines=max_lines,
        line_spacing=spacing,
        color=_hex(look.text),
        shadow=False,
    )


def _draw_layout(
    draw: ImageDraw.ImageDraw,
    layout: TextLayout,
    x: int,
    y: int,
    bold: bool,
    fill: RGB,
    center_in: int | None = None,
) -> None:
    font = load_font(layout.size, bold=bold)
    ascent, _ = font.getmetrics()
    for index, line in enumerate(layout.lines):
        left = x if center_in is None else x + (center_in - math.ceil(font.getlength(line))) // 2
        draw.text((left, y + index * layout.line_height + ascent), line, font=font, fill=fill, anchor="ls")


def _fit(text: str, font: Font, box: tuple[int, int], what: str) -> TextLayout:
    try:
        return fit_text(text, font, box)
    except OverlayError:
        raise SlideError(
            f"{what} {text!r} does not fit in {font.max_lines} line(s) of a {box[0]}x{box[1]} px "
            f"area even at the minimum size {font.min_size} px; shorten it"
        ) from None


def _title(draw: ImageDraw.ImageDraw, title: str, box: Box, look: Look, height: int) -> int:
    """Draw the slide title at the top of `box` with an accent rule under it; returns the y below the rule."""
    font = _font(look, round(MIN_TITLE_PX * height), round(0.085 * height), 2, bold=True)
    layout = _fit(title, font, (box.w, round(0.24 * height)), "title")
    _draw_layout(draw, layout, box.x, box.y, True, look.text)
    rule_y = box.y + layout.height + round(0.03 * height)
    draw.rectangle(
        (box.x, rule_y, box.x + round(0.09 * box.w + 40), rule_y + max(2, round(0.006 * height))),
        fill=look.accent,
    )
    return rule_y + round(0.05 * height)


def fit_bullets(
    bullets: tuple[str, ...], width: int, height: int, look: Look, frame_height: int
) -> tuple[int, list[TextLayout]]:
    """The largest common size at which every bullet wraps into BULLET_MAX_LINES and all fit the area."""
    minimum, maximum = round(MIN_BULLET_PX * frame_height), round(0.06 * frame_height)

    def attempt(size: int) -> list[TextLayout] | None:
        font = _font(look, size, size, BULLET_MAX_LINES, bold=False, spacing=1.18)
        indent = round(1.4 * size)
        layouts = []
        for bullet in bullets:
            layout = layout_at(bullet, font, size, (width - indent, height))
            if layout is None:
                return None
            layouts.append(layout)
        total = sum(layout.height for layout in layouts) + round(0.55 * size) * (len(layouts) - 1)
        return layouts if total <= height else None

    best = attempt(minimum)
    if best is None:
        raise SlideError(
            f"the {len(bullets)} bullet(s) do not fit a {width}x{height} px area in up to "
            f"{BULLET_MAX_LINES} lines each even at the minimum size {minimum} px; shorten them "
            "or split the slide"
        )
    low, high = minimum, maximum
    while low < high:  # more space per size only ever fits fewer words per line, so fitting is monotone
        middle = (low + high + 1) // 2
        layouts = attempt(middle)
        if layouts is None:
            high = middle - 1
        else:
            low, best = middle, layouts
    return low, best


def render_slide(
    title: str, bullets: tuple[str, ...], size: tuple[int, int], look: Look, with_presenter: bool = False
) -> np.ndarray:
    """A slide as (h, w, 3) RGB: title (and accent rule) over bullets; a title alone is set large and centred."""
    _width, height = size
    image = Image.fromarray(background(size, look))
    draw = ImageDraw.Draw(image)
    box = content_box(size, with_presenter)
    if not bullets:
        font = _font(look, round(MIN_TITLE_PX * height), round(0.11 * height), 3, bold=True)
        layout = _fit(title, font, (box.w, round(0.5 * height)), "title")
        top = (height - layout.height) // 2 - round(0.03 * height)
        _draw_layout(draw, layout, box.x, top, True, look.text)
        rule_y = top + layout.height + round(0.04 * height)
        draw.rectangle(
            (box.x, rule_y, box.x + round(0.12 * box.w), rule_y + max(2, round(0.008 * height))),
            fill=look.accent,
        )
        return np.asarray(image)
    below = _title(draw, title, box, look, height)
    area_h = box.y + box.h - below
    size_px, layouts = fit_bullets(bullets, box.w, area_h, look, height)
    y = below
    for layout in layouts:
        font = load_font(layout.size)
        ascent, _ = font.getmetrics()
        radius = max(2, round(0.16 * size_px))
        center_y = y + ascent - round(0.36 * size_px)
        dot_x = box.x + round(0.35 * size_px)
        draw.ellipse((dot_x - radius, center_y - radius, dot_x + radius, center_y + radius), fill=look.accent)
        _draw_layout(draw, layout, box.x + round(1.4 * size_px), y, False, look.text)
        y += layout.height + round(0.55 * size_px)
    return np.asarray(image)


def render_picture(
    image_bytes: bytes, title: str | None, size: tuple[int, int], look: Look, with_presenter: bool = False
) -> np.ndarray:
    """A picture fitted (aspect kept) into the content area, under an optional title."""
    try:
        picture = open_image(image_bytes)
    except OverlayError as error:
        raise SlideError(f"picture: {error.reason}") from None
    _width, height = size
    image = Image.fromarray(background(size, look))
    draw = ImageDraw.Draw(image)
    box = content_box(size, with_presenter)
    top = _title(draw, title, box, look, height) if title else box.y
    area = Box(box.x, top, box.w, box.y + box.h - top)
    scale = min(area.w / picture.width, area.h / picture.height)
    fitted_size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    fitted = picture.convert("RGBa").resize(fitted_size, Image.Resampling.LANCZOS).convert("RGBA")
    image.paste(
        fitted, (area.x + (area.w - fitted_size[0]) // 2, area.y + (area.h - fitted_size[1]) // 2), fitted
    )
    return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class ClipCard:
    """Where a product clip goes on its card, and the card itself (background and product title plate)."""

    still: np.ndarray  # (h, w, 3) RGB card without the clip
    clip_box: Box


def product_card(
    title: str, clip_size: tuple[int, int], size: tuple[int, int], look: Look, with_presenter: bool = False
) -> ClipCard:
    """A card for a product clip: the clip fitted into the content area, the product title on a plate."""
    width, height = size
    image = Image.fromarray(background(size, look))
    box = content_box(size, with_presenter)
    plate_h = round(0.12 * height)
    area = Box(box.x, box.y, box.w, box.h - plate_h - round(0.02 * height))
    scale = min(area.w / clip_size[0], area.h / clip_size[1])
    clip_w, clip_h = 2 * max(1, round(clip_size[0] * scale / 2)), 2 * max(1, round(clip_size[1] * scale / 2))
    clip_box = Box(
        2 * ((area.x + (area.w - clip_w) // 2) // 2),
        2 * ((area.y + (area.h - clip_h) // 2) // 2),
        clip_w,
        clip_h,
    )
    font = _font(look, round(MIN_BULLET_PX * height), round(0.05 * height), 1, bold=True)
    layout = _fit(title, font, (box.w - round(0.04 * width), plate_h), "product title")
    draw = ImageDraw.Draw(image)
    plate_top = clip_box.y + clip_box.h + round(0.02 * height)
    pad = round(0.015 * width)
    # Under the clip's left edge when the title fits there, else at the content area's edge.
    left = clip_box.x if clip_box.x + layout.width + 2 * pad <= box.x + box.w else box.x
    draw.rounded_rectangle(
        (left, plate_top, left + layout.width + 2 * pad, plate_top + layout.height + 2 * pad),
        radius=pad,
        fill=look.accent,
    )
    _draw_layout(draw, layout, left + pad, plate_top + pad, True, (255, 255, 255))
    return ClipCard(np.asarray(image), clip_box)


def frame_presenter(still: np.ndarray, size: tuple[int, int], look: Look) -> np.ndarray:
    """The still with a rounded accent frame around the presenter's square (the clip is pasted inside it)."""
    box = presenter_box(size)
    border = max(2, round(0.006 * size[1]))
    image = Image.fromarray(still)
    ImageDraw.Draw(image).rounded_rectangle(
        (
            box.x - 2 * border,
            box.y - 2 * border,
            box.x + box.w + 2 * border - 1,
            box.y + box.h + 2 * border - 1,
        ),
        radius=3 * border,
        fill=look.accent,
    )
    return np.asarray(image)


def render_title_card(title: str, subtitle: str, size: tuple[int, int], look: Look) -> np.ndarray:
    """The module's poster: its title centred, a subtitle (chapters, length) under an accent rule."""
    width, height = size
    image = Image.fromarray(background(size, look))
    draw = ImageDraw.Draw(image)
    box = content_box(size, False)
    font = _font(look, round(MIN_TITLE_PX * height), round(0.12 * height), 3, bold=True)
    layout = _fit(title, font, (box.w, round(0.5 * height)), "module title")
    sub_font = _font(look, round(MIN_BULLET_PX * height), round(0.045 * height), 1, bold=False)
    sub_layout = _fit(subtitle, sub_font, (box.w, round(0.1 * height)), "subtitle")
    gap = round(0.06 * height)
    top = (height - layout.height - gap - sub_layout.height) // 2
    _draw_layout(draw, layout, box.x, top, True, look.text, center_in=box.w)
    rule_y = top + layout.height + gap // 2 - 2
    draw.rectangle(
        (
            width // 2 - round(0.06 * width),
            rule_y,
            width // 2 + round(0.06 * width),
            rule_y + max(2, round(0.006 * height)),
        ),
        fill=look.accent,
    )
    _draw_layout(draw, sub_layout, box.x, top + layout.height + gap, False, look.accent, center_in=box.w)
    return np.asarray(image)
