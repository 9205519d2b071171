"""Which SKU job renders which SKUs when steps run on Celery workers: the launcher's half of routing.

A SKU's clip step goes to the queue of its route's first provider (pipelines/executors.py), so SKUs are
grouped by queue and each group runs as `sku_video_{queue}_job`, in contiguous partition ranges of at most
the backfill batch size (one run per range, each SKU with its own metadata and checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import dagster as dg

from assets.catalog.sku_catalog import read_catalog
from assets.partitions import sku_partitions
from assets.sku_video.clips import CLIP_PROVIDERS
from assets.sku_video.per_sku import SKU_BATCH_SIZE
from pipelines.executors import queue_for_route
from resources.routing import load_policy


def queue_chooser(catalog, resources: Mapping[str, object]) -> Callable[[str], str]:
    """sku_id -> the queue its clip asks for, from the catalog rows given and the routing policy."""
    policy = load_policy(resources["prices"].table, resources["routing"].path)
    providers = {name: resources[name] for name in CLIP_PROVIDERS}
    fields = {row["sku_id"]: {str(k): str(v) for k, v in row.items()} for row in catalog.to_dict("records")}
    chains = {}

    def queue_of(sku_id: str) -> str:
        chain = policy.route(fields[sku_id]).clip
        if chain not in chains:
            chains[chain] = queue_for_route(chain, providers)
        return chains[chain]

    return queue_of


def sku_queues(sku_ids: list[str], resources: Mapping[str, object]) -> dict[str, str]:
    """SKU -> the queue its clip asks for, from the catalog in storage and the routing policy."""
    queue_of = queue_chooser(read_catalog(resources["storage"]), resources)
    return {sku_id: queue_of(sku_id) for sku_id in sku_ids}


def sku_run_batches(instance: dg.DagsterInstance, resources: Mapping[str, object],
                    sku_ids: list[str] | None = None, batch_size: int = SKU_BATCH_SIZE) -> list[list[str]]:
    """[job name, first SKU, last SKU] per run, over `sku_ids` (default: every `sku` partition).

    Ranges follow the partitions' order, so a run covers exactly the SKUs between its two keys.
    """
    keys = sku_partitions.get_partition_keys(dynamic_partitions_store=instance)
    wanted = set(keys if sku_ids is None else sku_ids)
    queues = sku_queues([k for k in keys if k in wanted], resources)
    batches: list[list[str]] = []
    current: list[str] = []
    current_queue = None
    for key in keys:
        queue = queues.get(key)
        if current and (queue != current_queue or len(current) == batch_size):
            batches.append([f"sku_video_{current_queue}_job", current[0], current[-1]])
            current = []
        if queue is not None:
            current.append(key)
            current_queue = queue
    if current:
        batches.append([f"sku_video_{current_queue}_job", current[0], current[-1]])
    return batches
