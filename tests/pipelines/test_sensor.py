"""The S3 drop sensor and the render sensor against a real S3 server (SeaweedFS on 127.0.0.1).

The drop sensor only lists: each new file becomes one ingest run (`catalog_job`), executed here in-process as the
daemon would launch it. The render sensor requests runs from durable state only.
"""

import csv
import io
import logging
import threading
import time
from dataclasses import dataclass

import boto3
import dagster as dg
import pytest

import pandas as pd

from assets.catalog.sku_catalog import CatalogConfig, ingest_catalog_file, read_catalog, sku_catalog, write_parquet
from assets.sku_video.publish import MANIFEST_COLUMNS, manifest_key
from pipelines import render_requests
from pipelines.definitions import defs
from pipelines.jobs import sku_video_job
from pipelines.render_requests import RANGE_END_TAG, RANGE_START_TAG
from pipelines.sensors import Drop, new_sku_drops, sku_renders
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
    monkeypatch.setenv("SKUVID_PACKSHOT_WAIT_S", "0")
    return client, s3_bucket


@pytest.fixture
def storage(tmp_path):
    return StorageResource(root=str(tmp_path / "data"))


@pytest.fixture
def s3_calls(monkeypatch) -> list[str]:
    """The name of every S3 operation made by clients created from here on."""
    calls, real_client = [], boto3.client

    def recording_client(*args, **kwargs):
        client = real_client(*args, **kwargs)
        client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
        return client

    monkeypatch.setattr(boto3, "client", recording_client)
    return calls


def tick(instance, cursor=None):
    return new_sku_drops(dg.build_sensor_context(instance=instance, cursor=cursor))


