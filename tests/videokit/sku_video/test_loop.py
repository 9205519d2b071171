import itertools

import numpy as np
import pytest

from videokit.sku_video.loop import fit_to_size


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


def test_source_indices_play_half_the_loop_at_natural_speed():
    from videokit.sku_video.loop import loop_source_indices

    assert loop_source_indices(121, 24, 96, 24) == list(range(49))
    assert loop_source_indices(81, 16, 96, 24)[:4] == [0, 0, 1, 2]  # 16 fps source, 24 fps loop
    short = loop_source_indices(41, 24, 96, 24)  # 1.7 s for a 2 s half-loop: played 1.2x faster
    assert len(short) == 49 and short[-1] == 40


def test_too_short_a_source_is_refused_with_the_numbers():
    from videokit.sku_video.loop import SourceTooShort, loop_source_indices

    with pytest.raises(SourceTooShort, match=r"20 frames at 24 fps last 0.83s; a 4s loop needs at least 1.60s"):
        loop_source_indices(20, 24, 96, 24)


def test_looped_clip_encodes_the_loop_at_size():
    from videokit.media.encode import EncodeSettings
    from videokit.media.probe import probe_mp4
    from videokit.sku_video.loop import looped_clip

    clip = looped_clip(drifting_frames(25), (64, 48), 12, 36, EncodeSettings(preset="ultrafast"))
    report = probe_mp4(clip.mp4)
    assert (report.width, report.height, report.n_frames, clip.n_frames) == (64, 48, 36, 36)
    assert clip.poster[:2] == b"\xff\xd8"


@pytest.mark.parametrize("size", [(64, 64), (32, 48), (128, 72)])
def test_fit_to_size_covers_and_keeps_the_centre(size):
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[40:50, 75:85] = 255  # a marker at the centre
    fitted = fit_to_size(frame, size)
    width, height = size
    assert fitted.shape == (height, width, 3)
    assert fitted[height // 2, width // 2].min() > 100
    assert fitted[0, 0].max() == 0


def test_there_and_back_keeps_frame_zero_and_has_no_seam():
    from videokit.sku_video.loop import there_and_back_loop

    frames = drifting_frames(40)
    looped = there_and_back_loop(frames, 48)
    assert len(looped) == 48 and np.array_equal(looped[0], frames[0])
    steps = [mean_step(a, b) for a, b in itertools.pairwise(looped)]
    assert mean_step(looped[-1], looped[0]) <= np.median(steps)
    assert max(steps) < mean_step(frames[0], frames[-1]) / 2
    with pytest.raises(ValueError, match="at least 2"):
        there_and_back_loop(frames[:1], 10)
