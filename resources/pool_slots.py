"""A Dagster pool slot held around one provider call, for work whose pool is known only at run time.

An asset declares its pool when it is defined, but a clip's provider (our GPU, a paid API, the CPU) is
chosen per SKU. The render therefore claims a slot of the provider's pool (`gpu`, `api`) from the same
instance-wide counters that pools use, so concurrent runs never exceed the pool's limit, and run
monitoring frees the slots of a run that died.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import DagsterInstance


@contextmanager
def pool_slot(
    instance: DagsterInstance, pool: str | None, run_id: str, holder: str, log: Callable[[str], None],
    poll_s: float = 0.5,
) -> Iterator[None]:
    if pool is None:
        yield
        return
    storage = instance.event_log_storage
    info = storage.get_concurrency_info(pool)
    if info.limit is None and info.slot_count == 0:
        if instance.global_op_concurrency_default_limit is None:
            log(f"pool {pool!r} has no limit on this instance; not limiting {holder}")
            yield
            return
        storage.initialize_concurrency_limit_to_default(pool)
    waited = 0.0
    while not storage.claim_concurrency_slot(pool, run_id, holder).is_claimed:
        if waited == 0.0:
            log(f"{holder}: waiting for a slot in pool {pool!r}")
        time.sleep(poll_s)
        waited += poll_s
    try:
        yield
    finally:
        storage.free_concurrency_slot_for_step(run_id, holder)
