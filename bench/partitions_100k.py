"""100,000 `sku` partitions on a PostgreSQL instance: adding them, a sensor tick, launching a backfill over all of
them, and the partition queries the UI's asset page sends, against the same at 10,000 partitions (the baseline).

    python bench/partitions_100k.py [--sizes 10000 100000] [--drop-skus 200] [--materialized 1000]
                                    [--out bench/results/partitions_100k.json]

For each size, on its own database in one throwaway PostgreSQL server (tests/servers.py) with skuvid's
dagster.postgres.yaml:
- add: the catalog's registration (`register_skus`: the existing keys read, then one add of the new ones);
- sensor tick: `new_sku_drops` as it is in this checkout, evaluated once over a drop of `--drop-skus` new SKUs
  (packshots and the file in SeaweedFS), then any partition requests it returns applied as the daemon would
  (a sensor that only requests the ingest run returns none: that run's registration is the `add` figure);
- UI: a real `dagster-webserver` on 127.0.0.1 and its GraphQL API, with `--materialized` partitions of `clip`
  materialized: the asset page's partition health (statuses and keys), the asset graph's partition counts, the
  partitions tab's first page; each cold (first ask) and warm (asked again);
- backfill: the UI's `launchPartitionBackfill` over keyframe, clip and published_video, once with
  `allPartitions` and once with every key listed, then the backfill page's status query. Launching records the
  backfill; the daemon then submits its runs (about one a second, dagster issue 28998), which is not timed here.
Targets: every 100,000-partition operation under 30 s, UI queries under 2 s.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg
import httpx
import psycopg2
from rich.console import Console
from rich.table import Table

from bench.machine import machine_info
from bench.scale import (
    BRANDS_YAML,
    VENV_BIN,
    base_packshots,
    catalog_rows,
    distinct_packshot,
    stop,
    wait_for_port,
)
from tests.servers import free_port, postgres, seaweedfs

console = Console(width=140)
SKU_ASSETS = ["keyframe", "clip", "published_video"]
TARGET_OPERATION_S = 30.0
TARGET_UI_S = 2.0

PARTITION_HEALTH = """
query PartitionHealth($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
      }
    }
  }
}"""

PARTITION_COUNTS = """
query PartitionCounts($assetKeys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path }
    partitionStats { numMaterialized numMaterializing numFailed numPartitions }
  }
}"""

PARTITIONS_PAGE = """
query PartitionsPage($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode { partitionKeyConnection(limit: 100, ascending: false) { results hasMore cursor } }
  }
}"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""

BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { id status numPartitions isAssetBackfill assetSelection { path } }
    ... on PythonError { message }
  }
}"""

WORKSPACE_STATUS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


class GraphQL:
    def __init__(self, port: int):
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)

    def timed(self, query: str, variables: dict | None = None) -> tuple[dict, float]:
        started = time.perf_counter()
        response = self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        seconds = time.perf_counter() - started
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {json.dumps(body['errors'])[:2000]}")
        return body["data"], seconds


def create_database(server, name: str) -> str:
    connection = psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=server.database)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return f"postgresql://{server.user}@{server.host}:{server.port}/{name}"


@contextmanager
def webserver(env: dict, work: Path):
    port = free_port()
    log = open(work / "webserver.log", "wb")  # noqa: SIM115 - open for the server's whole life, closed below
    process = subprocess.Popen([str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                "-w", str(REPO / "workspace.yaml")], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout_s=180)
        graphql = GraphQL(port)
        deadline = time.monotonic() + 300
        while True:
            data, _ = graphql.timed(WORKSPACE_STATUS)
            entries = data["workspaceOrError"].get("locationEntries", [])
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e["locationOrLoadError"] for e in entries
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"the code location failed to load: {errors[0]['message'][:2000]}")
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the code location did not load in 300 s")
            time.sleep(1)
        yield graphql
    finally:
        stop(process)
        log.close()


def sensor_tick(instance: dg.DagsterInstance, s3, work: Path, first_index: int, skus: int) -> dict:
    """One evaluation of the drop sensor over a drop of `skus` new SKUs, then its partition requests applied."""
    from pipelines.sensors import new_sku_drops
    from resources.storage import StorageResource

    bucket = f"drops-{first_index}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    bases = base_packshots(256)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"drops/packshots/{i}.png",
                                                  Body=distinct_packshot(bases[i % len(bases)], first_index + i)),
                      range(skus)))
    rows = catalog_rows(first_index + skus, lambda i: f"packshots/{i - first_index}.png").splitlines()
    client.put_object(Bucket=bucket, Key="drops/drop.csv",
                      Body=("\n".join([rows[0], *rows[1 + first_index:]]) + "\n").encode())
    (work / "brands.yaml").write_text(BRANDS_YAML)
    with patch.dict(os.environ, {**s3.env(), "SKUVID_DROP_ZONE": f"s3://{bucket}/drops/",
                                 "SKUVID_BRANDS": str(work / "brands.yaml")}):
        storage = StorageResource(root=f"s3://{bucket}/skuvid")
        started = time.perf_counter()
        result = new_sku_drops(dg.build_sensor_context(instance=instance, resources={"storage": storage}))
        evaluated = time.perf_counter()
        requests = list(getattr(result, "dynamic_partitions_requests", None) or [])
        for request in requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        applied = time.perf_counter()
    return {"drop_skus": skus, "evaluation_s": round(evaluated - started, 2),
            "apply_partition_requests_s": round(applied - evaluated, 2), "tick_s": round(applied - started, 2),
            "run_requests": len(getattr(result, "run_requests", None) or []),
            "partitions_requested": sum(len(r.partition_keys) for r in requests)}


def measure_size(pg, s3, size: int, drop_skus: int, materialized: int, work: Path) -> dict:
    from assets.catalog.sku_catalog import register_skus

    url = create_database(pg, f"dagster_{size}")
    home = work / f"home-{size}"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.postgres.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": url,
           "SKUVID_STORAGE_ROOT": str(work / f"data-{size}"), "SKUVID_LEDGER_URL": f"sqlite:///{work}/ledger.sqlite"}
    figures: dict = {"partitions": size}
    with patch.dict(os.environ, env), dg.DagsterInstance.get() as instance:
        keys = [f"SKU-{index:06d}" for index in range(size)]
        console.print(f"[{size:,}] adding the partitions ...")
        started = time.perf_counter()
        added = register_skus(instance, keys)
        figures["add_s"] = round(time.perf_counter() - started, 2)
        assert len(added) == size and len(instance.get_dynamic_partitions("sku")) == size

        console.print(f"[{size:,}] a sensor tick over a {drop_skus}-SKU drop ...")
        figures["sensor_tick"] = sensor_tick(instance, s3, work, size, drop_skus)

        console.print(f"[{size:,}] materializing {materialized:,} partitions of clip for the UI to show ...")
        for key in keys[:: max(1, size // materialized)][:materialized]:
            instance.report_runless_asset_event(dg.AssetMaterialization("clip", partition=key))
        # A tick that only requests an ingest run adds no partitions itself: count what is there.
        all_keys = instance.get_dynamic_partitions("sku")

    total = len(all_keys)
    with webserver(env, work) as graphql:
        console.print(f"[{size:,}] UI queries through GraphQL ...")
        ui = {}
        for name, query, variables in (
            ("partition_health", PARTITION_HEALTH, {"assetKey": {"path": ["clip"]}}),
            ("partition_counts", PARTITION_COUNTS, {"assetKeys": [{"path": [a]} for a in SKU_ASSETS]}),
            ("partitions_page", PARTITIONS_PAGE, {"assetKey": {"path": ["clip"]}}),
        ):
            data, cold = graphql.timed(query, variables)
            _, warm = graphql.timed(query, variables)
            ui[name] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2)}
            if name == "partition_health":
                node = data["assetNodeOrError"]
                assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == total, "partition keys"
            if name == "partition_counts":
                stats = {tuple(n["assetKey"]["path"]): n["partitionStats"] for n in data["assetNodes"]}
                assert stats[("clip",)]["numPartitions"] == total
                assert stats[("clip",)]["numMaterialized"] == min(materialized, size)
        figures["ui"] = ui

        console.print(f"[{size:,}] launching backfills over every partition ...")
        assets = [{"path": [a]} for a in SKU_ASSETS]
        backfills = {}
        for name, params in (("all_partitions", {"assetSelection": assets, "allPartitions": True}),
                             ("partition_names", {"assetSelection": assets,
                                                  "partitionNames": all_keys})):
            data, seconds = graphql.timed(LAUNCH_BACKFILL, {"backfillParams": {**params, "title": f"bench {name}"}})
            launched = data["launchPartitionBackfill"]
            if launched["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"backfill launch failed: {json.dumps(launched)[:2000]}")
            status, status_s = graphql.timed(BACKFILL_STATUS, {"backfillId": launched["backfillId"]})
            backfill = status["partitionBackfillOrError"]
            assert backfill["numPartitions"] == total * len(SKU_ASSETS) or backfill["numPartitions"] == total, backfill
            backfills[name] = {"launch_s": round(seconds, 2), "status_query_s": round(status_s, 2),
                               "num_partitions": backfill["numPartitions"]}
        figures["backfill"] = backfills
    return figures


def operations(figures: dict) -> dict[str, float]:
    """Every timed operation of one size, flat: name -> seconds."""
    flat = {"add partitions": figures["add_s"], "sensor tick": figures["sensor_tick"]["tick_s"]}
    for name, times in figures["ui"].items():
        flat[f"UI {name} (cold)"] = times["cold_s"]
        flat[f"UI {name} (warm)"] = times["warm_s"]
    for name, times in figures["backfill"].items():
        flat[f"launch backfill ({name})"] = times["launch_s"]
        flat[f"UI backfill status ({name})"] = times["status_query_s"]
    return flat


def run(sizes: list[int], drop_skus: int, materialized: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="skuvid-100k-") as tmp, postgres() as pg, \
            seaweedfs(Path(tmp) / "s3") as s3:
        results = [measure_size(pg, s3, size, drop_skus, materialized, Path(tmp)) for size in sizes]
    baseline, largest = operations(results[0]), operations(results[-1])
    table = Table(title=f"{sizes[-1]:,} sku partitions on PostgreSQL (baseline {sizes[0]:,})")
    for column in ("operation", f"{sizes[0]:,} (s)", f"{sizes[-1]:,} (s)", "ratio", "target (s)", "met"):
        table.add_column(column)
    verdicts = {}
    for name, seconds in largest.items():
        target = TARGET_UI_S if name.startswith("UI") else TARGET_OPERATION_S
        verdicts[name] = {"seconds": seconds, "baseline_s": baseline[name], "target_s": target,
                          "met": seconds < target,
                          "ratio_vs_baseline": round(seconds / baseline[name], 1) if baseline[name] else None}
        table.add_row(name, f"{baseline[name]:.2f}", f"{seconds:.2f}",
                      f"{verdicts[name]['ratio_vs_baseline']}x", f"{target:g}", "yes" if seconds < target else "NO")
    console.print(table)
    return {"sizes": results, "largest": verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--drop-skus", type=int, default=200)
    parser.add_argument("--materialized", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/partitions_100k.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind the servers' context managers
    figures = run(sorted(args.sizes), args.drop_skus, args.materialized)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                                    "machine": machine_info(), **figures}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
