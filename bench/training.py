"""Training module benchmark: the ~10-minute sample module as narrated slides on 2 cores, then one scene edited.

Run from the repository root:  python bench/training.py [--out bench/results/training.json]

It builds `samples/training/product-care.md` through the real path (`assets.training.training_module.build_module`: parsing,
checks, espeak-ng narration, stills, scene encodes in worker processes, stream-copy join, captions, chapters,
poster, storage writes) into a scratch folder, then edits one scene's narration and builds again, then builds
once more unchanged. The SKU scene plays the published clip when `--published` (default `.data`) has it,
otherwise it shows its stand-in slide. As the baseline, in the same run, one still scene is also encoded the
plain way, every frame through x264, and compared with its one-GOP-repeated encode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info

# Project modules are imported inside the functions that use them: scene workers are spawned and re-import
# this script first, so what is imported here would sit in every worker's memory.

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "samples" / "training" / "product-care.md"
MODULE = "product-care"
TARGET_FULL_S = 120.0
TARGET_REALTIME = 5.0
TARGET_EDIT_S = 15.0
EDIT = ("Let's sum up.", "Let's sum up what we have learned today.")
SKU = "NW-BPK-001"


def pin_cores(cores: int) -> int:
    chosen = sorted(os.sched_getaffinity(0))[:cores]
    os.sched_setaffinity(0, chosen)  # inherited by the scene workers and by espeak-ng
    return len(chosen)


def versions() -> dict:
    found = {}
    for name in ("av", "numpy", "pillow", "dagster"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def prepare(folder: Path, published: Path) -> tuple[Path, bool]:
    """The sample script and its pictures in a scratch folder, and the SKU's published clip if there is one."""
    from samples.training.make_training_samples import write_images

    script = folder / "script" / SCRIPT.name
    script.parent.mkdir(parents=True)
    shutil.copy(SCRIPT, script)
    write_images(script.parent / "images")
    manifest = published / "published" / "manifest" / f"{SKU}.parquet"
    if not manifest.exists():
        return script, False
    (folder / "data" / "published" / "manifest").mkdir(parents=True)
    shutil.copy(manifest, folder / "data" / "published" / "manifest" / manifest.name)
    shutil.copytree(published / "published" / SKU, folder / "data" / "published" / SKU)
    return script, True


def still_encode_baseline(seconds: float) -> dict:
    """One slide held for `seconds`: every frame through x264, against one GOP encoded and repeated."""
    from fractions import Fraction

    from videokit.campaigns.smart_render import encode_span
    from videokit.training.module_assembly import AssemblySettings, rgb_to_i420, still_parts
    from videokit.training.slides import Look, render_slide

    settings = AssemblySettings()
    n_frames = settings.scene_frames(seconds)
    rgb = render_slide(
        "Everyday cleaning for packs", ("Empty every pocket", "Brush off dry mud"), settings.size, Look()
    )
    frame = rgb_to_i420(rgb)
    started, cpu0 = time.perf_counter(), time.process_time()
    plain = encode_span(
        (frame for _ in range(n_frames)), settings.size, Fraction(settings.fps), settings.encoder()
    )
    plain_s, plain_cpu = time.perf_counter() - started, time.process_time() - cpu0
    started, cpu0 = time.perf_counter(), time.process_time()
    parts = still_parts(rgb, n_frames, settings)
    repeated_s, repeated_cpu = time.perf_counter() - started, time.process_time() - cpu0
    return {
        "scene_s": n_frames / settings.fps,
        "every_frame_wall_s": plain_s,
        "every_frame_cpu_s": plain_cpu,
        "every_frame_bytes": len(plain),
        "gop_repeat_wall_s": repeated_s,
        "gop_repeat_cpu_s": repeated_cpu,
        "gop_repeat_bytes": sum(len(p.mp4) * p.repeat for p in parts),
        "speedup": plain_cpu / repeated_cpu if repeated_cpu else float("inf"),
    }


