"""A campaign on `cpu` Celery workers over a real Redis, storage on SeaweedFS (S3): one worker or two give the
same manifest and the same frames, and with two, the chunks ran on both."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import campaign_partitions
from resources.storage import StorageResource
from tests.assets.campaigns.small_campaign import assert_same_campaign
from tests.celery_workers import celery_worker, redis_server, workers_by_step

REPO = Path(__file__).resolve().parents[3]
LOCATION = "tests.pipelines.celery_location"


def launch(env: dict, spec: Path, cache: Path) -> str:
    """`dagster job execute` as a launcher runs it; the steps go to the workers. Returns the run id."""
    config = {"ops": {"campaign_clips": {"config": {"spec": str(spec), "chunk_size": 2,
                                                    "cache_dir": str(cache)}}}}
    config_path = Path(env["DAGSTER_HOME"]) / f"campaign-{uuid.uuid4().hex[:6]}.json"
    config_path.write_text(json.dumps(config))
    command = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", LOCATION, "-j", "campaign_job",
               "--tags", json.dumps({"dagster/partition": "spring"}), "-c", str(config_path)]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return instance.get_runs(limit=1)[0].run_id


def test_two_cpu_workers_give_the_same_campaign_as_one(small_campaign, s3_env, tmp_path):
    pytest.importorskip("dagster_celery")
    bucket = f"campaign-{uuid.uuid4().hex[:8]}"
    s3_env.client().create_bucket(Bucket=bucket)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # SQLite: every process here shares the disk
    with redis_server(tmp_path / "redis") as redis:
        # Workers build their resources from their own environment, as on other machines: each deployment
        # (one worker, then two) has its own storage prefix, so the second cannot reuse the first one's clips.
        base = {**os.environ, **redis.env(), "DAGSTER_HOME": str(home)}
        env = {name: {**base, "SKUVID_STORAGE_ROOT": f"s3://{bucket}/{name}"} for name in ("one", "two")}
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions(campaign_partitions.name, ["spring"])
        logs = tmp_path / "logs"
        with celery_worker("cpu", env["one"], logs, name="cpu-solo"):
            run_one = launch(env["one"], small_campaign, tmp_path / "cache-one")
        with celery_worker("cpu", env["two"], logs, name="cpu-a"), celery_worker("cpu", env["two"], logs, name="cpu-b"):
            run_two = launch(env["two"], small_campaign, tmp_path / "cache-two")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            ran_one = workers_by_step(instance, run_one)
            ran_two = workers_by_step(instance, run_two)

    chunks = [f"campaign_clips.render_campaign_chunk[a1x1_0000{i}]" for i in (0, 1)]
    assert {worker for step in chunks for worker in ran_one[step]} == {"cpu-solo"}
    assert {ran_two[step][-1] for step in chunks} == {"cpu-a", "cpu-b"}

    assert_same_campaign(StorageResource(root=f"s3://{bucket}/one"), StorageResource(root=f"s3://{bucket}/two"))
