"""Smart rendering: span plans, closed-GOP spans joined by stream copy, compared with a full re-encode."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from samples.campaign.make_campaign_samples import draw_logo, write_template
from videokit.campaigns.personalize import composite_i420, entrance_at
from videokit.campaigns.recipient_clip import RenderJob, SlotContent, place_overlays, psnr, render_recipient
from videokit.campaigns.smart_render import (
    AspectPlan,
    EncoderSettings,
    PreparedAspect,
    Span,
    encode_span,
    frame_window,
    join_spans,
    plan_spans,
    prepare_aspect,
)
from videokit.campaigns.spec import load_spec
from videokit.media.probe import probe_mp4
from videokit.media.template_video import decode_luma, probe_template, template_frames

SPEC = """
template: {video: template.mp4}
recipients: recipients.csv
output: {aspects: ["16:9", "9:16", "1:1"], short_side: 360}
encode: {gop_s: 0.5}
slots:
  - {name: greeting, kind: text, text: "Hi {first_name}!", start_s: 1.0, end_s: 2.0,
     box: {x: 0.1, y: 0.3, w: 0.8, h: 0.3}, font: {min_size: 12, max_size: 60},
     entrance: {kind: slide, side: bottom, duration_s: 0.3}}
  - {name: logo, kind: image, column: logo, start_s: 3.0, end_s: 3.5, box: {x: 0.35, y: 0.3, w: 0.3, h: 0.4}}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    path = write_template(tmp_path_factory.mktemp("template") / "t.mp4", (640, 360), 4.0, 30)
    return path.read_bytes()


@pytest.fixture(scope="module")
def logo() -> bytes:
    buffer = io.BytesIO()
    draw_logo("globex", 200).save(buffer, "PNG")
    return buffer.getvalue()


def plan_for(template: bytes, spec, aspect: str, n_frames: int | None = None) -> AspectPlan:
    info = probe_template(template)
    gop = round(spec.encode.gop_s * info.fps)
    n_frames = n_frames or info.n_frames
    windows = [frame_window(slot.start_s, slot.end_s, info.fps) for slot in spec.slots]
    return AspectPlan(info.sha256, spec.output.size(aspect), (0.5, 0.5), info.fps, n_frames,
                      tuple(plan_spans(n_frames, windows, gop)), EncoderSettings(gop=gop, matrix=info.matrix))


def job_for(spec, aspect: str, folder, logo: bytes, name: str = "Grace") -> RenderJob:
    text, image = spec.slots
    contents = (SlotContent(text, text=text.format({"first_name": name})), SlotContent(image, image=logo))
    return RenderJob("r1", aspect, str(folder), contents)


def full_reencode(template: bytes, prepared: PreparedAspect, job: RenderJob) -> bytes:
    """The reference: every frame composited and encoded in one go with the same settings."""
    plan = prepared.plan
    overlays = place_overlays(job, prepared)

    def frames():
        for index, planes in enumerate(template_frames(template, plan.size, plan.focus, plan.n_frames)):
            planes = planes.copy()
            for overlay in overlays:
                if overlay.first <= index < overlay.last:
                    dx, dy, opacity = entrance_at(overlay.entrance, index / float(plan.fps) - overlay.start_s,
                                                  overlay.box)
                    composite_i420(planes, plan.size, overlay.planes, dx, dy, opacity)
            yield planes

    return encode_span(frames(), plan.size, plan.fps, plan.settings)


def decoded_luma(mp4: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(mp4)) as container:
        return [frame.to_ndarray(format="yuv420p")[: frame.height] for frame in container.decode(video=0)]


def audio_packets(mp4: bytes, limit_s: float) -> list[bytes]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.pts is not None and p.pts * p.time_base < limit_s]


def keyframes(mp4: bytes, fps: Fraction) -> list[int]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        return sorted(round(p.pts * p.time_base * fps) for p in container.demux(stream) if p.pts is not None
                      and p.is_keyframe)


def test_spans_snap_outward_to_the_gop_grid_and_merge():
    assert plan_spans(120, [(31, 59), (95, 100)], 15) == [
        Span(0, 30, False), Span(30, 60, True), Span(60, 90, False), Span(90, 105, True), Span(105, 120, False)]
    assert plan_spans(100, [(10, 40), (44, 50), (95, 130)], 15) == [
        Span(0, 60, True), Span(60, 90, False), Span(90, 100, True)]
    assert plan_spans(60, [], 15) == [Span(0, 60, False)]


@pytest.mark.parametrize("aspect", ["16:9", "9:16", "1:1"])
def test_smart_render_matches_a_full_reencode(template, logo, tmp_path, aspect):
    spec = load_spec(SPEC)
    plan = plan_for(template, spec, aspect)
    prepared = PreparedAspect.load(prepare_aspect(template, plan, tmp_path))
    assert [s.changed for s in plan.spans] == [False, True, False, True, False]
    result = render_recipient(job_for(spec, aspect, prepared.folder, logo))
    assert result.mp4 is not None, result.reason
    assert result.qa.passed, result.qa.problems

    report = probe_mp4(result.mp4)
    assert (report.width, report.height) == spec.output.size(aspect)
    assert report.n_frames == 120 and report.duration_s == pytest.approx(4.0, abs=1e-6)
    assert report.faststart and report.pix_fmt == "yuv420p" and report.codec == "h264"
    assert keyframes(result.mp4, plan.fps) == list(range(0, 120, 15))
    # The template's audio is stream-copied: the very same AAC packets.
    assert audio_packets(result.mp4, 4.0) == audio_packets(template, 4.0)

    ours, reference = decoded_luma(result.mp4), decoded_luma(full_reencode(template, prepared, job_for(
        spec, aspect, prepared.folder, logo)))
    assert len(ours) == len(reference) == 120
    scores = [psnr(a, b) for a, b in zip(ours, reference)]
    assert min(scores) >= 40.0, f"worst frame {int(np.argmin(scores))}: {min(scores):.1f} dB"
    for join in plan.joins():  # either side of every cut, against the full re-encode
        assert min(scores[join - 1], scores[join]) >= 40.0


