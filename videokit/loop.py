"""Make clips that do not loop by themselves (GPU and API output) loop without a seam, at our sizes."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def cover_transform(src_size: tuple[int, int], dst_size: tuple[int, int]) -> tuple[float, int, int]:
    """Scale and centred crop offset that make `src_size` cover `dst_size`: (scale, crop_x, crop_y)."""
    (src_w, src_h), (dst_w, dst_h) = src_size, dst_size
    scale = max(dst_w / src_w, dst_h / src_h)
    scaled_w, scaled_h = max(dst_w, round(src_w * scale)), max(dst_h, round(src_h * scale))
    return scale, (scaled_w - dst_w) // 2, (scaled_h - dst_h) // 2


def fit_to_size(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale `frame` to cover `size` (w, h) and crop the centre, keeping the aspect ratio."""
    height, width = frame.shape[:2]
    if (width, height) == tuple(size):
        return frame
    scale, crop_x, crop_y = cover_transform((width, height), size)
    scaled_size = (max(size[0], round(width * scale)), max(size[1], round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(frame, scaled_size, interpolation=interpolation)
    return np.ascontiguousarray(scaled[crop_y : crop_y + size[1], crop_x : crop_x + size[0]])


def make_seamless_loop(frames: Sequence[np.ndarray], crossfade_frames: int) -> list[np.ndarray]:
    """Crossfade the last `crossfade_frames` frames into the first ones.

    The result has len(frames) - crossfade_frames frames. It starts mostly on the old tail and ends on
    the frame just before that tail, so playing it in a loop continues the original motion across
    the seam instead of jumping back to frame 0.
    """
    count = len(frames)
    if crossfade_frames < 0 or 2 * crossfade_frames > count:
        raise ValueError(
            f"crossfade of {crossfade_frames} frames needs at least twice as many frames, got {count}"
        )
    looped = list(frames[: count - crossfade_frames])
    tail = frames[count - crossfade_frames :]
    for index, tail_frame in enumerate(tail):
        head_weight = (index + 1) / (crossfade_frames + 1)
        looped[index] = cv2.addWeighted(frames[index], head_weight, tail_frame, 1 - head_weight, 0)
    return looped
