"""The S3 drop sensor against a real S3 server (SeaweedFS on 127.0.0.1)."""

import csv
import io
import time

import dagster as dg
import pandas as pd
import pytest

from assets.catalog.sku_catalog import read_catalog
from pipelines.sensors import Drop, new_sku_drops
from resources.sources import SourcePolicy, SourceRefused, read_source
from resources.storage import StorageResource, parent_of
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


def keys_in(client, bucket) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix="drops/")
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", []) if not o["Key"].startswith("drops/packshots/")}


def test_a_key_with_a_fragment_never_touches_another_object(drop_zone, storage):
    client, bucket = drop_zone
    victim = catalog_csv(ROWS["HERO-1"]).encode()
    client.put_object(Bucket=bucket, Key="drops/victim.csv", Body=victim)
    with dg.instance_for_test() as instance:
        first = tick(instance, storage)
        client.put_object(Bucket=bucket, Key="drops/victim.csv#x.csv",
                          Body=catalog_csv("=HYPERLINK(\"http://x\"),X,c,fresh,packshots/hero.png,hero,,"))
        second = tick(instance, storage, first.cursor)
    objects = keys_in(client, bucket)
    assert objects["drops/victim.csv"] == victim
    assert sorted(objects) == ["drops/victim.csv", "drops/victim.csv#x.csv", "drops/victim.csv#x.csv.rejects.csv"]
    rejects = rejects_of(client, bucket, "drops/victim.csv#x.csv")
    assert rejects[0]["sku_id"].startswith("'=HYPERLINK") and rejects[0]["field"] == "sku_id"
    assert second.asset_events[0].metadata["drop"].value == f"s3://{bucket}/drops/victim.csv%23x.csv"


@pytest.mark.parametrize("key", ["drops//p.csv", "drops/q?x=1.csv", "drops/100%41.csv", "drops/a b ü€.csv",
                                 "drops/%2e%2e/p.csv", "drops/a%2Fb/p#1.csv"])
def test_any_legal_key_is_ingested_and_reported_under_its_own_name(drop_zone, storage, key):
    client, bucket = drop_zone
    folder = key.rsplit("/", 1)[0]
    if folder != "drops" and "//" not in key:  # relative image names resolve in the drop's own folder
        shot = client.get_object(Bucket=bucket, Key="drops/packshots/bulk.png")["Body"].read()
        client.put_object(Bucket=bucket, Key=f"{folder}/packshots/bulk.png", Body=shot)
    client.put_object(Bucket=bucket, Key=key, Body=catalog_csv(ROWS["BULK-2"], "bad*id,X,c,fresh,p.png,hero,,"))
    client.put_object(Bucket=bucket, Key="drops/z-after.csv", Body=catalog_csv(ROWS["HERO-1"]))
    with dg.instance_for_test() as instance:
        result = tick(instance, storage)
        assert sorted(r.partition_key for r in result.run_requests) == ["BULK-2", "HERO-1"]
        assert isinstance(tick(instance, storage, result.cursor), dg.SkipReason)
    # SeaweedFS stores some spellings under a normalised key (`//` -> `/`); the sensor works on the listed key.
    stored = next(k for k in keys_in(client, bucket) if k != "drops/z-after.csv" and not k.endswith(".rejects.csv"))
    assert [r["sku_id"] for r in rejects_of(client, bucket, stored)] == ["bad*id"]
    assert sorted(k for k in keys_in(client, bucket) if "/packshots/" not in k) == sorted(
        ["drops/z-after.csv", stored, stored + ".rejects.csv"])


@pytest.mark.parametrize("key", ["drops/../p.csv", "drops/./p.csv", "drops/x/../../p.csv"])
def test_dot_segment_keys_keep_their_report_beside_them_and_read_nothing_above(key):
    # SeaweedFS refuses such keys, AWS S3 stores them literally: checked here without a server.
    drop = Drop("bucket", key, "drops/")
    assert drop.report_key == key + ".rejects.csv"
    with pytest.raises(SourceRefused, match="not allowed by the source policy"):
        read_source("packshots/x.png", base=parent_of(drop.uri), policy=SourcePolicy(s3_prefixes=("bucket/drops/",)))


def test_a_file_that_fails_is_reported_and_the_files_after_it_go_on(drop_zone, storage, tmp_path, monkeypatch):
    client, bucket = drop_zone
    long_key = "drops/" + "/".join(["k" * 200] * 5) + ".csv"  # its report's natural key passes 1,024 bytes
    client.put_object(Bucket=bucket, Key=long_key, Body=b"\xff\xfe not a catalog")
    client.put_object(Bucket=bucket, Key="drops/z-after.csv", Body=catalog_csv(ROWS["HERO-1"]))
    with dg.instance_for_test() as instance:
        result = tick(instance, storage)
        assert [r.partition_key for r in result.run_requests] == ["HERO-1"]
        observation = next(e for e in result.asset_events if isinstance(e, dg.AssetObservation))
        report = observation.metadata["rejects_report"].value
        assert report.startswith(f"s3://{bucket}/drops/rejects/")
        rows = list(csv.DictReader(io.StringIO(client.get_object(
            Bucket=bucket, Key=report.removeprefix(f"s3://{bucket}/"))["Body"].read().decode())))
        assert rows[0]["field"] == "file" and rows[0]["reason"] == observation.metadata["rejected_file"].value
        assert "kkk" not in rows[0]["reason"]
        assert len(rows[0]["source"]) == 300 and rows[0]["source"].endswith("…")
        assert isinstance(tick(instance, storage, result.cursor), dg.SkipReason)
