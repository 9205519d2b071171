"""Make clips that do not loop by themselves (GPU and API output) loop without a seam, at our sizes."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from videokit.media.encode import ClipFile, EncodeSettings, encode_jpeg, encode_mp4


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


def there_and_back_loop(frames: Sequence[np.ndarray], length: int) -> list[np.ndarray]:
    """`length` frames that ease forward through `frames` and back again.

    Time follows (1 - cos)/2, so the loop leaves frame 0 and returns to it with zero speed: no seam, no
    dissolve, and frame 0 stays the clip's own first frame (for image-to-video output, the keyframe that
    QA compares the product against). Between source frames it blends the two neighbours.
    """
    if len(frames) < 2 or length < 2:
        raise ValueError(f"a loop needs at least 2 source and 2 output frames, got {len(frames)} and {length}")
    last = len(frames) - 1
    looped = []
    for index in range(length):
        position = last * (1 - np.cos(2 * np.pi * index / length)) / 2
        low = min(int(position), last - 1)
        weight = position - low
        looped.append(frames[low] if weight < 1e-3 else cv2.addWeighted(frames[low], 1 - weight, frames[low + 1], weight, 0))
    return looped


# A generated clip played up to this much faster than it was made still looks natural.
MAX_SPEEDUP = 1.25


class SourceTooShort(ValueError):
    pass


def loop_source_indices(source_frames: int, source_fps: float, length: int, fps: int) -> list[int]:
    """The source frames a there-and-back loop of `length` frames at `fps` plays forward: half the loop's
    time of the source at its own speed, sped up by at most MAX_SPEEDUP when the source is shorter."""
    needed = length // 2 + 1
    natural_step = source_fps / fps
    step = min(natural_step, (source_frames - 1) / (needed - 1))
    if source_frames < 2 or step * MAX_SPEEDUP < natural_step:
        shortest = (needed - 1) * natural_step / MAX_SPEEDUP / source_fps
        raise SourceTooShort(
            f"{source_frames} frames at {source_fps:g} fps last {source_frames / source_fps:.2f}s; a "
            f"{length / fps:g}s loop needs at least {shortest:.2f}s"
        )
    return [int(index * step) for index in range(needed)]


def looped_clip(frames: Sequence[np.ndarray], size: tuple[int, int], fps: int, length: int,
                settings: EncodeSettings) -> ClipFile:
    """Source frames (as picked by loop_source_indices) fitted to `size`, played there and back as a loop
    of `length` frames, encoded like every other clip, with frame 0 as the poster."""
    fitted = [fit_to_size(frame, size) for frame in frames]
    looped = there_and_back_loop(fitted, length)
    return ClipFile(mp4=encode_mp4(looped, size, fps, settings), poster=encode_jpeg(looped[0]), width=size[0],
                    height=size[1], fps=fps, n_frames=length)
