"""A training module's scenes encoded once each and joined by stream copy into one MP4 with chapters.

Every scene is encoded with the same x264 settings and closed GOPs (smart_render.EncoderSettings), so scenes
made on different days join without re-encoding (smart_render.join_spans). A still scene costs one GOP: its
slide is encoded once as a GOP and that GOP is repeated by stream copy for the scene's length (a static frame
needs nothing more), plus a shorter tail. A looped product clip is encoded once per loop the same way;
only a presenter scene, whose picture moves throughout, is encoded frame by frame.

Audio is AAC, encoded per scene and joined by stream copy as well. That is exact because every scene lasts a
whole number of AAC frames (1024 samples) and of video frames: scene lengths are rounded up to the quantum
where both meet (0.32 s at 25 fps and 48 kHz). A scene's audio begins and ends in silence, so dropping the
encoder's priming frame from every scene but the first leaves no audible seam.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import av
import cv2
import numpy as np

from videokit.campaigns.personalize import i420_planes
from videokit.campaigns.smart_render import EncoderSettings, encode_span, join_spans
from videokit.media.probe import is_faststart, top_level_boxes
from videokit.media.template_video import to_i420
from videokit.training.captions import Chapter
from videokit.training.narration import Speech

AAC_FRAME = 1024
ASSEMBLY_VERSION = 1
MIN_PART_FRAMES = 8  # shortest part encoded on its own (see repeated_parts)


@dataclass(frozen=True)
class AssemblySettings:
    size: tuple[int, int] = (1280, 720)
    fps: int = 25
    sample_rate: int = 48000
    audio_bitrate: int = 96000
    # FFmpeg's "fast" AAC coder: a third of the default's time on speech at about the same size and quality.
    aac_coder: str = "fast"
    crf: int = 21
    preset: str = "veryfast"
    gop_s: float = 2.0

    def __post_init__(self) -> None:
        width, height = self.size
        if width % 2 or height % 2:
            raise ValueError(f"frame size must be even, got {width}x{height}")
        if self.sample_rate % self.fps:
            raise ValueError(f"{self.sample_rate} Hz does not divide into {self.fps} fps frames")

    @property
    def frame_samples(self) -> int:
        return self.sample_rate // self.fps

    @property
    def quantum_frames(self) -> int:
        """Fewest video frames that also hold a whole number of AAC frames."""
        return AAC_FRAME // math.gcd(AAC_FRAME, self.frame_samples)

    @property
    def gop(self) -> int:
        return max(1, round(self.gop_s * self.fps))

    def encoder(self) -> EncoderSettings:
        return EncoderSettings(
            crf=self.crf, preset=self.preset, gop=self.gop, threads=1, matrix="bt601", fast_analysis=True
        )

    def scene_frames(self, seconds: float) -> int:
        """Frames of a scene that must last at least `seconds`, rounded up to the audio/video quantum."""
        quantum = self.quantum_frames
        return max(quantum, math.ceil(seconds * self.fps / quantum - 1e-9) * quantum)

    def samples_for(self, n_frames: int) -> int:
        return n_frames * self.frame_samples

    def fingerprint(self) -> str:
        """What a cached scene must share with the others to join: settings and the codec libraries."""
        data = {
            **asdict(self),
            "version": ASSEMBLY_VERSION,
            "av": av.__version__,
            "ffmpeg": av.library_versions,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VideoPart:
    """An encoded stretch of frames and how many times it plays back to back."""

    mp4: bytes
    frames: int
    repeat: int = 1


@dataclass
class ScenePieces:
    """One scene ready to join: video parts, AAC audio of exactly n_frames worth of samples."""

    parts: list[VideoPart]
    audio: bytes
    n_frames: int
    meta: dict = field(default_factory=dict)

    @property
    def video_frames(self) -> int:
        return sum(part.frames * part.repeat for part in self.parts)


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)


# --------------------------------------------------------------------------- video of a scene


def repeated_parts(unit: Sequence[np.ndarray], n_frames: int, settings: AssemblySettings) -> list[VideoPart]:
    """A cycle of I420 frames played for n_frames: the cycle encoded once and repeated, plus a tail."""
    size, fps, encoder = settings.size, Fraction(settings.fps), settings.encoder()
    length = min(len(unit), n_frames)
    repeat, tail = divmod(n_frames, length)
    if 0 < tail < MIN_PART_FRAMES and repeat:
        # x264 gives a stream of one or two frames no reordering delay, so its timestamps would not continue
        # those of the parts around it: such a tail takes one cycle more.
        repeat, tail = repeat - 1, tail + length
    parts = []
    if repeat:
        parts.append(VideoPart(encode_span(iter(unit[:length]), size, fps, encoder), length, repeat))
    if tail:
        cycle = (unit[index % length] for index in range(tail))
        parts.append(VideoPart(encode_span(cycle, size, fps, encoder), tail, 1))
    return parts


def still_parts(rgb: np.ndarray, n_frames: int, settings: AssemblySettings) -> list[VideoPart]:
    """A still held for n_frames: one GOP of it, repeated."""
    frame = rgb_to_i420(rgb)
    return repeated_parts([frame] * settings.gop, n_frames, settings)


def frames_part(frames: Iterable[np.ndarray], n_frames: int, settings: AssemblySettings) -> list[VideoPart]:
    """Frames that all differ (a presenter), encoded in one go."""
    data = encode_span(frames, settings.size, Fraction(settings.fps), settings.encoder())
    return [VideoPart(data, n_frames, 1)]


def decode_i420(
    mp4: bytes, size: tuple[int, int], focus: tuple[float, float] = (0.5, 0.5)
) -> tuple[list[np.ndarray], list[float]]:
    """Every frame of a clip scaled to cover `size` (cropped around focus) as I420, with its time in seconds
    from the first frame."""
    frames, times = [], []
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        for frame in container.decode(stream):
            # Modules are BT.601 (rgb_to_i420); product clips may be BT.709: convert, never relabel.
            frames.append(to_i420(frame, size, focus, colorspace="ITU601"))
            times.append(frame.time if frame.time is not None else len(times) / rate)
    return frames, [t - times[0] for t in times] if times else times


def paste_i420(
    target: np.ndarray, size: tuple[int, int], patch: np.ndarray, box: tuple[int, int, int, int]
) -> None:
    """Copy an I420 patch of box size (w, h) into an I420 frame at (x, y); x, y, w, h even."""
    x, y, w, h = box
    luma, u, v = i420_planes(target, *size)
    p_luma, p_u, p_v = i420_planes(patch, w, h)
    luma[y : y + h, x : x + w] = p_luma
    u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = p_u
    v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = p_v


def clip_loop_frames(
    background_rgb: np.ndarray, clip_mp4: bytes, box: tuple[int, int, int, int], settings: AssemblySettings
) -> list[np.ndarray]:
    """One loop of a product clip on its card, at the module's frame rate (nearest source frame)."""
    frames, times = decode_i420(clip_mp4, (box[2], box[3]))
    if not frames:
        raise ValueError("the product clip decodes to no frames")
    step = (times[-1] - times[0]) / max(1, len(times) - 1) if len(times) > 1 else 1.0 / settings.fps
    loop_s = step * len(frames)
    count = max(1, round(loop_s * settings.fps))
    card = rgb_to_i420(background_rgb)
    out = []
    for index in range(count):
        frame = card.copy()
        source = min(len(frames) - 1, int(index / settings.fps / step + 1e-6))
        paste_i420(frame, settings.size, frames[source], box)
        out.append(frame)
    return out


