"""What an MP4 clip claims to be: container, codec, pixel format, box order, size, rate and length."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import av
from av.container import InputContainer
from av.video.stream import VideoStream


class ClipUnreadable(ValueError):
    """The bytes are not a video that FFmpeg can open and decode."""


@dataclass
class ContainerReport:
    """What the container's headers say, without decoding; n_frames is the container's own count."""

    format_name: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    major_brand: str  # ftyp major brand, e.g. "isom"; "" when there is no ftyp box
    codec: str
    pix_fmt: str
    faststart: bool
    width: int
    height: int
    fps: float
    duration_s: float
    n_frames: int


@dataclass(frozen=True)
class Box:
    kind: str
    offset: int
    size: int


def top_level_boxes(data: bytes) -> list[Box]:
    """ISO BMFF top-level box headers in file order; stops at the first header that cannot be a box."""
    boxes: list[Box] = []
    offset = 0
    while offset + 8 <= len(data):
        size, raw_kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > len(data):
                break
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header or not raw_kind.isascii() or not raw_kind.decode("ascii").isprintable():
            break
        boxes.append(Box(raw_kind.decode("ascii"), offset, size))
        offset += size
    return boxes


def is_faststart(boxes: list[Box]) -> bool:
    """A player can start before the download ends only if the index (moov) precedes the media (mdat)."""
    kinds = [box.kind for box in boxes]
    return "moov" in kinds and "mdat" in kinds and kinds.index("moov") < kinds.index("mdat")


def major_brand(data: bytes, boxes: list[Box]) -> str:
    ftyp = next((box for box in boxes if box.kind == "ftyp"), None)
    if ftyp is None or ftyp.size < 12:
        return ""
    return data[ftyp.offset + 8 : ftyp.offset + 12].decode("ascii", errors="replace")


@contextmanager
def open_video(data: bytes) -> Iterator[tuple[InputContainer, VideoStream]]:
    """The demuxer and its first video stream; FFmpeg failures while open surface as ClipUnreadable."""
    if not data:
        raise ClipUnreadable("clip is empty (0 bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as error:
        raise ClipUnreadable(f"FFmpeg cannot open the clip ({len(data)} bytes): {error}") from error
    with container:
        if not container.streams.video:
            raise ClipUnreadable(f"clip has no video stream (format {container.format.name})")
        try:
            yield container, container.streams.video[0]
        except av.FFmpegError as error:
            raise ClipUnreadable(f"FFmpeg cannot decode the clip: {error}") from error


def probe_mp4(data: bytes) -> ContainerReport:
    """Read the container headers only; raises ClipUnreadable when FFmpeg cannot open the bytes."""
    with open_video(data) as (container, stream):
        return container_report(data, container, stream)


def container_report(data: bytes, container: InputContainer, stream: VideoStream) -> ContainerReport:
    boxes = top_level_boxes(data)
    fps = stream_fps(stream)
    duration_s = stream_duration_s(container, stream)
    return ContainerReport(
        format_name=container.format.name,
        major_brand=major_brand(data, boxes),
        codec=stream.codec_context.name,
        pix_fmt=stream.codec_context.pix_fmt or "",
        faststart=is_faststart(boxes),
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=fps,
        duration_s=duration_s,
        n_frames=stream.frames or round(duration_s * fps),
    )


def stream_fps(stream: VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def stream_duration_s(container: InputContainer, stream: VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base), 3)
    if container.duration is not None:
        return round(container.duration / av.time_base, 3)
    return 0.0