def ingest_run(instance, storage, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The ingest run the daemon launches for a request, executed in this process."""
    return dg.materialize([sku_catalog], instance=instance, resources={"storage": storage},
                          run_config=request.run_config, tags=request.tags, raise_on_error=False)


@dataclass
class Ingested:
    """What the ingest run's asset did, called directly: the same code without a run's start-up cost."""

    success: bool
    metadata: dict


def ingest(instance, storage, request: dg.RunRequest) -> Ingested:
    config = CatalogConfig(**request.run_config["ops"]["sku_catalog"]["config"])
    try:
        return Ingested(True, ingest_catalog_file(instance, storage, config, logging.getLogger("ingest")))
    except dg.Failure as failure:
        return Ingested(False, {"failure": failure.description})


def tick_and_ingest(instance, storage, cursor=None):
    result = tick(instance, cursor)
    runs = [ingest(instance, storage, r) for r in result.run_requests] if isinstance(result, dg.SensorResult) else []
    return result, runs


def rejects_of(client, bucket, key) -> list[dict]:
    body = client.get_object(Bucket=bucket, Key=key + ".rejects.csv")["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


def drop_config(request: dg.RunRequest) -> dict:
    return request.run_config["ops"]["sku_catalog"]["config"]


def test_sensor_requests_one_ingest_run_per_file_and_never_reads_it(drop_zone, storage, s3_calls):
    client, bucket = drop_zone
    client.put_object(Bucket=bucket, Key="drops/monday.csv",
                      Body=catalog_csv(ROWS["HERO-1"], "bad*id,X,c,fresh,packshots/hero.png,hero,,", ROWS["BULK-2"]))
    client.put_object(Bucket=bucket, Key="drops/tuesday.jsonl", Body=b"not even json")
    client.put_object(Bucket=bucket, Key="drops/notes.txt", Body=b"ignored")
    with dg.instance_for_test() as instance:
        s3_calls.clear()
        result = tick(instance)
        assert set(s3_calls) == {"ListObjectsV2"}, "the sensor lists the zone and reads no file"
        assert not result.dynamic_partitions_requests and not result.asset_events
        assert sorted(drop_config(r)["drop_key"] for r in result.run_requests) == ["drops/monday.csv",
                                                                                  "drops/tuesday.jsonl"]
        assert len({r.run_key for r in result.run_requests}) == 2
        assert isinstance(tick(instance, result.cursor), dg.SkipReason)
        assert [r.run_key for r in tick(instance).run_requests] == [r.run_key for r in result.run_requests], \
            "a tick that did not keep its cursor requests the same run keys: Dagster launches them once"

        monday = next(r for r in result.run_requests if drop_config(r)["drop_key"] == "drops/monday.csv")
        run = ingest_run(instance, storage, monday)
        assert run.success
        assert sorted(instance.get_dynamic_partitions("sku")) == ["BULK-2", "HERO-1"]
        assert sorted(read_catalog(storage)["sku_id"]) == ["BULK-2", "HERO-1"]
        assert [(r["row"], r["field"]) for r in rejects_of(client, bucket, "drops/monday.csv")] == [("2", "sku_id")]
        metadata = run.asset_materializations_for_node("sku_catalog")[0].metadata
        assert metadata["rejected_rows"].value == 1 and metadata["drop"].value == f"s3://{bucket}/drops/monday.csv"

        client.put_object(Bucket=bucket, Key="drops/monday.csv",
                          Body=catalog_csv(ROWS["HERO-1"].replace("Fizz bottle", "Fizz bottle 2.0")))
        again = tick(instance, result.cursor)
        assert [drop_config(r)["drop_key"] for r in again.run_requests] == ["drops/monday.csv"]
        assert again.run_requests[0].run_key != monday.run_key, "a rewritten file is a new file"


def test_a_bad_file_fails_its_run_with_a_report_and_the_next_file_goes_on(drop_zone, storage):
    client, bucket = drop_zone
    client.put_object(Bucket=bucket, Key="drops/1-broken.parquet", Body=b"not a parquet file")
    client.put_object(Bucket=bucket, Key="drops/2-no-columns.csv", Body=b"sku_id,title\nA,B\n")
    client.put_object(Bucket=bucket, Key="drops/3-good.csv", Body=catalog_csv(ROWS["BULK-2"]))
    with dg.instance_for_test() as instance:
        result, runs = tick_and_ingest(instance, storage)
        assert [run.success for run in runs] == [False, False, True]
        broken = rejects_of(client, bucket, "drops/1-broken.parquet")
        assert broken[0]["field"] == "file" and "cannot be read as parquet" in broken[0]["reason"]
        assert "missing required column" in rejects_of(client, bucket, "drops/2-no-columns.csv")[0]["reason"]
        assert list(read_catalog(storage)["sku_id"]) == ["BULK-2"]
        assert isinstance(tick(instance, result.cursor), dg.SkipReason), "reports are not taken for drops"


def test_unset_drop_zone_skips_with_reason(monkeypatch):
    monkeypatch.delenv("SKUVID_DROP_ZONE", raising=False)
    with dg.instance_for_test() as instance:
        assert "SKUVID_DROP_ZONE" in tick(instance).skip_message


def keys_in(client, bucket) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix="drops/")
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", []) if not o["Key"].startswith("drops/packshots/")}


def test_a_key_with_a_fragment_never_touches_another_object(drop_zone, storage):
    client, bucket = drop_zone
    victim = catalog_csv(ROWS["HERO-1"]).encode()
    client.put_object(Bucket=bucket, Key="drops/victim.csv", Body=victim)
    with dg.instance_for_test() as instance:
        first, _ = tick_and_ingest(instance, storage)
        client.put_object(Bucket=bucket, Key="drops/victim.csv#x.csv",
                          Body=catalog_csv("=HYPERLINK(\"http://x\"),X,c,fresh,packshots/hero.png,hero,,"))
        _, [run] = tick_and_ingest(instance, storage, first.cursor)
    objects = keys_in(client, bucket)
    assert objects["drops/victim.csv"] == victim
    assert sorted(objects) == ["drops/victim.csv", "drops/victim.csv#x.csv", "drops/victim.csv#x.csv.rejects.csv"]
    rejects = rejects_of(client, bucket, "drops/victim.csv#x.csv")
    assert rejects[0]["sku_id"].startswith("'=HYPERLINK") and rejects[0]["field"] == "sku_id"
    assert run.metadata["drop"] == f"s3://{bucket}/drops/victim.csv%23x.csv"


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
        result, runs = tick_and_ingest(instance, storage)
        assert all(run.success for run in runs) and len(runs) == 2
        assert sorted(instance.get_dynamic_partitions("sku")) == ["BULK-2", "HERO-1"]
        assert isinstance(tick(instance, result.cursor), dg.SkipReason)
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


def test_a_file_that_fails_is_reported_beside_a_key_too_long_for_its_report(drop_zone, storage):
    client, bucket = drop_zone
    long_key = "drops/" + "/".join(["k" * 200] * 5) + ".csv"  # its report's natural key passes 1,024 bytes
    client.put_object(Bucket=bucket, Key=long_key, Body=b"\xff\xfe not a catalog")
    with dg.instance_for_test() as instance:
        _, [run] = tick_and_ingest(instance, storage)
        assert not run.success
        listed = client.list_objects_v2(Bucket=bucket, Prefix="drops/rejects/")["Contents"]
        assert len(listed) == 1 and listed[0]["Key"].endswith(".rejects.csv")
        rows = list(csv.DictReader(io.StringIO(client.get_object(
            Bucket=bucket, Key=listed[0]["Key"])["Body"].read().decode())))
        assert rows[0]["field"] == "file" and "not UTF-8" in rows[0]["reason"] and "kkk" not in rows[0]["reason"]
        assert len(rows[0]["source"]) == 300 and rows[0]["source"].endswith("…")


def test_a_packshot_that_lands_after_its_csv_is_picked_up_and_a_missing_one_rejected(drop_zone, storage, monkeypatch):
    client, bucket = drop_zone
    monkeypatch.setenv("SKUVID_PACKSHOT_WAIT_S", "3")
    monkeypatch.setenv("SKUVID_PACKSHOT_POLL_S", "0.5")
    client.put_object(Bucket=bucket, Key="drops/early.csv", Body=catalog_csv(
        ROWS["HERO-1"], ROWS["BULK-2"].replace("packshots/bulk.png", "late/bulk.png"),
        "NEVER-3,Ghost,kitchen,night,late/never.png,bulk,,1:1"))
    shot = client.get_object(Bucket=bucket, Key="drops/packshots/bulk.png")["Body"].read()
    with dg.instance_for_test() as instance:
        [request] = tick(instance).run_requests
        outcome = {}
        ingesting = threading.Thread(target=lambda: outcome.update(run=ingest(instance, storage, request)))
        started = time.monotonic()
        ingesting.start()
        deadline = time.monotonic() + 10  # the first pass has written the catalog and a report listing the waits
        while time.monotonic() < deadline and not keys_in(client, bucket).get("drops/early.csv.rejects.csv"):
            time.sleep(0.1)
        waiting = rejects_of(client, bucket, "drops/early.csv")
        assert [(r["row"], r["sku_id"]) for r in waiting] == [("2", "BULK-2"), ("3", "NEVER-3")]
        assert all("waiting up to 3 s" in r["reason"] for r in waiting)
        assert list(read_catalog(storage)["sku_id"]) == ["HERO-1"], "good rows do not wait for the late ones"
        client.put_object(Bucket=bucket, Key="drops/late/bulk.png", Body=shot)
        ingesting.join(30)
        assert outcome["run"].success and 3 <= time.monotonic() - started < 20
    assert sorted(read_catalog(storage)["sku_id"]) == ["BULK-2", "HERO-1"]
    [rejected] = rejects_of(client, bucket, "drops/early.csv")
    assert rejected["sku_id"] == "NEVER-3" and "still unavailable after waiting 3 s" in rejected["reason"]


# The render sensor ---------------------------------------------------------------------------------------------


def render_tick(instance, storage):
    return sku_renders(dg.build_sensor_context(instance=instance, resources={"storage": storage}))


def launch(instance, result, failing_storage) -> int:
    """Launch a tick's requests as the daemon does: one run per run key, ever. The runs fail at once (their storage
    holds no catalog), which is enough to count them; rendering is other tests' business."""
    job = dg.Definitions(assets=list(defs.assets), jobs=[sku_video_job],
                         resources={**defs.resources, "storage": failing_storage}).resolve_job_def(sku_video_job.name)
    launched = 0
    for request in getattr(result, "run_requests", []):
        if instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
            continue
        job.execute_in_process(partition_key=request.partition_key, instance=instance, raise_on_error=False,
                               tags={**request.tags, "dagster/run_key": request.run_key})
        launched += 1
    return launched


