"""Personalized campaign benchmark: 15-s 720p30 clips on 2 cores, projected to 1,000 recipients, against ffmpeg.

Run from the repository root:  python bench/campaign.py [--sample 100] [--out bench/results/campaign.json]

It materializes `campaign_clips` for a sample of recipients through Dagster, as production runs it: the plan
step (validation, template preparation, staging), the chunks as steps in separate processes (the multiprocess
executor with one process per core; Celery workers run the same steps on other machines), per-clip QA, storage
writes, and the merge into one manifest. The time for 1,000 is projected from the run's wall clock, Dagster's
per-step overhead included. In the same run, the same clips are made by the ffmpeg command line for a few
recipients (overlay of rendered PNGs with the same fades, then an encode of the whole clip) as the baseline. The
process is pinned to --cores CPUs (inherited by every step process and by ffmpeg). Peak memory is the sum of the
resident memory of this process and all its step processes, sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from typing import Self

import dagster as dg

from assets.campaigns.campaign_clips import campaign_clips
from bench.machine import machine_info

# Other project modules are imported inside the functions that use them: every step process imports this
# module to rebuild the job, so what is imported here sits in every step process's memory.

TARGET_MINUTES_FOR_1000 = 20.0
TARGET_RATIO_VS_FFMPEG = 2.0
TARGET_PEAK_MB = 2048.0
CAMPAIGN = "bench"

SPEC = """
name: bench
template: {video: template.mp4}
recipients: recipients.csv
output: {aspects: ["16:9"], short_side: 720}
encode: {crf: 21, preset: veryfast, gop_s: 0.5}
slots:
  - name: greeting
    kind: text
    text: "Hi {first_name}!"
    start_s: 0.5
    end_s: 3.5
    box: {x: 0.1, y: 0.28, w: 0.8, h: 0.26}
    font: {bold: true, min_size: 32, max_size: 110, max_lines: 2}
    entrance: {kind: fade, duration_s: 0.4}
  - name: company
    kind: text
    text: "Made for {company}"
    start_s: 1.0
    end_s: 3.5
    box: {x: 0.15, y: 0.58, w: 0.7, h: 0.12}
    font: {bold: false, min_size: 20, max_size: 48, max_lines: 1, color: "#FFF4D6"}
    plate: "#00000066"
    entrance: {kind: fade, duration_s: 0.5}
  - name: logo
    kind: image
    column: logo
    start_s: 11.5
    end_s: 14.5
    box: {x: 0.4, y: 0.3, w: 0.2, h: 0.4}
    entrance: {kind: fade, duration_s: 0.5}
