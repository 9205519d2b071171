"""One recipient's clip from a prepared template aspect: overlays composited, changed spans encoded, joined, checked.

A job names a prepared aspect folder (see smart_render.prepare_aspect) and carries a recipient's slot contents.
A process loads an aspect the first time a job needs it and keeps it for the jobs that follow (a campaign chunk
is one aspect), so the template's changed-span frames are read once per chunk, not per recipient. Parallelism
comes from running chunks as separate steps (processes or worker machines), not from this module.

Each clip is checked cheaply before it is returned (see `check_clip`): exact frame count and duration,
faststart, the overlay visible in its slot, and no visible step at any join.
"""

from __future__ import annotations

import io
import os
import resource
import time
import traceback
from dataclasses import dataclass, field

import av
import numpy as np

from videokit.campaigns.personalize import (
    OverlayError,
    OverlayPlanes,
    composite_planes,
    entrance_at,
    fit_text,
    i420_planes,
    open_image,
    overlay_planes,
    render_image,
    render_text,
)
from videokit.campaigns.smart_render import PreparedAspect, Span, frame_window
from videokit.campaigns.spec import Entrance, ImageSlot, TextSlot
from videokit.media.probe import is_faststart, top_level_boxes
from videokit.media.template_video import decode_luma, frame_planes

# QA limits. Join PSNR compares the decoded clip with the frames it was made from, either side of each cut.
MIN_JOIN_PSNR_DB = 32.0
MAX_JOIN_STEP = 2.0  # grey levels the frame-to-frame change at a cut may exceed the source's change
MIN_OVERLAY_DIFF = 2.0  # mean grey levels the overlay must differ from the template where it is drawn
MIN_OVERLAY_KEPT = 0.5  # share of the intended difference the encoded clip must keep


@dataclass(frozen=True)
class SlotContent:
    slot: TextSlot | ImageSlot
    text: str | None = None  # formatted text, for text slots
    image: bytes | None = None  # image file bytes, for image slots


@dataclass(frozen=True)
class RenderJob:
    recipient_id: str
    aspect: str
    prepared: str  # folder of the prepared aspect
    contents: tuple[SlotContent, ...]


@dataclass
class ClipQA:
    n_frames: int = 0
    duration_s: float = 0.0
    faststart: bool = False
    audio_s: float = 0.0
    overlay_diff: float = 0.0  # weakest slot: mean |clip - template| in grey levels where the overlay is drawn
    overlay_kept: float = 0.0  # weakest slot: that difference over the intended one
    join_psnr_db: float = 99.0  # worst frame either side of any cut, Y PSNR against the frames it was made from
    join_step: float = 0.0  # worst excess frame-to-frame change at a cut, grey levels
    passed: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return "passed" if self.passed else "; ".join(self.problems)


@dataclass
class RenderResult:
    recipient_id: str
    aspect: str
    mp4: bytes | None = None
    field: str = ""  # set when the recipient is rejected
    reason: str = ""
    qa: ClipQA | None = None
    cpu_s: float = 0.0  # this process's CPU for the job (all its threads)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0  # this process's peak resident memory so far
    pid: int = 0


@dataclass
class PlacedOverlay:
    name: str
    planes: OverlayPlanes
    first: int  # frames [first, last) show the overlay
    last: int
    start_s: float
    entrance: Entrance
    box: tuple[int, int]
    check_frame: int


def build_overlay(content: SlotContent, size: tuple[int, int], aspect: str, matrix: str) -> OverlayPlanes | None:
    """Draw one slot for one recipient (RGBA with Pillow) and convert it to YUV planes at its place."""
    slot = content.slot
    x, y, w, h = slot.box_for(aspect).pixels(size)
    if isinstance(slot, TextSlot):
        layout = fit_text(content.text or "", slot.font, (w, h))
        rgba = render_text(slot, layout, (w, h))
    else:
        rgba = render_image(slot, open_image(content.image or b""), (w, h))
    return overlay_planes(rgba, x, y, matrix)


