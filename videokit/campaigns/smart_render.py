"""Smart rendering: encode a template's unchanged spans once, re-encode only the spans overlays touch.

The frame range is cut on a fixed GOP grid. A span that no slot touches is encoded once per (template,
aspect, plan) and cached; a span that a slot touches keeps its decoded template frames, so each recipient
costs one encode of those frames only. Every span is its own x264 stream with identical settings, so each
starts with an IDR frame and no frame refers across a cut (closed GOPs). Spans are then joined by stream
copy: packets are remuxed with their timestamps shifted, the template's audio is copied alongside, and the
MP4 is written with faststart.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import numpy as np

from videokit.media.template_video import decode_luma, extract_audio, template_frames

PLAN_VERSION = 3


@dataclass(frozen=True)
class EncoderSettings:
    crf: int = 21
    preset: str = "veryfast"
    gop: int = 15  # frames per closed GOP: the grid spans snap to
    threads: int = 1  # per encoder; parallelism comes from rendering chunks of recipients as separate steps
    matrix: str = "bt601"  # colour matrix the frames are in, and tagged with
    fast_analysis: bool = True  # analysis-only options: the bitstream stays compatible with any other span

    def options(self) -> dict[str, str]:
        colormatrix = "smpte170m" if self.matrix == "bt601" else "bt709"
        # A fixed grid and no scene cuts put IDR frames at the same places in every span and every recipient.
        params = (f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0:open-gop=0"
                  f":colorprim=bt709:transfer=bt709:colormatrix={colormatrix}:range=tv")
        if self.fast_analysis:
            # Measured on the 720p sample template: about 2x the speed of plain veryfast; at the same crf 0.7 dB
            # lower PSNR and 7% fewer bytes (one crf lower matches its quality for 8% more bytes).
            params += ":partitions=i8x8,i4x4:subme=1:b-adapt=0:rc-lookahead=5"
        return {"crf": str(self.crf), "preset": self.preset, "x264-params": params}


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # exclusive
    changed: bool

    @property
    def length(self) -> int:
        return self.end - self.start


def frame_window(start_s: float, end_s: float, fps: Fraction) -> tuple[int, int]:
    """Frames [first, last) whose timestamps i / fps fall in [start_s, end_s)."""
    return math.ceil(start_s * fps - 1e-6), math.ceil(end_s * fps - 1e-6)


def plan_spans(n_frames: int, windows: Iterable[tuple[int, int]], gop: int) -> list[Span]:
    """Cut [0, n_frames) into spans on the GOP grid: windows snap outward to the grid and merge."""
    snapped = sorted((max(0, first // gop * gop), min(n_frames, -(-last // gop) * gop))
                     for first, last in windows if last > first and first < n_frames)
    merged: list[list[int]] = []
    for first, last in snapped:
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    spans, cursor = [], 0
    for first, last in merged:
        if first > cursor:
            spans.append(Span(cursor, first, False))
        spans.append(Span(first, last, True))
        cursor = last
    if cursor < n_frames:
        spans.append(Span(cursor, n_frames, False))
    return spans


def encode_span(frames: Iterable[np.ndarray | av.VideoFrame], size: tuple[int, int], fps: Fraction,
                settings: EncoderSettings) -> bytes:
    """One closed-GOP H.264 stream in a bare MP4 (in memory): frame i at pts i in a 1/fps time base.

    Frames are packed I420 arrays (h * 3 / 2, w) or yuv420p VideoFrames.
    """
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options=settings.options())
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = 1 / fps
        stream.codec_context.thread_count = settings.threads
        for index, planes in enumerate(frames):
            frame = planes if isinstance(planes, av.VideoFrame) else av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def join_spans(parts: list[bytes], starts: list[int], fps: Fraction, audio: bytes | None) -> bytes:
    """Stream-copy the spans end to end (timestamps shifted by each span's first frame) plus the audio."""
    inputs = [av.open(io.BytesIO(part)) for part in parts]
    sound = av.open(io.BytesIO(audio)) if audio else None
    try:
        video_streams = [container.streams.video[0] for container in inputs]
        reference = video_streams[0].codec_context.extradata
        for index, stream in enumerate(video_streams[1:], start=1):
            if stream.codec_context.extradata != reference:
                raise ValueError(f"span {index} was encoded with different parameter sets; cannot stream-copy")
        with tempfile.TemporaryDirectory(prefix="skuvid-join-") as folder:
            path = os.path.join(folder, "clip.mp4")
            with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as output:
                video_out = output.add_stream_from_template(video_streams[0])
                audio_out = output.add_stream_from_template(sound.streams.audio[0]) if sound else None
                timed = []
                for container, stream, start in zip(inputs, video_streams, starts):
                    shift = Fraction(start) / fps / stream.time_base
                    if shift.denominator != 1:
                        raise ValueError(f"frame {start} does not fall on the stream's time base {stream.time_base}")
                    for packet in container.demux(stream):
                        if packet.dts is None:
                            continue
                        packet.pts += int(shift)
                        packet.dts += int(shift)
                        packet.stream = video_out
                        timed.append((float(packet.dts * packet.time_base), 0, packet))
                if sound is not None:
                    for packet in sound.demux(sound.streams.audio[0]):
                        if packet.dts is None:
                            continue
                        packet.stream = audio_out
                        timed.append((float(packet.dts * packet.time_base), 1, packet))
                # Interleave by decode time so a player streaming the file gets sound and picture together.
                timed.sort(key=lambda item: (item[0], item[1]))
                for _, _, packet in timed:
                    output.mux(packet)
            with open(path, "rb") as file:
                return file.read()
    finally:
        for container in inputs:
            container.close()
        if sound is not None:
            sound.close()


@dataclass(frozen=True)
class AspectPlan:
    """What one prepared aspect is: size, timing, spans and encoder settings (stored as plan.json)."""

    template_sha256: str
    size: tuple[int, int]
    focus: tuple[float, float]
    fps: Fraction
    n_frames: int
    spans: tuple[Span, ...]
    settings: EncoderSettings

    def key(self) -> str:
        # A different FFmpeg/x264 build may write different parameter sets; its spans must not be mixed in.
        data = {**self.to_json(), "version": PLAN_VERSION, "av": av.__version__, "ffmpeg": av.library_versions}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]

    def to_json(self) -> dict:
        return {
            "template_sha256": self.template_sha256, "size": list(self.size), "focus": list(self.focus),
            "fps": [self.fps.numerator, self.fps.denominator], "n_frames": self.n_frames,
            "spans": [asdict(span) for span in self.spans], "settings": asdict(self.settings),
        }

    @classmethod
    def from_json(cls, data: dict) -> AspectPlan:
        return cls(
            template_sha256=data["template_sha256"], size=tuple(data["size"]), focus=tuple(data["focus"]),
            fps=Fraction(*data["fps"]), n_frames=data["n_frames"],
            spans=tuple(Span(**span) for span in data["spans"]), settings=EncoderSettings(**data["settings"]),
        )

    def joins(self) -> list[int]:
        return [span.start for span in self.spans[1:]]


