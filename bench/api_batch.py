"""A batch of emulated API clips in one batched `clip` run: wall time against the sum of the render delays.

    python bench/api_batch.py [--skus 100] [--render-s 20] [--limit 4]     (bench/scale.py runs it as a section)

Every SKU routes to Runway, served by the local emulator with a fixed render delay. The batch runs twice on fresh
storage: with the `api` pool's limit (waits overlap in the step) and with a limit of 1 (the baseline: one wait
after another, as before). The clips are short (3 s at 12 fps, 1:1) so the waits, not our encoding and QA,
dominate; both runs do the same CPU work. Target: API waits overlapping at the pool's limit, i.e. the wall time
near the sum of delays divided by the limit, plus the CPU work.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg
from rich.console import Console

from assets.catalog.sku_catalog import sku_catalog
from assets.sku_video.clips import clip
from assets.sku_video.keyframes import keyframe
from bench.machine import machine_info
from devkit.emulators import TaskScript, start_emulators
from devkit.sample_art import draw_packshot
from pipelines.resources import build_resources
from resources.quality import QualityBarResource
from resources.routing import RoutingResource
from resources.storage import StorageResource

BRANDS_YAML = "brands:\n  acme:\n    background: {style: studio, colors: ['#F1ECE4', '#D6CBBB']}\n"
SHORT_CLIPS = {"ops": {"clip": {"config": {"duration_s": 3.0, "fps": 12}}}}
# The emulator's stand-in motion is not a real provider's clip; the bench is about waiting, not quality.
LENIENT_HERO = QualityBarResource(hero={"min_motion": 0.0, "min_product_psnr_clip": 0.0, "min_sharpness_ratio": 0.0})


def write_catalog(folder: Path, skus: list[str]) -> None:
    folder.mkdir(parents=True)
    draw_packshot("bottle", color=(40, 110, 70), accent=(230, 200, 90), label="FIZZ", size=400).save(folder / "p.png")
    (folder / "brands.yaml").write_text(BRANDS_YAML)
    rows = "".join(f"{sku},Bottle {sku},beverage,acme,p.png,hero,,1:1\n" for sku in skus)
    (folder / "catalog.csv").write_text("sku_id,title,category,brand,image,tier,prompt,aspect\n" + rows)
    (folder / "routing.yaml").write_text("retakes: 0\ndefault: {keyframe: [compose], clip: [runway]}\n")


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def one_batch(skus: list[str], render_s: float, limit: int, work: Path) -> dict:
    """Catalog and keyframes, then the measured clip run of all SKUs with the `api` pool at `limit`."""
    write_catalog(work / "catalog", skus)
    env = {"SKUVID_POOL_LIMITS": f"api={limit}", "SKUVID_LEDGER_URL": f"sqlite:///{work}/ledger.sqlite"}
    (work / "instance").mkdir(parents=True)
    with start_emulators(script=TaskScript(running_s=render_s), output_short_side=240) as emulators, \
            patch.dict(os.environ, env), dg.instance_for_test(temp_dir=str(work / "instance")) as instance:
        settings = emulators.provider_settings()["runway"]
        resources = {**build_resources(api_overrides={"runway": settings}),
                     "storage": StorageResource(root=str(work / "data")), "quality_bar": LENIENT_HERO,
                     "routing": RoutingResource(path=str(work / "catalog" / "routing.yaml"))}
        catalog = {"ops": {"sku_catalog": {"config": {"source": str(work / "catalog" / "catalog.csv"),
                                                       "brands": str(work / "catalog" / "brands.yaml")}}}}
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog)
        tags = {"dagster/asset_partition_range_start": skus[0], "dagster/asset_partition_range_end": skus[-1]}
        assert dg.materialize([keyframe], instance=instance, resources=resources, tags=tags).success
        started, cpu = time.monotonic(), time.process_time()
        result = dg.materialize([clip], instance=instance, resources=resources, tags=tags, run_config=SHORT_CLIPS,
                                raise_on_error=False)
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
        spans = [(t.created, t.created + render_s) for t in emulators.runway.tasks.values()]
        materialized = len(instance.fetch_materializations(dg.AssetKey("clip"), limit=len(skus) + 1).records)
    return {"api_limit": limit, "wall_s": round(wall, 1), "step_cpu_s": round(cpu, 1), "tasks": len(spans),
            "peak_tasks_rendering_at_once": peak_overlap(spans), "materialized": materialized,
            "run_success": result.success}


def measure_api_batch(skus: int, render_s: float, limit: int, work: Path) -> dict:
    keys = [f"API-{n:04d}" for n in range(skus)]
    overlapped = one_batch(keys, render_s, limit, work / "overlapped")
    serial = one_batch(keys, render_s, 1, work / "serial")
    sum_of_delays = skus * render_s
    return {
        "skus": skus, "render_delay_s": render_s, "sum_of_delays_s": sum_of_delays, "overlapped": overlapped,
        "serial_baseline": serial,
        "wall_vs_sum_of_delays": round(overlapped["wall_s"] / sum_of_delays, 3),
        "speedup_vs_serial": round(serial["wall_s"] / overlapped["wall_s"], 2),
    }


def print_api_batch(console: Console, figures: dict) -> None:
    o, s = figures["overlapped"], figures["serial_baseline"]
    console.print(f"API batch: {figures['skus']} emulated Runway clips, {figures['render_delay_s']:.0f} s render delay "
                  f"each, sum of delays {figures['sum_of_delays_s']:.0f} s")
    console.print(f"  api={o['api_limit']}: wall {o['wall_s']:.0f} s ({figures['wall_vs_sum_of_delays']:.2f} x the sum), "
                  f"peak {o['peak_tasks_rendering_at_once']} renders at once, {o['materialized']} materialized")
    console.print(f"  api=1 (baseline): wall {s['wall_s']:.0f} s, peak {s['peak_tasks_rendering_at_once']}; "
                  f"speed-up {figures['speedup_vs_serial']}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--render-s", type=float, default=20.0)
    parser.add_argument("--limit", type=int, default=4, help="the api pool's limit")
    parser.add_argument("--out", default=str(REPO / "bench/results/api_batch.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skuvid-api-batch-") as tmp:
        figures = measure_api_batch(args.skus, args.render_s, args.limit, Path(tmp))
    console = Console()
    print_api_batch(console, figures)
    results = {"measured_at": datetime.now(UTC).isoformat(), "machine": machine_info(), **figures}
    Path(args.out).write_text(json.dumps(results, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
