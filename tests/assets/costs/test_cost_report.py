"""cost_report's estimate-against-actual for the newest backfill, found through public run queries and tags."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.costs.cost_report import last_backfill_comparison
from assets.costs.estimate import Estimate
from assets.partitions import sku_partitions


@dg.asset(partitions_def=sku_partitions)
def stand_in(context: dg.AssetExecutionContext) -> None:
    """A partitioned asset whose runs carry the tags a backfill gives them; its work does not matter here."""


def run(instance: dg.DagsterInstance, tags: dict[str, str], partition: str | None = None) -> None:
    dg.materialize([stand_in], instance=instance, partition_key=partition, tags=tags)


def half_a_dollar_each(rows: list[dict]) -> Estimate:
    return Estimate(skus=len(rows), heroes=0, lines=[], total_usd=0.5 * len(rows), wall_s=0.0)


def test_the_newest_backfill_is_found_by_its_run_tags_and_compared_with_its_charges():
    catalog = pd.DataFrame({"sku_id": list("ABCDE"), "tier": ["hero"] * 5})
    with dg.instance_for_test() as instance:
        assert last_backfill_comparison(instance, pd.DataFrame(), catalog, half_a_dollar_each) is None
        instance.add_dynamic_partitions("sku", list("ABCDE"))
        run(instance, {"dagster/backfill": "old"}, "A")
        before = datetime.now(UTC)
        run(instance, {"dagster/backfill": "new"}, "B")
        run(
            instance,
            {
                "dagster/backfill": "new",
                "dagster/asset_partition_range_start": "C",
                "dagster/asset_partition_range_end": "D",
            },
        )
        run(instance, {}, "E")  # a run outside any backfill, newer than both
        frame = pd.DataFrame(
            {
                "sku_id": ["A", "B", "B", "C", "D", "E"],
                "usd": [9.0, 7.0, 0.25, 0.5, 0.75, 9.0],
                "created_at": [before, before - timedelta(days=1), *[datetime.now(UTC)] * 4],
            }
        )
        comparison = last_backfill_comparison(instance, frame, catalog, half_a_dollar_each)
    assert comparison["backfill"] == "new" and comparison["skus"] == 3
    assert comparison["estimate_usd"] == pytest.approx(1.5)
    # B's charge from the day before the backfill started, and A and E (not in it), are not its spend.
    assert comparison["actual_usd"] == pytest.approx(1.5) and comparison[
        "actual_vs_estimate_pct"
    ] == pytest.approx(0)


def test_cost_report_reads_no_private_dagster_state():
    source = (Path(__file__).parents[3] / "assets" / "costs" / "cost_report.py").read_text()
    assert "dagster._" not in source and "asset_backfill_data" not in source and "get_backfills" not in source
