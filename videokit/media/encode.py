"""H.264 MP4 in and out of memory, and JPEG posters, with PyAV's libx264."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import cv2
import numpy as np
from PIL import Image

Matrix = Literal["bt601", "bt709"]
X264_MATRIX: dict[str, str] = {"bt601": "smpte170m", "bt709": "bt709"}
# Luma weights (Kr, Kb) of each matrix; limited ("tv") range: Y 16-235, Cb/Cr 16-240.
_LUMA_WEIGHTS: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def _yuv_rows(matrix: Matrix) -> np.ndarray:
    """3x4 affine rows mapping full-range R, G, B (0-255) to limited-range Y, Cb, Cr."""
    kr, kb = _LUMA_WEIGHTS[matrix]
    kg = 1 - kr - kb
    luma = np.array([kr, kg, kb])
    cb = (np.array([0, 0, 1]) - luma) / (2 * (1 - kb))
    cr = (np.array([1, 0, 0]) - luma) / (2 * (1 - kr))
    rows = np.stack([luma * 219 / 255, cb * 224 / 255, cr * 224 / 255])
    return np.hstack([rows, np.array([[16.0], [128.0], [128.0]])]).astype(np.float32)


_YUV_ROWS: dict[str, np.ndarray] = {name: _yuv_rows(name) for name in _LUMA_WEIGHTS}


def rgb_to_i420(rgb: np.ndarray, matrix: Matrix = "bt709") -> np.ndarray:
    """(h, w, 3 or 4) uint8 RGB(A) to planar I420 (h * 3 / 2, w) uint8 in `matrix`, limited range.

    Chroma is the 2x2 mean of the RGB, converted once per block (centred siting, as OpenCV's I420).
    """
    height, width = rgb.shape[:2]
    rows = _YUV_ROWS[matrix]
    if rgb.shape[2] == 4:  # alpha column weighted 0, offset kept last
        rows = np.insert(rows, 3, 0.0, axis=1)
    # Luma by two weighted sums (within 1 level of exact): twice as fast as cv2.transform at full size.
    red, green, blue = cv2.split(rgb)[:3]
    kr, kg, kb, offset = (float(value) for value in _YUV_ROWS[matrix][0])
    luma = cv2.addWeighted(cv2.addWeighted(red, kr, green, kg, offset), 1.0, blue, kb, 0.0)
    half = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    chroma = cv2.transform(half, rows[1:])
    return np.concatenate(
        [luma.reshape(-1), chroma[..., 0].reshape(-1), chroma[..., 1].reshape(-1)]
    ).reshape(height * 3 // 2, width)


@dataclass(frozen=True)
class EncodeSettings:
    crf: int = 21
    preset: str = "veryfast"
    gop: int | None = None  # frames per closed GOP; None: two seconds
    # One x264 thread by default: threaded lookahead with mb-tree gives different bytes run to run on a busy
    # machine, and renders are parallel across frames (motion) or SKUs (processes) already. 0: x264 picks.
    threads: int = 1
    tune: str | None = None
    x264_params: str = ""  # extra x264 options, "key=value:key=value"


@dataclass(frozen=True)
class ClipFile:
    mp4: bytes
    poster: bytes  # JPEG of frame 0
    width: int
    height: int
    fps: int
    n_frames: int


def encode_mp4(
    frames: Iterable[np.ndarray],
    size: tuple[int, int],
    fps: int,
    settings: EncodeSettings = EncodeSettings(),
    *,
    input_format: Literal["rgb24", "yuv420p"] = "rgb24",
    matrix: Matrix | None = None,
) -> bytes:
    """Encode frames to H.264 yuv420p MP4 with the index first (faststart); returns the file's bytes.

    `rgb24` frames are (h, w, 3) uint8, converted here with `matrix` (default BT.709); `yuv420p` frames
    are planar I420, (h * 3 / 2, w) uint8, in `matrix` (default BT.601, what
    cv2.cvtColor(..., COLOR_RGB2YUV_I420) makes; `rgb_to_i420` makes BT.709). The stream is tagged with
    the matrix the samples are in. Frame i is stamped i / fps, so the duration is exactly n / fps.
    """
    if matrix is None:
        matrix = "bt709" if input_format == "rgb24" else "bt601"
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
    gop = settings.gop or 2 * fps
    x264_params = [
        # Fixed closed GOPs (no scene-cut keyframes) let a span be re-encoded and joined by stream copy.
        f"keyint={gop}:min-keyint={gop}:open-gop=0:scenecut=0",
        # sRGB content: BT.709 primaries and transfer, tagged with the matrix the samples were made with.
        f"colorprim=bt709:transfer=bt709:colormatrix={X264_MATRIX[matrix]}:range=tv",
    ]
    if settings.threads:
        x264_params.append(f"threads={settings.threads}:lookahead-threads=1")
    if settings.x264_params:
        x264_params.append(settings.x264_params)
    options = {"crf": str(settings.crf), "preset": settings.preset, "x264-params": ":".join(x264_params)}
    if settings.tune:
        options["tune"] = settings.tune
    # The faststart pass re-reads the finished file, which FFmpeg can only do on a real path.
    with tempfile.TemporaryDirectory(prefix="skuvid-encode-") as folder:
        path = os.path.join(folder, "clip.mp4")
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = Fraction(1, fps)
            for index, frame in enumerate(frames):
                if input_format == "rgb24":
                    frame = rgb_to_i420(frame, matrix)
                video_frame = av.VideoFrame.from_ndarray(frame, format="yuv420p")
                video_frame.pts = index
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))
        with open(path, "rb") as file:
            return file.read()


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """JPEG of one RGB frame, for posters."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def decode_rgb(mp4: bytes, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield the clip's frames as (h, w, 3) uint8 RGB, scaled to `size` (w, h) when given."""
    with av.open(io.BytesIO(mp4), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if size is None:
                yield frame.to_ndarray(format="rgb24")
            else:
                yield frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
