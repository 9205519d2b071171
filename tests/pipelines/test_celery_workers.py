"""Runs whose steps execute on Celery workers over a real Redis, with the instance on PostgreSQL, artifacts on
SeaweedFS and the ledger on PostgreSQL: every process a real one on 127.0.0.1, started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.sku_video.publish import read_manifest
from devkit.sample_art import draw_packshot
from resources.storage import StorageResource
from tests.celery_workers import (
    LOCATION,
    RedisServer,
    celery_workers,
    deployment_env,
    job_execute,
    launcher_batches,
    redis_server,
    workers_by_step,
)
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]

ROUTING = """\
retakes: 0
default: {keyframe: [compose], clip: [motion]}
rules:
  - {name: hero, when: {tier: hero}, clip: [kling, motion]}
  - {name: gpu, when: {category: generated}, clip: [wan, motion]}
"""
BRANDS = "brands:\n  fresh:\n    background: {style: studio, colors: ['#F1ECE4', '#D6CBBB']}\n"
# The shortest clip the asset accepts: 3 s at 12 fps (sizes are fixed per aspect).
# The issue asks for about 30 SKUs: SKUVID_TEST_SKUS_PER_ROUTE=10 runs that; 4 keeps `make test` inside its budget.
SKUS_PER_ROUTE = int(os.environ.get("SKUVID_TEST_SKUS_PER_ROUTE", "4"))
CLIP_RUN_CONFIG = {"ops": {"clip": {"config": {"duration_s": 3.0, "fps": 12}}}}


@dataclass
class Cluster:
    """Servers shared by the tests of this module; each test makes its own databases, prefix and workers."""
    root: Path
    redis: RedisServer
    postgres_url: str
    s3_env: dict[str, str]
    bucket: str
    wan_path: str
    emulators: object

    def deployment(self, name: str, *, redis_db: int, redeliver_after_s: int = 600) -> dict[str, str]:
        """Everything a launcher and its workers share, as a deployment's environment would hold it."""
        return deployment_env(
            self.root / name, postgres_url=self.postgres_url, s3_env=self.s3_env,
            storage_root=f"s3://{self.bucket}/{name}", broker_url=f"redis://127.0.0.1:{self.redis.port}/{redis_db}",
            routing=ROUTING, kling=self.emulators.provider_settings()["kling"],
            SKUVID_CELERY_REDELIVER_AFTER_S=str(redeliver_after_s), SKUVID_WAN_PATH=self.wan_path,
            SKUVID_GPU_DEVICE="cpu", SKUVID_POOL_LEASE_S="4", SKUVID_POOL_LIMITS="gpu=1,api=4")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres_server, s3_server):
    pytest.importorskip("diffusers")
    from devkit.emulators import start_emulators
    from tests.resources.providers.gpu import tiny_pipelines

    root = tmp_path_factory.mktemp("celery")
    bucket = f"celery-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    wan_path = str(tiny_pipelines.save_wan_vace(root / "wan"))
    with redis_server(root / "redis") as redis, start_emulators(output_short_side=240) as emulators:
        yield Cluster(root, redis, postgres_server.url, s3_server.env(), bucket, wan_path, emulators)


