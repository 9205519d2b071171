"""Synthetic product scenes and H.264 clips for QA tests: a clean seamless loop and deliberately broken ones.

A scene is a brand gradient, a red "bottle" with a striped label (the product) and a dark logo in the
top-left corner. Each clip comes with the references a pipeline would hand to measure_clip, and is cached,
so it is rendered and encoded once per test session.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

WIDTH, HEIGHT, FPS = 1280, 720, 24
BRAND_COLORS = ((232, 236, 242), (150, 168, 190))
# Warm instead of cool at about the same luma, so only the colour check can tell them apart.
OFF_BRAND_COLORS = ((244, 230, 206), (190, 160, 128))
PRODUCT_COLOR = (196, 48, 44)
# Green instead of red at about the same luma, so edges (and sharpness) stay as they were.
ALTERED_PRODUCT_COLOR = (40, 120, 100)
ZOOM = 0.04  # camera push: up to 4% closer at mid-loop
FLOAT_PX = 10  # product bobs this far up and down
MAX_LIFT_PX = 3 * FLOAT_PX
BROKEN_S = 3.0  # broken clips take the shortest valid length, to keep the tests fast
BROKEN_FRAMES = round(BROKEN_S * FPS)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity, so cached helpers can take one
class Scene:
    background: np.ndarray  # H,W,3 uint8: the brand background, no product or logo
    product: np.ndarray  # H,W,3 uint8: product colours, meaningful where alpha > 0
    alpha: np.ndarray  # H,W float32 in [0, 1], anti-aliased product coverage

    @property
    def product_mask(self) -> np.ndarray:
        return self.alpha >= 1.0

    @functools.cached_property
    def product_box(self) -> tuple[slice, slice]:
        """Rows and columns around the product, with room to lift it by up to MAX_LIFT_PX."""
        rows, cols = np.nonzero(self.alpha)
        return slice(rows.min() - MAX_LIFT_PX - 1, rows.max() + 2), slice(cols.min(), cols.max() + 1)

    @functools.cached_property
    def premultiplied_product(self) -> np.ndarray:
        """The product's box as colour x alpha plus alpha: one warp moves both, and premultiplying keeps the
        transparent surround from darkening the edges when resampled."""
        rows, cols = self.product_box
        alpha = self.alpha[rows, cols, None]
        return np.concatenate([self.product[rows, cols] * alpha, alpha], axis=2)

    def keyframe(self, lift_px: float = 0.0) -> np.ndarray:
        """Background, product lifted by lift_px (sub-pixel), logo on top."""
        rows, cols = self.product_box
        patch = self.premultiplied_product
        lift = np.float32([[1, 0, 0], [0, 1, -lift_px]])
        lifted = cv2.warpAffine(patch, lift, (patch.shape[1], patch.shape[0]))
        image = self.background.copy()
        image[rows, cols] = np.rint(image[rows, cols] * (1.0 - lifted[..., 3:]) + lifted[..., :3])
        return draw_logo(image)


@dataclass(frozen=True)
class SampleClip:
    data: bytes
    references: dict[str, np.ndarray] = field(default_factory=dict)  # keyword arguments for measure_clip


def gradient_background(width: int, height: int, colors: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    top, bottom = (np.array(color, np.float32) for color in colors)
    weight = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = (1.0 - weight) * top + weight * bottom
    return np.rint(np.broadcast_to(column, (height, width, 3))).astype(np.uint8)


def draw_logo(image: np.ndarray) -> np.ndarray:
    cv2.rectangle(image, (24, 20), (184, 68), (30, 34, 40), -1)
    for x in range(36, 176, 16):
        cv2.rectangle(image, (x, 32), (x + 8, 56), (245, 245, 245), -1)
    return image


@functools.cache
def product_scene(
    background_colors: tuple[tuple[int, int, int], ...] = BRAND_COLORS,
    product_color: tuple[int, int, int] = PRODUCT_COLOR,
) -> Scene:
    centre = (WIDTH // 2, HEIGHT // 2)
    body_axes = (150, 210)
    coverage = cv2.ellipse(
        np.zeros((HEIGHT, WIDTH), np.uint8), centre, body_axes, 0, 0, 360, 255, -1, cv2.LINE_AA
    )
    product = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    cv2.ellipse(product, centre, body_axes, 0, 0, 360, product_color, -1, cv2.LINE_AA)
    label_left, label_right = centre[0] - 100, centre[0] + 100
    cv2.rectangle(product, (label_left, centre[1] - 60), (label_right, centre[1] + 60), (236, 228, 200), -1)
    for row in range(centre[1] - 44, centre[1] + 44, 12):
        cv2.line(product, (label_left + 12, row), (label_right - 12, row), (40, 40, 40), 3)
    return Scene(
        background=gradient_background(WIDTH, HEIGHT, background_colors),
        product=product,
        alpha=coverage.astype(np.float32) / 255.0,
    )


def camera_push(image: np.ndarray, zoom: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, 1.0 + zoom)
    # OpenCV warps 4-channel images on a vectorised path, about 3x faster than 3-channel ones.
    rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
    pushed = cv2.warpAffine(
        rgba, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    return cv2.cvtColor(pushed, cv2.COLOR_RGBA2RGB)


def loop_frames(scene: Scene, n_frames: int) -> list[np.ndarray]:
    """Exactly periodic: frame n_frames would equal frame 0, and frame 0 is the keyframe."""
    phases = 2.0 * np.pi * np.arange(n_frames) / n_frames
    # Zoom and float peak at different phases so the picture never stands still.
    return [
        camera_push(scene.keyframe(FLOAT_PX * np.sin(phase)), ZOOM * (1.0 - np.cos(phase)) / 2.0)
        for phase in phases
    ]


def drifting_frames(scene: Scene, n_frames: int) -> list[np.ndarray]:
    """Push in and lift steadily, never coming back: the last frame is far from frame 0."""
    progress = np.arange(n_frames) / (n_frames - 1)
    return [camera_push(scene.keyframe(MAX_LIFT_PX * p), 2 * ZOOM * p) for p in progress]


def encode_clip(
    frames: list[np.ndarray],
    *,
    pix_fmt: str = "yuv420p",
    faststart: bool = True,
    container_format: str = "mp4",
    crf: str = "20",
    preset: str = "veryfast",
) -> bytes:
    """H.264 at FPS; by default CRF 20 veryfast, as the pipeline encodes."""
    height, width = frames[0].shape[:2]
    # The faststart pass re-reads the finished file to move moov forward, so it needs a real path.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container_format}"
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(str(path), mode="w", format=container_format, options=options) as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.options = {"crf": crf, "preset": preset}
            for frame in frames:
                container.mux(stream.encode(video_frame(frame, pix_fmt)))
            container.mux(stream.encode())
        return path.read_bytes()


def video_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    if pix_fmt == "yuv420p":
        # OpenCV's BT.601 video-range I420 matches swscale's default within a level and is 3x faster.
        return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def references(scene: Scene, keyframe: np.ndarray | None = None) -> dict[str, np.ndarray]:
    return {
        "keyframe": scene.keyframe() if keyframe is None else keyframe,
        "product_mask": scene.product_mask,
        "brand_background": scene.background,
    }


@functools.cache
def loop_of(seconds: float, scene: Scene | None = None) -> tuple[np.ndarray, ...]:
    return tuple(loop_frames(scene or product_scene(), round(seconds * FPS)))


@functools.cache
def clean_loop() -> SampleClip:
    """The clip every check must pass: 4 s, 720p, 24 fps, seamless, encoded as the pipeline does."""
    return SampleClip(encode_clip(list(loop_of(4.0))), references(product_scene()))


@functools.cache
def black_clip() -> SampleClip:
    """References are left out: a black clip also misses brand and product, which would only repeat it."""
    return SampleClip(encode_clip([np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * BROKEN_FRAMES))


@functools.cache
def frozen_clip() -> SampleClip:
    scene = product_scene()
    return SampleClip(encode_clip([scene.keyframe()] * BROKEN_FRAMES), references(scene))


@functools.cache
def flickering_clip() -> SampleClip:
    """Every other frame 12 levels brighter; frame 0 stays the keyframe."""
    frames = [
        cv2.add(frame, (12.0, 12.0, 12.0, 0.0)) if index % 2 else frame
        for index, frame in enumerate(loop_of(BROKEN_S))
    ]
    return SampleClip(encode_clip(frames), references(product_scene()))


@functools.cache
def seam_clip() -> SampleClip:
    scene = product_scene()
    return SampleClip(encode_clip(drifting_frames(scene, BROKEN_FRAMES)), references(scene))


@functools.cache
def wrong_size_clip() -> SampleClip:
    half = (WIDTH // 2, HEIGHT // 2)
    frames = [cv2.resize(frame, half, interpolation=cv2.INTER_AREA) for frame in loop_of(BROKEN_S)]
    return SampleClip(encode_clip(frames), references(product_scene()))


@functools.cache
def yuv444_clip() -> SampleClip:
    return SampleClip(encode_clip(list(loop_of(BROKEN_S)), pix_fmt="yuv444p"), references(product_scene()))


@functools.cache
def no_faststart_clip() -> SampleClip:
    return SampleClip(encode_clip(list(loop_of(BROKEN_S)), faststart=False), references(product_scene()))


@functools.cache
def too_short_clip() -> SampleClip:
    return SampleClip(encode_clip(list(loop_of(2.0))), references(product_scene()))


@functools.cache
def too_long_clip() -> SampleClip:
    """A 3-s loop played twice: 6 s and still seamless."""
    return SampleClip(encode_clip(list(loop_of(BROKEN_S)) * 2), references(product_scene()))


@functools.cache
def blurred_clip() -> SampleClip:
    """No product mask: blur also costs product PSNR (33 -> 24 dB here), repeating the failure."""
    frames = [cv2.GaussianBlur(frame, (0, 0), 1.0) for frame in loop_of(BROKEN_S)]
    scene = product_scene()
    return SampleClip(
        encode_clip(frames), {"keyframe": scene.keyframe(), "brand_background": scene.background}
    )


@functools.cache
def off_brand_clip() -> SampleClip:
    """The generator used the wrong background everywhere, keyframe included; the kit says otherwise."""
    off_brand = product_scene(background_colors=OFF_BRAND_COLORS)
    frames = list(loop_of(BROKEN_S, off_brand))
    return SampleClip(encode_clip(frames), references(product_scene(), keyframe=off_brand.keyframe()))


@functools.cache
def altered_product_clip() -> SampleClip:
    """The video model repainted the product; the keyframe still shows the real one."""
    altered = product_scene(product_color=ALTERED_PRODUCT_COLOR)
    return SampleClip(encode_clip(list(loop_of(BROKEN_S, altered))), references(product_scene()))
