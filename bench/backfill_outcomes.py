"""A backfill through a real daemon where one SKU fails: what the runs, the partitions and the backfill record.

    python bench/backfill_outcomes.py [--skus 40] [--fail 3]

Three stages built with `assets.sku_video.per_sku` (keyframe -> clip -> published_video, the same helpers, batch
sizes and backfill policies as the product; the work itself is trivial) and `--fail` SKUs whose keyframe step
raises. A webserver and a daemon on loopback run the backfill, launched through GraphQL as the UI does. Expected:
each stage in its own batched runs, the failed SKUs FAILED at keyframe and never attempted downstream, every other
SKU MATERIALIZED at every stage, and the backfill COMPLETED_FAILED. Prints the per-stage counts and the runs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg
import httpx
from rich.console import Console

from assets.partitions import sku_partitions
from bench.machine import machine_info
from tests.servers import free_port

STAGES = ("keyframe", "clip", "published_video")
DEFS = '''
import sys
sys.path.insert(0, {repo!r})
import dagster as dg
from assets.sku_video.per_sku import SkuOutcome, run_per_sku, sku_asset
from videokit.sku_video.qa import CheckOutcome

FAILING = set({failing!r})


def stage(name, deps):
    @sku_asset(name, deps=deps, kinds={{"png"}}, description="bench", checks={{name + "_ok": "ok"}})
    def make(context: dg.AssetExecutionContext):
        def step(key):
            if name == "keyframe" and key in FAILING:
                raise ValueError(key + ": unreadable packshot")
            return SkuOutcome({{"status": "ok"}}, [CheckOutcome(name + "_ok", True, "ok", {{}})])
        yield from run_per_sku(context, name, [name + "_ok"], step)
    return make


defs = dg.Definitions(assets=[stage("keyframe", []), stage("clip", ["keyframe"]), stage("published_video", ["clip"])])
'''
LAUNCH = """mutation($names: [String!]) { launchPartitionBackfill(backfillParams: {partitionNames: $names,
  assetSelection: [{path: ["keyframe"]}, {path: ["clip"]}, {path: ["published_video"]}]}) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def graphql(port: int, query: str, variables: dict, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
                              timeout=60).json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=40)
    parser.add_argument("--fail", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=900)
    parser.add_argument("--out", default=str(REPO / "bench/results/backfill_outcomes.json"))
    args = parser.parse_args()
    keys = [f"SKU-{n:04d}" for n in range(args.skus)]
    failing = keys[1:: max(1, args.skus // max(1, args.fail))][: args.fail]
    console = Console()
    with tempfile.TemporaryDirectory(prefix="skuvid-backfill-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        (work / "home" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        (work / "bench_defs.py").write_text(DEFS.format(repo=str(REPO), failing=sorted(failing)))
        (work / "workspace.yaml").write_text("load_from:\n  - python_file:\n      relative_path: bench_defs.py\n"
                                             "      working_directory: .\n")
        env = {**os.environ, "DAGSTER_HOME": str(work / "home"), "SKUVID_LEDGER_URL": f"sqlite:///{work}/ledger.sqlite"}
        port = free_port()
        bin_dir = Path(sys.executable).parent
        processes = [subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                                       "-p", str(port)], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                     subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=work, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            with patch.dict(os.environ, {"DAGSTER_HOME": env["DAGSTER_HOME"]}), dg.DagsterInstance.get() as instance:
                instance.add_dynamic_partitions(sku_partitions.name, keys)
                started = time.monotonic()
                answer = graphql(port, LAUNCH, {"names": keys})["data"]["launchPartitionBackfill"]
                if "backfillId" not in answer:
                    raise RuntimeError(f"backfill not launched: {answer}")
                backfill_id = answer["backfillId"]
                while time.monotonic() - started < args.timeout_s:
                    backfill = instance.get_backfill(backfill_id)
                    if backfill.status.value not in ("REQUESTED", "CANCELING"):
                        break
                    time.sleep(2)
                wall = time.monotonic() - started
                statuses = {}
                for stage_name in STAGES:
                    found = instance.get_status_by_partition(dg.AssetKey(stage_name), keys, sku_partitions) or {}
                    values = [found.get(key).value if found.get(key) else "NOT ATTEMPTED" for key in keys]
                    statuses[stage_name] = {value: values.count(value) for value in sorted(set(values))}
                runs = [{"assets": sorted(k.to_user_string() for k in (r.dagster_run.asset_selection or [])),
                         "range": [r.dagster_run.tags.get("dagster/asset_partition_range_start"),
                                   r.dagster_run.tags.get("dagster/asset_partition_range_end")],
                         "status": r.dagster_run.status.value}
                        for r in reversed(instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id})))]
                failed_at_keyframe = sorted(key for key in keys if (instance.get_status_by_partition(
                    dg.AssetKey("keyframe"), [key], sku_partitions) or {}).get(key) == dg.AssetPartitionStatus.FAILED)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    results = {"measured_at": datetime.now(UTC).isoformat(), "machine": machine_info(), "skus": args.skus,
               "failing": sorted(failing), "backfill_status": backfill.status.value, "wall_s": round(wall, 1),
               "statuses": statuses, "failed_at_keyframe": failed_at_keyframe, "runs": runs}
    console.print(f"backfill of {args.skus} SKUs with {len(failing)} failing at keyframe: {results['backfill_status']} "
                  f"in {wall:.0f} s, {len(runs)} runs")
    for stage_name, counts in statuses.items():
        console.print(f"  {stage_name}: " + ", ".join(f"{value} {count}" for value, count in counts.items()))
    for run in runs:
        console.print(f"  run {run['assets']} {run['range'][0]}..{run['range'][1]}: {run['status']}")
    console.print(f"  failed SKUs named as failed at keyframe: {failed_at_keyframe == sorted(failing)}")
    Path(args.out).write_text(json.dumps(results, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
