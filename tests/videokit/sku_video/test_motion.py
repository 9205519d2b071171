import dataclasses
import io
import itertools

import av
import cv2
import numpy as np
import pytest

from tests.videokit.sku_video.test_compose import bottle_packshot, brand_logo, studio_kit
from videokit.media.encode import decode_rgb
from videokit.sku_video.compose import compose_keyframe
from videokit.sku_video.motion import (
    LoopRenderer,
    MotionSpec,
    motion_style_for,
    render_loop,
    render_motion_clip,
)

SIZE = (640, 360)
SHORT = MotionSpec(duration_s=2.0, fps=24)


@pytest.fixture(scope="module")
def layers():
    return compose_keyframe(bottle_packshot(), studio_kit(), SIZE, logo=brand_logo())


@pytest.fixture(scope="module")
def frames(layers):
    return list(render_loop(layers, SIZE, SHORT))


def mean_step(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


def test_loop_has_one_frame_per_tick(frames):
    assert len(frames) == SHORT.n_frames == 48
    assert all(frame.shape == (360, 640, 3) and frame.dtype == np.uint8 for frame in frames)


def test_first_frame_is_the_keyframe(layers, frames):
    assert np.abs(frames[0].astype(int) - layers.flatten()).max() <= 1


def test_loop_is_seamless(frames):
    steps = [mean_step(a, b) for a, b in itertools.pairwise(frames)]
    seam = mean_step(frames[-1], frames[0])
    assert seam <= np.median(steps)


def test_frames_move(frames):
    steps = [mean_step(a, b) for a, b in itertools.pairwise(frames)]
    assert min(steps) > 0
    assert mean_step(frames[0], frames[len(frames) // 2]) > 1


def test_seeds_give_different_loops(layers, frames):
    other = list(render_loop(layers, SIZE, dataclasses.replace(SHORT, seed=1)))
    quarter = len(frames) // 4
    assert np.array_equal(other[0], frames[0])
    assert mean_step(other[quarter], frames[quarter]) > 0.5


def test_sweep_lights_only_the_product(layers, frames):
    plain = list(render_loop(layers, SIZE, dataclasses.replace(SHORT, sweep=False)))
    middle = len(frames) // 2
    changed = np.abs(frames[middle].astype(int) - plain[middle]).max(axis=2) > 0
    assert changed.any()
    assert (frames[middle] >= plain[middle]).all(), "the sheen only brightens"
    rows, cols = np.nonzero(changed)
    x, y = layers.product_xy
    product_h, product_w = layers.product.shape[:2]
    reach = 20  # the product's largest move at this size
    assert x - reach <= cols.min() and cols.max() < x + product_w + reach
    assert y - reach <= rows.min() and rows.max() < y + product_h + reach
    assert all(np.array_equal(frames[index], plain[index]) for index in (0, 1, len(frames) - 1))


def test_loop_renders_at_a_size_other_than_the_keyframe():
    square = compose_keyframe(bottle_packshot(), studio_kit(), (1080, 1080), logo=brand_logo())
    frames = list(render_loop(square, (720, 720), MotionSpec(duration_s=1.0, fps=12)))
    assert len(frames) == 12 and frames[0].shape == (720, 720, 3)
    assert np.abs(frames[0].astype(int) - square.resized((720, 720)).flatten()).max() <= 1


def test_motion_clip_encodes_the_loop(layers, frames):
    clip = render_motion_clip(layers, SIZE, SHORT)
    assert (clip.width, clip.height, clip.fps, clip.n_frames) == (640, 360, 24, 48)
    with av.open(io.BytesIO(clip.mp4)) as container:
        assert container.streams.video[0].frames == 48
    decoded = list(decode_rgb(clip.mp4))
    assert len(decoded) == 48
    assert np.abs(decoded[10].astype(int) - frames[10]).mean() < 3
    assert clip.poster[:2] == b"\xff\xd8"


def test_spec_rejects_a_loop_without_frames():
    with pytest.raises(ValueError, match="at least 2 frames"):
        MotionSpec(duration_s=0.01)


def sample_layers(sku_id: str, brand: str, size=(1280, 720)):
    from PIL import Image

    from samples.make_samples import SAMPLES_DIR, load_brands

    kit = load_brands()[brand]
    return compose_keyframe(
        Image.open(SAMPLES_DIR / "packshots" / f"{sku_id}.png"), kit, size, logo=Image.open(SAMPLES_DIR / kit.logo)
    )


def product_hue_saturation(renderer: LoopRenderer, index: int) -> tuple[float, float]:
    """Median hue (degrees) and saturation (0-1) of the opaque product pixels in frame `index`."""
    pose = renderer.pose(index)
    opaque = (renderer.product[..., 3] == 255).astype(np.uint8) * 255
    mask = cv2.warpPerspective(cv2.erode(opaque, np.ones((5, 5), np.uint8)), pose.product, renderer.size) == 255
    hsv = cv2.cvtColor(np.ascontiguousarray(renderer.rgba_frame(index)[..., :3]), cv2.COLOR_RGB2HSV_FULL)
    pixels = hsv[mask].astype(float)
    return float(np.median(pixels[:, 0]) * 360 / 256), float(np.median(pixels[:, 1]) / 255)


@pytest.mark.parametrize("style", ["float", "turn"])
@pytest.mark.parametrize(("sku_id", "brand"), [("NW-BPK-002", "northwind"), ("FJ-CAN-001", "fjord")])
def test_the_light_keeps_the_products_colour_through_the_loop(sku_id, brand, style):
    """The haze test: no frame's product is paler or shifted in hue against the keyframe."""
    renderer = LoopRenderer(sample_layers(sku_id, brand), (1280, 720), MotionSpec(style=style))
    hue0, saturation0 = product_hue_saturation(renderer, 0)
    lifted = False
    for index in range(0, renderer.spec.n_frames, 4):
        hue, saturation = product_hue_saturation(renderer, index)
        assert saturation >= saturation0 - 0.03, f"frame {index}: saturation {saturation:.2f} vs {saturation0:.2f}"
        assert abs((hue - hue0 + 180) % 360 - 180) <= 4, f"frame {index}: hue {hue:.0f} vs {hue0:.0f}"
        lifted |= renderer.pose(index).sweep_gain > 0.2
    assert lifted, "the light never passes"


@pytest.mark.parametrize("style", ["float", "turn"])
def test_logo_pixels_identical_across_frames(layers, style):
    renderer = LoopRenderer(layers, SIZE, dataclasses.replace(SHORT, style=style))
    scaled = layers.resized(SIZE)
    x, y = scaled.logo_xy
    height, width = scaled.logo.shape[:2]
    box = np.s_[y : y + height, x : x + width]
    opaque = scaled.logo[..., 3] == 255  # where the logo hides the moving background
    assert opaque.sum() > 100
    first = renderer.rgba_frame(0)[box][opaque]
    assert np.array_equal(first[:, :3], scaled.logo[..., :3][opaque]), "the logo is not drawn as it is"
    for index in range(1, SHORT.n_frames):
        assert np.array_equal(renderer.rgba_frame(index)[box][opaque], first), f"the logo moved in frame {index}"


def test_turn_style_moves_loops_and_starts_at_the_keyframe(layers):
    frames = list(render_loop(layers, SIZE, dataclasses.replace(SHORT, style="turn")))
    assert np.abs(frames[0].astype(int) - layers.flatten()).max() <= 1
    steps = [mean_step(a, b) for a, b in itertools.pairwise(frames)]
    assert max(steps) > 0.1, "the product does not turn"
    assert mean_step(frames[-1], frames[0]) <= 2 * np.median(steps) + 0.05, "the loop jumps at the seam"


@pytest.mark.parametrize(
    ("category", "prompt", "style"),
    [
        ("accessories", "slow orbit around the pack", "turn"),
        ("footwear", "gentle push-in on the toe", "float"),
        ("footwear", "", "turn"),
        ("kitchen", "", "float"),
    ],
)
def test_style_follows_the_prompt_then_the_category(category, prompt, style):
    assert motion_style_for(category, prompt) == style


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="style"):
        MotionSpec(style="spin")


def test_category_table_picks_the_style_and_prompt_words_still_override():
    table = {"Kitchen ": "turn"}  # matched without case or surrounding spaces
    assert motion_style_for("kitchen", "", table) == "turn"
    assert motion_style_for("footwear", "", table) == "float", "a category the table does not list floats"
    assert motion_style_for("kitchen", "slow push-in on the handle", table) == "float"
    with pytest.raises(ValueError, match="'wobble' for category 'kitchen'"):
        motion_style_for("kitchen", "", {"kitchen": "wobble"})