def write_catalog(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    """rows: (sku_id, tier, category); packshots drawn in code, a few distinct ones reused."""
    (folder / "packshots").mkdir(parents=True, exist_ok=True)
    shapes = [("bottle", (40, 110, 70)), ("mug", (200, 70, 60)), ("can", (60, 80, 160))]
    for index, (shape, color) in enumerate(shapes):
        draw_packshot(shape, color=color, accent=(230, 200, 90), size=320).save(folder / "packshots" / f"{index}.png")
    (folder / "brands.yaml").write_text(BRANDS)
    lines = ["sku_id,title,category,brand,image,tier,prompt,aspect"]
    for index, (sku, tier, category) in enumerate(rows):
        lines.append(f"{sku},Item {index},{category},fresh,packshots/{index % len(shapes)}.png,{tier},,16:9")
    (folder / "catalog.csv").write_text("\n".join(lines) + "\n")
    return folder / "catalog.csv"


def load_catalog(env: dict, catalog: Path) -> None:
    config = {"ops": {"sku_catalog": {"config": {"source": str(catalog), "brands": str(catalog.parent / "brands.yaml")}}}}
    done = job_execute(env, "catalog_job", config=config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def sku_runs(env: dict, batch_size: int) -> list[tuple[str, str, str]]:
    """(job, first SKU, last SKU) per run: the launcher's choice of queue per SKU, in contiguous ranges."""
    return [tuple(batch) for batch in launcher_batches(env, batch_size, timeout_s=120)]


def range_tags(first: str, last: str) -> dict:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def instance_for(env: dict, monkeypatch) -> dg.DagsterInstance:
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def latest_metadata(instance: dg.DagsterInstance, asset: str, field: str) -> dict[str, object]:
    """SKU -> `field` of its latest materialization of `asset`."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    found: dict[str, object] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        materialization = record.asset_materialization
        if field in materialization.metadata:
            found[materialization.partition] = materialization.metadata[field].value
    return found


def storage_for(env: dict, monkeypatch) -> StorageResource:
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, env[key])
    return StorageResource(root=env["SKUVID_STORAGE_ROOT"])


def test_mixed_routes_run_each_clip_on_its_queue(cluster, tmp_path, monkeypatch):
    env = cluster.deployment("mixed", redis_db=1)
    rows = ([(f"CPU-{i:02d}", "bulk", "kitchen") for i in range(SKUS_PER_ROUTE)]
            + [(f"API-{i:02d}", "hero", "kitchen") for i in range(SKUS_PER_ROUTE)]
            + [(f"GPU-{i:02d}", "bulk", "generated") for i in range(SKUS_PER_ROUTE)])
    catalog = write_catalog(tmp_path / "catalog", rows)
    half = (SKUS_PER_ROUTE + 1) // 2  # two runs per queue: the second gpu run finds the model loaded
    specs = [{"queues": "cpu", "name": "cpu-w", "concurrency": 2}, {"queues": "api", "name": "api-w", "concurrency": 2},
             {"queues": "gpu", "name": "gpu-w"}]
    with celery_workers(specs, env, tmp_path / "logs"):
        load_catalog(env, catalog)
        batches = sku_runs(env, half)
        assert sorted(batches) == sorted(
            (f"sku_video_{prefix.lower()}_job", f"{prefix}-{start:02d}", f"{prefix}-{min(start + half, SKUS_PER_ROUTE) - 1:02d}")
            for prefix in ("CPU", "API", "GPU") for start in range(0, SKUS_PER_ROUTE, half))
        batches.sort(key=lambda batch: batch[1][-2:])  # one run of each queue at a time
        with ThreadPoolExecutor(3) as pool:
            done = list(pool.map(lambda b: job_execute(env, b[0], tags=range_tags(b[1], b[2]), config=CLIP_RUN_CONFIG),
                                 batches))
    for result in done:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    instance = instance_for(env, monkeypatch)
    try:
        runs = [run for run in instance.get_runs() if run.job_name.startswith("sku_video_")]
        assert sorted(run.job_name for run in runs) == sorted(batch[0] for batch in batches)
        for run in runs:
            queue = run.job_name.split("_")[2]
            ran = workers_by_step(instance, run.run_id)
            assert ran == {"keyframe": ["cpu-w"], "clip": [f"{queue}-w"], "published_video": ["cpu-w"]}, queue
        # The gpu worker's pool process keeps the model it loaded: two clip steps, one load.
        loads = [entry for run in runs if run.job_name == "sku_video_gpu_job" for entry in instance.all_logs(run.run_id)
                 if entry.step_key == "clip" and "loading " in entry.user_message and " from " in entry.user_message]
        assert len(loads) == 1
        clip_providers = latest_metadata(instance, "clip", "provider")
        why = latest_metadata(instance, "clip", "why")
    finally:
        instance.dispose()
    manifest = read_manifest(storage_for(env, monkeypatch))
    assert sorted(manifest["sku_id"]) == sorted(sku for sku, _, _ in rows)
    for prefix, provider in (("CPU", "motion"), ("API", "kling"), ("GPU", "wan")):
        assert {clip_providers[sku] for sku, _, _ in rows if sku.startswith(prefix)} == {provider}, why


@pytest.fixture(scope="module")
def fault_deployment(cluster, tmp_path_factory):
    """Two api workers and a cpu worker; a step whose worker dies goes back to the queue after 12 s."""
    env = cluster.deployment("faults", redis_db=2, redeliver_after_s=12)
    specs = [{"queues": "cpu", "name": "cpu-f"}, {"queues": "api", "name": "api-a"}, {"queues": "api", "name": "api-b"}]
    with celery_workers(specs, env, tmp_path_factory.mktemp("fault-logs")) as workers:
        yield env, workers


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def launch(env: dict, job: str, tags: dict, log_path: Path) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", LOCATION, "-j", job,
               "--tags", json.dumps(tags)]
    config_path = log_path.with_suffix(".yaml")
    config_path.write_text(json.dumps(CLIP_RUN_CONFIG))
    command += ["-c", str(config_path)]
    return subprocess.Popen(command, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=REPO)


def test_a_worker_killed_mid_step_hands_the_step_on_and_nothing_is_paid_twice(cluster, fault_deployment, tmp_path,
                                                                            monkeypatch):
    from devkit.emulators.base import TaskScript

    env, workers = fault_deployment
    skus = [("KILL-0", "hero", "kitchen"), ("KILL-1", "hero", "kitchen")]
    load_catalog(env, write_catalog(tmp_path / "catalog", skus))
    kling = cluster.emulators.kling
    before = set(kling.tasks)
    kling.script = TaskScript(running_s=4.0)  # long enough to be killed while the step waits on the task
    instance = instance_for(env, monkeypatch)
    try:
        run = launch(env, "sku_video_api_job", range_tags("KILL-0", "KILL-1"), tmp_path / "run.log")
        try:
            def clip_worker():
                for candidate in instance.get_runs(limit=5):
                    if candidate.job_name == "sku_video_api_job":
                        return workers_by_step(instance, candidate.run_id).get("clip", [None])[0]
                return None

            victim = wait_for(lambda: clip_worker() if set(kling.tasks) - before else None, 150, "a submitted clip")
            workers[victim].kill()
            assert run.wait(180) == 0, (tmp_path / "run.log").read_text()[-4000:]
        finally:
            if run.poll() is None:
                run.kill()
        run_id = next(r.run_id for r in instance.get_runs(limit=5) if r.job_name == "sku_video_api_job")
        ran = workers_by_step(instance, run_id)
        survivor = next(name for name in ("api-a", "api-b") if name != victim)
        # Started on the killed worker, then ran on the other. A step that outlasts the 12-s redelivery window is
        # handed out once more (the same worker, later): harmless, it reuses what is on record and pays nothing.
        assert ran["clip"][0] == victim and set(ran["clip"][1:]) == {survivor}
        published = instance.fetch_materializations(dg.AssetKey("published_video"), limit=100).records
        assert sorted(r.asset_materialization.partition for r in published) == ["KILL-0", "KILL-1"]
    finally:
        kling.script = TaskScript()
        instance.dispose()

    created = [kling.tasks[task_id] for task_id in set(kling.tasks) - before]
    assert len(created) == len(skus)  # one provider task per SKU: the resumed step asked for its task, not anew
    ledger = sa.create_engine(env["SKUVID_LEDGER_URL"])
    with ledger.connect() as connection:
        jobs = connection.execute(sa.text("SELECT sku_id, status FROM api_jobs WHERE provider = 'kling'")).all()
        charged = connection.execute(sa.text("SELECT sku_id, count(*) FROM charges WHERE provider = 'kling' GROUP BY sku_id")).all()
    ledger.dispose()
    assert sorted(sku for sku, _ in jobs) == ["KILL-0", "KILL-1"]
    assert dict(charged) == {"KILL-0": 1, "KILL-1": 1}
    manifest = read_manifest(storage_for(env, monkeypatch))
    assert sorted(manifest["sku_id"]) == ["KILL-0", "KILL-1"]


def test_a_redis_restart_mid_run_loses_no_step(cluster, fault_deployment, tmp_path, monkeypatch):
    env, _ = fault_deployment
    skus = [(f"REDIS-{i}", "bulk", "kitchen") for i in range(3)]
    load_catalog(env, write_catalog(tmp_path / "catalog", skus))
    instance = instance_for(env, monkeypatch)
    try:
        run = launch(env, "sku_video_cpu_job", range_tags("REDIS-0", "REDIS-2"), tmp_path / "run.log")
        try:
            def started(step: str):
                for candidate in instance.get_runs(limit=5):
                    if candidate.job_name == "sku_video_cpu_job":
                        return step in workers_by_step(instance, candidate.run_id)
                return False

            wait_for(lambda: started("clip"), 150, "the clip step on a worker")
            cluster.redis.restart(down_s=2.0)
            assert run.wait(180) == 0, (tmp_path / "run.log").read_text()[-4000:]
        finally:
            if run.poll() is None:
                run.kill()
    finally:
        instance.dispose()
    manifest = read_manifest(storage_for(env, monkeypatch))
    assert sorted(s for s in manifest["sku_id"] if s.startswith("REDIS")) == ["REDIS-0", "REDIS-1", "REDIS-2"]


def test_a_worker_that_cannot_reach_the_instance_or_storage_says_which(cluster, tmp_path):
    env = cluster.deployment("unreachable", redis_db=3)
    skuvid = str(Path(sys.executable).parent / "skuvid")
    port = free_port()  # nothing listens there
    dead = f"127.0.0.1:{port}"
    no_instance = {**env, "DAGSTER_PG_URL": f"postgresql://skuvid@{dead}/dagster"}
    done = subprocess.run([skuvid, "worker", "--queues", "cpu"], env=no_instance, check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "cannot reach the Dagster instance" in done.stdout and f"port {port} failed" in done.stdout
    no_storage = {**env, "AWS_ENDPOINT_URL": f"http://{dead}"}
    done = subprocess.run([skuvid, "worker", "--queues", "cpu"], env=no_storage, check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "cannot reach the storage" in done.stdout and dead in done.stdout
