"""Scale-out figures: SKUs per minute with 1, 2 and 3 Celery workers, and 100,000 `sku` partitions.

    python bench/scale_out.py [--part workers|partitions|all] [--workers 1 2 3]
                              [--api-skus 12] [--api-runs 6] [--render-s 120] [--cpu-skus 6] [--cpu-runs 6]
                              [--out bench/results/scale_out.json]

Workers: every process real and on 127.0.0.1, as in tests/pipelines/test_celery_workers.py: Redis, PostgreSQL
(instance and ledger), SeaweedFS (artifacts), `skuvid worker` processes, and one `dagster job execute`
launcher per run, all runs launched at once; SKUs per minute = SKUs / (first launch to last run done).
- API-bound: hero SKUs routed to Kling, served by the local emulator with a fixed render time of
  `--render-s` per clip (so the work is waiting, and scales on 2 cores); N `api` workers of one step each,
  plus one `cpu` worker (2 at a time) for the keyframe and publish steps.
- CPU-bound: bulk SKUs on the CPU tier (compose, motion loop, QA, encode); N `cpu` workers of one step each.
Each worker count gets fresh databases and a fresh storage prefix, so nothing is reused between them. The
baseline is 1 worker, measured in the same run; speedup = rate / baseline rate, efficiency = speedup / N.
Target: API-bound at least 2.5x from 1 to 3 workers. The default render time, 120 s, is about what Kling takes
for a 5 s clip; about 40 s of each measurement (launchers, keyframe and publish steps) does not scale, so shorter
renders give lower speedups (README, "Throughput with more workers").

Partitions: bench/partitions_100k.py (add, sensor tick, backfill launch and UI queries at 100,000 partitions
against 10,000).
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg
from rich.console import Console
from rich.table import Table

from bench.machine import machine_info
from devkit.sample_art import draw_packshot
from tests.celery_workers import (
    celery_worker,
    deployment_env,
    job_execute,
    launcher_batches,
    redis_server,
    workers_by_step,
)
from tests.servers import postgres, seaweedfs

console = Console(width=140)
ROUTING = """\
retakes: 0
default: {keyframe: [compose], clip: [motion]}
rules:
  - {name: hero, when: {tier: hero}, clip: [kling, motion]}
"""
BRANDS = "brands:\n  fresh:\n    background: {style: studio, colors: ['#F1ECE4', '#D6CBBB']}\n"
CLIP_RUN_CONFIG = {"ops": {"clip": {"config": {"duration_s": 3.0, "fps": 12}}}}
TARGET_API_SPEEDUP_AT_3 = 2.5


class Servers:
    def __init__(self, root: Path, pg, s3, redis, emulators):
        self.root, self.pg, self.s3, self.redis, self.emulators = root, pg, s3, redis, emulators
        self.redis_dbs = iter(range(1, 16))

    def deployment(self, name: str) -> dict[str, str]:
        """A fresh deployment's environment: its own instance, ledger, storage prefix and broker database."""
        bucket = "scale-out"
        if not any(b["Name"] == bucket for b in self.s3.client().list_buckets().get("Buckets", [])):
            self.s3.client().create_bucket(Bucket=bucket)
        return deployment_env(
            self.root / name, postgres_url=self.pg.url, s3_env=self.s3.env(), storage_root=f"s3://{bucket}/{name}",
            broker_url=f"redis://127.0.0.1:{self.redis.port}/{next(self.redis_dbs)}", routing=ROUTING,
            kling=self.emulators.provider_settings()["kling"], SKUVID_POOL_LIMITS="gpu=1,api=16")


def write_catalog(folder: Path, prefix: str, skus: int, tier: str) -> Path:
    (folder / "packshots").mkdir(parents=True, exist_ok=True)
    shapes = [("bottle", (40, 110, 70)), ("mug", (200, 70, 60)), ("can", (60, 80, 160))]
    for index, (shape, color) in enumerate(shapes):
        draw_packshot(shape, color=color, accent=(230, 200, 90), size=320).save(folder / "packshots" / f"{index}.png")
    (folder / "brands.yaml").write_text(BRANDS)
    lines = ["sku_id,title,category,brand,image,tier,prompt,aspect"]
    lines += [f"{prefix}-{i:03d},Item {i},kitchen,fresh,packshots/{i % len(shapes)}.png,{tier},,16:9"
              for i in range(skus)]
    (folder / "catalog.csv").write_text("\n".join(lines) + "\n")
    return folder / "catalog.csv"