def test_unchanged_spans_are_encoded_once_and_reused(template, logo, tmp_path):
    spec = load_spec(SPEC)
    plan = plan_for(template, spec, "1:1")
    folder = prepare_aspect(template, plan, tmp_path)
    stamp = (folder / "plan.json").stat().st_mtime_ns
    assert prepare_aspect(template, plan, tmp_path) == folder
    assert (folder / "plan.json").stat().st_mtime_ns == stamp
    prepared = PreparedAspect.load(folder)
    a = render_recipient(job_for(spec, "1:1", folder, logo, "Ada")).mp4
    b = render_recipient(job_for(spec, "1:1", folder, logo, "Bartholomew")).mp4
    with av.open(io.BytesIO(a)) as first, av.open(io.BytesIO(b)) as second:
        packets_a = [bytes(p) for p in first.demux(first.streams.video[0]) if p.size]
        packets_b = [bytes(p) for p in second.demux(second.streams.video[0]) if p.size]
    same = [index for index, (x, y) in enumerate(zip(packets_a, packets_b)) if x == y]
    unchanged = [i for span in prepared.plan.spans if not span.changed for i in range(span.start, span.end)]
    # Decode order equals display order within each cached span's bytes, so compare as sets of packets.
    assert len(same) >= len(unchanged) - 2 * len(prepared.plan.spans)


def test_qa_flags_a_missing_overlay(template, logo, tmp_path):
    spec = load_spec(SPEC.replace('font: {min_size: 12, max_size: 60}', 'font: {min_size: 12, max_size: 60, '
                                  'color: "#00000000", shadow: false}'))
    plan = plan_for(template, spec, "16:9")
    folder = prepare_aspect(template, plan, tmp_path)
    result = render_recipient(job_for(spec, "16:9", folder, logo))
    assert result.mp4 is None and "fully transparent" in result.reason


def test_short_template_loops_to_the_requested_length(tmp_path):
    data = write_template(tmp_path / "short.mp4", (320, 180), 1.0, 30, audio=False, preset="ultrafast").read_bytes()
    frames = list(template_frames(data, (180, 180), (0.5, 0.5), 75))
    assert len(frames) == 75 and frames[0].shape == (270, 180)
    assert np.array_equal(frames[0], frames[30]) and np.array_equal(frames[44], frames[74])


def test_join_refuses_spans_with_different_parameter_sets():
    frames = [np.full((270, 320), 128, np.uint8)] * 15
    small = [np.full((180, 160), 128, np.uint8)] * 15
    parts = [encode_span(frames, (320, 180), Fraction(30), EncoderSettings()),
             encode_span(small, (160, 120), Fraction(30), EncoderSettings())]
    with pytest.raises(ValueError, match="different parameter sets"):
        join_spans(parts, [0, 15], Fraction(30), None)


def test_decoding_single_frames_matches_a_full_decode(template):
    wanted = [0, 14, 15, 37, 119]
    found = decode_luma(template, wanted, Fraction(30), 30)  # the template's own GOP is x264's default 250
    full = decoded_luma(template)
    assert set(wanted) <= set(found)
    assert all(np.array_equal(found[index], full[index]) for index in found)


def test_fifteen_second_720p_structure(tmp_path, logo):
    """One full-size clip: 450 frames at 720p30, cuts on the grid, exact length, audio kept, faststart."""
    template = write_template(tmp_path / "t720.mp4", (1280, 720), 15.0, 30, preset="ultrafast", grain=0.0,
                              crf=26).read_bytes()
    spec = load_spec(SPEC.replace("short_side: 360", "short_side: 720")
                     .replace("start_s: 1.0, end_s: 2.0", "start_s: 0.5, end_s: 3.5")
                     .replace("start_s: 3.0, end_s: 3.5", "start_s: 11.5, end_s: 14.5"))
    plan = plan_for(template, spec, "16:9")
    assert plan.n_frames == 450 and plan.size == (1280, 720)
    assert [(s.start, s.end, s.changed) for s in plan.spans] == [
        (0, 15, False), (15, 105, True), (105, 345, False), (345, 435, True), (435, 450, False)]
    folder = prepare_aspect(template, plan, tmp_path / "cache")
    result = render_recipient(job_for(spec, "16:9", folder, logo, "Katherine"))
    assert result.mp4 is not None and result.qa.passed, (result.reason, result.qa and result.qa.problems)
    report = probe_mp4(result.mp4)
    assert (report.n_frames, report.duration_s, report.fps) == (450, 15.0, 30.0)
    assert report.faststart and (report.width, report.height) == (1280, 720)
    assert keyframes(result.mp4, plan.fps) == list(range(0, 450, 15))
    assert result.qa.audio_s == pytest.approx(15.0, abs=0.03)
    assert result.qa.join_psnr_db >= 35 and result.qa.overlay_diff >= 10
    assert result.cpu_s > 0 and result.peak_rss_mb > 0
