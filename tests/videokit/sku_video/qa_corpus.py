"""The QA calibration corpus: good provider-like loops and single-defect clips, encoded for real with H.264.

Good clips move the way image-to-video providers and our motion tier do (push-ins, pans, orbits and floats
at slow, medium and fast speeds), looped the two ways skuvid loops clips: a periodic loop, and a one-way move
played there and back (how provider output is made seamless). Each defect clip breaks one thing in an
otherwise good clip, so exactly one check group must fail. Encoding is CRF 20 veryfast (our encoder) or
CRF 26 ultrafast (what the provider emulators deliver, noisier at the loop point).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from tests.videokit.sku_video import clipfactory
from tests.videokit.sku_video.clipfactory import (
    FPS,
    HEIGHT,
    WIDTH,
    SampleClip,
    Scene,
    product_scene,
    references,
)

SECONDS = 3.0
N_FRAMES = round(SECONDS * FPS)
# Amplitude of each move at the loop's far point, per speed.
SPEEDS = {
    "push_in": {"slow": 0.02, "medium": 0.04, "fast": 0.08},  # zoom factor
    "pan": {"slow": 8.0, "medium": 24.0, "fast": 60.0},  # pixels
    "orbit": {"slow": 0.5, "medium": 1.5, "fast": 3.0},  # degrees about the product
    "float": {"slow": 4.0, "medium": 10.0, "fast": 24.0},  # pixels the product rises
}
ENCODINGS = {"ours": ("20", "veryfast"), "provider": ("26", "ultrafast")}
# Our motion tier makes periodic loops; provider output is one-way and played there and back by us.
LOOP_ENCODINGS = (("periodic", "ours"), ("periodic", "provider"), ("there_and_back", "provider"))


@dataclass(frozen=True)
class CorpusClip:
    name: str
    build: Callable[[], SampleClip]
    fails: str | None  # the one check group this clip must fail; None for a good clip


def camera(image: np.ndarray, zoom: float = 0.0, shift_px: float = 0.0, angle_deg: float = 0.0) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), angle_deg, 1.0 + zoom)
    matrix[0, 2] += shift_px
    rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
    moved = cv2.warpAffine(rgba, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return cv2.cvtColor(moved, cv2.COLOR_RGBA2RGB)


def pose(scene: Scene, move: str, amount: float) -> np.ndarray:
    """The scene with `move` applied at `amount` of its full amplitude."""
    if move == "float":
        return scene.keyframe(lift_px=amount)
    keyframe = scene.keyframe()
    if move == "push_in":
        return camera(keyframe, zoom=amount)
    if move == "pan":
        return camera(keyframe, shift_px=amount)
    return camera(keyframe, angle_deg=amount)


def loop_positions(loop: str, n_frames: int) -> np.ndarray:
    """Fraction of the full amplitude at each frame; position 0 (the keyframe) comes first either way."""
    if loop == "periodic":
        return (1.0 - np.cos(2.0 * np.pi * np.arange(n_frames) / n_frames)) / 2.0
    # A steady one-way move (what a provider delivers), then the same frames backwards without repeating
    # either end: the loop point is one ordinary step, but the turn at the far end is abrupt.
    forward = n_frames // 2 + 1
    one_way = np.arange(forward) / (forward - 1)
    return np.concatenate([one_way, one_way[-2:0:-1]])[:n_frames]


@functools.cache
def good_frames(move: str, speed: str, loop: str, scene: Scene | None = None) -> tuple[np.ndarray, ...]:
    scene = scene or product_scene()
    amplitude = SPEEDS[move][speed]
    return tuple(pose(scene, move, amplitude * p) for p in loop_positions(loop, N_FRAMES))


def encoded(frames, encoding: str = "ours") -> bytes:
    crf, preset = ENCODINGS[encoding]
    return clipfactory.encode_clip(list(frames), crf=crf, preset=preset)


def good_clip(move: str, speed: str, loop: str, encoding: str) -> SampleClip:
    return SampleClip(encoded(good_frames(move, speed, loop), encoding), references(product_scene()))


# ---------------------------------------------------------------- single defects, each on a good medium push-in


def base_frames() -> list[np.ndarray]:
    return list(good_frames("push_in", "medium", "there_and_back"))


def black_frames_clip() -> SampleClip:
    """Six black frames (8 %) in the middle: a dropped-frame glitch, not a black clip."""
    frames = base_frames()
    middle = len(frames) // 2
    frames[middle - 3 : middle + 3] = [np.zeros_like(frames[0])] * 6
    return SampleClip(encoded(frames), references(product_scene()))


def frozen_span_clip() -> SampleClip:
    """The picture stops for 1.5 s mid-loop."""
    frames = base_frames()
    start, still = len(frames) // 4, round(1.5 * FPS)
    frames[start : start + still] = [frames[start]] * still
    return SampleClip(encoded(frames), references(product_scene()))


def flicker_clip() -> SampleClip:
    frames = [cv2.add(f, (12.0, 12.0, 12.0, 0.0)) if i % 2 else f for i, f in enumerate(base_frames())]
    return SampleClip(encoded(frames), references(product_scene()))


def blur_clip() -> SampleClip:
    """No product mask: blur also costs product PSNR, which would repeat the failure."""
    scene = product_scene()
    frames = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in base_frames()]
    return SampleClip(encoded(frames), {"keyframe": scene.keyframe(), "brand_background": scene.background})


def seam_jump_clip() -> SampleClip:
    """A slow one-way push-in that is never played back: the loop point jumps 4 % of zoom at once."""
    positions = np.arange(N_FRAMES) / (N_FRAMES - 1)
    keyframe = product_scene().keyframe()
    frames = [camera(keyframe, zoom=SPEEDS["push_in"]["medium"] * p) for p in positions]
    return SampleClip(encoded(frames, "provider"), references(product_scene()))


def seam_jump_float_clip() -> SampleClip:
    """Only the product moves, rising 10 px one way and never coming back: a small object's jump."""
    scene = product_scene()
    frames = [scene.keyframe(lift_px=SPEEDS["float"]["medium"] * p) for p in np.arange(N_FRAMES) / (N_FRAMES - 1)]
    return SampleClip(encoded(frames, "provider"), references(scene))