def presenter_frames(
    background_rgb: np.ndarray,
    clip_mp4: bytes,
    box: tuple[int, int, int, int],
    n_frames: int,
    lead_in_s: float,
    settings: AssemblySettings,
) -> Iterator[np.ndarray]:
    """The presenter's clip in its box over the slide, starting lead_in_s into the scene; before and after
    the clip its first and last frames hold."""
    faces, times = decode_i420(clip_mp4, (box[2], box[3]), focus=(0.5, 0.35))
    if not faces:
        raise ValueError("the presenter clip decodes to no frames")
    card = rgb_to_i420(background_rgb)
    source = 0
    for index in range(n_frames):
        clip_t = index / settings.fps - lead_in_s
        while source + 1 < len(faces) and times[source + 1] <= clip_t + 1e-6:
            source += 1
        frame = card.copy()
        paste_i420(frame, settings.size, faces[source], box)
        yield frame


# --------------------------------------------------------------------------- audio


def scene_samples(speech: Speech | None, n_samples: int, lead_in_s: float, sample_rate: int) -> np.ndarray:
    """The scene's soundtrack: silence, the speech from lead_in_s on, silence to exactly n_samples."""
    track = np.zeros(n_samples, np.int16)
    if speech is None or speech.samples.size == 0:
        return track
    if speech.sample_rate != sample_rate:
        speech = speech.resampled(sample_rate)
    start = round(lead_in_s * sample_rate)
    length = min(len(speech.samples), n_samples - start)
    if length < len(speech.samples):
        raise ValueError(
            f"speech of {speech.duration_s:.2f}s does not fit a scene of {n_samples / sample_rate:.2f}s"
        )
    track[start : start + length] = speech.samples[:length]
    return track


