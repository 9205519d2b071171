"""The S3 drop sensor against a real S3 server (SeaweedFS on 127.0.0.1)."""

import csv
import io
import time

import dagster as dg
import pandas as pd
import pytest

from assets.catalog import read_catalog
from pipelines.sensors import new_sku_drops
from resources.storage import StorageResource
from tests.pipelines.fixtures import BRANDS_YAML, ROWS, catalog_csv, write_packshots


@pytest.fixture
def drop_zone(tmp_path, s3_bucket, s3_env, monkeypatch):
    client = s3_env.client()
    for name, path in write_packshots(tmp_path / "shots").items():
        client.put_object(Bucket=s3_bucket, Key=f"drops/packshots/{name}", Body=path.read_bytes())
    (tmp_path / "brands.yaml").write_text(BRANDS_YAML)
    monkeypatch.setenv("SKUVID_DROP_ZONE", f"s3://{s3_bucket}/drops/")
    monkeypatch.setenv("SKUVID_BRANDS", str(tmp_path / "brands.yaml"))
    return client, s3_bucket


@pytest.fixture
def storage(tmp_path):
    return StorageResource(root=str(tmp_path / "data"))


def tick(instance, storage, cursor=None):
    """One sensor evaluation; partition requests are applied to the instance as the daemon would."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
    result = new_sku_drops(context)
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def rejects_of(client, bucket, key) -> list[dict]:
    body = client.get_object(Bucket=bucket, Key=key + ".rejects.csv")["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_new_file_adds_partitions_requests_runs_and_reports_bad_rows(drop_zone, storage):
    client, bucket = drop_zone
    client.put_object(Bucket=bucket, Key="drops/monday.csv",
                      Body=catalog_csv(ROWS["HERO-1"], "bad*id,X,c,fresh,packshots/hero.png,hero,,", ROWS["BULK-2"]))
    with dg.instance_for_test() as instance:
        result = tick(instance, storage)
        assert isinstance(result, dg.SensorResult)
        hashes = read_catalog(storage).set_index("sku_id")["content_hash"]
        assert sorted(r.run_key for r in result.run_requests) == sorted(f"{s}:{hashes[s]}" for s in ("HERO-1", "BULK-2"))
        assert {r.partition_key for r in result.run_requests} == {"HERO-1", "BULK-2"}
        assert sorted(result.dynamic_partitions_requests[0].partition_keys) == ["BULK-2", "HERO-1"]
        assert result.asset_events[0].metadata["rejected_rows"].value == 1
        rejects = rejects_of(client, bucket, "drops/monday.csv")
        assert [(r["row"], r["field"]) for r in rejects] == [("2", "sku_id")]

        again = tick(instance, storage, result.cursor)
        assert isinstance(again, dg.SkipReason), "the rejects report must not be taken for a new drop"


def test_rewritten_file_is_seen_again_and_only_changed_skus_run(drop_zone, storage):
    client, bucket = drop_zone
    client.put_object(Bucket=bucket, Key="drops/cat.csv", Body=catalog_csv(ROWS["HERO-1"], ROWS["BULK-2"]))
    with dg.instance_for_test() as instance:
        first = tick(instance, storage)
        client.put_object(Bucket=bucket, Key="drops/cat.csv",
                          Body=catalog_csv(ROWS["HERO-1"].replace("Fizz bottle", "Fizz bottle 2.0"), ROWS["BULK-2"]))
        second = tick(instance, storage, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["HERO-1"]
        assert second.run_requests[0].run_key != next(r.run_key for r in first.run_requests if r.partition_key == "HERO-1")
        assert not second.dynamic_partitions_requests


def test_duplicate_content_under_another_key_launches_nothing(drop_zone, storage):
    client, bucket = drop_zone
    body = catalog_csv(ROWS["HERO-1"])
    client.put_object(Bucket=bucket, Key="drops/a.csv", Body=body)
    with dg.instance_for_test() as instance:
        first = tick(instance, storage)
        time.sleep(1.1)  # a later LastModified, as a real re-drop would have
        client.put_object(Bucket=bucket, Key="drops/copy-of-a.jsonl",
                          Body=pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False)
                          .to_json(orient="records", lines=True).encode())
        second = tick(instance, storage, first.cursor)
        assert second.run_requests == []
        assert second.asset_events[0].metadata["unchanged_skus"].value == 1


def test_bad_file_gets_a_report_and_does_not_block_the_next(drop_zone, storage):
    client, bucket = drop_zone
    client.put_object(Bucket=bucket, Key="drops/1-broken.parquet", Body=b"not a parquet file")
    client.put_object(Bucket=bucket, Key="drops/2-no-columns.csv", Body=b"sku_id,title\nA,B\n")
    client.put_object(Bucket=bucket, Key="drops/3-good.csv", Body=catalog_csv(ROWS["BULK-2"]))
    client.put_object(Bucket=bucket, Key="drops/notes.txt", Body=b"ignored")
    with dg.instance_for_test() as instance:
        result = tick(instance, storage)
        assert [r.partition_key for r in result.run_requests] == ["BULK-2"]
        broken = rejects_of(client, bucket, "drops/1-broken.parquet")
        assert broken[0]["field"] == "file" and "cannot be read as parquet" in broken[0]["reason"]
        assert "missing required column" in rejects_of(client, bucket, "drops/2-no-columns.csv")[0]["reason"]
        assert isinstance(tick(instance, storage, result.cursor), dg.SkipReason)


def test_unset_drop_zone_skips_with_reason(monkeypatch, storage):
    monkeypatch.delenv("SKUVID_DROP_ZONE", raising=False)
    with dg.instance_for_test() as instance:
        assert "SKUVID_DROP_ZONE" in tick(instance, storage).skip_message