def wrong_background_clip() -> SampleClip:
    off_brand = product_scene(background_colors=clipfactory.OFF_BRAND_COLORS)
    frames = good_frames("push_in", "medium", "there_and_back", off_brand)
    return SampleClip(encoded(frames), references(product_scene(), keyframe=off_brand.keyframe()))


def damaged_product_clip() -> SampleClip:
    altered = product_scene(product_color=clipfactory.ALTERED_PRODUCT_COLOR)
    frames = good_frames("push_in", "medium", "there_and_back", altered)
    return SampleClip(encoded(frames), references(product_scene()))


DEFECTS = {
    "black_frames": (black_frames_clip, "clip_content"),
    "frozen": (frozen_span_clip, "clip_content"),
    "flicker": (flicker_clip, "clip_content"),
    "blur": (blur_clip, "clip_content"),
    "seam_jump": (seam_jump_clip, "clip_loop_seam"),
    "seam_jump_float": (seam_jump_float_clip, "clip_loop_seam"),
    "wrong_background": (wrong_background_clip, "clip_brand_background"),
    "product_damaged": (damaged_product_clip, "clip_product_fidelity"),
}


def corpus() -> list[CorpusClip]:
    good = [
        CorpusClip(
            f"{move}_{speed}_{loop}_{encoding}",
            functools.partial(good_clip, move, speed, loop, encoding),
            None,
        )
        for move in SPEEDS
        for speed in SPEEDS[move]
        for loop, encoding in LOOP_ENCODINGS
    ]
    return good + [CorpusClip(name, build, fails) for name, (build, fails) in DEFECTS.items()]