def encode_audio(samples: np.ndarray, settings: AssemblySettings) -> bytes:
    """Mono AAC-LC in an M4A of exactly len(samples) samples (a multiple of 1024)."""
    if len(samples) % AAC_FRAME:
        raise ValueError(f"{len(samples)} samples is not a whole number of AAC frames")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(
            "aac", rate=settings.sample_rate, layout="mono", options={"aac_coder": settings.aac_coder}
        )
        stream.bit_rate = settings.audio_bitrate
        chunk = 64 * AAC_FRAME
        for offset in range(0, len(samples), chunk):
            piece = np.ascontiguousarray(samples[offset : offset + chunk].astype(np.int16)[None, :])
            frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
            frame.sample_rate, frame.pts = settings.sample_rate, offset
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def join_audio(pieces: Sequence[tuple[bytes, int]]) -> bytes:
    """Stream-copy per-scene AAC (m4a, sample count) end to end. Each scene after the first loses its
    priming frame and every scene its flush frame, so the result holds exactly the sum of the samples."""
    inputs = [av.open(io.BytesIO(data)) for data, _ in pieces]
    try:
        streams = [container.streams.audio[0] for container in inputs]
        reference = streams[0].codec_context.extradata
        for index, stream in enumerate(streams[1:], start=1):
            if stream.codec_context.extradata != reference:
                raise ValueError(f"scene {index}'s audio was encoded differently; cannot stream-copy")
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mp4") as output:
            out = output.add_stream_from_template(streams[0])
            offset = 0  # samples written so far
            for index, (container, stream, (_, n_samples)) in enumerate(zip(inputs, streams, pieces)):
                per_sample = Fraction(1, stream.codec_context.sample_rate) / stream.time_base
                limit, shift = n_samples * per_sample, offset * per_sample
                if shift.denominator != 1:
                    raise ValueError(f"scene {index} starts between two ticks of the audio time base")
                for packet in container.demux(stream):
                    if packet.dts is None:
                        continue
                    if (index > 0 and packet.pts < 0) or packet.pts >= limit:
                        continue
                    packet.pts += int(shift)
                    packet.dts += int(shift)
                    packet.stream = out
                    output.mux(packet)
                offset += n_samples
        return buffer.getvalue()
    finally:
        for container in inputs:
            container.close()


# --------------------------------------------------------------------------- the module


def assemble(
    scenes: Sequence[ScenePieces],
    chapters: Sequence[Chapter],
    settings: AssemblySettings,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """Join the scenes' video and audio by stream copy into one faststart MP4 with chapter markers."""
    parts, starts, frame = [], [], 0
    for scene in scenes:
        if scene.video_frames != scene.n_frames:
            raise ValueError(f"a scene's parts hold {scene.video_frames} frames, not its {scene.n_frames}")
        for part in scene.parts:
            for _ in range(part.repeat):
                parts.append(part.mp4)
                starts.append(frame)
                frame += part.frames
    audio = join_audio([(scene.audio, settings.samples_for(scene.n_frames)) for scene in scenes])
    joined = join_spans(parts, starts, Fraction(settings.fps), audio)
    return with_chapters(joined, chapters, metadata or {})


def with_chapters(mp4: bytes, chapters: Sequence[Chapter], metadata: dict[str, str]) -> bytes:
    """Remux (stream copy) with MP4 chapter markers and container metadata, index first (faststart)."""
    with tempfile.TemporaryDirectory(prefix="skuvid-chapters-") as folder:
        path = os.path.join(folder, "module.mp4")
        with (
            av.open(io.BytesIO(mp4)) as source,
            av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as output,
        ):
            streams = {
                s.index: output.add_stream_from_template(s)
                for s in source.streams
                if s.type in ("video", "audio")
            }
            for key, value in metadata.items():
                output.metadata[key] = value
            # Chapters must be set before the header is written, which the first packet does.
            output.set_chapters(
                [
                    {
                        "id": index + 1,
                        "start": round(c.start_s * 1000),
                        "end": round(c.end_s * 1000),
                        "time_base": Fraction(1, 1000),
                        "metadata": {"title": c.title},
                    }
                    for index, c in enumerate(chapters)
                ]
            )
            for packet in source.demux():
                if packet.dts is None or packet.stream.index not in streams:
                    continue
                packet.stream = streams[packet.stream.index]
                output.mux(packet)
        with open(path, "rb") as file:
            return file.read()


@dataclass(frozen=True)
class ModuleFileReport:
    video_codec: str
    audio_codec: str
    width: int
    height: int
    fps: float
    video_s: float
    audio_s: float
    faststart: bool
    chapters: int
    chapter_titles: tuple[str, ...]


def inspect_module(mp4: bytes) -> ModuleFileReport:
    """What the assembled file holds, from its headers: codecs, lengths, box order, chapters."""
    with av.open(io.BytesIO(mp4)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        chapters = container.chapters()
        rate = video.average_rate or video.guessed_rate
        return ModuleFileReport(
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else "",
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=float(rate) if rate else 0.0,
            video_s=float(video.duration * video.time_base) if video.duration else 0.0,
            audio_s=float(audio.duration * audio.time_base) if audio is not None and audio.duration else 0.0,
            faststart=is_faststart(top_level_boxes(mp4)),
            chapters=len(chapters),
            chapter_titles=tuple(c["metadata"].get("title", "") for c in chapters),
        )