def prepare_aspect(template: bytes, plan: AspectPlan, cache_root: str | os.PathLike) -> Path:
    """Decode and scale the template once, encode its unchanged spans, keep the changed spans' frames.

    The result is a folder under cache_root named by the plan's hash; a folder that exists is complete
    (it is built under a temporary name and renamed), so any number of runs and workers can share it.
    """
    folder = Path(cache_root) / plan.key()
    if (folder / "plan.json").exists():
        return folder
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{plan.key()}-", dir=cache_root))
    try:
        frames = template_frames(template, plan.size, plan.focus, plan.n_frames)
        edges = {}
        edge_frames = {b - 1 for b in plan.joins()} | set(plan.joins())
        width, height = plan.size
        for span in plan.spans:
            if span.changed:
                # Written frame by frame (not through a writable memory map), so preparing holds one frame.
                shape = (span.length, height * 3 // 2, width)
                with open(scratch / f"frames-{span.start:06d}.npy", "wb") as file:
                    np.lib.format.write_array_header_1_0(
                        file, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                               "shape": shape})
                    file.writelines(np.ascontiguousarray(next(frames)).tobytes() for _ in range(span.length))
            else:
                def unchanged(span: Span = span):
                    for index in range(span.start, span.end):
                        planes = next(frames)
                        if index in edge_frames:
                            edges[f"f{index}"] = planes
                        yield planes

                data = encode_span(unchanged(), plan.size, plan.fps, plan.settings)
                (scratch / f"span-{span.start:06d}.mp4").write_bytes(data)
                # A closed GOP decodes the same wherever it is joined, so its frames at the cuts are decoded
                # once here and per-clip QA decodes only the changed side of each cut.
                wanted = [index - span.start for index in (span.start, span.end - 1) if index in edge_frames]
                for offset, luma in decode_luma(data, wanted, plan.fps, plan.settings.gop).items():
                    edges[f"d{span.start + offset}"] = luma
        np.savez(scratch / "edges.npz", **edges)
        audio = extract_audio(template, plan.n_frames / float(plan.fps))
        if audio:
            (scratch / "audio.m4a").write_bytes(audio)
        (scratch / "plan.json").write_text(json.dumps(plan.to_json(), indent=2))
        try:
            os.rename(scratch, folder)
        except OSError:  # another process finished the same plan first; theirs is as good as ours
            if not (folder / "plan.json").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


