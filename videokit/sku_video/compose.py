"""Keyframes on the CPU: the packshot cut out and placed on the brand background, kept as layers."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from videokit.media.brand import RGB, BrandKit
from videokit.sku_video.loop import cover_transform, fit_to_size

# A packshot background pixel is "white" when every channel is at least 255 - this.
NEAR_WHITE_TOLERANCE = 24
# Largest step between neighbouring pixels (per channel) that the background flood still crosses.
FLOOD_STEP = 3
# Enclosed areas at least this white and this large (share of the product's pixels) may be holes.
HOLE_MIN_LEVEL = 250
HOLE_MIN_SHARE = 0.002
HOLE_EDGE_MAX_LEVEL = 180  # mean darkest channel just outside a hole: the silhouette's edge
# Specks smaller than this share of the largest product blob are JPEG noise, not product.
MIN_BLOB_SHARE = 0.01
MAX_UPSCALE = 1.5  # past this the packshot's own pixels show as blur
# The product's bounding box aims at this share of the safe area (logo band excluded), so compact
# products (a watch, a kettle) fill the frame like tall ones; its height stays within product_scale
# of the frame's height (portrait frames get taller products, not a landscape-sized one in the middle).
TARGET_SAFE_SHARE = 0.42
LOGO_HEIGHT = 0.07  # of the frame's short side
LOGO_MAX_WIDTH = 0.22  # of the frame width
PRODUCT_CENTRE_Y = 0.53  # of the frame height: slightly below centre leaves room for the shadow
SHADOW_TONE = 0.25  # the shadow is the floor (edge) colour at this brightness, so it reads as its shade
# Studio light sits above the centre, as if the product stood under a softbox.
STUDIO_LIGHT_XY = (0.5, 0.38)
FLOOR_FROM_Y = 0.62
FLOOR_STRENGTH = 0.3
_BAYER_4X4 = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) + 0.5) / 16


def cut_out_product(packshot: Image.Image) -> Image.Image:
    """RGBA cut-out of the product, cropped to its bounding box.

    A packshot with a real alpha channel keeps it; otherwise the white background connected to the
    border is removed. Pixels that end up fully opaque keep their exact RGB values.
    """
    rgba = np.array(packshot.convert("RGBA"))
    has_alpha = packshot.mode in ("RGBA", "LA", "PA") or "transparency" in packshot.info
    if has_alpha and rgba[..., 3].min() < 255:
        matte = rgba[..., 3]
    else:
        matte = _matte_from_white_background(rgba[..., :3])
    rows, cols = np.nonzero(matte)
    if rows.size == 0:
        raise ValueError("no product found in the packshot: it is all background (white or transparent)")
    rgba[..., 3] = matte
    crop = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return Image.fromarray(np.ascontiguousarray(crop))


def _matte_from_white_background(rgb: np.ndarray) -> np.ndarray:
    background = _border_background(rgb)
    background |= _enclosed_holes(rgb, background)
    product = _without_specks(~background)
    if not product.any():
        return np.zeros(rgb.shape[:2], np.uint8)
    hard = product.astype(np.uint8) * 255
    # Feather inwards only: the outermost product pixels soften, the interior stays opaque and exact.
    return np.minimum(hard, cv2.GaussianBlur(hard, (0, 0), 0.8))


def _border_background(rgb: np.ndarray) -> np.ndarray:
    """Near-white pixels and soft floor shadows connected to the border."""
    # A flood from the border with a small per-step tolerance follows soft shadows and vignettes but
    # stops at the product's edge, which is a sharp step.
    padded = cv2.copyMakeBorder(rgb, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    flooded = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    step = (FLOOD_STEP,) * 3
    cv2.floodFill(padded, flooded, (0, 0), 0, step, step, 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    near_white = rgb.min(axis=2) >= 255 - NEAR_WHITE_TOLERANCE
    _, labels = cv2.connectedComponents(
        (near_white | (flooded[2:-2, 2:-2] == 1)).astype(np.uint8), connectivity=4
    )
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.isin(labels, np.unique(border[border != 0]))


def _enclosed_holes(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Large pure-white areas that the product encloses behind a dark edge (a mug's handle).

    A clipped highlight is pure white too, but it fades into the product; a hole shows the studio
    sweep through a sharp silhouette edge, so the ring just outside it is much darker.
    """
    darkest_channel = rgb.min(axis=2)
    pure_white = (darkest_channel >= HOLE_MIN_LEVEL) & ~background
    _, labels, stats, _ = cv2.connectedComponentsWithStats(pure_white.astype(np.uint8), connectivity=4)
    holes = np.zeros_like(background)
    min_area = HOLE_MIN_SHARE * np.count_nonzero(~background)
    for label in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1:
        area = labels == label
        ring = cv2.dilate(area.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~area
        if darkest_channel[ring].mean() <= HOLE_EDGE_MAX_LEVEL:
            holes |= area
    return holes


def _without_specks(product: np.ndarray) -> np.ndarray:
    count, blobs, stats, _ = cv2.connectedComponentsWithStats(product.astype(np.uint8), connectivity=8)
    if count <= 1:
        return product
    areas = stats[1:, cv2.CC_STAT_AREA]
    return np.isin(blobs, np.flatnonzero(areas >= MIN_BLOB_SHARE * areas.max()) + 1)


def render_background(kit: BrandKit, size: tuple[int, int]) -> np.ndarray:
    """The brand background alone, (h, w, 3) uint8; deterministic for a kit and size."""
    width, height = size
    first, second = (np.array(color, np.float32) for color in kit.background_colors)
    if kit.background_style == "solid":
        return np.full((height, width, 3), first, np.uint8)
    ys = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
    xs = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width
    if kit.background_style == "gradient":
        mix = np.broadcast_to(ys, (height, width))
    else:
        light_x, light_y = STUDIO_LIGHT_XY
        distance = np.sqrt(((xs - light_x) / 0.5) ** 2 + ((ys - light_y) / 0.5) ** 2)
        mix = _smoothstep(0.05, 1.0, distance)
        floor = FLOOR_STRENGTH * _smoothstep(FLOOR_FROM_Y, 1.0, ys)
        mix = mix + floor * (1 - mix)
    image = first + mix[..., None] * (second - first)
    # Ordered dither of under one level keeps long, gentle gradients from banding.
    threshold = np.tile(_BAYER_4X4, (height // 4 + 1, width // 4 + 1))[:height, :width]
    return np.clip(np.floor(image + threshold[..., None]), 0, 255).astype(np.uint8)


def _smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    t = np.clip((value - edge0) / (edge1 - edge0), 0, 1)
    return t * t * (3 - 2 * t)


def safe_area(size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the area inside a margin of `margin` x the short side."""
    width, height = size
    inset = round(margin * min(width, height))
    return inset, inset, width - inset, height - inset


def resize_rgba(rgba: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize straight-alpha RGBA through premultiplied colour, so transparent pixels do not bleed in."""
    height, width = rgba.shape[:2]
    if (width, height) == tuple(size):
        return rgba
    interpolation = cv2.INTER_AREA if size[0] < width else cv2.INTER_LANCZOS4
    alpha = rgba[..., 3:].astype(np.float32)
    premultiplied = np.concatenate([rgba[..., :3] * (alpha / 255), alpha], axis=2)
    scaled = cv2.resize(premultiplied, tuple(size), interpolation=interpolation)
    scaled_alpha = np.clip(scaled[..., 3:], 0, 255)
    color = scaled[..., :3] * 255 / np.maximum(scaled_alpha, 1e-3)
    color[np.broadcast_to(scaled_alpha < 0.5, color.shape)] = 0
    return np.concatenate([np.clip(color, 0, 255), scaled_alpha], axis=2).round().astype(np.uint8)


@dataclass
class KeyframeLayers:
    """A keyframe kept as its layers, so motion can move them apart and QA can find the product."""

    size: tuple[int, int]
    background: np.ndarray  # (h, w, 3) uint8, the brand background only
    shadow_alpha: np.ndarray  # (h, w) uint8
    shadow_color: RGB
    product: np.ndarray  # (ph, pw, 4) uint8 straight-alpha RGBA
    product_xy: tuple[int, int]
    logo: np.ndarray | None = None  # (lh, lw, 4) uint8 straight-alpha RGBA
    logo_xy: tuple[int, int] | None = None

    def flatten(self) -> np.ndarray:
        """Background, shadow, product and logo, composited in that order; (h, w, 3) uint8."""
        frame = self.background.copy()
        composite_at(
            frame, shadow_premultiplied(self.shadow_alpha, self.shadow_color), self.shadow_alpha, (0, 0)
        )
        composite_at(frame, premultiply(self.product), self.product[..., 3], self.product_xy)
        if self.logo is not None:
            composite_at(frame, premultiply(self.logo), self.logo[..., 3], self.logo_xy)
        return frame

    def product_mask(self) -> np.ndarray:
        """(h, w) bool: frame pixels covered by fully opaque product pixels."""
        width, height = self.size
        mask = np.zeros((height, width), bool)
        _paste(mask, self.product[..., 3] == 255, self.product_xy)
        return mask

    def resized(self, size: tuple[int, int]) -> KeyframeLayers:
        """The same layers scaled once to cover `size` (centre crop when the aspect differs)."""
        if tuple(size) == tuple(self.size):
            return self
        scale, crop_x, crop_y = cover_transform(self.size, size)

        def scaled_rgba(rgba: np.ndarray, xy: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
            new_size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
            return resize_rgba(rgba, new_size), (round(xy[0] * scale) - crop_x, round(xy[1] * scale) - crop_y)

        product, product_xy = scaled_rgba(self.product, self.product_xy)
        logo, logo_xy = scaled_rgba(self.logo, self.logo_xy) if self.logo is not None else (None, None)
        return KeyframeLayers(
            size=tuple(size),
            background=fit_to_size(self.background, size),
            shadow_alpha=fit_to_size(self.shadow_alpha, size),
            shadow_color=self.shadow_color,
            product=product,
            product_xy=product_xy,
            logo=logo,
            logo_xy=logo_xy,
        )

    def to_files(self) -> dict[str, bytes]:
        """PNG per layer plus the flattened keyframe and `layers.json` with the geometry."""
        files = {
            "keyframe.png": _png(self.flatten()),
            "background.png": _png(self.background),
            "shadow.png": _png(self.shadow_alpha),
            "product.png": _png(self.product),
        }
        if self.logo is not None:
            files["logo.png"] = _png(self.logo)
        geometry = {
            "size": list(self.size),
            "shadow_color": list(self.shadow_color),
            "product_xy": list(self.product_xy),
            "logo_xy": list(self.logo_xy) if self.logo_xy is not None else None,
        }
        files["layers.json"] = json.dumps(geometry, indent=2).encode()
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> KeyframeLayers:
        """Inverse of `to_files`."""
        geometry = json.loads(files["layers.json"])
        logo_xy = geometry["logo_xy"]
        return cls(
            size=tuple(geometry["size"]),
            background=_unpng(files["background.png"], "RGB"),
            shadow_alpha=_unpng(files["shadow.png"], "L"),
            shadow_color=tuple(geometry["shadow_color"]),
            product=_unpng(files["product.png"], "RGBA"),
            product_xy=tuple(geometry["product_xy"]),
            logo=_unpng(files["logo.png"], "RGBA") if "logo.png" in files else None,
            logo_xy=tuple(logo_xy) if logo_xy is not None else None,
        )


def compose_keyframe(
    packshot: Image.Image,
    kit: BrandKit,
    size: tuple[int, int],
    *,
    logo: Image.Image | None = None,
    margin: float = 0.08,
    product_scale: float = 0.72,
    target_share: float = TARGET_SAFE_SHARE,
) -> KeyframeLayers:
    """Cut the product out of `packshot` and stage it on the brand background at `size` (w, h).

    The product's box covers about `target_share` of the safe area, at most `product_scale` x the
    frame's height tall, inside the safe margin, never upscaled more than 1.5x, and clear of the
    logo, so every opaque product pixel appears unchanged in the flattened keyframe.
    """
    width, height = size
    left, top, right, bottom = safe_area(size, margin)
    logo_rgba, logo_xy = None, None
    if logo is not None:
        logo_rgba = _scaled_logo(logo, size)
        logo_xy = _logo_corner(kit.logo_position, logo_rgba, (left, top, right, bottom))
        gap = round(margin * min(size) / 2)
        if kit.logo_position.startswith("top"):
            top = logo_xy[1] + logo_rgba.shape[0] + gap
        else:
            bottom = logo_xy[1] - gap
    cutout = np.asarray(cut_out_product(packshot))
    cut_height, cut_width = cutout.shape[:2]
    scale = min(
        math.sqrt(target_share * (right - left) * (bottom - top) / (cut_width * cut_height)),
        product_scale * height / cut_height,
        (right - left) / cut_width,
        (bottom - top) / cut_height,
        MAX_UPSCALE,
    )
    product_size = (
        max(1, math.floor(cut_width * scale + 1e-6)),
        max(1, math.floor(cut_height * scale + 1e-6)),
    )
    product = resize_rgba(cutout, product_size)
    product_width, product_height = product_size
    product_x = (width - product_width) // 2
    product_y = min(max(round(height * PRODUCT_CENTRE_Y - product_height / 2), top), bottom - product_height)
    return KeyframeLayers(
        size=(width, height),
        background=render_background(kit, size),
        shadow_alpha=_floor_shadow(size, (product_x, product_y, product_width, product_height)),
        shadow_color=tuple(round(channel * SHADOW_TONE) for channel in kit.background_colors[1]),
        product=product,
        product_xy=(product_x, product_y),
        logo=logo_rgba,
        logo_xy=logo_xy,
    )


def _floor_shadow(size: tuple[int, int], product_box: tuple[int, int, int, int]) -> np.ndarray:
    """A tight dark contact shadow plus a wide faint one, both soft ellipses under the product."""
    width, height = size
    x, y, product_width, product_height = product_box
    # Drawn on a padded canvas around the product's foot: blurring the whole frame would cost 10x more.
    pad = product_width
    canvas_xy = (x - pad, y + product_height - pad)
    foot = (product_width / 2 + pad, float(pad))
    shadow = np.zeros((2 * pad, product_width + 2 * pad), np.float32)
    for spread, flatness, strength, blur in ((0.42, 0.07, 0.55, 0.03), (0.62, 0.12, 0.28, 0.08)):
        ellipse = np.zeros_like(shadow)
        axes = (max(2, round(spread * product_width)), max(2, round(flatness * product_width)))
        cv2.ellipse(ellipse, (round(foot[0]), round(foot[1] + axes[1] * 0.3)), axes, 0, 0, 360, 1.0, -1)
        shadow += strength * cv2.GaussianBlur(ellipse, (0, 0), max(1.0, blur * product_width))
    frame_shadow = np.zeros((height, width), np.uint8)
    _paste(frame_shadow, np.clip(shadow * 255, 0, 255).round().astype(np.uint8), canvas_xy)
    return frame_shadow


def _scaled_logo(logo: Image.Image, size: tuple[int, int]) -> np.ndarray:
    rgba = np.asarray(logo.convert("RGBA"))
    scale = min(LOGO_HEIGHT * min(size) / rgba.shape[0], LOGO_MAX_WIDTH * size[0] / rgba.shape[1])
    return resize_rgba(rgba, (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale))))


def _logo_corner(position: str, logo: np.ndarray, safe: tuple[int, int, int, int]) -> tuple[int, int]:
    left, top, right, bottom = safe
    logo_height, logo_width = logo.shape[:2]
    vertical, horizontal = position.split("-")
    return (
        left if horizontal == "left" else right - logo_width,
        top if vertical == "top" else bottom - logo_height,
    )


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """Straight-alpha RGBA to premultiplied RGBA, uint8; opaque pixels keep their exact colour."""
    alpha = rgba[..., 3]
    color = cv2.multiply(rgba[..., :3], cv2.merge([alpha] * 3), scale=1 / 255)
    return cv2.merge([*cv2.split(color), alpha])


def shadow_premultiplied(alpha: np.ndarray, color: RGB) -> np.ndarray:
    """A flat-coloured layer with opacity `alpha`, premultiplied, as RGBA uint8."""
    return cv2.multiply(cv2.merge([alpha] * 4), (*color, 0), scale=1 / 255)


def over(under: np.ndarray, premultiplied: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Premultiplied "over" in uint8; `premultiplied` has at least as many channels as `under`.

    Keyframes and motion frames both composite with this, so frame 0 of a loop equals its keyframe,
    and alpha 255 yields `premultiplied` exactly, so opaque product pixels are preserved.
    """
    channels = under.shape[2]
    kept = cv2.multiply(under, cv2.merge([255 - alpha] * channels), scale=1 / 255)
    return cv2.add(kept, premultiplied[..., :channels])


def composite_at(
    frame: np.ndarray, premultiplied: np.ndarray, alpha: np.ndarray, xy: tuple[int, int]
) -> None:
    """`over` in place, with the layer's top-left at integer `xy`, clipped to the frame."""
    target, source = _overlap(frame.shape, alpha.shape, xy)
    if target is not None:
        frame[target] = over(frame[target], premultiplied[source], alpha[source])


def _paste(canvas: np.ndarray, layer: np.ndarray, xy: tuple[int, int]) -> None:
    target, source = _overlap(canvas.shape, layer.shape, xy)
    if target is not None:
        canvas[target] = layer[source]


def _overlap(canvas_shape: tuple[int, ...], layer_shape: tuple[int, ...], xy: tuple[int, int]):
    """Slices of the canvas and of the layer where a layer placed at `xy` overlaps the canvas."""
    x, y = xy
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + layer_shape[1], canvas_shape[1]), min(y + layer_shape[0], canvas_shape[0])
    if x0 >= x1 or y0 >= y1:
        return None, None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


def _unpng(data: bytes, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert(mode))
