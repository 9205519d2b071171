"""A file put into S3 becomes published videos with no human step, on a Dagster instance in PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from assets.catalog.sku_catalog import sku_catalog
from assets.sku_video.publish import read_manifest
from pipelines.definitions import defs
from pipelines.jobs import sku_video_job
from pipelines.resources import build_resources
from pipelines.sensors import new_sku_drops, sku_renders
from resources.storage import StorageResource
from tests.pipelines.fixtures import BRANDS_YAML, ROWS, catalog_csv, write_packshots

REPO = Path(__file__).resolve().parents[2]


def postgres_instance(tmp_path, postgres_server, monkeypatch) -> dg.DagsterInstance:
    """The repository's own dagster.postgres.yaml, pointed at a fresh database on the test server."""
    engine = sa.create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text("CREATE DATABASE dagster_e2e"))
    engine.dispose()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_server.url.replace("/postgres", "/dagster_e2e").replace("+psycopg2", ""))
    return dg.DagsterInstance.from_config(str(home))


def test_drop_to_published_on_s3_and_postgres(tmp_path, s3_bucket, s3_env, postgres_server, monkeypatch):
    client = s3_env.client()
    for name, path in write_packshots(tmp_path / "shots").items():
        client.put_object(Bucket=s3_bucket, Key=f"drops/packshots/{name}", Body=path.read_bytes())
    (tmp_path / "brands.yaml").write_text(BRANDS_YAML)
    monkeypatch.setenv("SKUVID_DROP_ZONE", f"s3://{s3_bucket}/drops/")
    monkeypatch.setenv("SKUVID_BRANDS", str(tmp_path / "brands.yaml"))
    storage = StorageResource(root=f"s3://{s3_bucket}/skuvid")
    client.put_object(Bucket=s3_bucket, Key="drops/new.csv", Body=catalog_csv(ROWS["HERO-1"], ROWS["BULK-2"]))

    instance = postgres_instance(tmp_path, postgres_server, monkeypatch)
    try:
        assert "Postgres" in type(instance.run_storage).__name__
        [ingest] = new_sku_drops(dg.build_sensor_context(instance=instance)).run_requests
        resources = {**build_resources(), "storage": storage}
        assert dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=ingest.run_config,
                              tags={"dagster/run_key": ingest.run_key}).success
        result = sku_renders(dg.build_sensor_context(instance=instance, resources={"storage": storage}))
        job = dg.Definitions(assets=list(defs.assets), jobs=[sku_video_job], resources=resources
                             ).resolve_job_def(sku_video_job.name)
        for request in result.run_requests:
            run = job.execute_in_process(partition_key=request.partition_key, instance=instance,
                                         tags={"dagster/run_key": request.run_key})
            assert run.success

        manifest = read_manifest(storage).set_index("sku_id")
        assert sorted(manifest.index) == ["BULK-2", "HERO-1"]
        for sku, row in manifest.iterrows():
            assert row["video_url"] == f"{sku}/{row['content_hash']}.mp4"  # relative to the published root
            assert storage.url(row["video_key"]) == f"s3://{s3_bucket}/skuvid/published/{sku}/{row['content_hash']}.mp4"
            head = client.head_object(Bucket=s3_bucket, Key=f"skuvid/published/{sku}/{row['content_hash']}.mp4")
            assert head["ContentLength"] == row["bytes"] > 10_000
        assert len(instance.get_runs()) == 3  # one ingest run, one render run per SKU
    finally:
        instance.dispose()