@dataclass
class PreparedAspect:
    """A prepared aspect loaded for rendering: unchanged spans as MP4 bytes, changed spans as frames."""

    folder: Path
    plan: AspectPlan
    unchanged: dict[int, bytes]
    changed: dict[int, np.ndarray]  # span start -> (n, h * 3 / 2, w) uint8, memory-mapped from the cache
    edges: dict[int, np.ndarray]  # template frames next to each join, on the unchanged side (I420)
    decoded_edges: dict[int, np.ndarray]  # the same frames as the encoded spans decode them (Y only)
    audio: bytes | None

    @classmethod
    def load(cls, folder: str | os.PathLike) -> PreparedAspect:
        folder = Path(folder)
        plan = AspectPlan.from_json(json.loads((folder / "plan.json").read_text()))
        unchanged, changed = {}, {}
        for span in plan.spans:
            if span.changed:
                # Memory-mapped read-only: workers on one machine share the page cache instead of copies.
                changed[span.start] = np.load(folder / f"frames-{span.start:06d}.npy", mmap_mode="r")
            else:
                unchanged[span.start] = (folder / f"span-{span.start:06d}.mp4").read_bytes()
        with np.load(folder / "edges.npz") as stored:
            edges = {int(name[1:]): stored[name] for name in stored.files if name.startswith("f")}
            decoded = {int(name[1:]): stored[name] for name in stored.files if name.startswith("d")}
        audio_path = folder / "audio.m4a"
        audio = audio_path.read_bytes() if audio_path.exists() else None
        return cls(folder, plan, unchanged, changed, edges, decoded, audio)

    @cached_property
    def audio_s(self) -> float:
        """Length of the audio every clip carries (the template's, cut at the clip's end); 0 without audio."""
        if not self.audio:
            return 0.0
        with av.open(io.BytesIO(self.audio)) as container:
            stream = container.streams.audio[0]
            return float(stream.duration * stream.time_base) if stream.duration else 0.0

    def is_changed(self, index: int) -> bool:
        return any(span.changed and span.start <= index < span.end for span in self.plan.spans)

    def template_frame(self, index: int) -> np.ndarray:
        """The scaled template frame at `index`, if this worker holds it (changed spans and join edges)."""
        for span in self.plan.spans:
            if span.changed and span.start <= index < span.end:
                return self.changed[span.start][index - span.start]
        return self.edges[index]

    def render(self, changed_frames) -> bytes:
        """Join the cached unchanged spans with freshly encoded changed spans.

        `changed_frames(span)` yields the span's final frames (template plus overlays) in order.
        """
        plan = self.plan
        parts = [
            encode_span(changed_frames(span), plan.size, plan.fps, plan.settings) if span.changed
            else self.unchanged[span.start]
            for span in plan.spans
        ]
        return join_spans(parts, [span.start for span in plan.spans], plan.fps, self.audio)


