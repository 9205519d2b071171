"""Optional instance set-up: show skuvid's pool limits in the Dagster UI's pools page.

Nothing depends on it. Renders hold their slots as leases in the ledger's database (resources/pool_slots.py),
with the limits of SKUVID_POOL_LIMITS (default gpu=1, api=4); this copies those limits into the instance so the
UI lists the same pools.
"""

from dagster import DagsterInstance

from resources.pool_slots import PoolSettings


def apply_pool_limits(instance: DagsterInstance) -> dict[str, int]:
    limits = dict(PoolSettings.from_env().limits)
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return limits
