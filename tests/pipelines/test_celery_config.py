# ruff: noqa: F811 - the fixture imported from api_fixtures comes back as a test argument
"""The Celery configuration without a broker: which queue a route asks for, the jobs and their executors, and the
worker command's settings."""

import os
import shutil
from pathlib import Path

import pytest

from pipelines.executors import celery_app_settings, queue_for_route, redeliver_after_s
from pipelines.worker_cli import (
    WorkerSetupError,
    concurrency_for,
    open_instance_once_created,
    parse_queues,
    root_cause,
    worker_command,
)
from resources.providers.base import Availability
from tests.resources.providers.api.api_fixtures import forked_processes, postgres_ledger_url  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


class Provider:
    def __init__(self, pool, available=True):
        self.pool = pool
        self._available = available

    def availability(self):
        return Availability(self._available, "" if self._available else "no key")


PROVIDERS = {"wan": Provider("gpu", available=False), "runway": Provider("api", available=False),
             "kling": Provider("api"), "motion": Provider(None)}


@pytest.mark.parametrize(("chain", "queue"), [
    (("wan", "motion"), "gpu"),  # no CUDA here, but the gpu worker decides that itself
    (("runway", "kling", "motion"), "api"),  # runway has no key: the first API provider that can render
    (("runway", "motion"), "cpu"),
    (("motion",), "cpu"),
])
def test_a_route_asks_for_the_queue_of_its_first_provider_that_can_render(chain, queue):
    assert queue_for_route(chain, PROVIDERS) == queue


def test_without_a_broker_runs_stay_in_process_and_there_are_no_queue_jobs(monkeypatch):
    monkeypatch.delenv("SKUVID_CELERY_BROKER_URL", raising=False)
    from pipelines.definitions import build_definitions
    from pipelines.resources import build_resources

    defs = build_definitions(build_resources())
    assert defs.resolve_job_def("sku_video_job").executor_def.name == "in_process"
    assert not [job for job in defs.jobs if job.name.startswith("sku_video_") and job.name != "sku_video_job"]


def test_with_a_broker_each_queue_job_defaults_its_clip_to_its_queue(monkeypatch):
    monkeypatch.setenv("SKUVID_CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    from pipelines.jobs import sku_video_queue_jobs

    jobs = {job.name: job for job in sku_video_queue_jobs()}
    assert set(jobs) == {"sku_video_gpu_job", "sku_video_api_job", "sku_video_cpu_job"}
    assert jobs["sku_video_gpu_job"].executor_def.name == "celery_gpu"


def test_steps_are_acknowledged_late_and_the_redelivery_window_is_bounded(monkeypatch):
    settings = celery_app_settings("gpu")
    assert settings["task_default_queue"] == "gpu"
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    monkeypatch.setenv("SKUVID_CELERY_REDELIVER_AFTER_S", "2")
    with pytest.raises(ValueError, match="SKUVID_CELERY_REDELIVER_AFTER_S=2"):
        redeliver_after_s()
    with pytest.raises(ValueError, match="queue 'disk'"):
        celery_app_settings("disk")


def test_worker_options():
    assert parse_queues("api, cpu") == ["api", "cpu"]
    with pytest.raises(WorkerSetupError, match="--queues 'gpus'"):
        parse_queues("gpus")
    assert concurrency_for(["gpu"], None) == 1
    assert concurrency_for(["api"], None) == 4
    with pytest.raises(WorkerSetupError, match="--concurrency 0"):
        concurrency_for(["cpu"], 0)
    command = worker_command(["gpu"], 1, "gpu0", "INFO")
    assert command[1:5] == ["worker", "start", "-A", "pipelines.celery_app"]
    # Prefork, one at a time, and no task limit per child: the process that loaded the model keeps it.
    assert command[command.index("--pool") + 1] == "prefork" and command[command.index("--concurrency") + 1] == "1"
    assert not any("max-tasks-per-child" in arg for arg in command)


def start_worker(barrier, failures, home: str, pg_url: str) -> None:
    """Child process body: the worker's start check, once every sibling is ready to make it too."""
    os.environ.update({"DAGSTER_HOME": home, "DAGSTER_PG_URL": pg_url})
    barrier.wait()
    try:
        assert open_instance_once_created() is False  # PostgreSQL, not SQLite
    except Exception as error:  # noqa: BLE001 - reported for the parent to assert on
        failures.put(root_cause(error))


def test_workers_starting_together_on_a_fresh_postgres_instance_all_open_it(postgres_ledger_url, tmp_path):
    # They race to create Dagster's tables and types; a loser sees "already exists" and must not exit on it.
    shutil.copy(REPO / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
    context = forked_processes()  # the children start at once, with Dagster imported
    barrier, failures = context.Barrier(6), context.Queue()
    args = (barrier, failures, str(tmp_path), postgres_ledger_url.replace("+psycopg2", ""))
    workers = [context.Process(target=start_worker, args=args) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0] * 6
    assert failures.empty(), failures.get()
