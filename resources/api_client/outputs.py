"""The provider's video, checked, fitted to the SKU's size, looped and encoded like the CPU tier's."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator

import av
import numpy as np
from PIL import Image

from resources.api_client.errors import RequestInfo, UnusableOutput
from resources.providers.base import ClipRequest
from videokit.media.encode import ClipFile, EncodeSettings
from videokit.media.probe import ClipUnreadable, probe_mp4
from videokit.sku_video.loop import SourceTooShort, fit_to_size, loop_source_indices, looped_clip


def encoded_image(frame: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    options = {"compress_level": 6} if image_format == "PNG" else {"quality": 95}
    Image.fromarray(frame).save(buffer, image_format, **options)
    return buffer.getvalue()


def clip_from_provider_video(
    mp4: bytes,
    request: ClipRequest,
    settings: EncodeSettings,
    provider: str,
    source: RequestInfo | None = None,
) -> ClipFile:
    """The provider's video (downloaded by `source`), checked, fitted to `request.size`, resampled to
    `request.fps`, looped and encoded."""

    def unusable(problem: str) -> UnusableOutput:
        return UnusableOutput(provider, f"output video {problem}", source)

    try:
        report = probe_mp4(mp4)
    except ClipUnreadable as error:
        raise unusable(f"is unreadable: {error}") from None
    length = round(request.duration_s * request.fps)
    if report.fps <= 0 or report.n_frames <= 0:
        raise unusable(f"has no frames ({report.n_frames} at {report.fps} fps)")
    try:
        indices = loop_source_indices(report.n_frames, report.fps, length, request.fps)
    except SourceTooShort as error:
        raise unusable(f"is too short: {error}") from None
    try:
        frames = list(_frames_at(mp4, indices, request.size))
    except av.FFmpegError as error:
        raise unusable(f"stops decoding: {error}") from None
    if len(frames) < len(indices):
        raise unusable(f"decoded to {len(frames)} of the {len(indices)} frames it claims")
    return looped_clip(frames, request.size, request.fps, length, settings)


def _frames_at(mp4: bytes, indices: list[int], size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Source frames at `indices` (ascending, repeats allowed), each converted to RGB and fitted once; the
    frames in between are decoded but never converted."""
    wanted = Counter(indices)
    last = max(indices)
    with av.open(io.BytesIO(mp4), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                fitted = fit_to_size(frame.to_ndarray(format="rgb24"), size)
                for _ in range(wanted[index]):
                    yield fitted
            if index >= last:
                return