def place_overlays(job: RenderJob, prepared: PreparedAspect) -> list[PlacedOverlay]:
    plan = prepared.plan
    placed = []
    for content in job.contents:
        slot = content.slot
        planes = build_overlay(content, plan.size, job.aspect, plan.settings.matrix)
        if planes is None:
            raise OverlayError(slot.name, "the overlay is fully transparent")
        first, last = frame_window(slot.start_s, slot.end_s, plan.fps)
        settled = first + int(np.ceil(slot.entrance.duration_s * plan.fps)) if slot.entrance.kind != "none" else first
        check = check_frame(prepared, max(first, min(settled, last - 1)), last)
        _, _, w, h = slot.box_for(job.aspect).pixels(plan.size)
        placed.append(PlacedOverlay(slot.name, planes, first, last, slot.start_s, slot.entrance, (w, h), check))
    return placed


def qa_frames(prepared: PreparedAspect) -> set[int]:
    """Frames per-clip QA decodes anyway: each changed span's first frame and its last GOP before a cut."""
    plan = prepared.plan
    gop, frames = plan.settings.gop, set()
    for span in plan.spans:
        if span.changed:
            if span.start > 0:
                frames.add(span.start)
            if span.end < plan.n_frames:
                frames.update(range(max(span.start, (span.end - 1) // gop * gop), span.end))
    return frames


def check_frame(prepared: PreparedAspect, settled: int, last: int) -> int:
    """Where to look for an overlay: its latest fully-entered frame that QA decodes anyway, else a keyframe."""
    free = [index for index in qa_frames(prepared) if settled <= index < last]
    if free:
        return max(free)
    gop = prepared.plan.settings.gop
    on_grid = -(-settled // gop) * gop
    return on_grid if on_grid < last else settled


def render_job(job: RenderJob, prepared: PreparedAspect) -> RenderResult:
    """Composite, encode the changed spans, join and check one recipient's clip."""
    plan = prepared.plan
    try:
        overlays = place_overlays(job, prepared)
    except OverlayError as error:
        return RenderResult(job.recipient_id, job.aspect, field=error.field, reason=error.reason)
    keep = {b for join in plan.joins() for b in (join - 1, join)} | {o.check_frame for o in overlays}
    kept: dict[int, np.ndarray] = {}
    width, height = plan.size

    def changed_frames(span: Span):
        for index in range(span.start, span.end):
            # One copy per frame: template planes straight into the frame the encoder reads, overlays on top.
            frame = av.VideoFrame(width, height, "yuv420p")
            planes = frame_planes(frame)
            for target, source in zip(planes, i420_planes(prepared.changed[span.start][index - span.start],
                                                          width, height)):
                target[...] = source
            for overlay in overlays:
                if overlay.first <= index < overlay.last:
                    since = float(index / plan.fps) - overlay.start_s
                    dx, dy, opacity = entrance_at(overlay.entrance, since, overlay.box)
                    composite_planes(planes, overlay.planes, dx, dy, opacity)
            if index in keep:
                kept[index] = planes[0].copy()
            yield frame

    mp4 = prepared.render(changed_frames)
    return RenderResult(job.recipient_id, job.aspect, mp4=mp4, qa=check_clip(mp4, prepared, overlays, kept))


def check_clip(mp4: bytes, prepared: PreparedAspect, overlays: list[PlacedOverlay], kept: dict[int, np.ndarray]
               ) -> ClipQA:
    """Cheap per-clip checks; decodes only the GOPs around the cuts and one keyframe per slot."""
    plan = prepared.plan
    height = plan.size[1]
    qa = ClipQA()
    qa.faststart = is_faststart(top_level_boxes(mp4))
    with av.open(io.BytesIO(mp4)) as container:
        video = container.streams.video[0]
        qa.n_frames = video.frames
        qa.duration_s = round(float(video.duration * video.time_base), 4) if video.duration else 0.0
        if container.streams.audio:
            audio = container.streams.audio[0]
            qa.audio_s = float(audio.duration * audio.time_base) if audio.duration else 0.0
    expected_s = plan.n_frames / float(plan.fps)
    if qa.n_frames != plan.n_frames:
        qa.problems.append(f"{qa.n_frames} frames, expected {plan.n_frames}")
    if abs(qa.duration_s - expected_s) > 1e-3:
        qa.problems.append(f"video lasts {qa.duration_s:.3f} s, expected {expected_s:.3f} s")
    if not qa.faststart:
        qa.problems.append("moov is not before mdat (no faststart)")
    if abs(qa.audio_s - prepared.audio_s) > 1e-3:  # the template's audio, copied whole (or none at all)
        qa.problems.append(f"audio lasts {qa.audio_s:.3f} s, the template's {prepared.audio_s:.3f} s")

    def source(index: int) -> np.ndarray:
        return kept[index] if index in kept else prepared.template_frame(index)[:height]

    joins = plan.joins()
    # Frames on the unchanged side of a cut decode identically in every clip (closed GOPs, copied bytes), so
    # they come decoded from the prepared aspect; only the changed side is decoded from this clip.
    edges = {b for j in joins for b in (j - 1, j)}
    wanted = [b for b in edges if prepared.is_changed(b)] + [o.check_frame for o in overlays]
    decoded = {**{b: prepared.decoded_edges[b] for b in edges if not prepared.is_changed(b)},
               **decode_luma(mp4, wanted, plan.fps, plan.settings.gop)}
    diffs, kepts = [], []
    for overlay in overlays:
        template = prepared.template_frame(overlay.check_frame)[:height]
        mask = np.zeros(template.shape, bool)
        p = overlay.planes
        ow, oh = p.size
        mask[p.y : p.y + oh, p.x : p.x + ow] = p.alpha[: max(0, height - p.y), : max(0, plan.size[0] - p.x)] >= 0.5
        if not mask.any() or overlay.check_frame not in decoded:
            qa.problems.append(f"slot {overlay.name}: nothing to measure")
            continue
        got = np.abs(decoded[overlay.check_frame][mask].astype(np.float32) - template[mask]).mean()
        meant = np.abs(kept[overlay.check_frame][mask].astype(np.float32) - template[mask]).mean()
        diffs.append(float(got))
        kepts.append(float(got / meant) if meant > 0 else 0.0)
        if got < MIN_OVERLAY_DIFF or got < MIN_OVERLAY_KEPT * meant:
            qa.problems.append(f"slot {overlay.name}: overlay differs by {got:.1f} levels (intended {meant:.1f})")
    qa.overlay_diff = min(diffs, default=0.0)
    qa.overlay_kept = min(kepts, default=0.0)
    psnrs, steps = [], []
    for join in joins:
        before, after = decoded.get(join - 1), decoded.get(join)
        if before is None or after is None:
            qa.problems.append(f"cut at frame {join}: frames missing")
            continue
        psnrs += [psnr(before, source(join - 1)), psnr(after, source(join))]
        step = mean_abs(after, before) - mean_abs(source(join), source(join - 1))
        steps.append(abs(step))
    qa.join_psnr_db = round(min(psnrs, default=99.0), 2)
    qa.join_step = round(max(steps, default=0.0), 3)
    if qa.join_psnr_db < MIN_JOIN_PSNR_DB:
        qa.problems.append(f"a frame at a cut is {qa.join_psnr_db:.1f} dB from its source (min {MIN_JOIN_PSNR_DB})")
    if qa.join_step > MAX_JOIN_STEP:
        qa.problems.append(f"a cut changes {qa.join_step:.2f} levels more than the source does (max {MAX_JOIN_STEP})")
    qa.passed = not qa.problems
    return qa


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


_LOADED: dict[str, PreparedAspect] = {}


def _prepared(folder: str) -> PreparedAspect:
    if folder not in _LOADED:
        _LOADED.clear()  # one aspect at a time keeps a process's memory to one set of frames
        _LOADED[folder] = PreparedAspect.load(folder)
    return _LOADED[folder]


def render_recipient(job: RenderJob) -> RenderResult:
    """Render one job, never raise: a failure becomes a rejected recipient, and the others go on."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        result = render_job(job, _prepared(job.prepared))
    except Exception as error:  # noqa: BLE001 - one bad clip must not stop the other recipients
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        result = RenderResult(job.recipient_id, job.aspect, field="render", reason=f"render failed: {detail}")
    result.cpu_s = time.process_time() - cpu0
    result.wall_s = time.perf_counter() - wall0
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.pid = os.getpid()
    return result
