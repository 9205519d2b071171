"""What Dagster's `add_asset_metadata(partition_key=...)` costs per call as the `sku` partitions grow.

    python bench/partition_reload.py [--sizes 1000 10000 30000] [--calls 20]

Each call checks its key against the run's range by loading every `sku` partition from the instance.
A batched step used to make that call once per SKU and asset (three a SKU); `assets.sku_video.per_sku.add_sku_metadata`
skips it. Prints milliseconds per call and the ratio against the smallest catalog, measured in the same run.
"""

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg
from rich.console import Console
from rich.table import Table

from assets.partitions import sku_partitions
from bench.machine import machine_info


def ms_per_range_check(instance: dg.DagsterInstance, calls: int) -> float:
    """The check `add_asset_metadata` runs: the partition keys in a 50-SKU batch's range, loaded from the instance."""
    batch = dg.PartitionKeyRange("SKU-000100", "SKU-000149")
    started = time.process_time()
    for _ in range(calls):
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            keys = sku_partitions.get_partition_keys_in_range(partition_key_range=batch)
    assert len(keys) == 50
    return (time.process_time() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "bench/results/partition_reload.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        added = 0
        for size in sorted(args.sizes):
            instance.add_dynamic_partitions(sku_partitions.name, [f"SKU-{i:06d}" for i in range(added, size)])
            added = size
            per_call = ms_per_range_check(instance, args.calls)
            rows.append({"partitions": size, "ms_per_call": round(per_call, 1), "ms_per_sku": round(3 * per_call, 1)})
    for row in rows:
        row["ratio_vs_smallest"] = round(row["ms_per_call"] / rows[0]["ms_per_call"], 1)
    table = Table(title="add_asset_metadata(partition_key=...) range check, CPU per call (SQLite instance)")
    for column in ("sku partitions", "ms per call", "ms per SKU (3 calls)", "vs smallest"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row['partitions']:,}", f"{row['ms_per_call']:.1f}", f"{row['ms_per_sku']:.1f}",
                      f"{row['ratio_vs_smallest']}x")
    console = Console()
    console.print(table)
    results = {"measured_at": datetime.now(UTC).isoformat(), "machine": machine_info(), "calls": args.calls, "rows": rows}
    Path(args.out).write_text(json.dumps(results, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