def measure(servers: Servers, kind: str, workers: int, skus: int, runs: int) -> dict:
    name = f"{kind}-{workers}w"
    env = servers.deployment(name)
    # SKU ids differ per measurement: the same SKU and content is the same paid job, which the provider would
    # find already made (Kling's external_task_id) and hand back at once.
    catalog = write_catalog(servers.root / name / "catalog", f"{kind.upper()}{workers}", skus,
                            "hero" if kind == "api" else "bulk")
    logs = servers.root / name / "logs"
    measured = [(kind, f"{kind}-{index}", 1) for index in range(workers)]
    helpers = [("cpu", "cpu-helper", 2)] if kind == "api" else []
    started_workers = []
    try:
        for queue, worker_name, concurrency in helpers + measured:
            context = celery_worker(queue, env, logs, name=worker_name, concurrency=concurrency)
            started_workers.append((context, context.__enter__()))
        config = {"ops": {"sku_catalog": {"config": {"source": str(catalog),
                                                     "brands": str(catalog.parent / "brands.yaml")}}}}
        loaded = job_execute(env, "catalog_job", config=config, timeout_s=3600)
        if loaded.returncode != 0:
            raise RuntimeError(loaded.stdout[-3000:] + loaded.stderr[-3000:])
        batches = launcher_batches(env, batch_size=-(-skus // runs))
        assert all(job == f"sku_video_{kind}_job" for job, _, _ in batches), batches
        console.print(f"{name}: {skus} SKUs in {len(batches)} runs on {workers} {kind} worker(s) ...")
        started = time.perf_counter()
        with ThreadPoolExecutor(len(batches)) as pool:
            done = list(pool.map(lambda b: job_execute(env, b[0], config=CLIP_RUN_CONFIG, tags={
                "dagster/asset_partition_range_start": b[1], "dagster/asset_partition_range_end": b[2]}, timeout_s=3600), batches))
        wall = time.perf_counter() - started
    finally:
        for context, _ in reversed(started_workers):
            context.__exit__(None, None, None)
    failed = [r.stdout[-2000:] + r.stderr[-2000:] for r in done if r.returncode != 0]
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} runs failed: {failed[0]}")
    os.environ["DAGSTER_PG_URL"] = env["DAGSTER_PG_URL"]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        sku_runs = [r for r in instance.get_runs() if r.job_name == f"sku_video_{kind}_job"]
        clip_workers = sorted({w for r in sku_runs for w in workers_by_step(instance, r.run_id).get("clip", [])})
        published = {record.asset_materialization.partition for record in
                     instance.fetch_materializations(dg.AssetKey("published_video"), limit=10_000).records}
    assert len(published) == skus, f"{name}: {len(published)} of {skus} SKUs published"
    assert set(clip_workers) <= {w for _, w, _ in measured}, clip_workers
    return {"kind": kind, "workers": workers, "skus": skus, "runs": len(batches), "wall_s": round(wall, 1),
            "skus_per_minute": round(skus / wall * 60, 2), "clip_steps_ran_on": clip_workers}


def scaling(rows: list[dict]) -> list[dict]:
    base = next(r for r in rows if r["workers"] == min(x["workers"] for x in rows))
    for row in rows:
        row["speedup_vs_1"] = round(row["skus_per_minute"] / base["skus_per_minute"], 2)
        row["efficiency"] = round(row["speedup_vs_1"] / (row["workers"] / base["workers"]), 2)
    return rows


def measure_workers(args, progress) -> dict:
    from devkit.emulators import TaskScript, start_emulators

    results: dict[str, list[dict]] = {"api": [], "cpu": []}
    with tempfile.TemporaryDirectory(prefix="skuvid-scale-out-") as tmp, postgres() as pg, \
            seaweedfs(Path(tmp) / "s3") as s3, redis_server(Path(tmp) / "redis") as redis, \
            start_emulators(output_short_side=240, script=TaskScript(running_s=args.render_s)) as emulators:
        servers = Servers(Path(tmp), pg, s3, redis, emulators)
        for kind, skus, runs in (("api", args.api_skus, args.api_runs), ("cpu", args.cpu_skus, args.cpu_runs)):
            for count in args.workers:
                results[kind].append(measure(servers, kind, count, skus, runs))
                progress({"render_s": args.render_s, **results})
    table = Table(title=f"SKUs per minute by Celery workers ({os.cpu_count()} cores; API render {args.render_s:g} s)")
    for column in ("work", "workers", "SKUs", "runs", "wall (s)", "SKUs/min", "speedup", "efficiency"):
        table.add_column(column)
    for kind, rows in results.items():
        for row in scaling(rows):
            table.add_row(kind, str(row["workers"]), str(row["skus"]), str(row["runs"]), f"{row['wall_s']:.1f}",
                          f"{row['skus_per_minute']:.2f}", f"{row['speedup_vs_1']:.2f}x", f"{row['efficiency']:.2f}")
    console.print(table)
    api_at_3 = next((r["speedup_vs_1"] for r in results["api"] if r["workers"] == 3), None)
    if api_at_3 is not None:
        verdict = "met" if api_at_3 >= TARGET_API_SPEEDUP_AT_3 else "MISSED"
        console.print(f"API-bound speedup 1 -> 3 workers: {api_at_3:.2f}x (target {TARGET_API_SPEEDUP_AT_3}x: {verdict})")
    return {"render_s": args.render_s, **results, "target_api_speedup_at_3": TARGET_API_SPEEDUP_AT_3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["workers", "partitions", "all"], default="all")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--api-skus", type=int, default=12)
    parser.add_argument("--api-runs", type=int, default=6)
    parser.add_argument("--render-s", type=float, default=120.0)
    parser.add_argument("--cpu-skus", type=int, default=6)
    parser.add_argument("--cpu-runs", type=int, default=6)
    parser.add_argument("--partition-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/scale_out.json")
    args = parser.parse_args()
    # Servers and workers are stopped by context managers: let a SIGTERM (timeout, Ctrl-C's cousin) unwind them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures: dict = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def progress(workers: dict) -> None:  # what is measured so far, in case a later measurement fails
        args.out.write_text(json.dumps({**figures, "workers": workers, "complete": False}, indent=2) + "\n")

    if args.part in ("workers", "all"):
        figures["workers"] = measure_workers(args, progress)
    if args.part in ("partitions", "all"):
        from bench.partitions_100k import run as measure_partitions

        figures["partitions"] = measure_partitions(sorted(args.partition_sizes), drop_skus=200, materialized=1_000)
    figures["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