def run(report) -> dict:
    return {
        "duration_s": report.duration_s,
        "wall_s": report.wall_s,
        "cpu_s": report.cpu_s,
        "realtime_factor": report.realtime_factor,
        "scenes": report.scenes,
        "scenes_rendered": report.scenes_rendered,
        "scenes_reused": report.scenes_reused,
        "reused": report.reused,
        "words": report.words,
        "tts_chars": report.tts_chars,
        "narration_s": report.speech_s,
        "cost_usd": report.cost_usd,
        "chapters": report.chapters,
        "streams": f"{report.video_codec}+{report.audio_codec}",
        "faststart": report.faststart,
        "sku_fallbacks": report.sku_fallbacks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2, help="CPUs the benchmark may use")
    parser.add_argument(
        "--published",
        type=Path,
        default=ROOT / ".data",
        help="storage root holding the published SKU clip the module shows",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/training.json"))
    args = parser.parse_args()
    from assets.training.training_module import build_module
    from resources.pricing import PricesResource
    from resources.storage import StorageResource

    console = Console()
    cores = pin_cores(args.cores)
    host = {**machine_info(), "cores_used": cores, "load_average_start": list(os.getloadavg())}
    console.print(
        f"[bold]skuvid training module[/]: {SCRIPT.name} as narrated slides on {cores} cores "
        f"(load average {host['load_average_start'][0]:.2f} at start)"
    )

    with tempfile.TemporaryDirectory(prefix="skuvid-bench-training-") as scratch:
        folder = Path(scratch)
        script, has_clip = prepare(folder, args.published)
        storage, prices = StorageResource(root=str(folder / "data")), PricesResource()

        def build(label: str):
            console.print(f"  {label} ...")
            return build_module(
                MODULE,
                str(script),
                storage,
                prices,
                {},
                workers=cores,
                log=lambda line: console.print(f"    {line}"),
            )

        full = build("full module")
        script.write_text(script.read_text().replace(*EDIT))
        edit = build("one scene edited")
        again = build("unchanged")
        console.print("  baseline: one still scene, every frame encoded ...")
        baseline = still_encode_baseline(full.duration_s / full.scenes)
    host["load_average_end"] = list(os.getloadavg())

    def verdict(ok: bool) -> str:
        return "[green]meets[/]" if ok else "[red]misses[/]"

    table = Table(
        title=f"{full.scenes} scenes, {full.words} words, {full.duration_s / 60:.1f} min, 1280x720 25 fps, "
        f"{cores} cores"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target / note")
    table.add_row(
        "full module",
        f"{full.wall_s:.1f} s",
        f"{verdict(full.wall_s <= TARGET_FULL_S)} <= {TARGET_FULL_S:g} s; {full.cpu_s:.1f} CPU s",
    )
    table.add_row(
        "real-time factor",
        f"{full.realtime_factor:.1f}x",
        f"{verdict(full.realtime_factor >= TARGET_REALTIME)} >= {TARGET_REALTIME:g}x",
    )
    table.add_row(
        "one scene edited",
        f"{edit.wall_s:.1f} s",
        f"{verdict(edit.wall_s <= TARGET_EDIT_S)} <= "
        f"{TARGET_EDIT_S:g} s; {edit.scenes_rendered} rendered, {edit.scenes_reused} joined by stream copy",
    )
    table.add_row("unchanged module", f"{again.wall_s:.2f} s", "found in storage, nothing rendered")
    table.add_row(
        "still scene, every frame",
        f"{baseline['every_frame_cpu_s']:.2f} CPU s",
        f"{baseline['scene_s']:.0f}-s scene through x264 frame by frame",
    )
    table.add_row(
        "still scene, one GOP repeated",
        f"{baseline['gop_repeat_cpu_s']:.2f} CPU s",
        f"{baseline['speedup']:.0f}x less CPU",
    )
    table.add_row(
        "narration", f"{full.speech_s / 60:.1f} min", f"{full.tts_chars} characters through espeak-ng"
    )
    table.add_row(
        "compute cost", f"${full.cost_usd:.4f}", "measured CPU seconds x the price table's vCPU rate"
    )
    for key, usd in sorted(full.estimates_usd.items()):
        table.add_row(f"  with presenter {key}", f"${usd:.2f}", "list price x narration length")
    table.add_row(
        "SKU scene",
        "published clip" if has_clip and not full.sku_fallbacks else "stand-in slide",
        f"{SKU} from {args.published}" if has_clip else f"{SKU} not published in {args.published}",
    )
    console.print(table)

    results = {
        "benchmark": "training",
        "timestamp": datetime.now(UTC).isoformat(),
        "machine": host,
        "versions": versions(),
        "script": str(SCRIPT.relative_to(ROOT)),
        "full": run(full),
        "edit": run(edit),
        "unchanged": run(again),
        "still_scene_baseline": baseline,
        "estimates_usd": full.estimates_usd,
        "targets": {"full_s": TARGET_FULL_S, "realtime_factor": TARGET_REALTIME, "edit_s": TARGET_EDIT_S},
        "meets": {
            "full_s": full.wall_s <= TARGET_FULL_S,
            "realtime_factor": full.realtime_factor >= TARGET_REALTIME,
            "edit_s": edit.wall_s <= TARGET_EDIT_S,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
