"""CPU tier benchmark: keyframe composition, and a 1280x720 4 s loop rendered and encoded, against MoviePy.

Run from the repository root:  python bench/cpu_tier.py [--runs 5] [--out bench/results/cpu_tier.json]

Every figure is the median of --runs timed runs after one warm-up, and the MoviePy baseline is measured
in the same process on the same layers, so the ratio holds on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from bench.machine import machine_info
from videokit.media.brand import BrandKit
from videokit.media.encode import EncodeSettings
from videokit.sku_video.compose import KeyframeLayers, compose_keyframe, over, shadow_premultiplied
from videokit.sku_video.motion import LOOP_ENCODE, MotionSpec, render_motion_clip

CLIP_SIZE = (1280, 720)
TARGET_CLIP_S = 1.0
TARGET_SPEEDUP = 5.0
KIT = BrandKit(
    name="bench",
    display_name="Bench",
    background_style="studio",
    background_colors=((244, 238, 228), (196, 180, 160)),
    accent=(200, 40, 40),
    text=(30, 30, 30),
    logo_position="top-right",
)


def product_packshot() -> Image.Image:
    """The shared synthetic packshot when devkit.sample_art exists, else a flat bottle on white."""
    try:
        from devkit.sample_art import draw_packshot
    except ImportError:
        return _flat_bottle()
    return draw_packshot("bottle", color=(32, 92, 160), accent=(200, 40, 40), label="AQUA", size=1200)


def _flat_bottle() -> Image.Image:
    image = Image.new("RGB", (800, 1200), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((230, 350, 570, 1120), radius=80, fill=(32, 92, 160))
    draw.rectangle((335, 180, 465, 360), fill=(32, 92, 160))
    draw.rectangle((320, 110, 480, 190), fill=(200, 40, 40))
    draw.rectangle((250, 600, 550, 850), fill=(246, 244, 238))
    draw.text((340, 700), "AQUA", fill=(30, 30, 30))
    return image


def brand_logo() -> Image.Image:
    logo = Image.new("RGBA", (360, 120), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle((0, 0, 359, 119), radius=24, fill=(*KIT.accent, 255))
    draw.text((130, 50), "BENCH", fill=(255, 255, 255, 255))
    return logo


def moviepy_clip(layers: KeyframeLayers, spec: MotionSpec, settings: EncodeSettings) -> bytes:
    """The same loop as a Python user would write it with MoviePy: push on the background, float on the product.

    Same encoder settings as ours. It does less (no pan, parallax, sweep, reacting shadow or logo), so
    the ratio flatters MoviePy.
    """
    from moviepy import CompositeVideoClip, ImageClip

    width, height = CLIP_SIZE
    duration = spec.duration_s
    backdrop = layers.background.copy()
    backdrop[:] = over(
        backdrop, shadow_premultiplied(layers.shadow_alpha, layers.shadow_color), layers.shadow_alpha
    )

    def swing(t: float) -> float:
        return (1 - math.cos(2 * math.pi * t / duration)) / 2

    background = (
        ImageClip(backdrop, duration=duration)
        .resized(lambda t: 1 + spec.push * swing(t))
        .with_position("center")
    )
    product_x, product_y = layers.product_xy
    product = ImageClip(layers.product, transparent=True, duration=duration).with_position(
        lambda t: (product_x, product_y - spec.float_px * swing(t))
    )
    encoder_options = ["-crf", str(settings.crf)]
    if settings.x264_params:
        encoder_options += ["-x264-params", settings.x264_params]
    with tempfile.TemporaryDirectory(prefix="skuvid-bench-") as folder:
        path = os.path.join(folder, "moviepy.mp4")
        CompositeVideoClip([background, product], size=(width, height)).write_videofile(
            path,
            fps=spec.fps,
            codec="libx264",
            preset=settings.preset,
            ffmpeg_params=encoder_options,
            audio=False,
            logger=None,
        )
        return Path(path).read_bytes()


def qa_seconds(clip_bytes: bytes, layers: KeyframeLayers | None = None) -> float | None:
    """QA timing slot: seconds for videokit.sku_video.qa.measure_clip on the clip, None until that function exists."""
    try:
        from videokit.sku_video import qa
    except ImportError:
        return None
    measure_clip = getattr(qa, "measure_clip", None)
    if measure_clip is None:
        return None
    references = {}
    if layers is not None:
        references = {
            "keyframe": layers.flatten(),
            "product_mask": layers.product_mask(),
            "brand_background": layers.background,
        }
    start = time.perf_counter()
    measure_clip(clip_bytes, **references)
    return time.perf_counter() - start


def timed_runs(work: Callable[[], object], runs: int) -> tuple[list[float], object]:
    """Wall seconds of `runs` calls after one untimed warm-up, and the last call's result."""
    return cpu_and_wall_runs(work, runs)[1:]


