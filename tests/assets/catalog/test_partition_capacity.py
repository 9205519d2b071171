"""A catalog with more new SKUs than SQLite can add as partitions at once is refused before anything is written,
with a message that says to move to PostgreSQL. The limit is a setting here; bench/sqlite_partition_limit.py
proves the real one (too many SQL variables) is where the guard puts it."""

import dagster as dg
import pytest

from assets.catalog.partition_capacity import (
    VARIABLE_LIMIT_SETTING,
    PartitionCapacityError,
    check_partition_capacity,
    max_new_partitions_per_add,
)
from assets.catalog.sku_catalog import CATALOG_KEY, sku_catalog
from assets.partitions import sku_partitions
from resources.storage import StorageResource
from tests.pipelines.fixtures import ROWS, write_catalog

THIRD = "BULK-3,Blue mug,kitchen,night,packshots/bulk.png,bulk,,1:1"


def materialize_catalog(instance, storage, path):
    config = {"source": str(path), "brands": str(path.parent / "brands.yaml")}
    return dg.materialize([sku_catalog], instance=instance, resources={"storage": storage}, raise_on_error=False,
                          run_config={"ops": {"sku_catalog": {"config": config}}})


def test_sqlite_refuses_the_file_before_writing_and_names_postgres(tmp_path, monkeypatch):
    monkeypatch.setenv(VARIABLE_LIMIT_SETTING, "3")  # one add takes 2 keys plus the partition set's name
    storage = StorageResource(root=str(tmp_path / "data"))
    too_many = write_catalog(tmp_path / "three", ROWS["HERO-1"], ROWS["BULK-2"], THIRD)
    with dg.instance_for_test() as instance:
        result = materialize_catalog(instance, storage, too_many)

        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "3 new `sku` partitions" in failure and "at most 2 at once" in failure
        assert "PostgreSQL" in failure and "dagster.postgres.yaml" in failure and str(too_many) in failure
        assert not storage.exists(CATALOG_KEY) and instance.get_dynamic_partitions("sku") == []

        # SKUs that are already partitions (in any case) do not count: two files of two new SKUs each fit.
        assert materialize_catalog(instance, storage, write_catalog(tmp_path / "two", ROWS["HERO-1"],
                                                                    ROWS["BULK-2"])).success
        instance.add_dynamic_partitions(sku_partitions.name, ["bulk-4"])
        assert check_partition_capacity(instance, "sku", "next.csv", ["hero-1", "BULK-2", "BULK-3", "BULK-4"]) == 1
        assert check_partition_capacity(instance, "sku", "next.csv", ["BULK-3", "BULK-5", "bulk-5"]) == 2
        with pytest.raises(PartitionCapacityError, match="next.csv: 3 new"):
            check_partition_capacity(instance, "sku", "next.csv", ["BULK-3", "BULK-5", "BULK-6"])


def test_postgres_takes_any_number(postgres_server, monkeypatch):
    monkeypatch.setenv(VARIABLE_LIMIT_SETTING, "3")
    overrides = {"storage": {"postgres": {"postgres_url": postgres_server.url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert check_partition_capacity(instance, "sku-capacity", "big.csv", [f"S{i}" for i in range(10)]) == 10


@pytest.mark.parametrize("value", ["many", "1", "-5", "99999999999"])
def test_a_bad_limit_setting_names_the_setting(value, monkeypatch):
    monkeypatch.setenv(VARIABLE_LIMIT_SETTING, value)
    with pytest.raises(PartitionCapacityError, match=VARIABLE_LIMIT_SETTING):
        max_new_partitions_per_add()
