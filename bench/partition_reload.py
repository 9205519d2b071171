"""Per-SKU metadata in a batched step: Dagster's public per-partition call against per-SKU materializations.

    python bench/partition_reload.py [--sizes 1000 10000 30000] [--batch 50]

`context.add_asset_metadata(metadata, partition_key=...)` checks its key against the run's range by loading every
`sku` partition from the instance, on every call, so its cost grows with the catalog. A batched step of
`assets.sku_video.per_sku.run_per_sku` yields one `AssetMaterialization` per SKU instead (public too), which reads
nothing. Both run here as real batched steps of `--batch` SKUs in instances of each size; the figures are the
step's CPU seconds per SKU and the partition-list loads, and the ratio of the public call against our way.
"""

import argparse
import json
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
from rich.table import Table

from assets.partitions import sku_partitions
from assets.sku_video.per_sku import SkuOutcome, run_per_sku, sku_asset
from bench.machine import machine_info
from videokit.sku_video.qa import CheckOutcome

METADATA = {"status": "ok", "cost_usd": dg.MetadataValue.float(0.01), "provider": "motion"}


def outcome(_key: str) -> SkuOutcome:
    return SkuOutcome(dict(METADATA), [CheckOutcome("made", True, "made", {})])


@sku_asset("keyframe", deps=[], kinds={"png"}, description="per-SKU materializations", checks={"made": "made"})
def per_sku_materializations(context: dg.AssetExecutionContext):
    yield from run_per_sku(context, "keyframe", ["made"], outcome)


@sku_asset("keyframe", deps=[], kinds={"png"}, description="public per-partition call", checks={"made": "made"})
def per_partition_metadata_call(context: dg.AssetExecutionContext):
    for key in context.partition_keys:
        context.add_asset_metadata(dict(METADATA), partition_key=key)
        yield dg.AssetCheckEvaluation(asset_key=dg.AssetKey("keyframe"), check_name="made", passed=True, partition=key)
    yield dg.MaterializeResult()


def measure(asset, instance: dg.DagsterInstance, keys: list[str]) -> dict:
    loads = []
    real = dg.DagsterInstance.get_dynamic_partitions

    def counted(self, *args, **kwargs):
        loads.append(1)
        return real(self, *args, **kwargs)

    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    with patch.object(dg.DagsterInstance, "get_dynamic_partitions", counted):
        started = time.process_time()
        assert dg.materialize([asset], instance=instance, tags=tags).success
        cpu = time.process_time() - started
    return {"cpu_s_per_sku": round(cpu / len(keys), 4), "partition_loads": len(loads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--out", default=str(REPO / "bench/results/partition_reload.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        added = 0
        for size in sorted(args.sizes):
            instance.add_dynamic_partitions(sku_partitions.name, [f"SKU-{i:06d}" for i in range(added, size)])
            added = size
            keys = [f"SKU-{i:06d}" for i in range(100, 100 + args.batch)]
            ours = measure(per_sku_materializations, instance, keys)
            public_call = measure(per_partition_metadata_call, instance, keys)
            rows.append({"partitions": size, "batch": args.batch, "per_sku_materializations": ours,
                         "add_asset_metadata_per_sku": public_call,
                         "cpu_ratio_public_call_vs_ours": round(public_call["cpu_s_per_sku"] / ours["cpu_s_per_sku"], 1)})
    table = Table(title=f"Per-SKU metadata in a batched step of {args.batch} SKUs (SQLite instance), CPU per SKU")
    for column in ("sku partitions", "per-SKU materializations (ms)", "loads", "add_asset_metadata (ms)", "loads",
                   "ratio"):
        table.add_column(column, justify="right")
    for row in rows:
        ours, public_call = row["per_sku_materializations"], row["add_asset_metadata_per_sku"]
        table.add_row(f"{row['partitions']:,}", f"{ours['cpu_s_per_sku'] * 1000:.1f}", str(ours["partition_loads"]),
                      f"{public_call['cpu_s_per_sku'] * 1000:.1f}", str(public_call["partition_loads"]),
                      f"{row['cpu_ratio_public_call_vs_ours']}x")
    console = Console()
    console.print(table)
    results = {"measured_at": datetime.now(UTC).isoformat(), "machine": machine_info(), "rows": rows}
    Path(args.out).write_text(json.dumps(results, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
