import itertools

import numpy as np
import pytest

from videokit.loop import fit_to_size, make_seamless_loop


def drifting_frames(count: int = 40) -> list[np.ndarray]:
    """A clip that does not loop: a bright bar walks steadily from left to right."""
    frames = []
    for index in range(count):
        frame = np.full((48, 64, 3), 30, np.uint8)
        frame[:, index : index + 8] = 220
        frames.append(frame)
    return frames


def mean_step(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


def test_crossfade_shortens_the_clip_and_keeps_its_middle():
    frames = drifting_frames()
    looped = make_seamless_loop(frames, 8)
    assert len(looped) == 32
    assert all(np.array_equal(a, b) for a, b in zip(looped[8:], frames[8:32]))


def test_crossfade_removes_the_seam():
    frames = drifting_frames()
    raw_seam = mean_step(frames[-1], frames[0])
    looped = make_seamless_loop(frames, 8)
    steps = [mean_step(a, b) for a, b in itertools.pairwise(looped)]
    seam = mean_step(looped[-1], looped[0])
    assert seam < raw_seam / 3
    assert seam <= max(steps)


def test_no_crossfade_returns_the_frames():
    frames = drifting_frames(4)
    assert all(np.array_equal(a, b) for a, b in zip(make_seamless_loop(frames, 0), frames))


def test_crossfade_longer_than_half_the_clip_is_refused():
    with pytest.raises(ValueError, match="twice"):
        make_seamless_loop(drifting_frames(10), 6)


@pytest.mark.parametrize("size", [(64, 64), (32, 48), (128, 72)])
def test_fit_to_size_covers_and_keeps_the_centre(size):
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[40:50, 75:85] = 255  # a marker at the centre
    fitted = fit_to_size(frame, size)
    width, height = size
    assert fitted.shape == (height, width, 3)
    assert fitted[height // 2, width // 2].min() > 100
    assert fitted[0, 0].max() == 0
