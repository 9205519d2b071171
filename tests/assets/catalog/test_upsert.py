"""Two catalog writers at once (a drop sensor tick and the nightly refresh) never lose each other's SKUs."""

import pytest

from assets.catalog import sku_catalog as catalog
from assets.catalog.sku_catalog import ingest_catalog, read_catalog
from resources.storage import StorageResource
from tests.pipelines.fixtures import ROWS, write_catalog


@pytest.fixture
def two_catalogs(tmp_path):
    return (write_catalog(tmp_path / "monday", ROWS["HERO-1"]), write_catalog(tmp_path / "tuesday", ROWS["BULK-2"]))


def ingest(storage: StorageResource, path) -> catalog.IngestReport:
    return ingest_catalog(storage, str(path), str(path.parent / "brands.yaml"), 50_000_000)


def test_interleaved_ingests_keep_both_files_rows(storage, two_catalogs, monkeypatch):
    monday, tuesday = two_catalogs
    real_upsert = catalog.upsert_catalog
    seen = []

    def upsert_with_a_rival(accepted, current, **kwargs):
        seen.append(current)
        if len(seen) == 1:  # Tuesday's file lands after Monday read the catalog and before Monday writes it
            monkeypatch.setattr(catalog, "upsert_catalog", real_upsert)
            ingest(storage, tuesday)
            monkeypatch.setattr(catalog, "upsert_catalog", upsert_with_a_rival)
        return real_upsert(accepted, current, **kwargs)

    monkeypatch.setattr(catalog, "upsert_catalog", upsert_with_a_rival)
    report = ingest(storage, monday)

    assert seen[0] is None and seen[1] is not None  # Monday's merge ran again on top of Tuesday's catalog
    assert sorted(read_catalog(storage)["sku_id"]) == ["BULK-2", "HERO-1"]
    assert report.new == ["HERO-1"] and report.changed == [] and report.unchanged == []
    brands = storage.read_json(catalog.BRANDS_KEY)
    assert {"fresh", "night"} <= set(brands)


def test_reingesting_the_same_file_reports_unchanged(storage, two_catalogs):
    monday, _ = two_catalogs
    assert ingest(storage, monday).new == ["HERO-1"]
    again = ingest(storage, monday)
    assert again.new == [] and again.unchanged == ["HERO-1"]


def test_an_older_file_never_reverts_a_newer_edit_from_another_file(storage, tmp_path):
    catalog_file = write_catalog(tmp_path / "nightly", ROWS["HERO-1"], ROWS["BULK-2"])
    drop = write_catalog(tmp_path / "drop", ROWS["HERO-1"].replace("Fizz bottle", "Fizz bottle XL"))
    old, new = "2026-11-20T02:00:00.000000+00:00", "2026-11-20T09:30:00.000000+00:00"
    brands = str(catalog_file.parent / "brands.yaml")
    ingest_catalog(storage, str(catalog_file), brands, 50_000_000, modified_at=old)
    first = read_catalog(storage).set_index("sku_id")
    edit = ingest_catalog(storage, str(drop), brands, 50_000_000, modified_at=new)
    assert edit.changed == ["HERO-1"]
    reload = ingest_catalog(storage, str(catalog_file), brands, 50_000_000, modified_at=old)
    assert reload.kept_newer == ["HERO-1"] and reload.changed == [] and reload.unchanged == ["BULK-2"]
    rows = read_catalog(storage).set_index("sku_id")
    assert rows.loc["HERO-1", "title"] == "Fizz bottle XL" and rows.loc["HERO-1", "updated_at"] == new
    assert rows.loc["BULK-2", "content_since"] == first.loc["BULK-2", "content_since"], "unchanged content keeps its time"
    assert rows.loc["HERO-1", "content_since"] > first.loc["HERO-1", "content_since"]
