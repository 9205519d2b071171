"""The CPU per SKU of the backfill's work without Dagster, on larger samples than `scale.py` renders.

    python bench/work_baseline.py [--catalog-skus 10000] [--sample 100] [--samples 2] [--scale bench/results/scale.json]

`scale.py`'s overhead is a difference of two large numbers (CPU per SKU with Dagster minus without), so its
baseline sample sets the noise. This renders `--samples` disjoint samples as `scale.py` does (as many worker
processes as the instance runs runs at once), prints each, and the overhead of the recorded backfill in
`--scale` against their mean.
"""

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_info
from bench.scale import console, prepare_catalog, pure_work_in_parallel, run_concurrency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog-skus", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--scale", default=str(REPO / "bench/results/scale.json"))
    parser.add_argument("--out", default=str(REPO / "bench/results/work_baseline.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skuvid-baseline-") as tmp:
        _, skus, data = prepare_catalog(Path(tmp), max(args.catalog_skus, args.sample * args.samples))
        processes = run_concurrency(Path(tmp) / "dagster_home" / "dagster.yaml")
        cpu_per_sku = []
        for index in range(args.samples):
            sample = skus[index * args.sample : (index + 1) * args.sample]
            _, cpu = pure_work_in_parallel(sample, data, processes)
            cpu_per_sku.append(round(cpu, 3))
            console.print(f"sample {index + 1}: {len(sample)} SKUs, {processes} processes: {cpu:.3f} CPU-s per SKU")
    mean = sum(cpu_per_sku) / len(cpu_per_sku)
    backfill = json.loads(Path(args.scale).read_text())["backfill"]
    overhead = backfill["cpu_s_per_sku"] - mean
    console.print(f"mean {mean:.3f} CPU-s per SKU without Dagster; the backfill in {args.scale} spent "
                  f"{backfill['cpu_s_per_sku']:.3f} with Dagster: overhead {overhead:.3f} CPU-s per SKU "
                  f"({overhead / 0.5:.2f} of the 0.5 target)")
    Path(args.out).write_text(json.dumps({
        "measured_at": datetime.now(UTC).isoformat(), "machine": machine_info(), "catalog_skus": len(skus),
        "processes": processes, "cpu_s_per_sku_by_sample": cpu_per_sku, "mean_cpu_s_per_sku": round(mean, 3),
        "backfill_cpu_s_per_sku": backfill["cpu_s_per_sku"], "overhead_cpu_s_per_sku": round(overhead, 3),
        "target_overhead_cpu_s_per_sku": 0.5,
    }, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
