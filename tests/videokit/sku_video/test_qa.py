import dataclasses
import io
import struct
import time

import av
import cv2
import numpy as np
import pytest

from tests.videokit.sku_video import clipfactory, qa_corpus
from videokit.media.probe import is_faststart, top_level_boxes
from videokit.sku_video.qa import (
    CheckOutcome,
    ClipScores,
    ClipUnreadable,
    QAThresholds,
    judge_clip,
    judge_keyframe,
    measure_clip,
    measure_keyframe,
    probe_mp4,
)

PRESETS = {"bulk": QAThresholds.bulk(), "hero": QAThresholds.hero()}
CLIP_CHECKS = [
    "clip_format",
    "clip_content",
    "clip_loop_seam",
    "clip_brand_background",
    "clip_product_fidelity",
]
KEYFRAME_CHECKS = [
    "keyframe_format",
    "keyframe_brand_background",
    "keyframe_product_fidelity",
    "keyframe_sharpness",
]

BROKEN_CLIPS = {
    "all_black": (clipfactory.black_clip, "clip_content"),
    "frozen": (clipfactory.frozen_clip, "clip_content"),
    "flickering": (clipfactory.flickering_clip, "clip_content"),
    "blurred": (clipfactory.blurred_clip, "clip_content"),
    "seam": (clipfactory.seam_clip, "clip_loop_seam"),
    "wrong_size": (clipfactory.wrong_size_clip, "clip_format"),
    "yuv444p": (clipfactory.yuv444_clip, "clip_format"),
    "no_faststart": (clipfactory.no_faststart_clip, "clip_format"),
    "too_short": (clipfactory.too_short_clip, "clip_format"),
    "too_long": (clipfactory.too_long_clip, "clip_format"),
    "off_brand": (clipfactory.off_brand_clip, "clip_brand_background"),
    "product_altered": (clipfactory.altered_product_clip, "clip_product_fidelity"),
}


def judge(scores: ClipScores, thresholds: QAThresholds) -> list[CheckOutcome]:
    return judge_clip(
        scores, width=clipfactory.WIDTH, height=clipfactory.HEIGHT, fps=clipfactory.FPS, thresholds=thresholds
    )


def measure(clip: clipfactory.SampleClip) -> ClipScores:
    return measure_clip(clip.data, **clip.references)


@pytest.fixture(scope="module")
def clean_loop() -> clipfactory.SampleClip:
    return clipfactory.clean_loop()


@pytest.fixture(scope="module")
def clean_scores(clean_loop) -> ClipScores:
    return measure(clean_loop)


@pytest.mark.parametrize("preset", PRESETS)
def test_clean_loop_passes_every_clip_check(clean_scores, preset):
    outcomes = judge(clean_scores, PRESETS[preset])

    assert [outcome.name for outcome in outcomes] == CLIP_CHECKS
    for outcome in outcomes:
        print(f"{preset} {outcome.name}: {outcome.summary}")
    assert [outcome.summary for outcome in outcomes if not outcome.passed] == []


@pytest.mark.parametrize("case", BROKEN_CLIPS)
def test_broken_clip_fails_only_its_check_group(case):
    build, expected_failure = BROKEN_CLIPS[case]
    scores = measure(build())

    for preset, thresholds in PRESETS.items():
        failed = {
            outcome.name: outcome.summary for outcome in judge(scores, thresholds) if not outcome.passed
        }
        print(f"{case} ({preset}) fails {failed}")
        assert list(failed) == [expected_failure], f"{case} ({preset}) fails {failed}"


CORPUS = {clip.name: clip for clip in qa_corpus.corpus()}


@pytest.mark.parametrize("name", CORPUS)
def test_calibration_corpus_good_clips_pass_and_each_defect_fails_only_its_check(name):
    clip = CORPUS[name]
    sample = clip.build()
    scores = measure(sample)

    expected = [] if clip.fails is None else [clip.fails]
    for preset, thresholds in PRESETS.items():
        failed = {o.name: o.summary for o in judge(scores, thresholds) if not o.passed}
        assert list(failed) == expected, f"{name} ({preset}) fails {failed}"


def luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return cv2.PSNR(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY))


def test_smooth_seamless_provider_push_in_passes_hero_on_its_first_take():
    """The clip the default prompt asks providers for: a steady 4 % push-in over 4 s, played there and back,
    coded as a provider delivers it; its seam is coding noise only."""
    positions = qa_corpus.loop_positions("there_and_back", 4 * clipfactory.FPS)
    keyframe = clipfactory.product_scene().keyframe()
    frames = [qa_corpus.camera(keyframe, zoom=0.04 * p) for p in positions]
    data = qa_corpus.encoded(frames, "provider")
    decoded = [frame.to_ndarray(format="rgb24") for frame in av.open(io.BytesIO(data)).decode(video=0)]
    scores = measure(clipfactory.SampleClip(data, clipfactory.references(clipfactory.product_scene())))

    seam_psnr = luma_psnr(decoded[-1], decoded[0])
    assert seam_psnr > 38.0 and seam_psnr > luma_psnr(decoded[1], decoded[2]) - 3.0
    assert scores.motion_mean < 0.2  # slower than any CPU-tier loop
    assert [o.summary for o in judge(scores, QAThresholds.hero()) if not o.passed] == []


def test_seam_ratio_ignores_a_still_span():
    """A clip that stops for a while fails as frozen, not as a seam: the still steps are not 'typical'."""
    scores = measure(qa_corpus.frozen_span_clip())

    assert scores.loop_seam_ratio < 1.5
    assert scores.longest_frozen_s > QAThresholds.bulk().max_frozen_s


def test_failure_summary_says_what_failed_and_by_how_much():
    outcomes = judge(measure(clipfactory.seam_clip()), QAThresholds.hero())
    seam = next(outcome for outcome in outcomes if outcome.name == "clip_loop_seam")

    assert seam.summary.startswith("loop seam ratio ")
    assert seam.summary.endswith(f" > {QAThresholds.hero().max_loop_seam_ratio:g}")


def test_clean_loop_scores_are_metadata_ready(clean_scores):
    values = dataclasses.asdict(clean_scores).values()

    assert all(isinstance(value, (float, int, str, bool)) for value in values)
    assert clean_scores.n_frames == clean_scores.decoded_frames == 4 * clipfactory.FPS
    assert clean_scores.product_psnr > 30.0
    assert clean_scores.brand_delta_e < 2.0
    assert 0.3 < clean_scores.motion_mean < 2.0
    for outcome in judge(clean_scores, QAThresholds.bulk()):
        assert all(isinstance(value, (float, int, str, bool)) for value in outcome.scores.values())


def test_missing_references_pass_as_not_measured(clean_loop):
    outcomes = judge_clip(measure_clip(clean_loop.data), width=1280, height=720, fps=24)
    by_name = {outcome.name: outcome for outcome in outcomes}

    assert all(outcome.passed for outcome in outcomes)
    assert "not measured" in by_name["clip_brand_background"].summary
    assert "not measured" in by_name["clip_product_fidelity"].summary
    assert "sharpness ratio not measured" in by_name["clip_content"].summary


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p"])
def test_black_is_judged_in_full_range_levels_whatever_the_coded_range(pix_fmt):
    def black_ratio(level: int) -> float:
        frames = [np.full((180, 320, 3), level, np.uint8)] * clipfactory.FPS
        return measure_clip(clipfactory.encode_clip(frames, pix_fmt=pix_fmt)).black_frame_ratio

    assert (black_ratio(4), black_ratio(12)) == (1.0, 0.0)


