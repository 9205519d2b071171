"""Procedural product packshots and brand logos: sample media that reads like studio photography.

Products are drawn at twice the requested size and downscaled with LANCZOS, so every edge is smooth.
Each sits centred on pure white with a subtle contact shadow. Because the cut-out step separates
product from background by flood fill from the border, every product keeps a >= 6% margin, gets a
slightly darker rim, and never uses pure white: white parts are off-white (246 or darker).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw

from videokit.media.text import load_font

RGB = tuple[int, int, int]

PRODUCT_KINDS: dict[str, str] = {
    "bottle": "beverage",
    "can": "beverage",
    "mug": "kitchen",
    "kettle": "kitchen",
    "sneaker": "footwear",
    "headphones": "audio",
    "speaker": "audio",
    "watch": "accessories",
    "backpack": "accessories",
    "lamp": "home",
}

_SUPERSAMPLE = 2
_OFF_WHITE_LEVEL = 246  # the brightest any product pixel gets, so none passes for the white background
_OFF_WHITE = (_OFF_WHITE_LEVEL,) * 3
_BRIGHTEST = _OFF_WHITE_LEVEL / 255
_RIM_DARKENING = 0.28
_LIGHTING_TABLE = 256
_SHADOW_STRENGTH = 0.16
_SHADOW_DEPTH = 0.025
_PROFILE_SMOOTHING = 0.002
_LIGHT = np.array([-0.45, -0.6, 0.66], dtype=np.float32) / np.linalg.norm([-0.45, -0.6, 0.66])

Normals = tuple[np.ndarray, np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- materials and light


@dataclass(frozen=True)
class _Finish:
    """How a surface answers the studio light: diffuse share, reflection strength and blur, metal or not."""

    ambient: float
    diffuse: float
    specular: float
    spread: float = 1.0  # > 1 blurs the softbox reflections, as on rougher surfaces
    metal: bool = False


_GLASS = _Finish(ambient=0.30, diffuse=0.55, specular=0.95, spread=0.8)
_GLOSS = _Finish(ambient=0.40, diffuse=0.60, specular=0.55, spread=1.0)
_SATIN = _Finish(ambient=0.40, diffuse=0.62, specular=0.20, spread=1.6)
_MATTE = _Finish(ambient=0.45, diffuse=0.58, specular=0.05, spread=2.2)
_METAL = _Finish(ambient=0.20, diffuse=0.25, specular=0.85, spread=1.0, metal=True)
_BRUSHED = _Finish(ambient=0.30, diffuse=0.35, specular=0.55, spread=1.8, metal=True)


def _softbox(rx: np.ndarray, ry: np.ndarray, cx: float, cy: float, wx: float, wy: float) -> np.ndarray:
    # A fourth-power falloff gives the flat-topped, soft-edged reflection of a rectangular softbox.
    qx = ((rx - cx) / wx) ** 2
    qy = ((ry - cy) / wy) ** 2
    return np.exp(-(qx * qx + qy * qy))


def _studio_reflection(rx: np.ndarray, ry: np.ndarray, spread: float) -> np.ndarray:
    """Brightness of the studio seen in a mirror direction: key softbox left, strip light right, top light."""
    key = _softbox(rx, ry, -0.52, -0.28, 0.24 * spread, 0.5 * spread)
    strip = _softbox(rx, ry, 0.80, -0.05, 0.07 * spread, 0.7 * spread)
    top = _softbox(rx, ry, 0.0, -0.88, 0.5 * spread, 0.14 * spread)
    return key + 0.55 * strip + 0.35 * top


@cache
def _lighting(finish: _Finish) -> np.ndarray:
    """How a finish looks for every facing direction: an (n, n, 2) table indexed by (ny, nx) in -1..1.

    Channel 0 multiplies the base colour, channel 1 adds white. Lighting depends on the normal
    alone, so a table sampled per pixel replaces dozens of full-image operations.
    """
    axis = np.linspace(-1.0, 1.0, _LIGHTING_TABLE, dtype=np.float32)
    nx, ny = axis[None, :], axis[:, None]
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    lambert = np.clip((nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2] + 0.25) / 1.25, 0.0, 1.0)
    rx, ry = 2 * nz * nx, 2 * nz * ny  # mirror direction for a viewer looking along -z
    reflection = _studio_reflection(rx, ry, finish.spread)
    if finish.metal:
        # Metals show the studio itself: bright above, a dark horizon band, tinted by the metal colour.
        sky = np.clip(0.55 - 0.45 * ry, 0.0, 1.0) * (1.0 - 0.55 * np.exp(-(((ry - 0.2) / 0.18) ** 2)))
        multiply = finish.ambient + finish.diffuse * lambert + 0.6 * sky + finish.specular * reflection
        add = 0.25 * finish.specular * reflection
    else:
        multiply = finish.ambient + finish.diffuse * lambert
        add = 0.92 * finish.specular * reflection
    return np.dstack([multiply, add]).astype(np.float32)


@lru_cache(maxsize=256)
def _coloured_lighting(finish: _Finish, color: tuple[float, float, float]) -> np.ndarray:
    """The lit RGB of a plain-coloured surface for every facing direction, laid out like `_lighting`."""
    table = _lighting(finish)
    return np.minimum(table[..., :1] * np.asarray(color, np.float32) + table[..., 1:], _BRIGHTEST)


def _shade(normals: Normals, base: np.ndarray, finish: _Finish, tone: np.ndarray | None = None) -> np.ndarray:
    """Light a surface; returns (h, w, 3) RGB in 0..1.

    base is an RGB triple or an (h, w, 3) texture; tone an optional (h, w) brightness multiplier
    (weave, glow). A plain colour is one lookup per pixel in a table of lit colours.
    """
    nx, ny, _ = normals
    scale = (_LIGHTING_TABLE - 1) / 2
    map_x, map_y = (nx + 1.0) * scale, (ny + 1.0) * scale
    if base.ndim == 1:
        table = _coloured_lighting(finish, tuple(float(c) for c in base))
        rgb = cv2.remap(table, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        light = cv2.remap(_lighting(finish), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        multiply, add = cv2.split(light)
        rgb = cv2.add(cv2.multiply(base, cv2.merge([multiply] * 3)), cv2.merge([add] * 3))
    if tone is not None:
        rgb = cv2.multiply(rgb, cv2.merge([tone] * 3))
    return np.minimum(rgb, _BRIGHTEST, out=rgb)


def _rgb(color: RGB) -> np.ndarray:
    return np.asarray(color, dtype=np.float32) / 255.0


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _scaled(color: RGB, factor: float) -> RGB:
    return _at_most_off_white(tuple(round(c * factor) for c in color))  # type: ignore[arg-type]


def _at_most_off_white(color: RGB) -> RGB:
    return tuple(min(_OFF_WHITE_LEVEL, int(c)) for c in color)  # type: ignore[return-value]


def _luma(color: RGB) -> float:
    return (0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]) / 255.0


def _ink_on(color: RGB) -> RGB:
    """A legible print colour on top of `color`."""
    return (236, 233, 226) if _luma(color) < 0.55 else (32, 32, 34)


# --------------------------------------------------------------------------- canvas and regions


@dataclass
class _Region:
    """A rectangle of the canvas (pixel offset x0, y0) with per-pixel coverage `alpha` in 0..1."""

    x0: int
    y0: int
    alpha: np.ndarray

    @property
    def height(self) -> int:
        return self.alpha.shape[0]

    @property
    def width(self) -> int:
        return self.alpha.shape[1]

    def with_alpha(self, alpha: np.ndarray) -> _Region:
        return _Region(self.x0, self.y0, alpha.astype(np.float32, copy=False))

    def covered_window(self) -> tuple[slice, slice] | None:
        """Rows and columns of the smallest box holding all covered pixels; None when empty."""
        covered = self.alpha > 0
        rows = np.flatnonzero(covered.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(covered.any(axis=0))
        return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)

    def cropped(self, window: tuple[slice, slice]) -> _Region:
        return _Region(self.x0 + window[1].start, self.y0 + window[0].start, self.alpha[window])


class _Canvas:
    """Premultiplied RGB on black plus coverage, at supersampled resolution; coordinates are in 0..1."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.px = size * _SUPERSAMPLE
        self.rgb = np.zeros((self.px, self.px, 3), dtype=np.float32)
        self.cover = np.zeros((self.px, self.px), dtype=np.float32)
        self.shadow = np.zeros((self.px, self.px), dtype=np.float32)  # darkening of the white sweep
        self.rng = np.random.default_rng(seed)
        self.box = [self.px, self.px, 0, 0]

    def region(self, x0: float, y0: float, x1: float, y1: float, pad: int = 4) -> _Region:
        """An empty region covering the unit-space box, padded and clipped to the canvas."""
        left = max(0, math.floor(x0 * self.px) - pad)
        top = max(0, math.floor(y0 * self.px) - pad)
        right = min(self.px, math.ceil(x1 * self.px) + pad)
        bottom = min(self.px, math.ceil(y1 * self.px) + pad)
        return _Region(left, top, np.zeros((bottom - top, right - left), dtype=np.float32))

    def grid(self, region: _Region) -> tuple[np.ndarray, np.ndarray]:
        """Unit-space x (1, w) and y (h, 1) of the pixel centres of a region."""
        xs = (np.arange(region.width, dtype=np.float32) + region.x0 + 0.5) / self.px
        ys = (np.arange(region.height, dtype=np.float32) + region.y0 + 0.5) / self.px
        return xs[None, :], ys[:, None]

    def shade(
        self, region: _Region, normals: Normals, base, finish: _Finish, tone: np.ndarray | None = None
    ) -> None:
        """Light the covered part of a region and paint it.

        base is an RGB triple in 0..1 or an (h, w, 3) texture; tone an optional (h, w) multiplier;
        normals, texture and tone are aligned with the region.
        """
        window = region.covered_window()
        if window is None:
            return
        region = region.cropped(window)
        base = np.asarray(base, dtype=np.float32)
        if np.count_nonzero(region.alpha) < 0.3 * region.alpha.size:
            covered = np.nonzero(region.alpha)

            # Thin strokes (seams, zips) cover little of their box: shade just their pixels.
            def gather(values: np.ndarray) -> np.ndarray:
                return _as_rows(values[window][covered])

            lit = _shade(
                tuple(gather(n) for n in normals),
                gather(base) if base.ndim == 3 else base,
                finish,
                None if tone is None else gather(tone),
            )
            self._paint_pixels(region, covered, lit.reshape(-1, 3)[: covered[0].size])
            return
        if base.ndim == 3:
            base = np.ascontiguousarray(base[window])
        if tone is not None:
            tone = np.ascontiguousarray(tone[window])
        self.paint(region, _shade(tuple(n[window] for n in normals), base, finish, tone))

    def paint(self, region: _Region, rgb: np.ndarray) -> None:
        y, x, h, w = region.y0, region.x0, region.height, region.width
        a = np.ascontiguousarray(region.alpha)
        keep = 1.0 - a
        target = self.rgb[y : y + h, x : x + w]
        cv2.blendLinear(np.ascontiguousarray(rgb, dtype=np.float32), target, a, keep, dst=target)
        cover = self.cover[y : y + h, x : x + w]
        cv2.blendLinear(np.ones_like(a), cover, a, keep, dst=cover)
        self._grow_box(region)

    def _paint_pixels(self, region: _Region, pixels: tuple[np.ndarray, np.ndarray], rgb: np.ndarray) -> None:
        """Paint just the listed (rows, cols) of a region with (n, 3) colours."""
        a = region.alpha[pixels]
        rows, cols = pixels[0] + region.y0, pixels[1] + region.x0
        self.rgb[rows, cols] += (rgb - self.rgb[rows, cols]) * a[:, None]
        self.cover[rows, cols] += a * (1.0 - self.cover[rows, cols])
        self._grow_box(region)

    def _grow_box(self, region: _Region) -> None:
        x, y = region.x0, region.y0
        self.box = [
            min(self.box[0], x),
            min(self.box[1], y),
            max(self.box[2], x + region.width),
            max(self.box[3], y + region.height),
        ]

    def occlude(
        self, region: _Region, strength: float, blur: float, dx: float = 0.0, dy: float = 0.0
    ) -> None:
        """Darken what is already painted under a soft, offset copy of the region (ambient occlusion)."""
        window = region.covered_window()
        if window is None:
            return
        region = region.cropped(window)
        blur_px = max(1.0, blur * self.px)
        pad = int(blur_px * 3 + abs(dx * self.px) + abs(dy * self.px)) + 2
        y0, x0 = max(0, region.y0 - pad), max(0, region.x0 - pad)
        y1 = min(self.px, region.y0 + region.height + pad)
        x1 = min(self.px, region.x0 + region.width + pad)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        _paste_max(
            mask, region.alpha, region.x0 - x0 + round(dx * self.px), region.y0 - y0 + round(dy * self.px)
        )
        _scale_rgb(self.rgb[y0:y1, x0:x1], 1.0 - strength * _blur(mask, blur_px))

    def contact_shadow(self, cx: float, floor: float, half_width: float) -> None:
        """A faint, soft ellipse where the product meets the white sweep at height `floor`.

        It ends exactly at its ellipse, so the margin stays pure white, and fades gently enough
        (about 2 levels per pixel) for a flood fill from the border to follow it.
        """
        depth = _SHADOW_DEPTH
        region = self.region(cx - half_width, floor - depth, cx + half_width, floor + depth)
        xs, ys = self.grid(region)
        falloff = np.clip(1.0 - ((xs - cx) / half_width) ** 2 - ((ys - floor) / depth) ** 2, 0.0, 1.0)
        target = self.shadow[region.y0 : region.y0 + region.height, region.x0 : region.x0 + region.width]
        np.maximum(target, _SHADOW_STRENGTH * falloff * falloff, out=target)

    def darken_rim(self) -> None:
        """Give the silhouette a slightly darker 1-2 px edge so it never merges with the white sweep."""
        x0, y0, x1, y1 = self._padded_box()
        cover = self.cover[y0:y1, x0:x1]
        rim = cover - cv2.erode(cover, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        edge = np.nonzero(rim > 0)
        self.rgb[y0:y1, x0:x1][edge] *= (1.0 - _RIM_DARKENING * rim[edge])[:, None]

    def _padded_box(self) -> tuple[int, int, int, int]:
        # Even bounds and white padding wider than the LANCZOS kernel, so resampling just this box
        # gives the same pixels as resampling the whole canvas.
        pad = 16
        x0 = max(0, (self.box[0] - pad) // 2 * 2)
        y0 = max(0, (self.box[1] - pad) // 2 * 2)
        x1 = min(self.px, (self.box[2] + pad + 1) // 2 * 2)
        y1 = min(self.px, (self.box[3] + pad + 1) // 2 * 2)
        return x0, y0, x1, y1

    def to_image(self, transparent: bool) -> Image.Image:
        x0, y0, x1, y1 = self._padded_box()
        rgb = self.rgb[y0:y1, x0:x1]
        cover = self.cover[y0:y1, x0:x1]
        crop_size = ((x1 - x0) // _SUPERSAMPLE, (y1 - y0) // _SUPERSAMPLE)
        offset = (x0 // _SUPERSAMPLE, y0 // _SUPERSAMPLE)
        # LANCZOS overshoots a little next to dark edges; clamping afterwards keeps every product
        # pixel off-white, so no highlight can pass for background or a hole in the product.
        solid = cv2.resize(cover, crop_size, interpolation=cv2.INTER_AREA) >= 0.5
        ceiling = np.where(solid, np.uint8(_OFF_WHITE_LEVEL), np.uint8(255))[..., None]
        if transparent:
            # Premultiplied resampling keeps edge pixels free of a white or black fringe.
            rgba = np.dstack([rgb, cover])
            crop = np.array(
                _premultiplied_image(rgba).resize(crop_size, Image.Resampling.LANCZOS).convert("RGBA")
            )
            np.minimum(crop[..., :3], ceiling, out=crop[..., :3])
            image = Image.new("RGBA", (self.size, self.size), (255, 255, 255, 0))
        else:
            background = (1.0 - cover) * (1.0 - self.shadow[y0:y1, x0:x1])
            composite = cv2.add(rgb, cv2.merge([background] * 3))
            crop = np.array(Image.fromarray(_to_bytes(composite)).resize(crop_size, Image.Resampling.LANCZOS))
            np.minimum(crop, ceiling, out=crop)
            image = Image.new("RGB", (self.size, self.size), (255, 255, 255))
        image.paste(Image.fromarray(crop), offset)
        return image


def _as_rows(values: np.ndarray) -> np.ndarray:
    """Lay a list of pixels out as rows of an image (OpenCV caps image sides at 32767)."""
    width = 1024
    padded = np.zeros((-(-len(values) // width) * width, *values.shape[1:]), np.float32)
    padded[: len(values)] = values
    return padded.reshape(-1, width, *values.shape[1:])


def _scale_rgb(rgb: np.ndarray, factor: np.ndarray) -> None:
    """Multiply an (h, w, 3) view in place by an (h, w) factor."""
    cv2.multiply(rgb, cv2.merge([np.ascontiguousarray(factor, dtype=np.float32)] * 3), dst=rgb)


def _premultiplied_image(rgba: np.ndarray) -> Image.Image:
    """An RGBa (premultiplied) image from (h, w, 4) floats, so resampling leaves no fringe at edges."""
    return Image.frombytes("RGBa", (rgba.shape[1], rgba.shape[0]), _to_bytes(rgba).tobytes())


def _to_bytes(values: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(np.ascontiguousarray(values), alpha=255.0)


def _paste_max(target: np.ndarray, source: np.ndarray, ox: int, oy: int) -> None:
    """Merge source into target at offset (ox, oy), keeping the larger value; clipped to target."""
    h, w = source.shape
    ty0, tx0 = max(0, oy), max(0, ox)
    ty1, tx1 = min(target.shape[0], oy + h), min(target.shape[1], ox + w)
    if ty1 > ty0 and tx1 > tx0:
        window = target[ty0:ty1, tx0:tx1]
        np.maximum(window, source[ty0 - oy : ty1 - oy, tx0 - ox : tx1 - ox], out=window)


def _blur(values: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur; wide blurs run at reduced resolution, which looks the same and is far faster."""
    factor = int(np.clip(sigma_px // 3, 1, 8))
    if factor == 1:
        return cv2.GaussianBlur(values, (0, 0), sigma_px)
    padded, shape = _pad_to_multiple(values, factor)
    small = cv2.resize(
        padded, (padded.shape[1] // factor, padded.shape[0] // factor), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / factor)
    return cv2.resize(small, (padded.shape[1], padded.shape[0]), interpolation=cv2.INTER_LINEAR)[
        : shape[0], : shape[1]
    ]


def _pad_to_multiple(values: np.ndarray, factor: int) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = values.shape[:2]
    return np.pad(values, ((0, -h % factor), (0, -w % factor))), (h, w)


# --------------------------------------------------------------------------- shapes


def _draw_mask(
    cv: _Canvas, region: _Region, draw: Callable[[ImageDraw.ImageDraw, Callable, float], None]
) -> np.ndarray:
    """Rasterise PIL drawing over a region at twice its resolution and reduce, for anti-aliased edges.

    `draw` gets the ImageDraw, a function mapping unit coordinates to its pixels, and pixels per unit.
    """
    factor = 2
    image = Image.new("L", (region.width * factor, region.height * factor), 0)
    scale = cv.px * factor

    def to_px(x: float, y: float) -> tuple[float, float]:
        return ((x * cv.px - region.x0) * factor, (y * cv.px - region.y0) * factor)

    draw(ImageDraw.Draw(image), to_px, scale)
    return np.asarray(image.reduce(factor), dtype=np.float32) / 255.0


def _polygon(cv: _Canvas, points: list[tuple[float, float]]) -> _Region:
    xs, ys = zip(*points)
    region = cv.region(min(xs), min(ys), max(xs), max(ys))
    alpha = _draw_mask(cv, region, lambda d, p, _: d.polygon([p(x, y) for x, y in points], fill=255))
    return region.with_alpha(alpha)


def _strokes(cv: _Canvas, lines: list[list[tuple[float, float]]], width: float) -> _Region:
    """Round-jointed polylines of the given width (unit space), e.g. seams, zipper tape, grooves."""
    xs, ys = zip(*(point for line in lines for point in line))
    region = cv.region(min(xs) - width, min(ys) - width, max(xs) + width, max(ys) + width)

    def draw(d: ImageDraw.ImageDraw, p: Callable, scale: float) -> None:
        for line in lines:
            d.line([p(x, y) for x, y in line], fill=255, width=max(1, round(width * scale)), joint="curve")

    return region.with_alpha(_draw_mask(cv, region, draw))


def _rounded_rect(cv: _Canvas, box: tuple[float, float, float, float], radius: float) -> _Region:
    region = cv.region(*box)

    def draw(d: ImageDraw.ImageDraw, p: Callable, scale: float) -> None:
        d.rounded_rectangle((*p(box[0], box[1]), *p(box[2], box[3])), radius=radius * scale, fill=255)

    return region.with_alpha(_draw_mask(cv, region, draw))


def _ellipse(cv: _Canvas, cx: float, cy: float, a: float, b: float) -> _Region:
    """An analytically anti-aliased ellipse with semi-axes a, b (unit space)."""
    region = cv.region(cx - a, cy - b, cx + a, cy + b)
    xs, ys = cv.grid(region)
    u, v = (xs - cx) / a, (ys - cy) / b
    d = np.sqrt(u * u + v * v) + 1e-6
    gradient = np.sqrt((u / a) ** 2 + (v / b) ** 2) / d + 1e-6
    return region.with_alpha(np.clip((1.0 - d) / gradient * cv.px + 0.5, 0.0, 1.0))


def _clip(surface: _Region, shape: _Region) -> _Region:
    """The part of `shape` lying on `surface`, aligned with the surface so its normals apply."""
    alpha = np.zeros_like(surface.alpha)
    _paste_max(alpha, shape.alpha, shape.x0 - surface.x0, shape.y0 - surface.y0)
    return surface.with_alpha(alpha * surface.alpha)


def _cut(shape: _Region, hole: _Region) -> _Region:
    """`shape` with `hole` removed."""
    removed = _clip(shape.with_alpha(np.ones_like(shape.alpha)), hole).alpha
    return shape.with_alpha(shape.alpha * (1.0 - removed))


def _catmull_rom(
    points: list[tuple[float, float]], closed: bool = True, samples: int = 10
) -> list[tuple[float, float]]:
    """A smooth curve through the points; used to outline organic shapes such as shoes and spouts."""
    pts = np.asarray(points, dtype=np.float64)
    if closed:
        extended = np.vstack([pts[-1], pts, pts[0], pts[1]])
        segments = len(pts)
    else:
        extended = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
        segments = len(pts) - 1
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None]
    curve = []
    for i in range(segments):
        p0, p1, p2, p3 = extended[i : i + 4]
        curve.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    if not closed:
        curve.append(pts[-1:])
    return [tuple(p) for p in np.vstack(curve)]


def _bezier(p0, p1, p2, p3, samples: int = 40) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 1.0, samples)[:, None]
    a, b, c, d = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2, p3))
    return [tuple(p) for p in (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d]


def _tube(centerline: list[tuple[float, float]], widths: tuple[float, float]) -> list[tuple[float, float]]:
    """Outline of a band whose width tapers linearly along a polyline."""
    pts = np.asarray(centerline, dtype=np.float64)
    tangents = np.gradient(pts, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    normals = np.stack([-tangents[:, 1], tangents[:, 0]], axis=1)
    half = np.linspace(widths[0], widths[1], len(pts))[:, None] / 2
    return [tuple(p) for p in np.vstack([pts + normals * half, (pts - normals * half)[::-1]])]


# --------------------------------------------------------------------------- surface normals


def _normalize(nx: np.ndarray, ny: np.ndarray, nz: np.ndarray) -> Normals:
    length = np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-6
    return nx / length, ny / length, nz / length


def _inflated(cv: _Canvas, region: _Region, radius: float, tilt: tuple[float, float] = (0.0, 0.0)) -> Normals:
    """Normals of a soft, pillow-like volume whose edges round over `radius` (unit space).

    Computed at reduced resolution for wide radii: the normals are smooth there anyway.
    """
    radius_px = max(2.0, radius * cv.px)
    factor = int(np.clip(radius_px // 8, 1, 6))
    alpha, shape = _pad_to_multiple(region.alpha, factor)
    if factor > 1:
        alpha = cv2.resize(
            alpha, (alpha.shape[1] // factor, alpha.shape[0] // factor), interpolation=cv2.INTER_AREA
        )
    r = radius_px / factor
    distance = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(distance / r, 0.0, 1.0)
    height = cv2.GaussianBlur(r * np.sqrt(1.0 - (1.0 - t) ** 2), (0, 0), r * 0.2 + 1.0)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    normals = _normalize(tilt[0] - gx, tilt[1] - gy, np.ones_like(gx))
    if factor == 1:
        return normals
    size = (alpha.shape[1] * factor, alpha.shape[0] * factor)
    return tuple(cv2.resize(n, size, interpolation=cv2.INTER_LINEAR)[: shape[0], : shape[1]] for n in normals)


def _flat(region: _Region, tilt: tuple[float, float] = (0.0, 0.0)) -> Normals:
    shape = region.alpha.shape
    return _normalize(
        np.full(shape, tilt[0], np.float32), np.full(shape, tilt[1], np.float32), np.ones(shape, np.float32)
    )


def _radial(cv: _Canvas, region: _Region, cx: float, cy: float, radius: float, slope: Callable) -> Normals:
    """Normals of a round surface seen face on; slope(rho) is the outward lean at relative radius rho."""
    xs, ys = cv.grid(region)
    dx, dy = (xs - cx) / radius, (ys - cy) / radius
    rho = np.sqrt(dx * dx + dy * dy) + 1e-6
    lean = slope(np.clip(rho, 0.0, 1.0))
    return _normalize(dx / rho * lean, dy / rho * lean, np.ones_like(rho))


def _dome(rho: np.ndarray) -> np.ndarray:
    return rho / np.sqrt(np.clip(1.0 - rho * rho, 0.04, 1.0))


# --------------------------------------------------------------------------- surfaces of revolution


class _Lathe:
    """A surface of revolution about a vertical axis, seen slightly from above.

    `profile` lists (y, radius) knots top to bottom in unit space, joined by a smooth curve; `tilt`
    is the height-to-width ratio of its circular rims on screen. Provides coverage, normals and the
    (angle, height) coordinates used to wrap labels round it.
    """

    def __init__(self, cv: _Canvas, cx: float, profile: list[tuple[float, float]], tilt: float):
        self.cv, self.cx, self.tilt = cv, cx, tilt
        curve = np.asarray(_catmull_rom(profile, closed=False, samples=24))
        self.top, self.bottom = profile[0][0], profile[-1][0]
        ys = np.linspace(self.top, self.bottom, 800)
        radii = np.interp(ys, np.maximum.accumulate(curve[:, 0]), curve[:, 1]).astype(np.float32)
        # A slight blur rounds the kinks where the curve doubles back at close knots (a bottle's lip),
        # which would otherwise show as hard bands in the shading.
        sigma = _PROFILE_SMOOTHING / (ys[1] - ys[0])
        radii = cv2.GaussianBlur(radii.reshape(-1, 1), (1, 0), sigma, borderType=cv2.BORDER_REPLICATE).ravel()
        self.ys, self.radii = ys, radii
        slopes = np.gradient(radii, ys)
        r_max = float(radii.max())
        region = cv.region(
            cx - r_max, self.top - tilt * r_max, cx + r_max, self.bottom + tilt * float(radii[-1])
        )
        xs, y_screen = cv.grid(region)
        dx = xs - cx
        # Screen y = height + tilt * r(height) * cos(angle). One fixed-point step from the radius of
        # the screen row solves it closely enough, since the radius changes slowly with height.
        row_radius = np.interp(y_screen, ys, radii).astype(np.float32)
        height = y_screen - tilt * row_radius * np.sqrt(np.clip(1.0 - (dx / row_radius) ** 2, 0.0, 1.0))
        radius = np.interp(height, ys, radii).astype(np.float32)
        slope = np.interp(height, ys, slopes).astype(np.float32)
        self.height = height
        self.u = np.clip(dx / radius, -1.0, 1.0)
        edge = np.minimum(np.minimum(radius - np.abs(dx), self.bottom - self.height), self.height - self.top)
        self.region = region.with_alpha(np.clip(edge * cv.px + 0.5, 0.0, 1.0))
        c = np.sqrt(1.0 - self.u * self.u)
        self.normals = _normalize(self.u, -slope * c, c)

    def band(self, y0: float, y1: float) -> _Region:
        """The part of the surface between two heights, with soft edges."""
        edge = np.minimum(self.height - y0, y1 - self.height) * self.cv.px + 0.5
        return self.region.with_alpha(self.region.alpha * np.clip(edge, 0.0, 1.0))

    def radius_at(self, y: float) -> float:
        return float(np.interp(y, self.ys, self.radii))

    def rim(self, y: float, inset: float = 0.0) -> _Region:
        """The ellipse of the circular rim at height y (for tops and openings)."""
        r = self.radius_at(y) - inset
        return _ellipse(self.cv, self.cx, y, r, r * self.tilt)

    def paint(
        self,
        region: _Region,
        base,
        finish: _Finish,
        normals: Normals | None = None,
        tone: np.ndarray | None = None,
    ) -> None:
        self.cv.shade(region, normals or self.normals, base, finish, tone)

    def wrap_print(
        self, texture: np.ndarray, y0: float, y1: float, share: float
    ) -> tuple[np.ndarray, _Region]:
        """Wrap an opaque flat (h, w, 3) print round the front between heights y0 and y1.

        `share` is the part of the circumference the print spans (0.5 covers the visible half).
        Returns the wrapped print and the region it covers, both aligned with the surface.
        """
        rows, map_x, map_y = self._wrap_maps(texture.shape[:2], y0, y1, share)
        wrapped = np.zeros((*self.u.shape, 3), np.float32)
        wrapped[rows] = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        h, w = texture.shape[:2]
        inside = np.minimum(np.minimum(map_x, w - 1 - map_x), np.minimum(map_y, h - 1 - map_y)) + 0.5
        coverage = np.zeros_like(self.u)
        coverage[rows] = np.clip(inside, 0.0, 1.0)
        return wrapped, self.region.with_alpha(coverage * self.region.alpha)

    def wrap_mask(self, mask: np.ndarray, y0: float, y1: float, share: float) -> _Region:
        """Wrap a flat (h, w) mask (printed text, a logo) like `wrap_print`; returns the region it covers."""
        rows, map_x, map_y = self._wrap_maps(mask.shape, y0, y1, share)
        coverage = np.zeros_like(self.u)
        coverage[rows] = cv2.remap(
            mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        return self.region.with_alpha(coverage * self.region.alpha)

    def _wrap_maps(
        self, shape: tuple[int, int], y0: float, y1: float, share: float
    ) -> tuple[slice, np.ndarray, np.ndarray]:
        """Texture coordinates for the rows of the surface that reach heights y0..y1."""
        in_band = np.flatnonzero(((self.height >= y0) & (self.height <= y1)).any(axis=1))
        rows = slice(int(in_band[0]), int(in_band[-1]) + 1) if in_band.size else slice(0, 0)
        h, w = shape
        angle = np.arcsin(self.u[rows]) / (2 * math.pi * share)
        map_x = ((angle + 0.5) * (w - 1)).astype(np.float32)
        map_y = ((self.height[rows] - y0) / (y1 - y0) * (h - 1)).astype(np.float32)
        return rows, map_x, map_y

    def texture_size(self, y0: float, y1: float, share: float) -> tuple[int, int]:
        """(height, width) in pixels of a texture that maps about 1:1 onto that part of the surface."""
        r = self.radius_at((y0 + y1) / 2)
        return max(8, int((y1 - y0) * self.cv.px)), max(8, int(2 * math.pi * r * share * self.cv.px))


# --------------------------------------------------------------------------- text and textures


def _text_mask(text: str, width: int, height: int, bold: bool = True, fill: float = 0.9) -> np.ndarray:
    """Text centred in a (height, width) float mask, as large as fits `fill` of the box."""
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    size = max(6, int(height * fill))
    while True:
        font = load_font(size, bold)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if (right - left <= width * fill and bottom - top <= height * fill) or size <= 6:
            break
        size = max(6, int(size * 0.92))
    draw.text(
        ((width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top), text, font=font, fill=255
    )
    return np.asarray(image, dtype=np.float32) / 255.0


def _text_in(
    shape: tuple[int, int], text: str | None, box: tuple[float, float, float, float], bold: bool = True
) -> np.ndarray:
    """A (h, w) mask with text fitted into the fractional box (x0, y0, x1, y1) of it; empty without text."""
    mask = np.zeros(shape, np.float32)
    if text:
        h, w = shape
        x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
        mask[y0:y1, x0:x1] = _text_mask(text, x1 - x0, y1 - y0, bold=bold)
    return mask


def _rules(shape: tuple[int, int], positions: tuple[float, ...], thickness: float) -> np.ndarray:
    """Horizontal printed lines at fractional heights."""
    mask = np.zeros(shape, np.float32)
    for y in positions:
        top = int(y * shape[0])
        mask[top : top + max(1, int(thickness * shape[0])), :] = 1.0
    return mask


def _print(color: RGB, shape: tuple[int, int], layers: list[tuple[np.ndarray, RGB]]) -> np.ndarray:
    """A flat (h, w, 3) print: a base colour with (mask, colour) layers on top."""
    rgb = np.empty((*shape, 3), dtype=np.float32)
    rgb[:] = _rgb(color)
    for mask, layer_color in layers:
        window = _Region(0, 0, mask).covered_window()
        if window is not None:
            rgb[window] += (_rgb(layer_color) - rgb[window]) * mask[window][..., None]
    return rgb


def _fabric(cv: _Canvas, region: _Region, strength: float, period: float = 0.004) -> np.ndarray:
    """A fine woven texture: an (h, w) tone around 1.0, deterministic for the canvas seed."""
    xs, ys = cv.grid(region)
    weave = np.sin(xs * (2 * math.pi / period)) * np.sin(ys * (2 * math.pi / period))
    h, w = region.alpha.shape
    noise = cv.rng.standard_normal(((h + 1) // 2, (w + 1) // 2)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    return 1.0 + strength * (0.6 * weave + 0.8 * noise)


# --------------------------------------------------------------------------- products


@dataclass(frozen=True)
class _Style:
    color: RGB
    accent: RGB
    label: str | None


_BRASS: RGB = (196, 164, 98)
_STEEL: RGB = (196, 198, 202)
_RUBBER: RGB = (38, 38, 40)


def _top_face(
    cv: _Canvas, lathe: _Lathe, color: RGB, finish: _Finish, inset: float = 0.0, y: float | None = None
) -> None:
    """Paint the upward-facing disc closing a lathe at height y (its top by default)."""
    face = lathe.rim(lathe.top if y is None else y, inset)
    cv.shade(face, _flat(face, (0.0, -0.9)), _rgb(color), finish)


def _draw_bottle(cv: _Canvas, style: _Style) -> None:
    cx, tilt = 0.5, 0.10
    shoulder = [
        (0.30 + 0.14 * t, 0.042 + 0.108 * (0.5 - 0.5 * math.cos(math.pi * t))) for t in np.linspace(0.1, 1, 8)
    ]
    glass = _Lathe(
        cv,
        cx,
        [(0.165, 0.041), (0.19, 0.041), (0.192, 0.047), (0.205, 0.047), (0.208, 0.041), (0.30, 0.042)]
        + shoulder
        + [(0.87, 0.150), (0.885, 0.146), (0.893, 0.138)],
        tilt,
    )
    cv.contact_shadow(cx, 0.90, 0.15)
    glass.paint(glass.region, _rgb(style.color), _GLASS)
    y0, y1 = 0.53, 0.79
    shape = glass.texture_size(y0, y1, 0.36)
    ink = _ink_on(style.accent)
    paper = _print(
        style.accent,
        shape,
        [
            (_rules(shape, (0.08, 0.11, 0.88, 0.91), 0.008), ink),
            (_text_in(shape, style.label, (0.16, 0.32, 0.84, 0.62)), ink),
        ],
    )
    texture, label_area = glass.wrap_print(paper, y0, y1, 0.36)
    glass.paint(label_area, texture, _SATIN)
    glass.paint(glass.band(0.222, 0.275), _rgb(style.accent), _SATIN)
    cap = _Lathe(cv, cx, [(0.105, 0.046), (0.112, 0.052), (0.17, 0.052)], tilt)
    nx, ny, nz = cap.normals
    knurled = _normalize(nx + 0.18 * np.sin(np.arcsin(cap.u) * 70), ny, nz)
    metal = _mix(style.accent, _BRASS, 0.35)
    cv.occlude(cap.region, 0.35, 0.006, dy=0.006)
    cap.paint(cap.region, _rgb(metal), _METAL, knurled)
    _top_face(cv, cap, metal, _METAL, inset=0.004, y=cap.top + 0.001)


def _draw_can(cv: _Canvas, style: _Style) -> None:
    cx, tilt, r = 0.5, 0.16, 0.165
    can = _Lathe(
        cv, cx, [(0.17, 0.137), (0.183, 0.139), (0.235, r), (0.80, r), (0.812, 0.160), (0.835, 0.127)], tilt
    )
    cv.contact_shadow(cx, 0.85, 0.15)
    can.paint(can.region, _rgb(_STEEL), _METAL)
    y0, y1 = 0.232, 0.803
    h, w = shape = can.texture_size(y0, y1, 0.5)
    xs = np.linspace(0, 2 * math.pi, w, dtype=np.float32)[None, :]
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    wave = ((ys > 0.58 + 0.05 * np.sin(xs * 1.5)) & (ys < 0.78 + 0.04 * np.sin(xs * 1.5 + 1.2))).astype(
        np.float32
    )
    ink = _ink_on(style.color)
    printed = _print(
        style.color,
        shape,
        [
            (cv2.GaussianBlur(wave, (0, 0), 1.0), style.accent),
            (_text_in(shape, style.label, (0.16, 0.2, 0.84, 0.46)), ink),
            (_text_in(shape, "355 ml", (0.4, 0.86, 0.6, 0.93), bold=False), ink),
        ],
    )
    texture, printed_area = can.wrap_print(printed, y0, y1, 0.5)
    can.paint(printed_area, texture, _Finish(ambient=0.35, diffuse=0.6, specular=0.7, spread=0.9))
    _top_face(cv, can, _STEEL, _METAL)
    panel = can.rim(can.top + 0.004, inset=0.014)
    cv.occlude(panel, 0.3, 0.003, dy=-0.004)
    cv.shade(panel, _flat(panel, (0.05, -0.7)), _rgb(_scaled(_STEEL, 0.92)), _BRUSHED)
    tab = _ellipse(cv, cx, can.top + 0.004, 0.032, 0.032 * tilt * 1.6)
    cv.occlude(tab, 0.4, 0.002, dy=0.003)
    cv.shade(tab, _flat(tab, (0.0, -0.8)), _rgb(_STEEL), _METAL)
    cv.occlude(_ellipse(cv, cx, can.top + 0.014, 0.03, 0.03 * tilt * 1.1), 0.25, 0.0015)


def _draw_mug(cv: _Canvas, style: _Style) -> None:
    cx, tilt = 0.44, 0.22
    glaze = _rgb(style.color)
    handle = _polygon(
        cv, _tube(_bezier((0.58, 0.41), (0.83, 0.36), (0.85, 0.70), (0.58, 0.68)), (0.05, 0.05))
    )
    cv.contact_shadow(cx + 0.03, 0.832, 0.2)
    cv.shade(handle, _inflated(cv, handle, 0.025), glaze, _GLOSS)
    body = _Lathe(cv, cx, [(0.30, 0.19), (0.78, 0.179), (0.80, 0.170)], tilt)
    body.paint(body.region, glaze, _GLOSS)
    if style.label:
        y0, y1 = 0.45, 0.61
        shape = body.texture_size(y0, y1, 0.2)
        mark = body.wrap_mask(_text_in(shape, style.label, (0.0, 0.15, 1.0, 0.85)), y0, y1, 0.2)
        body.paint(mark, _rgb(_ink_on(style.color)), _GLOSS)
    _top_face(cv, body, style.color, _GLOSS)
    inside = body.rim(body.top + 0.002, inset=0.014)
    xs, ys = cv.grid(inside)
    # Only the far inner wall shows; it darkens towards the rim that shades it.
    depth = np.clip((ys - (body.top - 0.04)) / 0.08, 0.0, 1.0) * np.ones_like(xs)
    facing = _normalize(0.3 - 2.0 * (xs - cx) + 0 * ys, 0.4 + 0 * depth, np.ones_like(depth))
    cv.shade(inside, facing, _rgb(style.accent), _GLOSS, tone=0.55 + 0.45 * depth)
    cv.occlude(inside, 0.35, 0.006, dy=0.01)


def _draw_kettle(cv: _Canvas, style: _Style) -> None:
    cx, tilt = 0.5, 0.16
    enamel = _rgb(style.color)
    spout = _polygon(
        cv, _tube(_bezier((0.36, 0.69), (0.22, 0.68), (0.18, 0.52), (0.125, 0.42)), (0.08, 0.032))
    )
    cv.contact_shadow(cx, 0.866, 0.23)
    cv.shade(spout, _inflated(cv, spout, 0.03), enamel, _GLOSS)
    body = _Lathe(
        cv,
        cx,
        [
            (0.40, 0.115),
            (0.46, 0.19),
            (0.56, 0.238),
            (0.68, 0.255),
            (0.78, 0.247),
            (0.80, 0.236),
            (0.802, 0.232),
            (0.835, 0.225),
        ],
        tilt,
    )
    body.paint(body.region, enamel, _GLOSS)
    body.paint(body.band(0.802, 0.84), _rgb(_STEEL), _BRUSHED)
    lid = _Lathe(cv, cx, [(0.352, 0.05), (0.37, 0.085), (0.39, 0.108), (0.405, 0.116)], tilt)
    cv.occlude(lid.region, 0.3, 0.008, dy=0.01)
    lid.paint(lid.region, enamel, _GLOSS)
    _top_face(cv, lid, style.color, _GLOSS)
    knob = _Lathe(cv, cx, [(0.305, 0.020), (0.312, 0.029), (0.34, 0.030), (0.355, 0.015)], tilt)
    knob.paint(knob.region, _rgb(style.accent), _SATIN)
    _top_face(cv, knob, style.accent, _SATIN)
    handle = _polygon(
        cv, _tube(_bezier((0.31, 0.50), (0.31, 0.14), (0.69, 0.14), (0.69, 0.50)), (0.036, 0.036))
    )
    cv.occlude(handle, 0.25, 0.01, dy=0.012)
    cv.shade(handle, _inflated(cv, handle, 0.018), _rgb(style.accent), _SATIN)
    for x in (0.314, 0.686):
        pivot = _ellipse(cv, x, 0.485, 0.02, 0.02)
        cv.shade(pivot, _radial(cv, pivot, x, 0.485, 0.02, _dome), _rgb(_STEEL), _METAL)


# Side-view outlines of the sneaker's parts (unit space), joined by smooth curves.
# fmt: off
_SNEAKER_UPPER = [
    (0.14, 0.612), (0.106, 0.586), (0.114, 0.540), (0.16, 0.506), (0.27, 0.472), (0.38, 0.428),
    (0.47, 0.372), (0.530, 0.322), (0.552, 0.282), (0.595, 0.262), (0.622, 0.292), (0.665, 0.350),
    (0.74, 0.378), (0.81, 0.362), (0.862, 0.318), (0.888, 0.308), (0.904, 0.350), (0.912, 0.450),
    (0.905, 0.600), (0.70, 0.620), (0.40, 0.630),
]
_SNEAKER_MIDSOLE = [
    (0.100, 0.606), (0.113, 0.655), (0.16, 0.686), (0.30, 0.698), (0.55, 0.701), (0.80, 0.695),
    (0.897, 0.680), (0.913, 0.640), (0.911, 0.588), (0.85, 0.578), (0.65, 0.602), (0.40, 0.614),
    (0.22, 0.607), (0.13, 0.588),
]
_SNEAKER_OUTSOLE = [
    (0.105, 0.640), (0.14, 0.692), (0.25, 0.713), (0.50, 0.721), (0.75, 0.719), (0.88, 0.709),
    (0.907, 0.690), (0.90, 0.668), (0.70, 0.680), (0.40, 0.685), (0.20, 0.672), (0.12, 0.635),
]
_SNEAKER_TOE_CAP = [(0.09, 0.64), (0.09, 0.55), (0.15, 0.49), (0.215, 0.475), (0.25, 0.53), (0.245, 0.64)]
_SNEAKER_HEEL_COUNTER = [(0.785, 0.64), (0.795, 0.50), (0.835, 0.44), (0.93, 0.40), (0.93, 0.64)]
_SNEAKER_STRIPE = [(0.33, 0.62), (0.48, 0.55), (0.62, 0.45), (0.71, 0.40)]
_SNEAKER_EYESTAY = [(0.38, 0.46), (0.47, 0.395), (0.56, 0.325)]
_SNEAKER_COLLAR = [(0.60, 0.275), (0.632, 0.305), (0.672, 0.352), (0.74, 0.378), (0.81, 0.362), (0.868, 0.316)]
_SNEAKER_GROOVE = [(0.16, 0.662), (0.40, 0.672), (0.65, 0.668), (0.88, 0.655)]
# fmt: on


def _draw_sneaker(cv: _Canvas, style: _Style) -> None:
    cv.contact_shadow(0.5, 0.716, 0.4)
    outsole = _polygon(cv, _catmull_rom(_SNEAKER_OUTSOLE))
    cv.shade(outsole, _inflated(cv, outsole, 0.008), _rgb(_mix(style.accent, _RUBBER, 0.7)), _SATIN)
    upper = _polygon(cv, _catmull_rom(_SNEAKER_UPPER))
    normals = _inflated(cv, upper, 0.06)
    weave = _fabric(cv, upper, 0.04, period=0.004)
    cv.shade(upper, normals, _rgb(style.color), _SATIN, tone=weave)
    darker = _scaled(style.color, 0.72)
    overlays = [
        (_polygon(cv, _SNEAKER_TOE_CAP), darker),
        (_polygon(cv, _SNEAKER_HEEL_COUNTER), darker),
        (_polygon(cv, _tube(_catmull_rom(_SNEAKER_STRIPE, closed=False), (0.07, 0.03))), style.accent),
        (_polygon(cv, _tube(_SNEAKER_EYESTAY, (0.06, 0.05))), darker),
    ]
    for shape, color in overlays:
        overlay = _clip(upper, shape)
        cv.occlude(overlay, 0.25, 0.003, dy=0.002)
        cv.shade(overlay, normals, _rgb(color), _SATIN, tone=weave)
    collar = _polygon(cv, _tube(_catmull_rom(_SNEAKER_COLLAR, closed=False), (0.03, 0.035)))
    cv.shade(collar, _inflated(cv, collar, 0.016), _rgb(_scaled(style.color, 0.55)), _SATIN)
    lace = _rgb(_mix(_OFF_WHITE, style.accent, 0.15))
    for t in np.linspace(0.0, 1.0, 5):
        x, y = 0.405 + 0.14 * t, 0.45 - 0.115 * t
        eyelet = _ellipse(cv, x, y, 0.007, 0.007)
        cv.shade(eyelet, _flat(eyelet), _rgb(_RUBBER), _MATTE)
        bar = _polygon(cv, _tube([(x, y), (x - 0.022, y - 0.032)], (0.014, 0.016)))
        cv.occlude(bar, 0.3, 0.003, dy=0.003)
        cv.shade(bar, _inflated(cv, bar, 0.007), lace, _SATIN)
    midsole = _polygon(cv, _catmull_rom(_SNEAKER_MIDSOLE))
    cv.occlude(midsole, 0.35, 0.006, dy=-0.004)
    mid_normals = _inflated(cv, midsole, 0.012, tilt=(0.0, 0.15))
    cv.shade(midsole, mid_normals, _rgb(_mix(_OFF_WHITE, style.accent, 0.06)), _SATIN)
    groove = _strokes(cv, [_catmull_rom(_SNEAKER_GROOVE, closed=False)], 0.004)
    cv.shade(_clip(midsole, groove), mid_normals, _rgb((196, 194, 190)), _MATTE)


def _draw_headphones(cv: _Canvas, style: _Style) -> None:
    shell = _rgb(style.color)
    cushion = _rgb(_mix(style.color, _RUBBER, 0.8))
    cv.contact_shadow(0.55, 0.836, 0.22)
    far_shell = _ellipse(cv, 0.285, 0.62, 0.085, 0.15)
    cv.shade(far_shell, _radial(cv, far_shell, 0.285, 0.62, 0.085, _dome), shell, _GLOSS)
    far_cushion = _ellipse(cv, 0.315, 0.62, 0.085, 0.15)
    cv.shade(far_cushion, _inflated(cv, far_cushion, 0.035), cushion, _SATIN)
    far_fabric = _ellipse(cv, 0.318, 0.62, 0.045, 0.095)
    cv.occlude(far_fabric, 0.5, 0.004)
    cv.shade(
        far_fabric,
        _flat(far_fabric),
        _rgb(_mix(style.color, _RUBBER, 0.9)),
        _MATTE,
        tone=_fabric(cv, far_fabric, 0.08, 0.003),
    )
    band = _polygon(
        cv, _tube(_bezier((0.30, 0.48), (0.28, 0.06), (0.66, 0.04), (0.64, 0.46)), (0.042, 0.042))
    )
    cv.shade(band, _inflated(cv, band, 0.02), shell, _GLOSS)
    pad = _polygon(cv, _tube(_bezier((0.335, 0.30), (0.36, 0.13), (0.58, 0.115), (0.61, 0.29)), (0.03, 0.03)))
    cv.occlude(pad, 0.3, 0.005, dy=0.004)
    cv.shade(pad, _inflated(cv, pad, 0.015), cushion, _SATIN)
    for x, top in ((0.297, 0.44), (0.638, 0.42)):
        slider = _rounded_rect(cv, (x - 0.006, top, x + 0.006, top + 0.07), 0.004)
        cv.shade(slider, _inflated(cv, slider, 0.006), _rgb(_STEEL), _METAL)
    near_cushion = _ellipse(cv, 0.59, 0.64, 0.14, 0.19)
    cv.shade(near_cushion, _inflated(cv, near_cushion, 0.05), cushion, _SATIN)
    yoke = _ellipse(cv, 0.635, 0.64, 0.152, 0.202)
    cv.shade(yoke, _radial(cv, yoke, 0.635, 0.64, 0.152, _dome), _rgb(_STEEL), _METAL)
    near_shell = _ellipse(cv, 0.635, 0.64, 0.14, 0.19)
    cv.occlude(near_shell, 0.3, 0.006, dx=-0.006)
    cv.shade(near_shell, _radial(cv, near_shell, 0.635, 0.64, 0.14, lambda r: 1.6 * r**4), shell, _GLOSS)
    plate = _ellipse(cv, 0.642, 0.64, 0.095, 0.13)
    cv.occlude(plate, 0.25, 0.004, dy=0.003)
    plate_normals = _radial(cv, plate, 0.642, 0.64, 0.095, lambda r: 0.5 * r**3)
    cv.shade(plate, plate_normals, _rgb(style.accent), _GLOSS)
    if style.label:
        mark = plate.with_alpha(
            plate.alpha * _text_in(plate.alpha.shape, style.label, (0.18, 0.40, 0.82, 0.60))
        )
        cv.shade(mark, plate_normals, _rgb(_ink_on(style.accent)), _SATIN)


def _draw_speaker(cv: _Canvas, style: _Style) -> None:
    cv.contact_shadow(0.5, 0.887, 0.24)
    side = _polygon(cv, [(0.64, 0.11), (0.735, 0.135), (0.735, 0.862), (0.64, 0.888)])
    cv.shade(
        side,
        _flat(side, (1.4, 0.0)),
        _rgb(_mix(style.color, style.accent, 0.3)),
        _SATIN,
        tone=_fabric(cv, side, 0.02),
    )
    front = _rounded_rect(cv, (0.265, 0.105, 0.655, 0.892), 0.02)
    cv.shade(
        front, _inflated(cv, front, 0.012), _rgb(style.color), _SATIN, tone=_fabric(cv, front, 0.015, 0.002)
    )
    cx, woofer_y, tweeter_y = 0.46, 0.615, 0.27

    def disc(
        cy: float, radius: float, slope: Callable, color: RGB, finish: _Finish, shadow: float = 0.0
    ) -> None:
        region = _ellipse(cv, cx, cy, radius, radius)
        if shadow:
            cv.occlude(region, shadow, 0.006, dy=0.004)
        cv.shade(region, _radial(cv, region, cx, cy, radius, slope), _rgb(color), finish)

    def torus(inner: float) -> Callable:
        def slope(rho: np.ndarray) -> np.ndarray:
            t = np.clip((rho - inner) / (1 - inner) * 2 - 1, -0.97, 0.97)
            return t / np.sqrt(1 - t * t)

        return slope

    trim = _mix(style.accent, _STEEL, 0.4)
    disc(woofer_y, 0.152, lambda rho: 0.15 * rho, trim, _METAL, shadow=0.4)
    disc(woofer_y, 0.138, torus(0.8), _RUBBER, _SATIN)
    disc(woofer_y, 0.111, lambda rho: -0.45 * rho, _mix(style.accent, _RUBBER, 0.6), _SATIN)
    disc(woofer_y, 0.044, _dome, _mix(style.accent, _RUBBER, 0.5), _GLOSS, shadow=0.3)
    for angle in (45, 135, 225, 315):
        x = cx + 0.145 * math.cos(math.radians(angle))
        y = woofer_y + 0.145 * math.sin(math.radians(angle))
        screw = _ellipse(cv, x, y, 0.006, 0.006)
        cv.shade(screw, _radial(cv, screw, x, y, 0.006, _dome), _rgb(_RUBBER), _METAL)
    disc(tweeter_y, 0.078, lambda rho: 0.1 * rho, _RUBBER, _SATIN, shadow=0.3)
    disc(tweeter_y, 0.058, torus(0.6), trim, _METAL)
    disc(tweeter_y, 0.034, _dome, _mix(_RUBBER, (90, 90, 96), 0.5), _SATIN)
    if style.label:
        badge = cv.region(cx - 0.1, 0.812, cx + 0.1, 0.852)
        mark = badge.with_alpha(_text_in(badge.alpha.shape, style.label, (0.0, 0.0, 1.0, 1.0)))
        cv.shade(mark, _flat(mark), _rgb(_ink_on(style.color)), _SATIN)


def _draw_watch(cv: _Canvas, style: _Style) -> None:
    cx, cy = 0.5, 0.5
    cv.contact_shadow(cx, 0.9, 0.07)
    _watch_straps(cv, style)
    for box in (
        (0.405, 0.33, 0.44, 0.41),
        (0.56, 0.33, 0.595, 0.41),
        (0.405, 0.59, 0.44, 0.67),
        (0.56, 0.59, 0.595, 0.67),
    ):
        lug = _rounded_rect(cv, box, 0.01)
        cv.shade(lug, _inflated(cv, lug, 0.012), _rgb(_STEEL), _METAL)
    crown = _rounded_rect(cv, (0.66, 0.472, 0.69, 0.528), 0.006)
    nx, ny, nz = _inflated(cv, crown, 0.01)
    _, ys = cv.grid(crown)
    cv.shade(crown, _normalize(nx, ny + 0.4 * np.sin(ys * 2400), nz), _rgb(_STEEL), _METAL)
    case = _ellipse(cv, cx, cy, 0.172, 0.172)
    cv.occlude(case, 0.4, 0.01, dy=0.008)
    cv.shade(case, _radial(cv, case, cx, cy, 0.172, lambda rho: 2.2 * rho**8 + 0.1), _rgb(_STEEL), _METAL)
    bezel = _ellipse(cv, cx, cy, 0.155, 0.155)
    cv.shade(bezel, _radial(cv, bezel, cx, cy, 0.155, lambda rho: 0.6 - 0.5 * rho), _rgb(_STEEL), _METAL)
    dial = _ellipse(cv, cx, cy, 0.142, 0.142)
    cv.occlude(dial, 0.5, 0.004, dy=0.003)
    xs, ys = cv.grid(dial)
    sunburst = 0.08 * np.sin(np.arctan2(ys - cy, xs - cx) * 90)  # fine radial brushing catches the light
    cv.shade(
        dial,
        _normalize(sunburst * (ys - cy) * 6, -sunburst * (xs - cx) * 6, np.ones_like(sunburst)),
        _rgb(style.accent),
        _SATIN,
    )
    polish = _rgb(_mix(_STEEL, _OFF_WHITE, 0.3))
    for hour in range(12):
        a = math.radians(hour * 30)
        inner = 0.098 if hour % 3 == 0 else 0.108
        ends = [(cx + r * math.sin(a), cy - r * math.cos(a)) for r in (inner, 0.128)]
        marker = _polygon(cv, _tube(ends, (0.008, 0.008)))
        cv.occlude(marker, 0.4, 0.002, dy=0.002)
        cv.shade(marker, _inflated(cv, marker, 0.004), polish, _METAL)
    if style.label:
        text = cv.region(cx - 0.06, cy - 0.085, cx + 0.06, cy - 0.055)
        mark = text.with_alpha(_text_in(text.alpha.shape, style.label, (0.0, 0.0, 1.0, 1.0)))
        cv.shade(mark, _flat(mark), _rgb(_ink_on(style.accent)), _SATIN)
    for angle, length, width in ((-58.0, 0.075, 0.014), (60.0, 0.115, 0.010)):
        a = math.radians(angle)
        hand = _polygon(
            cv,
            _tube(
                [
                    (cx - 0.012 * math.sin(a), cy + 0.012 * math.cos(a)),
                    (cx + length * math.sin(a), cy - length * math.cos(a)),
                ],
                (width, width * 0.45),
            ),
        )
        cv.occlude(hand, 0.45, 0.004, dx=0.003, dy=0.006)
        cv.shade(hand, _inflated(cv, hand, 0.005), polish, _METAL)
    a = math.radians(160)
    seconds = _polygon(
        cv,
        _tube(
            [
                (cx - 0.03 * math.sin(a), cy + 0.03 * math.cos(a)),
                (cx + 0.13 * math.sin(a), cy - 0.13 * math.cos(a)),
            ],
            (0.004, 0.003),
        ),
    )
    cv.occlude(seconds, 0.4, 0.003, dx=0.002, dy=0.005)
    cv.shade(seconds, _flat(seconds), _rgb(style.color), _SATIN)
    pin = _ellipse(cv, cx, cy, 0.01, 0.01)
    cv.shade(pin, _radial(cv, pin, cx, cy, 0.01, _dome), polish, _METAL)
    streak = np.clip(1 - np.abs((xs - cx) + (ys - cy) + 0.05) / 0.06, 0, 1)  # crystal reflection
    cv.paint(
        dial.with_alpha(dial.alpha * 0.10 * streak), np.full((*dial.alpha.shape, 3), _BRIGHTEST, np.float32)
    )


def _watch_straps(cv: _Canvas, style: _Style) -> None:
    leather = _rgb(style.color)
    thread = _rgb(_mix(style.color, _OFF_WHITE, 0.55))
    for (x0, y0, x1, y1), radius in (
        ((0.418, 0.11, 0.582, 0.40), 0.015),
        ((0.418, 0.60, 0.582, 0.905), 0.075),
    ):
        strap = _rounded_rect(cv, (x0, y0, x1, y1), radius)
        normals = _inflated(cv, strap, 0.018)
        cv.shade(strap, normals, leather, _SATIN, tone=_fabric(cv, strap, 0.03, 0.003))
        stitches = [
            [(x, y), (x, y + 0.007)]
            for x in (x0 + 0.012, x1 - 0.012)
            for y in np.arange(y0 + 0.01, y1 - 0.03, 0.012)
        ]
        cv.shade(_clip(strap, _strokes(cv, stitches, 0.0022)), normals, thread, _SATIN)
    for y in (0.70, 0.74, 0.78, 0.82):
        hole = _ellipse(cv, 0.5, y, 0.008, 0.006)
        cv.shade(hole, _flat(hole), _rgb(_scaled(style.color, 0.25)), _MATTE)
    buckle = _cut(
        _rounded_rect(cv, (0.405, 0.085, 0.595, 0.135), 0.012),
        _rounded_rect(cv, (0.42, 0.098, 0.58, 0.122), 0.006),
    )
    cv.occlude(buckle, 0.35, 0.004, dy=0.004)
    cv.shade(buckle, _inflated(cv, buckle, 0.005), _rgb(_STEEL), _METAL)


# Front-view outlines of the backpack's parts (unit space), joined by smooth curves.
# fmt: off
_BACKPACK_BODY = [
    (0.30, 0.885), (0.265, 0.86), (0.255, 0.50), (0.275, 0.29), (0.35, 0.195), (0.5, 0.168),
    (0.65, 0.195), (0.725, 0.29), (0.745, 0.50), (0.735, 0.86), (0.70, 0.885),
]
_BACKPACK_ZIP = [(0.285, 0.56), (0.30, 0.32), (0.37, 0.235), (0.5, 0.21), (0.63, 0.235), (0.70, 0.32), (0.715, 0.56)]
_BACKPACK_POCKET = [(0.32, 0.835), (0.305, 0.62), (0.33, 0.56), (0.5, 0.54), (0.67, 0.56), (0.695, 0.62), (0.68, 0.835)]
_BACKPACK_POCKET_ZIP = [(0.33, 0.60), (0.5, 0.578), (0.67, 0.60)]
# fmt: on


def _draw_backpack(cv: _Canvas, style: _Style) -> None:
    fabric = _rgb(style.color)
    webbing = _rgb(_mix(style.accent, _RUBBER, 0.3))
    cv.contact_shadow(0.5, 0.88, 0.25)
    for side in (-1, 1):
        path = _catmull_rom(
            [(0.5 + side * 0.19, 0.30), (0.5 + side * 0.258, 0.56), (0.5 + side * 0.232, 0.86)], closed=False
        )
        strap = _polygon(cv, _tube(path, (0.032, 0.032)))
        cv.shade(strap, _inflated(cv, strap, 0.015), webbing, _MATTE, tone=_fabric(cv, strap, 0.06))
    handle = _polygon(
        cv, _tube(_bezier((0.45, 0.21), (0.44, 0.10), (0.56, 0.10), (0.55, 0.21)), (0.024, 0.024))
    )
    cv.shade(handle, _inflated(cv, handle, 0.012), webbing, _MATTE, tone=_fabric(cv, handle, 0.06))
    body = _polygon(cv, _catmull_rom(_BACKPACK_BODY))
    normals = _inflated(cv, body, 0.07)
    weave = _fabric(cv, body, 0.06)
    cv.shade(body, normals, fabric, _MATTE, tone=weave)
    base = _clip(body, _polygon(cv, [(0.2, 0.835), (0.8, 0.835), (0.8, 0.9), (0.2, 0.9)]))
    cv.shade(base, normals, _rgb(style.accent), _MATTE, tone=weave)
    _zipper(cv, body, normals, _catmull_rom(_BACKPACK_ZIP, closed=False))
    _zipper_pull(cv, 0.705, 0.36)
    pocket = _polygon(cv, _catmull_rom(_BACKPACK_POCKET))
    cv.occlude(pocket, 0.4, 0.01, dy=0.01)
    pocket_normals = _inflated(cv, pocket, 0.05)
    cv.shade(pocket, pocket_normals, fabric, _MATTE, tone=_fabric(cv, pocket, 0.06))
    _zipper(cv, pocket, pocket_normals, _catmull_rom(_BACKPACK_POCKET_ZIP, closed=False))
    _zipper_pull(cv, 0.64, 0.595)
    patch = _rounded_rect(cv, (0.43, 0.65, 0.57, 0.72), 0.01)
    cv.occlude(patch, 0.3, 0.003, dy=0.003)
    patch_normals = _inflated(cv, patch, 0.008)
    cv.shade(patch, patch_normals, _rgb(style.accent), _SATIN)
    if style.label:
        mark = patch.with_alpha(
            patch.alpha * _text_in(patch.alpha.shape, style.label, (0.12, 0.2, 0.88, 0.8))
        )
        cv.shade(mark, patch_normals, _rgb(_ink_on(style.accent)), _SATIN)


def _zipper(cv: _Canvas, surface: _Region, normals: Normals, path: list[tuple[float, float]]) -> None:
    tape = _clip(surface, _strokes(cv, [path], 0.011))
    cv.occlude(tape, 0.3, 0.003, dy=0.002)
    cv.shade(tape, normals, _rgb(_RUBBER), _SATIN)
    teeth = _strokes(cv, [path], 0.004)
    xs, ys = cv.grid(teeth)
    teeth = teeth.with_alpha(teeth.alpha * (np.sin((xs + ys) * 1400) > 0))
    cv.shade(_clip(surface, teeth), normals, _rgb((120, 120, 124)), _METAL)


def _zipper_pull(cv: _Canvas, x: float, y: float) -> None:
    tab = _rounded_rect(cv, (x - 0.008, y, x + 0.008, y + 0.05), 0.007)
    cv.occlude(tab, 0.4, 0.004, dx=0.003, dy=0.004)
    cv.shade(tab, _inflated(cv, tab, 0.006), _rgb(_STEEL), _METAL)


def _ginger_jar(top: float, bottom: float) -> list[tuple[float, float]]:
    """Profile of a ceramic lamp base: narrow neck, full shoulder, tapering foot."""
    neck, belly, foot = 0.032, 0.132, 0.072
    knots = []
    for t in np.linspace(0.0, 1.0, 25):
        if t < 0.4:
            r = neck + (belly - neck) * math.sin(math.pi / 2 * t / 0.4) ** 0.6
        else:
            r = belly + (foot - belly) * ((t - 0.4) / 0.6) ** 1.8
        knots.append((top + (bottom - top) * t, r))
    return knots


def _draw_lamp(cv: _Canvas, style: _Style) -> None:
    cx, tilt = 0.5, 0.12
    cv.contact_shadow(cx, 0.868, 0.11)
    neck = _Lathe(cv, cx, [(0.45, 0.014), (0.53, 0.014)], tilt)
    neck.paint(neck.region, _rgb(_BRASS), _METAL)
    base = _Lathe(cv, cx, _ginger_jar(0.515, 0.826), tilt)
    base.paint(base.region, _rgb(style.color), _GLOSS)
    base.paint(base.band(0.512, 0.532), _rgb(_BRASS), _METAL)
    plinth_color = _mix(style.accent, _RUBBER, 0.2)
    plinth = _Lathe(cv, cx, [(0.826, 0.09), (0.832, 0.095), (0.862, 0.095)], tilt)
    plinth.paint(plinth.region, _rgb(plinth_color), _SATIN)
    _top_face(cv, plinth, plinth_color, _SATIN)
    shade = _Lathe(cv, cx, [(0.115, 0.15), (0.445, 0.275)], tilt)
    _, ys = cv.grid(shade.region)
    glow = 1.0 + 0.18 * np.clip((ys - 0.2) / 0.25, 0, 1)  # the bulb lights the shade from inside
    weave = glow * _fabric(cv, shade.region, 0.04, 0.0035)
    cv.occlude(shade.region, 0.35, 0.012, dy=0.015)
    shade.paint(shade.region, _rgb(_mix((236, 228, 212), style.accent, 0.15)), _MATTE, tone=weave)
    for y0, y1 in ((0.115, 0.124), (0.436, 0.445)):
        shade.paint(shade.band(y0, y1), _rgb(style.accent), _SATIN)
    opening = shade.rim(shade.top, inset=0.004)
    xs, ys = cv.grid(opening)
    warm = np.clip((ys - (shade.top - 0.018)) / 0.036, 0, 1) * np.ones_like(xs)
    cv.shade(opening, _flat(opening), _rgb((238, 222, 186)), _MATTE, tone=0.8 + 0.2 * warm)


_PAINTERS: dict[str, Callable[[_Canvas, _Style], None]] = {
    "bottle": _draw_bottle,
    "can": _draw_can,
    "mug": _draw_mug,
    "kettle": _draw_kettle,
    "sneaker": _draw_sneaker,
    "headphones": _draw_headphones,
    "speaker": _draw_speaker,
    "watch": _draw_watch,
    "backpack": _draw_backpack,
    "lamp": _draw_lamp,
}


def draw_packshot(
    kind: str,
    *,
    color: RGB,
    accent: RGB,
    label: str | None = None,
    size: int = 1200,
    transparent: bool = False,
    seed: int = 0,
) -> Image.Image:
    """A studio packshot of a product of `kind` (see PRODUCT_KINDS), centred on white or transparent.

    Returns RGB on a pure white background with a faint contact shadow, or RGBA with a transparent
    background and no shadow. `seed` only varies fine texture; the same arguments give the same pixels.
    """
    if kind not in _PAINTERS:
        raise ValueError(f"unknown product kind {kind!r}; choose one of {', '.join(sorted(_PAINTERS))}")
    if size < 64:
        raise ValueError(f"packshot size must be at least 64 px, got {size}")
    # Product colours stay off-white at most, so no part can merge with the white background.
    style = _Style(_at_most_off_white(color), _at_most_off_white(accent), label)
    cv = _Canvas(size, seed)
    _PAINTERS[kind](cv, style)
    cv.darken_rim()
    return cv.to_image(transparent)


# --------------------------------------------------------------------------- logos

_LOGO_MARKS = ("circle", "rounded", "diamond", "hexagon")


def draw_logo(text: str, *, color: RGB, accent: RGB, size: tuple[int, int] = (480, 160)) -> Image.Image:
    """A brand logo on a transparent background: a mark (a shape holding the initial) and the word.

    The mark's shape follows from the text, so each brand keeps the same logo; the word is set in
    bundled DejaVu Sans Bold in `color`, the mark filled with `accent`. Returns RGBA of `size`.
    """
    if not text.strip():
        raise ValueError("logo text must not be empty")
    factor = 4  # drawn large and reduced, for smooth edges
    width, height = size[0] * factor, size[1] * factor
    mark = Image.new("L", (width, height), 0)
    word = Image.new("L", (width, height), 0)
    side = int(height * 0.78)
    left, top = int(height * 0.11), (height - side) // 2
    _draw_mark(
        ImageDraw.Draw(mark),
        _LOGO_MARKS[sum(map(ord, text)) % len(_LOGO_MARKS)],
        (left, top, left + side, top + side),
    )
    initial = _text_mask(text.strip()[0].upper(), side, side, bold=True, fill=0.52)
    mark.paste(0, (left, top), Image.fromarray((initial * 255).astype(np.uint8)))
    _draw_word(
        ImageDraw.Draw(word), text, left + side + int(height * 0.14), width - int(height * 0.06), height
    )
    layers = [(np.asarray(mark, np.float32) / 255.0, accent), (np.asarray(word, np.float32) / 255.0, color)]
    rgb = np.zeros((height, width, 3), np.float32)
    alpha = np.zeros((height, width), np.float32)
    for coverage, fill in layers:
        rgb += (_rgb(fill) - rgb) * coverage[..., None]
        alpha += coverage * (1.0 - alpha)
    premultiplied = np.dstack([rgb * alpha[..., None], alpha])
    logo = _premultiplied_image(premultiplied).resize(size, Image.Resampling.LANCZOS)
    return logo.convert("RGBA")


def _draw_word(draw: ImageDraw.ImageDraw, text: str, left: int, right: int, height: int) -> None:
    """The brand word, left-aligned from `left`, as large as fits half the height and the width."""
    size = int(height * 0.5)
    while size > 6:
        font = load_font(size, bold=True)
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        if x1 - x0 <= right - left:
            break
        size = int(size * 0.94)
    draw.text((left - x0, (height - (y1 - y0)) / 2 - y0), text, font=font, fill=255)


def _draw_mark(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "rounded":
        draw.rounded_rectangle(box, radius=r * 0.45, fill=255)
    elif shape == "diamond":
        draw.regular_polygon((cx, cy, r * 1.08), 4, rotation=45, fill=255)
    else:
        draw.regular_polygon((cx, cy, r), 6, rotation=30, fill=255)
