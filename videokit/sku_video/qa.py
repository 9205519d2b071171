"""QA metrics for product clips and keyframes, and the pass/fail checks built on them.

Inputs are plain bytes and numpy arrays (images H,W,3 uint8 RGB; masks H,W bool), so any generator's output
can be measured. Luma is in full-range 8-bit levels (0-255) everywhere, whatever range the clip was coded in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import ColorRange
from av.video.stream import VideoStream

from videokit.media.probe import ClipUnreadable, ContainerReport, container_report, open_video, probe_mp4

__all__ = [
    "CheckOutcome",
    "ClipScores",
    "ClipUnreadable",
    "ContainerReport",
    "KeyframeScores",
    "QAThresholds",
    "judge_clip",
    "judge_keyframe",
    "measure_clip",
    "measure_keyframe",
    "probe_mp4",
]

BLACK_LUMA = 8.0  # a frame whose mean luma is below this reads as black
FROZEN_STEP = 0.02  # mean abs luma change between frames below this: the picture did not move
# Mean abs change (levels, 4x4-block luma) that coding alone puts between a clip's last frame and its
# first (an I-frame coded afresh), on top of the motion of one ordinary step.
# H.264 CRF 20-26 of calibration loops measured 0.05-0.2; a visible seam jump is several levels.
SEAM_NOISE_LEVELS = 0.25
# Laplacian variance that counts as no detail at all: a flat product compared with its flat packshot
# scores 1 (nothing was lost), while a textured one keeps its plain ratio.
SHARPNESS_NOISE = 1.0
BORDER_FRACTION = 0.05  # the brand band is this share of the short side, all round
BAND_STRIDE = 4  # every 4th pixel each way is plenty for a smooth background and keeps Lab cheap
PSNR_CAP_DB = 99.0
# Formats whose plane 0 is 8-bit luma at full resolution; anything else is converted first.
Y_PLANE_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)


@dataclass
class ClipScores(ContainerReport):
    """Container facts plus content metrics. None means not measured (its reference was not given)."""

    decoded_frames: int  # frames that actually decode; fewer than n_frames means a truncated file
    black_frame_ratio: float
    longest_frozen_s: float
    motion_mean: float  # mean abs luma change between consecutive frames
    flicker: float
    sharpness: float  # variance of the Laplacian of frame 0's luma
    sharpness_ratio: float | None  # frame 0 / keyframe: well below 1 means the clip is blurred
    loop_seam_ratio: float
    brand_delta_e: float | None
    product_psnr: float | None


@dataclass
class KeyframeScores:
    width: int
    height: int
    expected_width: int
    expected_height: int
    size_ok: bool
    aspect: float
    mean_luma: float
    sharpness: float  # variance of the Laplacian of the whole keyframe's luma
    product_sharpness_ratio: float | None  # inside the product, keyframe / reference
    brand_delta_e: float | None
    product_psnr: float | None


@dataclass(frozen=True)
class QAThresholds:
    """Pass/fail limits; the defaults are the bulk preset. Luma in full-range levels, ΔE is CIE76.

    Calibrated on videokit.sku_video.motion loops (10 products x 3 aspects, CRF 21): product PSNR 30.8-42.4 dB
    (4:2:0 chroma costs most of it), flicker <= 0.25, sharpness ratio >= 0.85, brand ΔE <= 1; and on the
    provider-like corpus of tests/videokit/sku_video/qa_corpus.py (push-ins, pans, orbits, floats at three speeds,
    periodic and there-and-back, CRF 20 and 26; `bench/qa_calibration.py` prints every margin): motion down
    to 0.04 for a 0.5° orbit and 0.06 for a 2 % push-in, seam ratio up to 2 (the seam step of a seamless
    clip is coding noise, see SEAM_NOISE_LEVELS). min_keyframe_sharpness applies only to keyframes measured
    without a product reference.
    """

    min_duration_s: float = 3.0
    max_duration_s: float = 5.0
    fps_tolerance: float = 0.05
    max_black_frame_ratio: float = 0.05
    max_frozen_s: float = 1.0
    min_motion: float = 0.02
    max_flicker: float = 4.0
    min_sharpness_ratio: float = 0.5
    max_loop_seam_ratio: float = 3.5
    max_brand_delta_e: float = 6.0
    min_product_psnr_clip: float = 25.0
    min_product_psnr_keyframe: float = 30.0
    min_keyframe_sharpness: float = 5.0

    @classmethod
    def bulk(cls) -> QAThresholds:
        return cls()

    @classmethod
    def hero(cls) -> QAThresholds:
        return cls(
            max_black_frame_ratio=0.0,
            max_frozen_s=0.5,
            min_motion=0.025,
            max_flicker=2.5,
            min_sharpness_ratio=0.65,
            max_loop_seam_ratio=2.5,
            max_brand_delta_e=4.0,
            min_product_psnr_clip=28.0,
            min_product_psnr_keyframe=35.0,
            min_keyframe_sharpness=10.0,
        )


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    summary: str  # one line: what failed and by how much, or what was measured
    scores: dict[str, float | int | str | bool]


# ---------------------------------------------------------------- image metrics


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def laplacian_variance(gray: np.ndarray, where: np.ndarray | None = None) -> float:
    """Edge energy: falls sharply when an image is blurred."""
    response = cv2.Laplacian(gray, cv2.CV_32F)
    return float((response if where is None else response[where]).var(dtype=np.float64))


def product_sharpness_ratio(gray: np.ndarray, reference_gray: np.ndarray, mask: np.ndarray) -> float | None:
    """Sharpness inside the product; the mask is eroded so that pixels outside it (undefined in the
    reference) never reach the Laplacian."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not inner.any():
        return None
    return sharpness_ratio(laplacian_variance(gray, inner), laplacian_variance(reference_gray, inner))


