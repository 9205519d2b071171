"""Module assembly: scenes encoded once, joined by stream copy into one MP4 whose picture, sound, chapters and
lengths are exactly what the scenes were."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from devkit.emulators.talking_head import talking_head_clip
from tests.videokit.training.training_media import SMALL, decoded_audio, product_clip, tone_speech
from videokit.training.captions import Chapter
from videokit.training.module_assembly import (
    AssemblySettings,
    ScenePieces,
    assemble,
    clip_loop_frames,
    encode_audio,
    frames_part,
    inspect_module,
    presenter_frames,
    repeated_parts,
    rgb_to_i420,
    scene_samples,
    still_parts,
)
from videokit.training.scene_render import SceneSpec, render_scenes


def solid(value: int, size: tuple[int, int] = SMALL.size) -> np.ndarray:
    return np.full((size[1], size[0], 3), value, np.uint8)


def test_scene_lengths_snap_to_whole_video_and_audio_frames():
    settings = AssemblySettings()
    assert (settings.frame_samples, settings.quantum_frames) == (1920, 8)  # 0.32 s at 25 fps and 48 kHz
    assert settings.scene_frames(10.0) == 256 and settings.scene_frames(0.01) == 8
    assert settings.samples_for(settings.scene_frames(3.3)) % 1024 == 0
    with pytest.raises(ValueError, match="even"):
        AssemblySettings(size=(321, 180))
    with pytest.raises(ValueError, match="does not divide"):
        AssemblySettings(fps=30, sample_rate=44100 + 1)


def test_a_still_costs_one_gop_whatever_the_scene_length():
    parts = still_parts(solid(90), 1000, SMALL)
    assert [(p.frames, p.repeat) for p in parts] == [(25, 40)]
    parts = still_parts(solid(90), 1002, SMALL)  # a two-frame tail would break the timestamps: one cycle more
    assert [(p.frames, p.repeat) for p in parts] == [(25, 39), (27, 1)]


def scene(value: int, n_frames: int, burst_at_s: float, settings: AssemblySettings = SMALL) -> ScenePieces:
    """A solid-grey still scene whose audio is silent but for a 0.2-s tone starting at burst_at_s."""
    n_samples = settings.samples_for(n_frames)
    speech = tone_speech(0.2, settings.sample_rate)
    samples = scene_samples(speech, n_samples, burst_at_s, settings.sample_rate)
    return ScenePieces(
        still_parts(solid(value), n_frames, settings), encode_audio(samples, settings), n_frames
    )


def onsets(samples: np.ndarray, rate: int) -> list[float]:
    loud = np.abs(samples) > 0.05
    starts = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    return [s / rate for s in starts if not loud[max(0, s - rate // 10) : s].any()]


def test_scenes_join_with_picture_and_sound_in_place():
    # Lengths whose tails after the 25-frame GOPs are 23, 6, 4, 2 and 8 frames.
    lengths = [48, 56, 104, 152, 8]
    scenes = [scene(40 + 40 * i, n, 0.1) for i, n in enumerate(lengths)]
    starts = np.cumsum([0, *lengths])
    chapters = [Chapter(starts[i] / 25, starts[i + 1] / 25, f"Scene {i}") for i in range(len(lengths))]
    mp4 = assemble(scenes, chapters, SMALL, {"title": "Test module"})

    report = inspect_module(mp4)
    assert (report.video_codec, report.audio_codec, report.faststart) == ("h264", "aac", True)
    assert report.video_s == report.audio_s == pytest.approx(sum(lengths) / 25)
    assert report.chapters == 5 and report.chapter_titles == tuple(c.title for c in chapters)
    with av.open(io.BytesIO(mp4)) as container:
        assert container.metadata.get("title") == "Test module"
        lumas = [float(f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]
    assert len(lumas) == sum(lengths)
    for i, start in enumerate(starts[:-1]):
        expected = lumas[start]
        assert all(abs(v - expected) < 2 for v in lumas[start : starts[i + 1]])  # the right still throughout
        if i:
            assert abs(lumas[start] - lumas[start - 1]) > 20  # and it changes exactly at the cut
    audio = decoded_audio(mp4)
    assert len(audio) == SMALL.samples_for(sum(lengths))
    # Each scene's tone starts 0.1 s into it, to the sample, after any number of joins.
    assert onsets(audio, 48000) == pytest.approx([s / 25 + 0.1 for s in starts[:-1]], abs=0.003)


def test_a_product_clip_loops_and_a_presenter_moves_inside_their_boxes():
    card = solid(200)
    loop = clip_loop_frames(card, product_clip(), (64, 36, 192, 108), SMALL)
    assert len(loop) == 50  # the 2-s loop at the module's 25 fps
    parts = repeated_parts(loop, 128, SMALL)
    assert [(p.frames, p.repeat) for p in parts] == [(50, 2), (28, 1)]
    outside = rgb_to_i420(card)[:36]
    assert all(np.array_equal(frame[:36], outside) for frame in loop)

    clip = talking_head_clip("Hello there, and welcome.", (96, 96))
    frames = list(presenter_frames(card, clip, (200, 40, 96, 96), 60, 0.4, SMALL))
    mouth = [frame[40:136, 200:296].astype(int).sum() for frame in frames]
    assert mouth[0] == mouth[9]  # before the presenter starts talking (0.4 s lead-in) the picture holds
    assert len(set(mouth[10:50])) > 5  # then the face moves
    assert frames_part(iter(frames), 60, SMALL)[0].frames == 60


def test_scenes_render_in_worker_processes_in_order():
    specs = [
        SceneSpec(
            key=f"k{i}",
            title=f"S{i}",
            still=solid(60 * (i + 1)),
            narration=text,
            caption=text,
            voice="en-us",
            words_per_minute=220,
            lead_in_s=0.2,
            tail_s=0.3,
            settings=SMALL,
        )
        for i, text in enumerate(["A short one.", "A slightly longer scene, with two clauses in it."])
    ]
    rendered = render_scenes(specs, workers=2)
    assert [r.key for r in rendered] == ["k0", "k1"] and rendered[0].speech_s < rendered[1].speech_s
    for spec, scene_ in zip(specs, rendered):
        assert scene_.tts_chars == len(spec.narration) and scene_.cues[0].start_s == 0.2
        n = scene_.pieces.n_frames
        assert n % 8 == 0 and n / 25 >= 0.2 + scene_.speech_s + 0.3
        assert scene_.cues[-1].end_s == pytest.approx(0.2 + scene_.speech_s, abs=1e-3)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_product_clips_are_converted_to_the_modules_matrix(matrix):
    """A BT.709 product clip pasted into a BT.601 module keeps its colour (converted, not relabelled)."""
    import cv2

    from videokit.media.encode import encode_mp4
    from videokit.training.module_assembly import decode_i420

    red = np.full((64, 64, 3), (200, 30, 40), np.uint8)
    frames, _ = decode_i420(encode_mp4([red, red], (64, 64), 24, matrix=matrix), (32, 32))
    expected = cv2.cvtColor(red[:32, :32], cv2.COLOR_RGB2YUV_I420).astype(int)
    assert np.abs(frames[0].astype(int) - expected).max() <= 4  # relabelled BT.709 red is 12 levels off
