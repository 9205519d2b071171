"""What the presenter emulators hand back: a real MP4 (H.264 and AAC) of a drawn stand-in saying the text.

The voice is espeak-ng's; the drawn figure's mouth opens with the loudness of each frame's audio and its eyes
blink, so timing problems (audio and picture drifting apart, clips cut short) show when you watch the result.
It is a test double and looks like one: a flat cartoon under a burned-in PLACEHOLDER banner, never mistaken
for a real presenter's work, whoever watches the clip.

PresenterEmulator is the emulator base the HeyGen and D-ID emulators share: it renders such clips for its
tasks, and hands its routes the query string (HeyGen's status is read by `?video_id=`).
"""

from __future__ import annotations

import functools
import io
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import cv2
import numpy as np

from devkit.emulators.base import EmulatedTask, EmulatorServer, Exchange
from videokit.training.narration import EspeakSpeech, Speech

FPS = 25
AUDIO_RATE = 22050
PLACEHOLDER_LABEL = "PLACEHOLDER - emulated presenter"
BANNER_RGB = (20, 20, 20)


def banner_height(height: int) -> int:
    return max(12, height // 10)


def _with_placeholder_banner(frame: np.ndarray) -> np.ndarray:
    """A dark strip across the top with the label in white, scaled to fit the frame's width."""
    height, width = frame.shape[:2]
    strip = banner_height(height)
    frame[:strip] = BANNER_RGB
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_w, text_h), _ = cv2.getTextSize(PLACEHOLDER_LABEL, font, 1.0, 2)
    scale = min(0.9 * width / text_w, 0.6 * strip / text_h)
    (text_w, text_h), _ = cv2.getTextSize(PLACEHOLDER_LABEL, font, scale, 1)
    origin = ((width - text_w) // 2, (strip + text_h) // 2)
    cv2.putText(frame, PLACEHOLDER_LABEL, origin, font, scale, (255, 255, 255), max(1, round(scale * 2)), cv2.LINE_AA)
    return frame


def _figure(size: tuple[int, int], background: tuple[int, int, int], mouth: float, blink: bool) -> np.ndarray:
    width, height = size
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = background
    unit = min(width, height)
    cx, cy = width // 2, int(height * 0.42)
    shirt, skin, hair, dark = (52, 82, 120), (226, 188, 160), (70, 48, 36), (40, 30, 30)
    cv2.ellipse(frame, (cx, height + unit // 8), (int(unit * 0.42), int(unit * 0.42)), 0, 180, 360, shirt, -1)
    cv2.rectangle(frame, (cx - unit // 14, cy + unit // 6), (cx + unit // 14, cy + unit // 3), skin, -1)
    cv2.ellipse(frame, (cx, cy - unit // 40), (int(unit * 0.2), int(unit * 0.25)), 0, 0, 360, hair, -1)
    cv2.ellipse(frame, (cx, cy + unit // 40), (int(unit * 0.17), int(unit * 0.22)), 0, 0, 360, skin, -1)
    eye_y, eye_dx = cy - unit // 25, unit // 14
    for side in (-1, 1):
        if blink:
            cv2.line(
                frame,
                (cx + side * eye_dx - unit // 60, eye_y),
                (cx + side * eye_dx + unit // 60, eye_y),
                dark,
                max(1, unit // 160),
            )
        else:
            cv2.circle(frame, (cx + side * eye_dx, eye_y), max(1, unit // 70), dark, -1)
    mouth_y = cy + unit // 10
    opening = max(1, int(mouth * unit * 0.05))
    cv2.ellipse(frame, (cx, mouth_y), (unit // 22, opening), 0, 0, 360, (150, 60, 60), -1)
    return _with_placeholder_banner(frame)


def mouth_openings(speech: Speech, n_frames: int, fps: int) -> np.ndarray:
    """How far the mouth is open in each frame (0..1), from the loudness of that frame's audio."""
    per_frame = speech.sample_rate / fps
    levels = np.zeros(n_frames, np.float32)
    samples = np.abs(speech.samples.astype(np.float32)) / 32768.0
    for index in range(n_frames):
        chunk = samples[int(index * per_frame) : int((index + 1) * per_frame)]
        levels[index] = float(np.sqrt(np.mean(chunk**2))) if chunk.size else 0.0
    peak = float(levels.max()) or 1.0
    return np.clip(levels / peak, 0.0, 1.0)


@functools.lru_cache(maxsize=32)
def talking_head_clip(
    text: str, size: tuple[int, int], background: tuple[int, int, int] = (120, 130, 140), voice: str = "en-us"
) -> bytes:
    """An MP4 of the stand-in saying `text` at `size`: as long as the speech, H.264 and mono AAC."""
    speech = EspeakSpeech().synthesize(text, voice, 160)
    width, height = size
    n_frames = max(1, int(np.ceil(speech.duration_s * FPS)))
    openings = mouth_openings(speech, n_frames, FPS)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "28"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for index in range(n_frames):
            picture = _figure(size, background, float(openings[index]), blink=index % 75 in (0, 1, 2))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = speech.samples.astype(np.int16)
        chunk = 4096
        for offset in range(0, len(samples), chunk):
            piece = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[None, offset : offset + chunk]), format="s16", layout="mono"
            )
            piece.sample_rate, piece.pts = AUDIO_RATE, offset
            container.mux(audio.encode(piece))
        container.mux(audio.encode(None))
    return buffer.getvalue()


def hex_color(value: Any) -> tuple[int, int, int] | None:
    if isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))
    return None


class PresenterEmulator(EmulatorServer):
    """What the presenter emulators add to the clip emulators: query strings and talking-head tasks."""

    def serve(self, handler, exchange: Exchange) -> None:
        # The shared handler passes the path without its query; the status routes here need it.
        exchange.query = {k: v[-1] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        super().serve(handler, exchange)

    def new_talk(
        self,
        text: str,
        size: tuple[int, int],
        background: tuple[int, int, int] | None,
        params: dict[str, Any],
        external_id: str | None = None,
    ) -> EmulatedTask:
        task = EmulatedTask(
            task_id=secrets.token_hex(12),
            seconds=len(text.split()) / 2.5,  # about 150 words a minute
            params=params,
            script=self.script,
            external_id=external_id,
        )
        task.video = self._renderer.submit(talking_head_clip, text, size, background or (120, 130, 140))
        with self._lock:
            self.tasks[task.task_id] = task
        return task