def cpu_and_wall_runs(work: Callable[[], object], runs: int) -> tuple[list[float], list[float], object]:
    """Process CPU seconds (all threads) and wall seconds of `runs` calls after a warm-up; the price table
    charges CPU seconds, so the cost model needs both."""
    result = work()
    cpu, wall = [], []
    for _ in range(runs):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        result = work()
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return cpu, wall, result


def library_versions() -> dict:
    # moviepy 2.2.1's own __version__ still says 2.1.2, so ask the installed distribution.
    return {name: metadata.version(name) for name in ("av", "opencv-python-headless", "numpy", "moviepy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cpu_tier.json"))
    args = parser.parse_args()

    console = Console()
    packshot, logo = product_packshot(), brand_logo()
    spec, settings = MotionSpec(), LOOP_ENCODE
    console.print(f"[bold]skuvid CPU tier[/] — {args.runs} runs after a warm-up; median seconds")

    compose_cpu_s, compose_s, layers = cpu_and_wall_runs(
        lambda: compose_keyframe(packshot, KIT, CLIP_SIZE, logo=logo), args.runs
    )
    clip_cpu_s, clip_s, clip = cpu_and_wall_runs(lambda: render_motion_clip(layers, CLIP_SIZE, spec, settings), args.runs)
    moviepy_s, moviepy_mp4 = timed_runs(lambda: moviepy_clip(layers, spec, settings), args.runs)
    qa_runs = [qa_seconds(clip.mp4, layers) for _ in range(args.runs)]
    qa_s = None if None in qa_runs else qa_runs

    median = statistics.median
    speedup = median(moviepy_s) / median(clip_s)
    figures = {
        "compose_keyframe_s": {"median": median(compose_s), "runs": compose_s},
        "compose_keyframe_cpu_s": {"median": median(compose_cpu_s), "runs": compose_cpu_s},
        "motion_clip_s": {"median": median(clip_s), "runs": clip_s, "target": TARGET_CLIP_S},
        "motion_clip_cpu_s": {"median": median(clip_cpu_s), "runs": clip_cpu_s},
        "moviepy_clip_s": {"median": median(moviepy_s), "runs": moviepy_s},
        "speedup_vs_moviepy": speedup,
        "qa_measure_clip_s": None if qa_s is None else {"median": median(qa_s), "runs": qa_s},
        "motion_clip_kib": len(clip.mp4) / 1024,
        "moviepy_clip_kib": len(moviepy_mp4) / 1024,
    }

    table = Table(
        title=f"1280x720, {spec.duration_s:g} s @ {spec.fps} fps, x264 {settings.preset} crf {settings.crf} "
        f"{settings.x264_params}"
    )
    table.add_column("step")
    table.add_column("median s", justify="right")
    table.add_column("min s", justify="right")
    table.add_column("note")
    table.add_row(
        "compose keyframe",
        f"{median(compose_s):.3f}",
        f"{min(compose_s):.3f}",
        "cut-out, background, shadow, logo",
    )
    verdict = "[green]meets[/]" if median(clip_s) <= TARGET_CLIP_S else "[red]misses[/]"
    table.add_row(
        "motion clip (ours)",
        f"{median(clip_s):.3f}",
        f"{min(clip_s):.3f}",
        f"render + encode, {verdict} the {TARGET_CLIP_S:g} s target, {figures['motion_clip_kib']:.0f} KiB",
    )
    table.add_row(
        "motion clip (MoviePy)",
        f"{median(moviepy_s):.3f}",
        f"{min(moviepy_s):.3f}",
        f"ImageClip + CompositeVideoClip, {figures['moviepy_clip_kib']:.0f} KiB",
    )
    if qa_s is None:
        table.add_row("QA measure_clip", "—", "—", "videokit.sku_video.qa.measure_clip not available yet")
    else:
        table.add_row("QA measure_clip", f"{median(qa_s):.3f}", f"{min(qa_s):.3f}", "decode + metrics")
    console.print(table)
    speed_verdict = "[green]ok[/]" if speedup >= TARGET_SPEEDUP else f"[red]below {TARGET_SPEEDUP:g}x[/]"
    console.print(f"ours vs MoviePy: [bold]{speedup:.1f}x[/] faster ({speed_verdict})")
    host = machine_info()
    console.print(f"machine: {host['cores']} cores, {host['cpu_model']}, Python {host['python']}")

    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "versions": library_versions(),
        "clip": {
            "size": list(CLIP_SIZE),
            "duration_s": spec.duration_s,
            "fps": spec.fps,
            "n_frames": spec.n_frames,
        },
        "encode": {"preset": settings.preset, "crf": settings.crf, "x264_params": settings.x264_params},
        "runs": args.runs,
        "figures": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