"""


def build_campaign(folder: Path, sample: int) -> Path:
    from samples.campaign.make_campaign_samples import LOGOS, draw_logo, recipient_rows, write_template

    (folder / "logos").mkdir(parents=True, exist_ok=True)
    for name in LOGOS:
        draw_logo(name).save(folder / "logos" / f"{name}.png")
    write_template(folder / "template.mp4", (1280, 720), 15.0, 30)
    rows = recipient_rows(sample, [f"logos/{name}.png" for name in LOGOS])
    lines = ["recipient_id,first_name,company,logo"] + [
        f"{r['recipient_id']},{r['first_name']},{r['company']},{r['logo']}" for r in rows]
    (folder / "recipients.csv").write_text("\n".join(lines) + "\n")
    (folder / "campaign.yaml").write_text(SPEC)
    return folder / "campaign.yaml"


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise SystemExit("the ffmpeg baseline needs imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def overlay_pngs(folder: Path, spec, recipient, size: tuple[int, int]) -> dict[str, Path]:
    """Full-frame RGBA PNGs the ffmpeg command overlays: the two text slots share one, the logo has its own."""
    from PIL import Image

    from videokit.campaigns.personalize import fit_text, open_image, render_image, render_text
    from videokit.campaigns.spec import TextSlot

    canvases = {"text": Image.new("RGBA", size, (0, 0, 0, 0)), "logo": Image.new("RGBA", size, (0, 0, 0, 0))}
    for content in recipient.contents:
        slot = content.slot
        x, y, w, h = slot.box.pixels(size)
        if isinstance(slot, TextSlot):
            rgba = render_text(slot, fit_text(content.text, slot.font, (w, h)), (w, h))
            canvas = canvases["text"]
        else:
            rgba = render_image(slot, open_image(content.image), (w, h))
            canvas = canvases["logo"]
        canvas.alpha_composite(Image.fromarray(rgba), (x, y))
    paths = {}
    for name, canvas in canvases.items():
        paths[name] = folder / f"{recipient.recipient_id}-{name}.png"
        canvas.save(paths[name])
    return paths


def ffmpeg_clip(exe: str, template: Path, pngs: dict[str, Path], settings, out: Path) -> list[str]:
    """The same clip as a shell user would make it: loop each PNG, fade it in, overlay in its window, encode all."""
    options = settings.options()
    graph = (
        "[1:v]format=rgba,fade=in:st=0.5:d=0.4:alpha=1[text];"
        "[0:v][text]overlay=enable='between(t,0.5,3.5)':format=auto[v1];"
        "[2:v]format=rgba,fade=in:st=11.5:d=0.5:alpha=1[logo];"
        "[v1][logo]overlay=enable='between(t,11.5,14.5)':format=auto,format=yuv420p[v]"
    )
    return [
        exe, "-hide_banner", "-loglevel", "error", "-y", "-i", str(template),
        "-loop", "1", "-framerate", "30", "-t", "15", "-i", str(pngs["text"]),
        "-loop", "1", "-framerate", "30", "-t", "15", "-i", str(pngs["logo"]),
        "-filter_complex", graph, "-map", "[v]", "-map", "0:a", "-t", "15",
        "-c:v", "libx264", "-preset", options["preset"], "-crf", options["crf"], "-x264-params", options["x264-params"],
        "-c:a", "copy", "-movflags", "+faststart", str(out),
    ]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def frames_at(mp4: bytes, indices: list[int]) -> dict:
    import av

    found = {}
    with av.open(io.BytesIO(mp4)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in indices:
                found[index] = frame.to_ndarray(format="yuv420p")[: frame.height]
            if index >= max(indices):
                break
    return found


def run_ffmpeg_baseline(folder: Path, spec_path: Path, storage, spec_hash: str, count: int, console: Console) -> dict:
    import av
    import numpy as np
    import pandas as pd

    from assets.campaigns.inputs import validate_recipients
    from videokit.campaigns.recipient_clip import psnr
    from videokit.campaigns.smart_render import EncoderSettings
    from videokit.campaigns.spec import load_spec

    spec = load_spec(spec_path.read_text(), source=str(spec_path))
    frame = pd.read_csv(folder / "recipients.csv", dtype=str, keep_default_na=False).head(count)
    recipients, _ = validate_recipients(spec, frame, str(folder / "recipients.csv"), {"16:9": (1280, 720)})
    exe = ffmpeg_exe()
    settings = EncoderSettings(crf=spec.encode.crf, preset=spec.encode.preset, gop=15)
    walls, cpus, agreement = [], [], []
    for recipient in recipients:
        pngs = overlay_pngs(folder, spec, recipient, (1280, 720))
        out = folder / f"ffmpeg-{recipient.recipient_id}.mp4"
        command = ffmpeg_clip(exe, folder / "template.mp4", pngs, settings, out)
        cpu0, wall0 = children_cpu_s(), time.perf_counter()
        subprocess.run(command, check=True)
        walls.append(time.perf_counter() - wall0)
        cpus.append(children_cpu_s() - cpu0)
        ours = storage.read_bytes(f"campaigns/{CAMPAIGN}/{spec_hash}/16x9/{recipient.recipient_id}.mp4")
        theirs = out.read_bytes()
        with av.open(io.BytesIO(theirs)) as container:
            frames = container.streams.video[0].frames
        if frames != 450:
            console.print(f"[yellow]ffmpeg clip has {frames} frames, not 450[/]")
        # Same picture either way: luma PSNR of ours against ffmpeg's, inside both slot windows.
        checks = [60, 420]
        a, b = frames_at(ours, checks), frames_at(theirs, checks)
        agreement.append(min(psnr(a[i], b[i]) for i in checks))
    return {
        "clips": len(walls),
        "wall_s_per_clip": float(np.mean(walls)),
        "cpu_s_per_clip": float(np.mean(cpus)),
        "runs_wall_s": walls,
        "ours_vs_ffmpeg_psnr_db_min": float(min(agreement)),
        "ffmpeg": subprocess.run([exe, "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0],
    }


def machine(cores: int) -> dict:
    return {**machine_info(), "cores_used": cores, "load_average_start": list(os.getloadavg())}


def versions() -> dict:
    names = ("av", "numpy", "pillow", "dagster", "imageio-ffmpeg")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def pin_cores(cores: int) -> int:
    available = sorted(os.sched_getaffinity(0))
    chosen = available[:cores]
    os.sched_setaffinity(0, chosen)  # inherited by the worker processes and by ffmpeg
    return len(chosen)


def campaign_job_on_processes() -> dg.JobDefinition:
    """`campaign_clips` with each step in its own process; step processes rebuild it from this module."""
    from resources.pricing import PricesResource
    from resources.step_outputs import step_outputs_io_manager
    from resources.storage import StorageResource

    job = dg.define_asset_job("bench_campaign", selection=[campaign_clips], executor_def=dg.multiprocess_executor)
    return dg.Definitions(assets=[campaign_clips], jobs=[job], resources={
        "storage": StorageResource.configure_at_launch(), "prices": PricesResource(),
        "step_outputs": step_outputs_io_manager}).resolve_job_def("bench_campaign")


class TreeMemory:
    """Peak of the summed resident memory of this process and all its descendants, sampled in a thread."""

    def __init__(self, every_s: float = 0.2):
        import psutil

        self.root, self.every_s, self.peak_mb = psutil.Process(), every_s, 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self.done.wait(self.every_s):
            total = 0
            for process in [self.root, *self.root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:  # a step process that just ended
                    pass
            self.peak_mb = max(self.peak_mb, total / 1e6)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def materialize_campaign(folder: Path, spec_path: Path, cores: int, chunk_size: int) -> tuple[dict, float, float]:
    """The run's materialization metadata, its wall clock from launch to end, and the peak memory of all its
    processes."""
    (folder / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(folder / "dagster")) as instance:
        instance.add_dynamic_partitions("campaign", [CAMPAIGN])
        config = {"spec": str(spec_path), "chunk_size": chunk_size, "cache_dir": str(folder / "cache")}
        started = time.perf_counter()
        with TreeMemory() as memory:
            result = dg.execute_job(
                dg.reconstructable(campaign_job_on_processes), instance=instance,
                tags={"dagster/partition": CAMPAIGN},
                run_config={"ops": {"campaign_clips": {"config": config}},
                            "resources": {"storage": {"config": {"root": str(folder / "data")}}},
                            "execution": {"config": {"max_concurrent": cores}}},
            )
        wall = time.perf_counter() - started
        if not result.success:
            raise SystemExit("the campaign run failed; see the log above")
        meta = {k: v.value for k, v in result.asset_materializations_for_node("campaign_clips")[-1].metadata.items()}
    return meta, wall, memory.peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=100, help="recipients rendered (at least 100 for the figure)")
    parser.add_argument("--cores", type=int, default=2, help="CPUs the benchmark may use (and steps run at once)")
    parser.add_argument("--chunk-size", type=int, default=50, help="recipients per render step")
    parser.add_argument("--ffmpeg-clips", type=int, default=3, help="recipients also made with the ffmpeg CLI")
    parser.add_argument("--out", type=Path, default=Path("bench/results/campaign.json"))
    args = parser.parse_args()
    from resources.storage import StorageResource

    console = Console()
    cores = pin_cores(args.cores)
    host = machine(cores)
    console.print(f"[bold]skuvid personalized campaign[/]: {args.sample} recipients x 15 s 720p30 on {cores} cores, "
                  f"chunks of {args.chunk_size} as Dagster steps in {cores} processes "
                  f"(load average {host['load_average_start'][0]:.2f} at start)")

    with tempfile.TemporaryDirectory(prefix="skuvid-bench-campaign-") as scratch:
        folder = Path(scratch)
        spec_path = build_campaign(folder, args.sample)
        meta, run_wall, peak_mb = materialize_campaign(folder, spec_path, cores, args.chunk_size)
        rendered = int(meta["clips"])
        if rendered == 0:
            raise SystemExit("no clip rendered; see the log above")
        storage = StorageResource(root=str(folder / "data"))
        import pandas as pd

        manifest = pd.read_parquet(io.BytesIO(storage.read_bytes(f"campaigns/{CAMPAIGN}/{meta['spec_hash']}/"
                                                                 "manifest.parquet")))
        clip_bytes = float(manifest["bytes"].mean())
        console.print("  ffmpeg baseline ...")
        baseline = run_ffmpeg_baseline(folder, spec_path, storage, meta["spec_hash"], args.ffmpeg_clips, console)

    prepare_s, render_wall, asset_wall = meta["template_prepare_s"], meta["render_wall_s"], meta["wall_s"]
    per_clip_wall = (asset_wall - prepare_s) / rendered  # steps, processes and merge included
    per_clip_render = render_wall / rendered
    per_clip_cpu = meta["workers_cpu_s"] / rendered
    clips_per_min = 60.0 / per_clip_wall
    projected_min = (prepare_s + 1000 * per_clip_wall) / 60
    all_cpu_per_clip = (meta["cpu_s"] - meta["template_prepare_cpu_s"]) / rendered
    projected_cpu_min = (prepare_s + 1000 * all_cpu_per_clip / cores) / 60
    effective_cores = meta["workers_cpu_s"] / render_wall
    ratio = baseline["wall_s_per_clip"] / per_clip_wall
    cpu_ratio = baseline["cpu_s_per_clip"] / per_clip_cpu
    host["load_average_end"] = list(os.getloadavg())

    table = Table(title=f"{rendered} clips, 1280x720, 15 s @ 30 fps, x264 veryfast crf 21, {cores} cores, "
                        f"{meta['chunks']} chunk steps")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target / note")

    def verdict(ok: bool) -> str:
        return "[green]meets[/]" if ok else "[red]misses[/]"

    table.add_row("template prepared once", f"{prepare_s:.1f} s", "decode, scale, encode unchanged spans")
    table.add_row("clips per minute", f"{clips_per_min:.1f}",
                  f"{per_clip_wall:.2f} s wall per clip, plan to merge ({per_clip_render:.2f} s inside the chunks)")
    table.add_row("Dagster run, launch to end", f"{run_wall:.1f} s",
                  f"asset steps {asset_wall:.1f} s; chunks {render_wall:.1f} s")
    table.add_row("CPU per clip (chunk steps)", f"{per_clip_cpu:.2f} s", "process CPU the chunk steps report")
    table.add_row("projected 1,000 clips", f"{projected_min:.1f} min",
                  f"{verdict(projected_min <= TARGET_MINUTES_FOR_1000)} <= {TARGET_MINUTES_FOR_1000:g} min")
    table.add_row("  on dedicated cores", f"{projected_cpu_min:.1f} min",
                  f"{verdict(projected_cpu_min <= TARGET_MINUTES_FOR_1000)}: {all_cpu_per_clip:.2f} CPU s per clip "
                  f"(all steps) / {cores} cores; the chunks got {effective_cores:.2f} cores")
    table.add_row("ffmpeg CLI per clip", f"{baseline['wall_s_per_clip']:.2f} s",
                  f"{baseline['cpu_s_per_clip']:.2f} s CPU, overlay + full encode")
    table.add_row("ours vs ffmpeg", f"{ratio:.1f}x", f"{verdict(ratio >= TARGET_RATIO_VS_FFMPEG)} >= "
                  f"{TARGET_RATIO_VS_FFMPEG:g}x faster per clip ({cpu_ratio:.1f}x in CPU seconds)")
    table.add_row("peak memory (all processes)", f"{peak_mb:.0f} MB",
                  f"{verdict(peak_mb < TARGET_PEAK_MB)} < {TARGET_PEAK_MB:.0f} MB; largest step process "
                  f"{meta['peak_rss_mb']:.0f} MB")
    table.add_row("worst join PSNR", f"{meta['min_join_psnr_db']:.1f} dB", "frames at cuts vs their source")
    table.add_row("ours vs ffmpeg picture", f"{baseline['ours_vs_ffmpeg_psnr_db_min']:.1f} dB",
                  "luma PSNR inside both slots")
    table.add_row("mean clip size", f"{clip_bytes / 1e6:.2f} MB", f"QA failed: {meta['qa_failed']}")
    console.print(table)
    console.print(f"projection: [bold]{projected_min:.1f} min[/] for 1,000 clips as measured here "
                  f"({projected_cpu_min:.1f} min on {cores} dedicated cores); [bold]{clips_per_min:.1f}[/] clips/min; "
                  f"[bold]{ratio:.1f}x[/] faster than the ffmpeg CLI; peak {peak_mb:.0f} MB")
    load = host["load_average_end"][0]
    if effective_cores < 0.9 * cores:
        console.print(f"[yellow]note: the chunks got {effective_cores:.2f} of {cores} cores (load average {load:.2f}):"
                      " other processes share this machine, so the wall-clock figures understate the renderer[/]")

    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "versions": versions(),
        "clip": {"size": [1280, 720], "duration_s": 15.0, "fps": 30, "n_frames": 450, "changed_frames": 180},
        "sample": rendered,
        "execution": {"executor": "multiprocess", "max_concurrent": cores, "chunk_size": args.chunk_size,
                      "chunks": meta["chunks"], "chunk_processes": meta["chunk_processes"]},
        "figures": {
            "template_prepare_s": prepare_s,
            "template_prepare_cpu_s": meta["template_prepare_cpu_s"],
            "run_wall_s": run_wall,
            "asset_wall_s": asset_wall,
            "render_wall_s": render_wall,
            "wall_s_per_clip": per_clip_wall,
            "render_wall_s_per_clip": per_clip_render,
            "cpu_s_per_clip": per_clip_cpu,
            "clips_per_min": clips_per_min,
            "projected_minutes_for_1000": projected_min,
            "projected_minutes_for_1000_dedicated_cores": projected_cpu_min,
            "cpu_s_per_clip_with_plan_and_merge": all_cpu_per_clip,
            "effective_cores": effective_cores,
            "target_minutes_for_1000": TARGET_MINUTES_FOR_1000,
            "ffmpeg": baseline,
            "speedup_vs_ffmpeg": ratio,
            "cpu_speedup_vs_ffmpeg": cpu_ratio,
            "peak_memory_all_processes_mb": peak_mb,
            "largest_step_process_mb": meta["peak_rss_mb"],
            "min_join_psnr_db": meta["min_join_psnr_db"],
            "max_join_step": meta["max_join_step"],
            "mean_clip_bytes": clip_bytes,
            "qa_failed": meta["qa_failed"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