def sharpness_ratio(sharpness: float, reference_sharpness: float) -> float:
    """Detail kept against the reference's own detail; a reference with none scores about 1."""
    return (sharpness + SHARPNESS_NOISE) / (reference_sharpness + SHARPNESS_NOISE)


def border_band(height: int, width: int) -> np.ndarray:
    """Bool mask of the outer band (BORDER_FRACTION of the short side), where only background should show."""
    band = max(1, round(BORDER_FRACTION * min(height, width)))
    mask = np.ones((height, width), bool)
    mask[band:-band, band:-band] = False
    return mask


def lab(pixels: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0-100) of sRGB uint8 pixels of any leading shape, as rows of 3."""
    return cv2.cvtColor(pixels.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)


def brand_delta_e(frames: list[np.ndarray], brand_background: np.ndarray) -> float:
    """Median CIE76 ΔE between the frames' border band and the brand background's; a logo barely counts."""
    grid = np.s_[::BAND_STRIDE, ::BAND_STRIDE]
    background = brand_background[grid]
    band = border_band(*background.shape[:2])
    expected = lab(background[band])
    deltas = [np.linalg.norm(lab(frame[grid][band]) - expected, axis=1) for frame in frames]
    return float(np.median(np.concatenate(deltas)))


def masked_psnr(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float | None:
    """RGB PSNR over the mask's pixels, capped at PSNR_CAP_DB for identical pixels; None for an empty mask."""
    n_pixels = int(np.count_nonzero(mask))
    if n_pixels == 0:
        return None
    squared_error = cv2.norm(image, reference, cv2.NORM_L2SQR, mask=mask.astype(np.uint8))
    mse = squared_error / (n_pixels * image.shape[2])
    return PSNR_CAP_DB if mse == 0.0 else min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def require_rgb(name: str, image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an H,W,3 uint8 RGB array, got {image.dtype} {image.shape}")
    return image


def fitted_rgb(name: str, image: np.ndarray | None, height: int, width: int) -> np.ndarray | None:
    """A reference at the measured size: references come at keyframe size, clips may be smaller."""
    if image is None:
        return None
    if require_rgb(name, image).shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def fitted_mask(mask: np.ndarray | None, height: int, width: int) -> np.ndarray | None:
    if mask is None:
        return None
    if mask.ndim != 2:
        raise ValueError(f"product_mask must be an H,W array, got shape {mask.shape}")
    mask = mask.astype(bool, copy=False)
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


# ---------------------------------------------------------------- clip decoding


@dataclass
class LumaTrack:
    """What one decode pass keeps: per-frame luma statistics in full-range levels and three RGB frames."""

    means: np.ndarray  # mean luma of each frame
    steps: np.ndarray  # mean abs luma change from each frame to the next
    seam_step: float  # mean abs luma change from the last frame back to frame 0
    rgb_samples: list[np.ndarray]  # frame 0, the middle frame and the last frame, in order


def y_plane(frame: VideoFrame) -> np.ndarray:
    """The coded luma plane as a view (no copy), honouring the row stride."""
    if frame.format.name not in Y_PLANE_FORMATS:
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def coarse(plane: np.ndarray) -> np.ndarray:
    """Luma averaged over 4x4 blocks to even out coding noise; two exact halvings are 4x cheaper than one."""
    for _ in range(2):
        half = (max(1, plane.shape[1] // 2), max(1, plane.shape[0] // 2))
        plane = cv2.resize(plane, half, interpolation=cv2.INTER_AREA)
    return plane


def full_range_levels(frame: VideoFrame) -> tuple[float, float]:
    """(offset, gain) from coded luma to full-range levels; video range puts black at 16, white at 235."""
    if frame.color_range == ColorRange.JPEG or frame.format.name.startswith(("yuvj", "gray")):
        return 0.0, 1.0
    return 16.0, 255.0 / 219.0


def decode_luma_track(container: InputContainer, stream: VideoStream, expected_frames: int) -> LumaTrack:
    """Decode every frame once; only the Y plane is read, and RGB is made for three frames only."""
    # Frame threads too: clips from APIs are mostly one slice per frame, which slice threads cannot split.
    stream.codec_context.thread_type = "AUTO"
    sample_indices = {0, expected_frames // 2}
    sampled: dict[int, VideoFrame] = {}
    means: list[float] = []
    steps: list[float] = []
    first = previous = frame = None
    for index, frame in enumerate(container.decode(stream)):
        current = coarse(y_plane(frame))
        means.append(cv2.mean(current)[0])
        if previous is None:
            first = current
        else:
            steps.append(cv2.norm(current, previous, cv2.NORM_L1) / current.size)
        if index in sample_indices:
            sampled[index] = frame
        previous = current
    if frame is None:
        raise ClipUnreadable("clip has a video stream but no frame could be decoded")
    sampled[len(means) - 1] = frame
    offset, gain = full_range_levels(frame)
    return LumaTrack(
        means=(np.array(means) - offset) * gain,
        steps=np.array(steps) * gain,
        seam_step=cv2.norm(previous, first, cv2.NORM_L1) / first.size * gain,
        rgb_samples=[sampled[index].to_ndarray(format="rgb24") for index in sorted(sampled)],
    )


# ---------------------------------------------------------------- clip metrics


def longest_run(flags: np.ndarray) -> int:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def longest_frozen_s(steps: np.ndarray, seconds_per_frame: float) -> float:
    """How long the picture stands still: a run of k still steps shows one image for k + 1 frames."""
    run = longest_run(steps < FROZEN_STEP)
    return (run + 1) * seconds_per_frame if run else 0.0


def flicker(means: np.ndarray) -> float:
    """Largest departure (levels) of a frame's mean luma from its neighbours' average; smooth motion ~0."""
    if means.size < 3:
        return 0.0
    return float(np.abs(means[1:-1] - (means[:-2] + means[2:]) / 2.0).max())


def loop_seam_ratio(track: LumaTrack) -> float:
    """How much bigger the jump from the last frame back to frame 0 is than what a seamless loop shows there:
    a typical step while the picture moves (median of the moving steps, so a still span does not shrink it)
    plus the coding noise between a freshly coded frame 0 and the last frame."""
    moving = track.steps[track.steps >= FROZEN_STEP]
    typical = float(np.median(moving)) if moving.size else 0.0
    return track.seam_step / (typical + SEAM_NOISE_LEVELS)


def measure_clip(
    data: bytes,
    *,
    keyframe: np.ndarray | None = None,
    product_mask: np.ndarray | None = None,
    brand_background: np.ndarray | None = None,
) -> ClipScores:
    """Decode once and score the clip; a score whose reference is missing comes back as None.

    Pass references at the clip's size (for 1:1, the keyframe layers resized to 720x720, not the 1080
    keyframe): others are resized here, and a resampled product costs 2-6 dB of PSNR against a clip that
    was rendered at its own size. Raises ClipUnreadable for bytes FFmpeg cannot decode.
    """
    with open_video(data) as (container, stream):
        report = container_report(data, container, stream)
        track = decode_luma_track(container, stream, report.n_frames)
    frame0 = track.rgb_samples[0]
    height, width = frame0.shape[:2]
    keyframe = fitted_rgb("keyframe", keyframe, height, width)
    mask = fitted_mask(product_mask, height, width)
    background = fitted_rgb("brand_background", brand_background, height, width)
    sharpness = laplacian_variance(luma(frame0))
    keyframe_sharpness = None if keyframe is None else laplacian_variance(luma(keyframe))
    decoded_frames = track.means.size
    seconds_per_frame = 1.0 / report.fps if report.fps > 0 else report.duration_s / decoded_frames
    return ClipScores(
        **asdict(report),
        decoded_frames=decoded_frames,
        black_frame_ratio=float(np.mean(track.means < BLACK_LUMA)),
        longest_frozen_s=longest_frozen_s(track.steps, seconds_per_frame),
        motion_mean=float(track.steps.mean()) if track.steps.size else 0.0,
        flicker=flicker(track.means),
        sharpness=sharpness,
        sharpness_ratio=None if keyframe_sharpness is None else sharpness_ratio(sharpness, keyframe_sharpness),
        loop_seam_ratio=loop_seam_ratio(track),
        brand_delta_e=None if background is None else brand_delta_e(track.rgb_samples, background),
        product_psnr=None if keyframe is None or mask is None else masked_psnr(frame0, keyframe, mask),
    )


def measure_keyframe(
    image: np.ndarray,
    *,
    expected_size: tuple[int, int],
    product_reference: np.ndarray | None = None,
    product_mask: np.ndarray | None = None,
    brand_background: np.ndarray | None = None,
) -> KeyframeScores:
    """Score a keyframe. expected_size is (width, height); product_reference is the expected RGB of the
    product, full frame, read only where product_mask is True."""
    height, width = require_rgb("keyframe", image).shape[:2]
    reference = fitted_rgb("product_reference", product_reference, height, width)
    mask = fitted_mask(product_mask, height, width)
    background = fitted_rgb("brand_background", brand_background, height, width)
    gray = luma(image)
    compare_product = reference is not None and mask is not None
    return KeyframeScores(
        width=width,
        height=height,
        expected_width=expected_size[0],
        expected_height=expected_size[1],
        size_ok=(width, height) == tuple(expected_size),
        aspect=width / height,
        mean_luma=float(gray.mean()),
        sharpness=laplacian_variance(gray),
        product_sharpness_ratio=product_sharpness_ratio(gray, luma(reference), mask)
        if compare_product
        else None,
        brand_delta_e=None if background is None else brand_delta_e([image], background),
        product_psnr=masked_psnr(image, reference, mask) if compare_product else None,
    )


# ---------------------------------------------------------------- judging


def above(label: str, value: float, limit: float, unit: str = "") -> list[str]:
    return [f"{label} {value:.3g}{unit} > {limit:g}{unit}"] if value > limit else []


def below(label: str, value: float, limit: float, unit: str = "") -> list[str]:
    return [f"{label} {value:.3g}{unit} < {limit:g}{unit}"] if value < limit else []


def outcome(name: str, failures: list[str], passed_summary: str, scores: dict) -> CheckOutcome:
    measured = {key: value for key, value in scores.items() if value is not None}
    return CheckOutcome(name, not failures, "; ".join(failures) or passed_summary, measured)


def pick(scores: ClipScores | KeyframeScores, *names: str) -> dict:
    return {name: getattr(scores, name) for name in names}


def is_mp4(scores: ClipScores) -> bool:
    # FFmpeg reads MP4 and QuickTime with one demuxer; the ftyp brand tells them apart.
    return "mp4" in scores.format_name.split(",") and scores.major_brand not in ("", "qt  ")


def judge_clip_format(
    scores: ClipScores, width: int, height: int, fps: float, t: QAThresholds
) -> CheckOutcome:
    failures = []
    if not is_mp4(scores):
        failures.append(f"container {scores.format_name} (brand {scores.major_brand!r}) is not mp4")
    if scores.codec != "h264":
        failures.append(f"codec {scores.codec} != h264")
    if scores.pix_fmt != "yuv420p":
        failures.append(f"pix_fmt {scores.pix_fmt} != yuv420p")
    if not scores.faststart:
        failures.append("moov after mdat (no faststart)")
    if (scores.width, scores.height) != (width, height):
        failures.append(f"resolution {scores.width}x{scores.height} != {width}x{height}")
    aspect, expected_aspect = scores.width / max(scores.height, 1), width / height
    if abs(aspect / expected_aspect - 1.0) > 0.01:
        failures.append(f"aspect {aspect:.3f} != {expected_aspect:.3f}")
    failures += below("duration", scores.duration_s, t.min_duration_s, " s")
    failures += above("duration", scores.duration_s, t.max_duration_s, " s")
    if abs(scores.fps - fps) > t.fps_tolerance:
        failures.append(f"fps {scores.fps:.3f} != {fps:g} ± {t.fps_tolerance:g}")
    if abs(scores.decoded_frames - scores.n_frames) > 1:
        failures.append(f"decoded {scores.decoded_frames} of {scores.n_frames} frames")
    passed = (
        f"mp4 {scores.codec} {scores.pix_fmt} faststart {scores.width}x{scores.height} "
        f"{scores.fps:g} fps {scores.duration_s:g} s"
    )
    names = ("format_name", "major_brand", "codec", "pix_fmt", "faststart", "width", "height", "fps")
    return outcome(
        "clip_format", failures, passed, pick(scores, *names, "duration_s", "n_frames", "decoded_frames")
    )


def judge_clip_content(scores: ClipScores, t: QAThresholds) -> CheckOutcome:
    failures = [
        *above("black frame ratio", scores.black_frame_ratio, t.max_black_frame_ratio),
        *above("frozen", scores.longest_frozen_s, t.max_frozen_s, " s"),
        *below("motion", scores.motion_mean, t.min_motion),
        *above("flicker", scores.flicker, t.max_flicker),
    ]
    sharpness = "sharpness ratio not measured (no keyframe)"
    if scores.sharpness_ratio is not None:
        failures += below("sharpness ratio", scores.sharpness_ratio, t.min_sharpness_ratio)
        sharpness = f"sharpness ratio {scores.sharpness_ratio:.2f}"
    passed = (
        f"black {scores.black_frame_ratio:.0%}, frozen {scores.longest_frozen_s:.2f} s, "
        f"motion {scores.motion_mean:.2f}, flicker {scores.flicker:.2f}, {sharpness}"
    )
    names = (
        "black_frame_ratio",
        "longest_frozen_s",
        "motion_mean",
        "flicker",
        "sharpness",
        "sharpness_ratio",
    )
    return outcome("clip_content", failures, passed, pick(scores, *names))


def judge_clip_loop_seam(scores: ClipScores, t: QAThresholds) -> CheckOutcome:
    failures = above("loop seam ratio", scores.loop_seam_ratio, t.max_loop_seam_ratio)
    passed = f"loop seam ratio {scores.loop_seam_ratio:.2f}"
    return outcome("clip_loop_seam", failures, passed, pick(scores, "loop_seam_ratio"))


def judge_brand_background(name: str, delta_e: float | None, t: QAThresholds) -> CheckOutcome:
    if delta_e is None:
        return outcome(name, [], "brand background not measured (no reference)", {})
    failures = above("brand ΔE", delta_e, t.max_brand_delta_e)
    return outcome(name, failures, f"brand ΔE {delta_e:.2f}", {"brand_delta_e": delta_e})


def judge_product_fidelity(name: str, psnr: float | None, min_psnr: float) -> CheckOutcome:
    if psnr is None:
        return outcome(name, [], "product fidelity not measured (no reference or empty mask)", {})
    failures = below("product PSNR", psnr, min_psnr, " dB")
    return outcome(name, failures, f"product PSNR {psnr:.1f} dB", {"product_psnr": psnr})


def judge_clip(
    scores: ClipScores, *, width: int, height: int, fps: float, thresholds: QAThresholds = QAThresholds()
) -> list[CheckOutcome]:
    """The five clip checks against the expected size and rate: format, content, loop seam, brand, product."""
    return [
        judge_clip_format(scores, width, height, fps, thresholds),
        judge_clip_content(scores, thresholds),
        judge_clip_loop_seam(scores, thresholds),
        judge_brand_background("clip_brand_background", scores.brand_delta_e, thresholds),
        judge_product_fidelity(
            "clip_product_fidelity", scores.product_psnr, thresholds.min_product_psnr_clip
        ),
    ]


def judge_keyframe_format(scores: KeyframeScores) -> CheckOutcome:
    size = f"{scores.width}x{scores.height}"
    failures = [] if scores.size_ok else [f"size {size} != {scores.expected_width}x{scores.expected_height}"]
    passed = f"{size}, mean luma {scores.mean_luma:.0f}"
    return outcome(
        "keyframe_format", failures, passed, pick(scores, "width", "height", "size_ok", "aspect", "mean_luma")
    )


def judge_keyframe_sharpness(scores: KeyframeScores, t: QAThresholds) -> CheckOutcome:
    """Judged against the packshot's own detail when there is one: a plain product has little edge energy and
    is not blurred for it. Only a keyframe with no product reference falls back to the absolute floor."""
    passed = f"sharpness {scores.sharpness:.1f}"
    if scores.product_sharpness_ratio is None:
        failures = below("sharpness", scores.sharpness, t.min_keyframe_sharpness)
    else:
        failures = below("product sharpness ratio", scores.product_sharpness_ratio, t.min_sharpness_ratio)
        passed += f", product sharpness ratio {scores.product_sharpness_ratio:.2f}"
    return outcome(
        "keyframe_sharpness", failures, passed, pick(scores, "sharpness", "product_sharpness_ratio")
    )


def judge_keyframe(scores: KeyframeScores, thresholds: QAThresholds = QAThresholds()) -> list[CheckOutcome]:
    """The four keyframe checks: format, brand background, product fidelity, sharpness."""
    return [
        judge_keyframe_format(scores),
        judge_brand_background("keyframe_brand_background", scores.brand_delta_e, thresholds),
        judge_product_fidelity(
            "keyframe_product_fidelity", scores.product_psnr, thresholds.min_product_psnr_keyframe
        ),
        judge_keyframe_sharpness(scores, thresholds),
    ]
