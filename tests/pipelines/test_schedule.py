"""The nightly refresh: new and changed SKUs run, failed SKUs are retried, unchanged SKUs launch nothing."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from assets.catalog.sku_catalog import read_catalog
from pipelines.resources import build_resources
from pipelines.schedules import nightly_catalog_refresh
from resources.storage import StorageResource
from tests.pipelines.fixtures import ROWS, catalog_csv, write_catalog
from tests.pipelines.test_graph import SKU_ASSETS


@pytest.fixture
def catalog_path(tmp_path, monkeypatch):
    path = write_catalog(tmp_path / "catalog", ROWS["HERO-1"], ROWS["BULK-2"])
    monkeypatch.setenv("SKUVID_CATALOG", str(path))
    monkeypatch.setenv("SKUVID_BRANDS", str(path.parent / "brands.yaml"))
    return path


def tick(instance, storage, day: int):
    context = dg.build_schedule_context(
        instance=instance, resources={"storage": storage}, scheduled_execution_time=datetime(2026, 11, day, 2, tzinfo=UTC)
    )
    return nightly_catalog_refresh(context)


def keys(result) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in result} if isinstance(result, list) else {}


def test_changed_unchanged_and_failed(catalog_path, tmp_path):
    storage = StorageResource(root=str(tmp_path / "data"))
    resources = {**build_resources(), "storage": storage}
    with dg.instance_for_test() as instance:
        first = keys(tick(instance, storage, 20))
        assert set(first) == {"HERO-1", "BULK-2"}
        assert sorted(instance.get_dynamic_partitions("sku")) == ["BULK-2", "HERO-1"]

        # HERO-1 is rendered and published; BULK-2's attempt "failed" (nothing published).
        assert dg.materialize(SKU_ASSETS, partition_key="HERO-1", instance=instance, resources=resources).success
        second = keys(tick(instance, storage, 21))
        assert list(second) == ["BULK-2"] and second["BULK-2"].endswith(":retry-2026-11-21")

        # Nothing changes and BULK-2 gets published: the next night launches nothing.
        assert dg.materialize(SKU_ASSETS, partition_key="BULK-2", instance=instance, resources=resources).success
        third = tick(instance, storage, 22)
        assert isinstance(third, dg.SkipReason)

        # HERO-1's title changes: only HERO-1 runs, under its new content hash.
        catalog_path.write_text(catalog_csv(ROWS["HERO-1"].replace("Fizz bottle", "Fizz bottle XL"), ROWS["BULK-2"]))
        fourth = keys(tick(instance, storage, 23))
        new_hash = read_catalog(storage).set_index("sku_id").loc["HERO-1", "content_hash"]
        assert fourth == {"HERO-1": f"HERO-1:{new_hash}"}
        assert fourth["HERO-1"] != first["HERO-1"]


def test_bad_catalog_skips_with_reason(catalog_path, tmp_path):
    catalog_path.write_text("sku_id,title\nA,B\n")
    with dg.instance_for_test() as instance:
        result = tick(instance, StorageResource(root=str(tmp_path / "data")), 20)
        assert isinstance(result, dg.SkipReason) and "missing required column" in result.skip_message