def runs_per_sku(instance) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in instance.get_runs(dg.RunsFilter(job_name=sku_video_job.name)):
        counts[run.tags["dagster/partition"]] = counts.get(run.tags["dagster/partition"], 0) + 1
    return counts


def publish(storage, sku: str, content_hash: str) -> None:
    row = {column: None for column in MANIFEST_COLUMNS} | {"sku_id": sku, "content_hash": content_hash}
    write_parquet(storage, manifest_key(sku), pd.DataFrame([row], columns=MANIFEST_COLUMNS).astype(object))


def test_previews_and_a_failed_tick_never_lose_a_sku(drop_zone, storage, tmp_path, monkeypatch):
    client, bucket = drop_zone
    rows = [ROWS["HERO-1"], ROWS["BULK-2"], ROWS["BULK-2"].replace("BULK-2", "BULK-3")]
    client.put_object(Bucket=bucket, Key="drops/three.csv", Body=catalog_csv(*rows))
    with dg.instance_for_test() as instance:
        tick_and_ingest(instance, storage)
        before = sorted(storage.list_keys(""))
        preview = render_tick(instance, storage)  # "Test sensor" and `dagster sensor preview` evaluate like this
        assert sorted(r.partition_key for r in preview.run_requests) == ["BULK-2", "BULK-3", "HERO-1"]
        assert sorted(storage.list_keys("")) == before and instance.get_runs() == []

        real = render_requests.published_hashes
        monkeypatch.setattr(render_requests, "published_hashes", lambda s: (_ for _ in ()).throw(OSError("S3 down")))
        with pytest.raises(OSError):
            render_tick(instance, storage)  # a tick that fails after the ingest
        monkeypatch.setattr(render_requests, "published_hashes", real)

        failing = StorageResource(root=str(tmp_path / "empty"))
        assert launch(instance, render_tick(instance, storage), failing) == 3
        assert launch(instance, render_tick(instance, storage), failing) == 0  # failed once: backing off
        assert runs_per_sku(instance) == {"BULK-2": 1, "BULK-3": 1, "HERO-1": 1}

        hashes = read_catalog(storage).set_index("sku_id")["content_hash"]
        for sku in ("HERO-1", "BULK-2"):
            publish(storage, sku, hashes[sku])
        monkeypatch.setenv("SKUVID_RENDER_BACKOFF_S", "0")
        retry = render_tick(instance, storage)
        assert [(r.partition_key, r.run_key) for r in retry.run_requests] == [
            ("BULK-3", f"BULK-3:{hashes['BULK-3']}:retry-1")], "published SKUs are done; a failed one is retried"
        monkeypatch.setenv("SKUVID_RENDER_ATTEMPTS", "1")
        assert isinstance(render_tick(instance, storage), dg.SkipReason), "past its attempts a SKU waits"


def test_a_big_drop_is_one_quick_tick_and_batched_render_runs(drop_zone, storage, s3_calls):
    client, bucket = drop_zone
    skus = 10_000
    lines = [f"SKU-{i:06d},Item {i},kitchen,night,packshots/bulk.png,bulk,,1:1" for i in range(skus)]
    client.put_object(Bucket=bucket, Key="drops/big.csv", Body=catalog_csv(*lines))
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        [request] = tick(instance).run_requests
        assert time.perf_counter() - started < 5
        assert ingest(instance, storage, request).success
        assert len(instance.get_dynamic_partitions("sku")) == skus
        started = time.perf_counter()
        result = render_tick(instance, storage)
        elapsed = time.perf_counter() - started
    assert elapsed < 30, f"render tick took {elapsed:.1f} s"
    ranges = [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in result.run_requests]
    assert len(ranges) == 100 and ranges[0] == ("SKU-000000", "SKU-000099") and ranges[-1][1] == "SKU-009999"