def test_quicktime_container_is_not_mp4():
    frames = [np.full((180, 320, 3), 128, np.uint8)] * (4 * clipfactory.FPS)
    scores = measure_clip(clipfactory.encode_clip(frames, container_format="mov"))
    clip_format = judge_clip(scores, width=320, height=180, fps=clipfactory.FPS)[0]

    assert clip_format.summary == "container mov,mp4,m4a,3gp,3g2,mj2 (brand 'qt  ') is not mp4"


def test_probe_mp4_reads_container_facts(clean_loop):
    report = probe_mp4(clean_loop.data)

    assert report.format_name.split(",")[1] == "mp4"
    assert (report.codec, report.pix_fmt, report.faststart) == ("h264", "yuv420p", True)
    assert (report.width, report.height, report.fps) == (1280, 720, 24.0)
    assert (report.duration_s, report.n_frames) == (4.0, 96)


def box(kind: bytes, payload: bytes = b"", *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_box_parser_follows_64_bit_and_to_end_sizes():
    mdat_first = box(b"ftyp", b"isom" + bytes(4)) + box(b"mdat", bytes(100), large=True) + box(b"moov")
    moov_first = box(b"ftyp", b"isom" + bytes(4)) + box(b"moov") + struct.pack(">I4s", 0, b"mdat") + bytes(50)

    assert [b.kind for b in top_level_boxes(mdat_first)] == ["ftyp", "mdat", "moov"]
    assert top_level_boxes(mdat_first)[1].size == 116
    assert not is_faststart(top_level_boxes(mdat_first))
    assert top_level_boxes(moov_first)[-1].size == 58
    assert is_faststart(top_level_boxes(moov_first))


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"not a video at all " * 100,
        np.random.default_rng(7).bytes(50_000),
        box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", bytes(64)),
        struct.pack(">I4sQ", 1, b"mdat", 2**62),
    ],
    ids=["empty", "text", "random", "empty_moov", "huge_box"],
)
def test_garbage_is_unreadable(garbage):
    with pytest.raises(ClipUnreadable):
        probe_mp4(garbage)
    with pytest.raises(ClipUnreadable):
        measure_clip(garbage)


