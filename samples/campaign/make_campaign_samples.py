"""Draw the sample campaign's media: a 15-s 720p30 template with music-like audio, and four small logos.

Run from the repository root:  python samples/campaign/make_campaign_samples.py

The spec (`campaign.yaml`) and the recipients (`recipients.csv`) are written by hand and kept in git; this
script makes the binary files they point at, so the repository stays small. Tests and the benchmark import
`write_template`, `draw_logo` and `recipient_rows` to build their own campaigns at other sizes.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
AUDIO_RATE = 48_000

# Background palette: a slow drift between two brand-like gradients.
WARM = ((38, 52, 92), (212, 96, 72))
COOL = ((22, 88, 110), (236, 190, 96))

LOGOS = {
    "acme": ((200, 40, 40), (255, 255, 255), "circle"),
    "globex": ((30, 110, 200), (255, 220, 60), "diamond"),
    "initech": ((40, 150, 90), (250, 250, 250), "square"),
    "umbrella": ((230, 140, 20), (40, 40, 40), "ring"),
}


def _texture(height: int, width: int, amplitude: float, seed: int = 7) -> np.ndarray:
    """Faint blurred grain, so the encoder has real detail to track as the background pans."""
    if amplitude <= 0:
        return np.zeros((height, width), np.float32)
    rng = np.random.default_rng(seed)
    grain = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 1.5)
    return grain / (grain.std() + 1e-6) * amplitude


def template_frames(size: tuple[int, int], n_frames: int, fps: int, grain: float = 3.0):
    """Yield I420 frames, (h * 3 / 2, w) uint8: a panning gradient with drifting soft discs."""
    width, height = size
    pad = max(width, height) // 4
    ys = np.linspace(0.0, 1.0, height + pad, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width + pad, dtype=np.float32)[None, :]
    diagonal = np.clip(0.65 * ys + 0.35 * xs, 0.0, 1.0)[..., None]
    texture = _texture(height + pad, width + pad, grain)[..., None]
    # Two padded backdrops (warm and cool palettes, grain included); each frame pans a window over both and
    # mixes them, in uint8 with OpenCV, so drawing a 720p frame costs a few milliseconds.
    backdrops = []
    for top, bottom in (WARM, COOL):
        top_, bottom_ = np.array(top, np.float32), np.array(bottom, np.float32)
        backdrops.append(np.clip(top_ + (bottom_ - top_) * diagonal + texture, 0, 255).astype(np.uint8))
    rng = np.random.default_rng(3)
    discs = [
        (rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.04, 0.12), rng.uniform(0.02, 0.08), rng.uniform(0, 2 * math.pi))
        for _ in range(7)
    ]
    small = (max(16, width // 4), max(16, height // 4))
    for index in range(n_frames):
        t = index / fps
        mix = 0.5 - 0.5 * math.cos(2 * math.pi * t / 12.0)
        dx = int(pad / 2 + pad / 2 * math.sin(2 * math.pi * t / 9.0))
        dy = int(pad / 2 + pad / 2 * math.cos(2 * math.pi * t / 11.0))
        window = np.s_[dy : dy + height, dx : dx + width]
        frame = cv2.addWeighted(backdrops[0][window], 1.0 - mix, backdrops[1][window], mix, 0.0)
        light = np.zeros((small[1], small[0]), np.uint8)
        for x0, y0, radius, speed, phase in discs:
            cx = ((x0 + speed * t) % 1.2 - 0.1) * small[0]
            cy = (y0 + 0.05 * math.sin(phase + t)) * small[1]
            r = radius * min(small) * 2
            cv2.circle(light, (int(cx * 16), int(cy * 16)), int(r * 16), 70, -1, cv2.LINE_AA, shift=4)
        light = cv2.GaussianBlur(light, (0, 0), max(1.0, min(small) / 90))
        light = cv2.resize(light, (width, height), interpolation=cv2.INTER_LINEAR)
        frame = cv2.add(frame, cv2.cvtColor(light, cv2.COLOR_GRAY2RGB))
        yield cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)


def tone_mix(duration_s: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """Stereo float32 (2, n): a chord progression with plucked envelopes, like a simple music bed."""
    n = round(duration_s * rate)
    t = np.arange(n, dtype=np.float64) / rate
    chords = [(220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63), (196.0, 246.94, 311.13)]
    beat = 0.5
    signal = np.zeros(n)
    for i, start in enumerate(np.arange(0.0, duration_s, beat)):
        chord = chords[int(start // 2.0) % len(chords)]
        begin = int(start * rate)
        local = t[begin:] - start
        envelope = np.exp(-local * 3.0) * (1.0 if i % 2 == 0 else 0.6)
        note = chord[i % 3] * (2 if i % 4 == 3 else 1)
        signal[begin:] += 0.18 * envelope * np.sin(2 * np.pi * note * local)
    pad = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 164.81)) * 0.05
    left = signal + pad
    right = 0.9 * signal + pad * 1.1
    fade = np.clip(np.minimum(t / 0.05, (duration_s - t) / 0.3), 0.0, 1.0)
    return (np.stack([left, right]) * fade).astype(np.float32)


def write_template(
    path: str | os.PathLike,
    size: tuple[int, int] = (1280, 720),
    duration_s: float = 15.0,
    fps: int = 30,
    *,
    audio: bool = True,
    crf: int = 18,
    preset: str = "veryfast",
    grain: float = 3.0,
) -> Path:
    """Encode the synthetic template: H.264 yuv420p (BT.601 tags) and, if asked, AAC stereo at 48 kHz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    n_frames = round(duration_s * fps)
    with tempfile.TemporaryDirectory(prefix="skuvid-template-") as folder:
        scratch = os.path.join(folder, "template.mp4")
        with av.open(scratch, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            video = container.add_stream("libx264", rate=fps, options={
                "crf": str(crf), "preset": preset,
                "x264-params": "colorprim=bt709:transfer=bt709:colormatrix=smpte170m:range=tv",
            })
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.time_base = Fraction(1, fps)
            sound = None
            if audio:
                sound = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
                sound.bit_rate = 128_000
            for index, planes in enumerate(template_frames(size, n_frames, fps, grain)):
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                frame.pts = index
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
            if sound is not None:
                samples = tone_mix(duration_s)
                for start in range(0, samples.shape[1], 1024):
                    chunk = np.ascontiguousarray(samples[:, start : start + 1024])
                    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                    frame.sample_rate = AUDIO_RATE
                    frame.pts = start
                    frame.time_base = Fraction(1, AUDIO_RATE)
                    container.mux(sound.encode(frame))
                container.mux(sound.encode(None))
        os.replace(scratch, path)
    return path


def draw_logo(name: str, size: int = 320) -> Image.Image:
    """A small square RGBA logo: a coloured mark and the name's initials, on transparency."""
    fill, ink, shape = LOGOS[name]
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    m = size // 10
    box = (m, m, size - m, size - m)
    if shape == "circle":
        draw.ellipse(box, fill=(*fill, 255))
    elif shape == "diamond":
        c = size // 2
        draw.polygon([(c, m), (size - m, c), (c, size - m), (m, c)], fill=(*fill, 255))
    elif shape == "square":
        draw.rounded_rectangle(box, radius=size // 8, fill=(*fill, 255))
    else:
        draw.ellipse(box, outline=(*fill, 255), width=size // 8)
        draw.ellipse((3 * m, 3 * m, size - 3 * m, size - 3 * m), fill=(*fill, 200))
    from videokit.media.text import load_font  # the bundled font, so logos look the same everywhere

    font = load_font(size // 3, bold=True)
    text = name[:2].upper()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((size - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top), text, font=font,
              fill=(*ink, 255))
    return image


FIRST_NAMES = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances", "Ken", "Radia",
               "Tim", "Katherine", "Edsger", "Hedy", "John", "Sophie", "Guido", "Annie", "Niklaus", "Mary"]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Co", "Hooli", "Stark Industries", "Wayne Enterprises"]


def recipient_rows(n: int, logo_uris: list[str], seed: int = 1) -> list[dict[str, str]]:
    """`n` well-formed recipients with names, companies and logos drawn from the lists above."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n):
        rows.append({
            "recipient_id": f"r{index:06d}",
            "first_name": FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))],
            "company": COMPANIES[int(rng.integers(len(COMPANIES)))],
            "logo": logo_uris[int(rng.integers(len(logo_uris)))],
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE), help="folder for template.mp4 and logos/")
    parser.add_argument("--force", action="store_true", help="redraw files that already exist")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "logos").mkdir(parents=True, exist_ok=True)
    for name in LOGOS:
        logo = out / "logos" / f"{name}.png"
        if args.force or not logo.exists():
            draw_logo(name).save(logo)
    template = out / "template.mp4"
    if args.force or not template.exists():
        write_template(template)
    print(f"campaign samples in {out}: template.mp4, logos/{{{','.join(LOGOS)}}}.png")
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE.parents[1]))
    raise SystemExit(main())
