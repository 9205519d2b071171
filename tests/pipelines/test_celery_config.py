"""The Celery configuration without a broker: which queue a route asks for, the jobs and their executors, and the
worker command's settings."""

import pytest

from pipelines.executors import celery_app_settings, queue_for_route, redeliver_after_s
from pipelines.worker_cli import WorkerSetupError, concurrency_for, parse_queues, worker_command
from resources.providers.base import Availability


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
