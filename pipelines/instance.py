"""Instance set-up that dagster.yaml cannot express: per-pool concurrency limits."""

from dagster import DagsterInstance

# gpu: one model on one GPU at a time; api: the providers' per-organisation concurrency.
POOL_LIMITS = {"gpu": 1, "api": 4}


def apply_pool_limits(instance: DagsterInstance) -> dict[str, int]:
    for pool, limit in POOL_LIMITS.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return dict(POOL_LIMITS)
