"""Reading a template video: what it is, its frames scaled and cropped to an aspect, its audio, single frames.

Frames travel as packed I420 arrays, (h * 3 / 2, w) uint8, the layout x264 reads; nothing here goes
through RGB.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np


class TemplateError(ValueError):
    """The template cannot be used (unreadable, no video, too short); the message says why."""


@dataclass(frozen=True)
class TemplateInfo:
    sha256: str
    width: int
    height: int
    fps: Fraction
    n_frames: int
    duration_s: float
    has_audio: bool
    matrix: str


def probe_template(data: bytes) -> TemplateInfo:
    try:
        container = av.open(io.BytesIO(data))
    except av.FFmpegError as error:
        raise TemplateError(f"cannot open the template video ({len(data)} bytes): {error}") from None
    with container:
        if not container.streams.video:
            raise TemplateError("the template has no video stream")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise TemplateError("the template's frame rate is unknown")
        n_frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        colorspace = stream.codec_context.colorspace
        # Untagged HD is BT.709 by convention; our own clips are tagged BT.601 (smpte170m, code 6).
        matrix = "bt709" if colorspace == 1 or (colorspace == 2 and stream.codec_context.height >= 720) else "bt601"
        return TemplateInfo(
            sha256=hashlib.sha256(data).hexdigest(),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Fraction(fps),
            n_frames=n_frames,
            duration_s=n_frames / float(fps),
            has_audio=bool(container.streams.audio),
            matrix=matrix,
        )


def cover_geometry(source: tuple[int, int], target: tuple[int, int], focus: tuple[float, float]):
    """Scaled size that covers the target, and the even crop offset around the focus point."""
    (sw, sh), (tw, th) = source, target
    scale = max(tw / sw, th / sh)
    scaled = (max(tw, 2 * math.ceil(sw * scale / 2)), max(th, 2 * math.ceil(sh * scale / 2)))
    offset = (2 * round((scaled[0] - tw) * focus[0] / 2), 2 * round((scaled[1] - th) * focus[1] / 2))
    return scaled, offset


def to_i420(frame: av.VideoFrame, target: tuple[int, int], focus: tuple[float, float],
            colorspace: str | None = None) -> np.ndarray:
    """A decoded frame scaled to cover `target`, cropped around the focus, as packed I420 (h * 3 / 2, w);
    in `colorspace` ("ITU601", "ITU709") when given, else in the frame's own matrix."""
    (scaled_w, scaled_h), (ox, oy) = cover_geometry((frame.width, frame.height), target, focus)
    shrinking = scaled_w < frame.width
    planes = frame.to_ndarray(format="yuv420p", width=scaled_w, height=scaled_h,
                              interpolation="AREA" if shrinking else "BICUBIC", dst_colorspace=colorspace)
    tw, th = target
    if (scaled_w, scaled_h) == target:
        return planes
    y_size, c_size = scaled_w * scaled_h, (scaled_w // 2) * (scaled_h // 2)
    flat = planes.reshape(-1)
    luma = flat[:y_size].reshape(scaled_h, scaled_w)[oy : oy + th, ox : ox + tw]
    u = flat[y_size : y_size + c_size].reshape(scaled_h // 2, scaled_w // 2)
    v = flat[y_size + c_size :].reshape(scaled_h // 2, scaled_w // 2)
    crop = np.s_[oy // 2 : (oy + th) // 2, ox // 2 : (ox + tw) // 2]
    return np.concatenate([luma.reshape(-1), u[crop].reshape(-1), v[crop].reshape(-1)]).reshape(th * 3 // 2, tw)


def template_frames(data: bytes, target: tuple[int, int], focus: tuple[float, float], n_frames: int
                    ) -> Iterator[np.ndarray]:
    """Exactly n_frames I420 frames at the target size; a shorter template is looped from its start."""
    produced = 0
    while produced < n_frames:
        before = produced
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield to_i420(frame, target, focus)
                produced += 1
                if produced == n_frames:
                    return
        if produced == before:
            raise TemplateError("the template video decodes to no frames")


def frame_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable numpy views of a yuv420p VideoFrame's Y, U and V planes (line padding cut off)."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        views.append(rows[:, : plane.width])
    return views[0], views[1], views[2]


def extract_audio(data: bytes, duration_s: float) -> bytes | None:
    """The template's first audio stream, stream-copied into an M4A, packets starting before duration_s."""
    with av.open(io.BytesIO(data)) as source:
        if not source.streams.audio:
            return None
        audio = source.streams.audio[0]
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mp4") as target:
            out = target.add_stream_from_template(audio)
            for packet in source.demux(audio):
                if packet.dts is None or packet.pts is None:
                    continue
                if float(packet.pts * packet.time_base) >= duration_s - 1e-6:
                    break
                packet.stream = out
                target.mux(packet)
    return buffer.getvalue()


def decode_luma(mp4: bytes, indices: Iterable[int], fps: Fraction, gop: int) -> dict[int, np.ndarray]:
    """Y planes of the wanted frames, decoding only from the keyframe before each one (never the whole clip).

    Every frame decoded on the way (from a group's keyframe up to its last wanted frame) is returned too.
    """
    groups: dict[int, int] = {}
    for index in sorted(set(indices)):
        key = index // gop * gop
        groups[key] = max(groups.get(key, index), index)
    found: dict[int, np.ndarray] = {}
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        decoder = stream.codec_context
        decoder.thread_count = 1
        for key, last in sorted(groups.items()):
            container.seek(int(Fraction(key) / fps / stream.time_base), stream=stream, backward=True, any_frame=False)
            frames, fed = [], 0
            for packet in container.demux(stream):
                if packet.pts is None:
                    break
                index = round(packet.pts * packet.time_base * fps)
                if packet.is_keyframe and index != key and fed:
                    break  # the next closed GOP: nothing in it is needed for this group
                frames += decoder.decode(packet)
                # In decode order, once every frame up to `last` has been fed, the rest only adds work.
                if key <= index <= last:
                    fed += 1
                    if fed == last - key + 1:
                        break
            frames += decoder.decode(None)
            decoder.flush_buffers()
            for frame in frames:
                index = round(frame.pts * stream.time_base * fps)
                if key <= index <= last:
                    plane = frame.planes[0]
                    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                    found[index] = rows[:, : plane.width].copy()
    return found
