import io
import struct
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from videokit.encode import EncodeSettings, decode_rgb, encode_jpeg, encode_mp4

WIDTH, HEIGHT, FPS, COUNT = 320, 240, 24, 30


def moving_frames(count: int = COUNT) -> list[np.ndarray]:
    """A gradient with a square sliding across it."""
    ramp = np.linspace(40, 200, WIDTH, dtype=np.uint8)
    frames = []
    for index in range(count):
        frame = np.dstack([np.tile(ramp, (HEIGHT, 1))] * 3)
        cv2.rectangle(frame, (20 + 6 * index, 80), (80 + 6 * index, 140), (200, 40, 40), -1)
        frames.append(frame)
    return frames


def top_level_boxes(mp4: bytes) -> list[str]:
    boxes, offset = [], 0
    while offset < len(mp4):
        size, kind = struct.unpack(">I4s", mp4[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", mp4[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("ascii"))
        offset += size or len(mp4) - offset
    return boxes


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return encode_mp4(moving_frames(), (WIDTH, HEIGHT), FPS, EncodeSettings(gop=12))


def test_mp4_is_h264_yuv420p_at_the_right_size_rate_and_length(mp4):
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (WIDTH, HEIGHT)
        assert stream.average_rate == FPS
        assert stream.frames == COUNT
        assert stream.duration * stream.time_base == Fraction(COUNT, FPS)
        assert sum(1 for _ in container.decode(stream)) == COUNT


def test_mp4_puts_the_index_before_the_media(mp4):
    boxes = top_level_boxes(mp4)
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat")


def test_mp4_starts_a_closed_gop_every_gop_frames(mp4):
    with av.open(io.BytesIO(mp4)) as container:
        keyframes = [index for index, frame in enumerate(container.decode(video=0)) if frame.key_frame]
    assert keyframes == [0, 12, 24]


def test_decoded_frames_match_what_went_in(mp4):
    originals = moving_frames()
    decoded = list(decode_rgb(mp4))
    assert len(decoded) == COUNT
    for original, frame in zip(originals, decoded):
        assert frame.shape == (HEIGHT, WIDTH, 3)
        assert cv2.PSNR(original, frame) > 35


def test_decode_can_resize(mp4):
    assert next(decode_rgb(mp4, size=(160, 120))).shape == (120, 160, 3)


def test_yuv420p_input_matches_rgb_input():
    frames = moving_frames(8)
    from_rgb = encode_mp4(frames, (WIDTH, HEIGHT), FPS)
    planar = [cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420) for frame in frames]
    from_yuv = encode_mp4(planar, (WIDTH, HEIGHT), FPS, input_format="yuv420p")
    assert from_rgb == from_yuv


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="even"):
        encode_mp4([np.zeros((241, 320, 3), np.uint8)], (320, 241), FPS)


def test_jpeg_poster_decodes():
    frame = moving_frames(1)[0]
    poster = Image.open(io.BytesIO(encode_jpeg(frame, quality=85)))
    assert poster.format == "JPEG" and poster.size == (WIDTH, HEIGHT)
    assert cv2.PSNR(frame, np.asarray(poster.convert("RGB"))) > 30
