import dataclasses
import io
import itertools

import av
import numpy as np
import pytest

from tests.videokit.test_compose import bottle_packshot, brand_logo, studio_kit
from videokit.compose import compose_keyframe
from videokit.encode import decode_rgb
from videokit.motion import MotionSpec, render_loop, render_motion_clip

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
