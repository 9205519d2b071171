"""Where a run's steps execute: in the launching process (the default), or on Celery workers over Redis.

With `SKUVID_CELERY_BROKER_URL` set (e.g. `redis://redis.internal:6379/0`), runs hand each step to a Celery
queue and `skuvid worker --queues gpu|api|cpu` processes on other machines execute it:

- `gpu`: clips of routes that start on a diffusers provider (one step at a time per GPU; models stay loaded)
- `api`: clips of routes that start on a paid API (bounded by the `api` pool's ledger leases)
- `cpu`: keyframes (compose), publish, the CPU tier's clips, catalog, costs, campaigns, training

A step's queue is its op's `dagster-celery/queue` tag, else the executor's default queue. Routing is decided
per SKU, and a step's tags are its op's (a run tag cannot move one step), so the clip op carries no tag and
each queue has its own SKU job whose executor defaults to that queue; the launcher picks the job from the
SKU's route (`queue_for_route`). Keyframe and publish steps carry the `cpu` tag in every job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import dagster as dg
from dagster_celery import celery_executor

from assets.queues import QUEUES

BROKER_ENV = "SKUVID_CELERY_BROKER_URL"
BACKEND_ENV = "SKUVID_CELERY_BACKEND_URL"
# A step whose worker dies unacknowledged is handed to another worker after this long (Redis has no consumer
# liveness). It must outlast the longest step: Redis hands a still-running step out again after it.
REDELIVER_ENV = "SKUVID_CELERY_REDELIVER_AFTER_S"
DEFAULT_REDELIVER_AFTER_S = 6 * 3600


def distributed() -> bool:
    return bool(os.environ.get(BROKER_ENV))


def redeliver_after_s() -> int:
    value = os.environ.get(REDELIVER_ENV, str(DEFAULT_REDELIVER_AFTER_S))
    try:
        seconds = int(value)
    except ValueError:
        raise ValueError(f"{REDELIVER_ENV}={value!r}: expected whole seconds") from None
    if not 5 <= seconds <= 7 * 86400:
        raise ValueError(f"{REDELIVER_ENV}={seconds}: expected 5 to 604800 seconds")
    return seconds


def celery_app_settings(default_queue: str) -> dict:
    """Celery settings shared by the executor (which submits) and the workers (which consume).

    Late acknowledgement: a step's message is acknowledged when the step ends, so a worker killed mid-step
    leaves it on the broker for another worker. Broker and result backend retry through a Redis restart.
    """
    if default_queue not in QUEUES:
        raise ValueError(f"queue {default_queue!r}: expected one of {', '.join(QUEUES)}")
    return {
        "task_default_queue": default_queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": redeliver_after_s(),
            # Look for steps of dead workers every 5 s (kombu's default sweep is every 100 s).
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "max_retries": 60,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        "task_publish_retry_policy": {"max_retries": 60, "interval_start": 0, "interval_step": 0.5,
                                      "interval_max": 2},
        "result_backend_always_retry": True,
        "result_backend_max_retries": 60,
        "result_backend_base_sleep_between_retries_ms": 200,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "result_expires": 7 * 86400,
        "redis_backend_health_check_interval": 5,
    }


def celery_executor_config(default_queue: str) -> dict:
    """The `celery` executor's config. Broker and backend URLs stay in the environment (they may hold a
    password), so runs and their config snapshots never contain them."""
    backend_env = BACKEND_ENV if os.environ.get(BACKEND_ENV) else BROKER_ENV
    return {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": backend_env},
        "config_source": celery_app_settings(default_queue),
    }


def worker_config(default_queue: str) -> dict:
    """The worker side of the same settings, as literal values, for `dagster-celery worker start -y`."""
    broker = os.environ.get(BROKER_ENV)
    if not broker:
        raise ValueError(f"{BROKER_ENV} is not set: the worker needs the broker URL (redis://host:6379/0)")
    return {"execution": {"config": {
        "broker": broker,
        "backend": os.environ.get(BACKEND_ENV) or broker,
        "config_source": celery_app_settings(default_queue),
    }}}


def queue_executor(queue: str) -> dg.ExecutorDefinition:
    """The Celery executor whose untagged steps go to `queue`."""
    return celery_executor.configured(celery_executor_config(queue), name=f"celery_{queue}")


def default_executor() -> dg.ExecutorDefinition:
    """In-process by default (the demo, tests, one machine); Celery with `cpu` as the default queue when a
    broker is configured."""
    return queue_executor("cpu") if distributed() else dg.in_process_executor


def queue_for_route(chain: Iterable[str], providers: Mapping[str, object]) -> str:
    """The queue of the first provider in a clip chain that can render from there.

    API providers are asked here (a key or emulator is configured the same way for launcher and workers);
    GPU providers are not, because the launcher has no GPU: the gpu worker checks CUDA and weights itself
    and, when they are missing, escalates along the chain on that worker, as a single machine would.
    """
    for name in chain:
        provider = providers[name]
        pool = getattr(provider, "pool", None)
        if pool == "gpu":
            return "gpu"
        if pool == "api" and provider.availability().available:
            return "api"
        if pool is None and provider.availability().available:
            return "cpu"
    return "cpu"