def test_truncated_clip_fails_format(clean_loop):
    scores = measure_clip(clean_loop.data[: len(clean_loop.data) // 2])
    clip_format = judge(scores, QAThresholds.bulk())[0]

    assert scores.decoded_frames < scores.n_frames == 4 * clipfactory.FPS
    assert not clip_format.passed
    assert clip_format.summary == f"decoded {scores.decoded_frames} of 96 frames"


def test_measure_clip_speed(clean_loop):
    measure_clip(clean_loop.data, **clean_loop.references)
    start = time.perf_counter()
    measure_clip(clean_loop.data, **clean_loop.references)
    seconds = time.perf_counter() - start
    print(f"measure_clip 1280x720 4 s 24 fps ({len(clean_loop.data) / 1e6:.2f} MB): {seconds:.3f} s")


# ---------------------------------------------------------------- keyframes


def keyframe_outcomes(
    image: np.ndarray, scene: clipfactory.Scene, thresholds: QAThresholds
) -> dict[str, str]:
    scores = measure_keyframe(
        image,
        expected_size=(clipfactory.WIDTH, clipfactory.HEIGHT),
        product_reference=scene.product,
        product_mask=scene.product_mask,
        brand_background=scene.background,
    )
    outcomes = judge_keyframe(scores, thresholds)
    assert [outcome.name for outcome in outcomes] == KEYFRAME_CHECKS
    return {outcome.name: outcome.summary for outcome in outcomes if not outcome.passed}


@pytest.mark.parametrize("preset", PRESETS)
def test_clean_keyframe_passes(preset):
    scene = clipfactory.product_scene()

    assert keyframe_outcomes(scene.keyframe(), scene, PRESETS[preset]) == {}


BROKEN_KEYFRAMES = {
    "wrong_size": (
        lambda: cv2.resize(clipfactory.product_scene().keyframe(), (1024, 576), interpolation=cv2.INTER_AREA),
        "keyframe_format",
    ),
    "off_brand": (
        lambda: clipfactory.product_scene(background_colors=clipfactory.OFF_BRAND_COLORS).keyframe(),
        "keyframe_brand_background",
    ),
    "product_altered": (
        lambda: clipfactory.product_scene(product_color=clipfactory.ALTERED_PRODUCT_COLOR).keyframe(),
        "keyframe_product_fidelity",
    ),
}


@pytest.mark.parametrize("case", BROKEN_KEYFRAMES)
def test_broken_keyframe_fails_only_its_check(case):
    build, expected_failure = BROKEN_KEYFRAMES[case]
    image = build()

    for preset, thresholds in PRESETS.items():
        failed = keyframe_outcomes(image, clipfactory.product_scene(), thresholds)
        print(f"keyframe {case} ({preset}) fails {failed}")
        assert list(failed) == [expected_failure], f"keyframe {case} ({preset}) fails {failed}"


def test_blurred_keyframe_fails_sharpness():
    scene = clipfactory.product_scene()
    failed = keyframe_outcomes(cv2.GaussianBlur(scene.keyframe(), (0, 0), 3.0), scene, QAThresholds.bulk())

    assert "keyframe_sharpness" in failed
    assert "product sharpness ratio" in failed["keyframe_sharpness"]


def test_measure_keyframe_rejects_non_rgb():
    with pytest.raises(ValueError, match="H,W,3 uint8"):
        measure_keyframe(np.zeros((720, 1280), np.uint8), expected_size=(1280, 720))


def plain_box_keyframe_scores(packshot: np.ndarray, kit_colors=("#F4EFE8", "#D8CCBC")):
    """A packshot through the CPU tier's compose onto a studio background, scored as the keyframe asset does."""
    from PIL import Image

    from assets.sku_video.keyframes import product_reference
    from videokit.media.brand import BrandKit
    from videokit.sku_video.compose import compose_keyframe, render_background

    kit = BrandKit.from_dict("plain", {"display_name": "Plain", "background": {"style": "studio", "colors": list(kit_colors)},
                                       "palette": {"accent": "#1F4E5F", "text": "#1B1B1B"}})
    size = (clipfactory.WIDTH, clipfactory.HEIGHT)
    layers = compose_keyframe(Image.fromarray(packshot), kit, size)
    return layers, lambda image: measure_keyframe(
        image, expected_size=size, product_reference=product_reference(layers),
        product_mask=layers.product_mask(), brand_background=render_background(kit, size))


def plain_blue_box_packshot() -> np.ndarray:
    packshot = np.full((600, 600, 3), 255, np.uint8)
    packshot[150:450, 120:480] = (175, 200, 245)  # pale blue: soft edges against a light studio sweep
    return packshot


@pytest.mark.parametrize("preset", PRESETS)
def test_plain_product_keyframe_is_sharp_against_its_own_packshot(preset):
    layers, score = plain_box_keyframe_scores(plain_blue_box_packshot())
    scores = score(layers.flatten())
    outcomes = {o.name: o for o in judge_keyframe(scores, PRESETS[preset])}

    assert scores.sharpness < QAThresholds.hero().min_keyframe_sharpness  # the old absolute hero floor failed it
    assert outcomes["keyframe_sharpness"].passed, outcomes["keyframe_sharpness"].summary
    assert all(o.passed for o in outcomes.values()), {n: o.summary for n, o in outcomes.items()}


def test_blurred_product_with_a_printed_label_fails_sharpness():
    packshot = plain_blue_box_packshot()
    cv2.putText(packshot, "SKUVID", (150, 320), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (250, 250, 250), 5)
    layers, score = plain_box_keyframe_scores(packshot)
    failed = {o.name: o.summary for o in judge_keyframe(score(cv2.GaussianBlur(layers.flatten(), (0, 0), 2.0)),
                                                        QAThresholds.hero()) if not o.passed}

    assert "product sharpness ratio" in failed["keyframe_sharpness"]
