"""Small media for the training module tests: tiny frame settings, speech-like tones, scripts on disk and a
product clip.

Test modules import what they use from here explicitly.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import cv2
import numpy as np

from samples.training.make_training_samples import draw_care_label
from videokit.media.encode import EncodeSettings, encode_mp4
from videokit.training.module_assembly import AssemblySettings
from videokit.training.narration import Speech

# 320x180 frames, one-second GOPs: every scene costs a few small encodes.
SMALL = AssemblySettings(size=(320, 180), fps=25, gop_s=1.0)

SCRIPT = """---
title: Gear care in brief
voice: en-us
defaults:
  words_per_minute: 220
  lead_in_s: 0.2
  tail_s: 0.3
---

## Welcome
slide: Gear care in brief

Welcome. This is a short module.

## Clean gently
slide: Clean gently
- Brush off dry mud
- Cool water, mild soap

Brush off dry mud first. Then use cool water.

## Read the label
image: images/label.png
title: The label

Read the label before you wash anything.
"""


def tone_speech(seconds: float, rate: int = 48000, gaps: tuple[tuple[float, float], ...] = ()) -> Speech:
    """A 220 Hz tone with silent gaps (start_s, end_s): speech-shaped audio with known pauses."""
    t = np.arange(round(seconds * rate)) / rate
    samples = 0.3 * np.sin(2 * np.pi * 220 * t)
    for start, end in gaps:
        samples[round(start * rate) : round(end * rate)] = 0.0
    return Speech((samples * 32767).astype(np.int16), rate)


def write_script(folder: Path, text: str = SCRIPT, name: str = "module.md") -> Path:
    """The script and the picture it names (images/label.png), in `folder`."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    draw_care_label(240, 140).save(folder / "images" / "label.png")
    path = folder / name
    path.write_text(text)
    return path


def product_clip(size: tuple[int, int] = (256, 144), frames: int = 48, fps: int = 24) -> bytes:
    """A 2-s seamless loop: a red square circling on grey."""
    width, height = size

    def frame(index: int) -> np.ndarray:
        image = np.full((height, width, 3), 180, np.uint8)
        angle = 2 * np.pi * index / frames
        x, y = int(width / 2 + width / 4 * np.cos(angle)), int(height / 2 + height / 4 * np.sin(angle))
        cv2.rectangle(image, (x - 12, y - 12), (x + 12, y + 12), (200, 40, 40), -1)
        return image

    return encode_mp4((frame(i) for i in range(frames)), size, fps, EncodeSettings(preset="ultrafast"))


def decoded_audio(mp4: bytes) -> np.ndarray:
    with av.open(io.BytesIO(mp4)) as container:
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])


def decoded_frame_count(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4)) as container:
        return sum(1 for _ in container.decode(video=0))
