"""The nightly refresh: it only requests an ingest run; that run keeps newer drop-zone edits, and failed SKUs are
requested again in the window it opens."""

import logging
import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from assets.catalog.sku_catalog import CatalogConfig, ingest_catalog_file, read_catalog
from pipelines.schedules import nightly_catalog_refresh
from pipelines.sensors import sku_renders
from resources.storage import StorageResource
from tests.pipelines.fixtures import ROWS, catalog_csv, write_catalog
from tests.pipelines.test_sensor import launch


@pytest.fixture
def catalog_path(tmp_path, monkeypatch):
    path = write_catalog(tmp_path / "catalog", ROWS["HERO-1"], ROWS["BULK-2"])
    monkeypatch.setenv("SKUVID_CATALOG", str(path))
    monkeypatch.setenv("SKUVID_BRANDS", str(path.parent / "brands.yaml"))
    return path


def nightly(instance, day: int) -> dg.RunRequest:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 11, day, 2, tzinfo=UTC))
    return nightly_catalog_refresh(context)


def run_ingest(instance, storage, request: dg.RunRequest) -> dict:
    """The requested run, as the daemon would launch it: recorded in the instance, its asset's work done."""
    result = dg.materialize([], instance=instance, tags=request.tags)  # the run record the retry window reads
    assert result.success
    config = CatalogConfig(**request.run_config["ops"]["sku_catalog"]["config"])
    return ingest_catalog_file(instance, storage, config, logging.getLogger("nightly"))


def test_the_schedule_only_requests_an_ingest_run(catalog_path, tmp_path):
    with dg.instance_for_test() as instance:
        request = nightly(instance, 20)
        assert request.run_key == "nightly:2026-11-20" and request.tags["skuvid/nightly"] == "2026-11-20"
        assert request.run_config["ops"]["sku_catalog"]["config"]["source"] == str(catalog_path)
        assert instance.get_dynamic_partitions("sku") == [] and not (tmp_path / "data").exists()


def test_nightly_refresh_keeps_a_drop_edit_and_requests_a_failed_sku_again(catalog_path, tmp_path, monkeypatch):
    storage = StorageResource(root=str(tmp_path / "data"))
    monkeypatch.setenv("SKUVID_RENDER_ATTEMPTS", "1")
    with dg.instance_for_test() as instance:
        run_ingest(instance, storage, nightly(instance, 20))
        # A drop edits HERO-1 after the catalog file was written.
        drop = write_catalog(tmp_path / "drop", ROWS["HERO-1"].replace("Fizz bottle", "Fizz bottle XL"))
        edited_at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat(timespec="microseconds")
        run_ingest(instance, storage, dg.RunRequest(run_config={"ops": {"sku_catalog": {"config": {
            "source": str(drop), "brands": str(drop.parent / "brands.yaml"), "modified_at": edited_at}}}}))
        edited_hash = read_catalog(storage).set_index("sku_id").loc["HERO-1", "content_hash"]

        context = dg.build_sensor_context(instance=instance, resources={"storage": storage})
        assert launch(instance, sku_renders(context), StorageResource(root=str(tmp_path / "empty"))) == 2
        assert isinstance(sku_renders(context), dg.SkipReason), "both failed their one attempt"

        metadata = run_ingest(instance, storage, nightly(instance, 21))
        catalog = read_catalog(storage).set_index("sku_id")
        assert catalog.loc["HERO-1", "title"] == "Fizz bottle XL" and catalog.loc["HERO-1", "content_hash"] == edited_hash
        assert metadata["kept_newer_edits"] == 1 and metadata["changed_skus"] == 0
        again = sku_renders(context)
        assert sorted(r.run_key for r in again.run_requests) == sorted(
            f"{sku}:{catalog.loc[sku, 'content_hash']}:2026-11-21" for sku in ("BULK-2", "HERO-1"))

        # The catalog file itself changes later: its newer edit wins over the drop's.
        catalog_path.write_text(catalog_csv(ROWS["HERO-1"].replace("Fizz bottle", "Fizz bottle 3"), ROWS["BULK-2"]))
        later = (datetime.now(UTC) + timedelta(minutes=2)).timestamp()
        os.utime(catalog_path, (later, later))
        run_ingest(instance, storage, nightly(instance, 22))
        assert read_catalog(storage).set_index("sku_id").loc["HERO-1", "title"] == "Fizz bottle 3"
