import io
import struct
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from videokit.media.encode import EncodeSettings, decode_rgb, encode_jpeg, encode_mp4, rgb_to_i420

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
    planar = [rgb_to_i420(frame, "bt709") for frame in frames]
    from_yuv = encode_mp4(planar, (WIDTH, HEIGHT), FPS, input_format="yuv420p", matrix="bt709")
    assert from_rgb == from_yuv


def test_bt709_conversion_matches_ffmpeg():
    """Our RGB->I420 and swscale's BT.709 limited-range conversion agree within one level."""
    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8), (0, 0), 3)
    rgb = cv2.normalize(rgb, None, 0, 255, cv2.NORM_MINMAX)
    reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG", interpolation="AREA"
    )
    assert np.abs(rgb_to_i420(rgb, "bt709").astype(int) - reference.to_ndarray()).max() <= 1


@pytest.mark.parametrize(
    ("input_format", "matrix", "colorspace"),
    [("rgb24", None, "bt709"), ("yuv420p", "bt709", "bt709"), ("yuv420p", None, "smpte170m")],
)
def test_colour_tags_name_the_matrix_the_samples_are_in(input_format, matrix, colorspace):
    frames = moving_frames(4)
    if input_format == "yuv420p":
        frames = [rgb_to_i420(frame, matrix or "bt601") for frame in frames]
    data = encode_mp4(frames, (WIDTH, HEIGHT), FPS, input_format=input_format, matrix=matrix)
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        stream = container.streams.video[0].codec_context
        assert (stream.color_primaries, stream.color_trc) == (1, 1)  # BT.709 primaries and transfer
        assert stream.colorspace == {"bt709": 1, "smpte170m": 6}[colorspace]
        assert stream.color_range == 1  # limited ("tv")
        # Decoded frames carry the tag, so RGB conversion on the way out uses the same matrix.
        assert frame.colorspace == stream.colorspace


def test_rgb_to_i420_bt601_luma_matches_opencv():
    rgb = moving_frames(1)[0]
    ours = rgb_to_i420(rgb, "bt601")[:HEIGHT].astype(int)
    assert np.abs(ours - cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)[:HEIGHT]).max() <= 1


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="even"):
        encode_mp4([np.zeros((241, 320, 3), np.uint8)], (320, 241), FPS)


def test_jpeg_poster_decodes():
    frame = moving_frames(1)[0]
    poster = Image.open(io.BytesIO(encode_jpeg(frame, quality=85)))
    assert poster.format == "JPEG" and poster.size == (WIDTH, HEIGHT)
    assert cv2.PSNR(frame, np.asarray(poster.convert("RGB"))) > 30
