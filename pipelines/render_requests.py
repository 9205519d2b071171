"""Which SKU renders to request: a pure function of durable state, never of what an earlier evaluation wrote.

The state is the catalog (each SKU's current content hash and when that content arrived), the published manifest
(a SKU is published when its manifest row has the current hash) and the runs on record in the Dagster instance.
Every accepted SKU whose current content is not published, and that no run is rendering now, is requested under
a run key made from that state, so a preview, a "Test sensor" press or a tick that fails halfway followed by a
real tick request each SKU exactly once (Dagster launches one run per run key). A SKU whose render failed is
requested again after a backoff, at most `max_attempts` times per retry window; the window restarts with each
nightly catalog refresh, so a SKU that always fails costs a few runs a day, not a run a tick.
"""

import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pyarrow.parquet as pq

from assets.partitions import sku_partitions
from assets.sku_video.per_sku import SKU_BATCH_SIZE
from assets.sku_video.publish import MANIFEST_PREFIX
from resources.storage import StorageResource

# Dagster's documented tags for a run over a range of partitions (one run per batch of SKUs).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
NIGHTLY_TAG = "skuvid/nightly"  # the refresh's day
TRIGGER_TAG = "skuvid/trigger"  # what requested a catalog run: nightly or drop
RENDER_TAG = "skuvid/render"
IMPLICIT_ASSET_JOB = "__ASSET_JOB"  # the job of backfills launched from the UI
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
MANIFEST_READERS = 32


def setting_int(name: str, default: int, low: int, high: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"{name}={value[:40]!r}: expected a whole number from {low} to {high}")
    return int(value)


@dataclass(frozen=True)
class RenderPolicy:
    batch_threshold: int = 20  # more SKUs than this to request at once: runs of up to batch_size SKUs
    batch_size: int = SKU_BATCH_SIZE
    max_runs_per_tick: int = 100  # the rest follows on the next ticks; the tick stays short
    max_attempts: int = 3  # runs per SKU content and retry window
    backoff_s: int = 600  # before the second attempt; doubles for each further one

    @classmethod
    def from_env(cls) -> "RenderPolicy":
        return cls(
            batch_threshold=setting_int("SKUVID_BATCH_THRESHOLD", cls.batch_threshold, 0, 100_000),
            batch_size=setting_int("SKUVID_BATCH_SIZE", cls.batch_size, 1, 1_000),
            max_runs_per_tick=setting_int("SKUVID_MAX_RUNS_PER_TICK", cls.max_runs_per_tick, 1, 1_000),
            max_attempts=setting_int("SKUVID_RENDER_ATTEMPTS", cls.max_attempts, 1, 100),
            backoff_s=setting_int("SKUVID_RENDER_BACKOFF_S", cls.backoff_s, 0, 7 * 86_400),
        )


@dataclass(frozen=True)
class Attempts:
    count: int = 0
    last_end: float | None = None  # epoch seconds the latest finished attempt ended


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation: what to request, and what was left waiting and why (for the tick's log)."""

    run_requests: list[dg.RunRequest]
    to_render: int
    in_flight: int
    backing_off: int
    gave_up: list[str]
    deferred: int  # wanted, but past max_runs_per_tick: requested by a later tick

    def summary(self) -> str:
        return (f"{self.to_render:,} SKUs to render in {len(self.run_requests):,} runs ({self.deferred:,} of them left "
                f"for the next ticks); {self.in_flight:,} rendering now, {self.backing_off:,} waiting out a retry "
                f"backoff, {len(self.gave_up):,} out of attempts until the next nightly refresh")


def published_hashes(storage: StorageResource) -> dict[str, str]:
    """sku_id -> content hash of its manifest row, read in parallel (one small Parquet file per SKU)."""
    keys = [k for k in storage.list_keys(MANIFEST_PREFIX) if k.endswith(".parquet")]

    def row_of(key: str) -> list[tuple[str, str]]:
        table = pq.read_table(io.BytesIO(storage.read_bytes(key)), columns=["sku_id", "content_hash"])
        return list(zip(table.column("sku_id").to_pylist(), table.column("content_hash").to_pylist()))

    with ThreadPoolExecutor(MANIFEST_READERS) as pool:
        return {sku: digest for rows in pool.map(row_of, keys) for sku, digest in rows}


def skus_of_run(run: dg.DagsterRun, positions: dict[str, int], order: Sequence[str]) -> list[str]:
    """The SKU partitions a run renders: its partition, or every partition of its range."""
    tags = run.tags
    if PARTITION_TAG in tags:
        return [tags[PARTITION_TAG]] if tags[PARTITION_TAG] in positions else []
    start, end = positions.get(tags.get(RANGE_START_TAG, "")), positions.get(tags.get(RANGE_END_TAG, ""))
    if start is None or end is None:
        return []
    return list(order[start : end + 1])


def renders_sku(run: dg.DagsterRun, job_name: str) -> bool:
    """Runs of the SKU job, of its per-queue variants (`sku_video_{queue}_job`, pipelines/jobs.py) and UI backfills
    that publish SKU videos."""
    if run.job_name == job_name or re.fullmatch(rf"{re.escape(job_name.removesuffix('_job'))}_\w+_job", run.job_name):
        return True
    selection = run.asset_selection or set()
    return run.job_name == IMPLICIT_ASSET_JOB and dg.AssetKey("published_video") in selection


def sku_runs(instance: dg.DagsterInstance, job_name: str, statuses: list, created_after: datetime | None = None):
    """Run records of SKU renders with these statuses (created after `created_after`)."""
    for record in instance.get_run_records(dg.RunsFilter(statuses=statuses, created_after=created_after)):
        if renders_sku(record.dagster_run, job_name):
            yield record


def retry_window(instance: dg.DagsterInstance) -> tuple[str, float]:
    """(label, start) of the current retry window: the latest nightly refresh run, or ("", 0) before the first."""
    records = instance.get_run_records(dg.RunsFilter(tags={TRIGGER_TAG: "nightly"}), limit=1)  # newest first
    for record in records:
        return record.dagster_run.tags.get(NIGHTLY_TAG, ""), record.create_timestamp.timestamp()
    return "", 0.0


def stamp_seconds(value: str) -> float:
    try:
        return datetime.fromisoformat(value).timestamp() if value else 0.0
    except ValueError:
        return 0.0


def run_key(sku: str, content_hash: str, window: str, attempt: int) -> str:
    """The SKU and its content, then the retry window and the attempt within it when there is one."""
    return ":".join([sku, content_hash, *([window] if window else []), *([f"retry-{attempt}"] if attempt else [])])


def batches(wanted: list[str], positions: dict[str, int], order: Sequence[str], published: set[str],
            size: int) -> list[list[str]]:
    """Wanted SKUs grouped into runs over ranges of at most `size` partitions. A range may pass over published
    SKUs (a batched run reuses their artifacts at no cost) but never over one that is rendering or given up."""
    groups: list[list[str]] = []
    current: list[str] = []
    wanted_set = set(wanted)
    for sku in sorted(wanted, key=positions.__getitem__):
        if current:
            first, last = positions[current[0]], positions[current[-1]]
            between = order[last + 1 : positions[sku]]
            if positions[sku] - first < size and all(s in published or s in wanted_set for s in between):
                current.append(sku)
                continue
            groups.append(current)
        current = [sku]
    if current:
        groups.append(current)
    return groups


def decide(
    *,
    catalog: Iterable[tuple[str, str, str]],
    published: dict[str, str],
    partitions: Sequence[str],
    in_flight: set[str],
    attempts: dict[str, Attempts],
    window: str,
    now: float,
    policy: RenderPolicy,
    queue_of: Callable[[str], str] | None = None,
) -> Decision:
    """The run requests for the state given: pure, so the same state gives the same requests and run keys.

    With `queue_of` (runs on Celery workers), SKUs are grouped by the queue their route asks for and each group
    runs as `sku_video_{queue}_job`; a batch never spans SKUs of another queue.

    `catalog` is (sku_id, content_hash, content_since) per SKU; `attempts` counts finished runs of each SKU's
    current content in the current retry window.
    """
    positions = {sku: index for index, sku in enumerate(partitions)}
    keys: dict[str, str] = {}
    unpublished_rendering = backing_off = 0
    gave_up: list[str] = []
    current_hash = {}
    for sku, content_hash, _ in catalog:
        current_hash[sku] = content_hash
        if published.get(sku) == content_hash or sku not in positions:
            continue
        if sku in in_flight:
            unpublished_rendering += 1
            continue
        tried = attempts.get(sku, Attempts())
        if tried.count >= policy.max_attempts:
            gave_up.append(sku)
            continue
        if tried.count and now - (tried.last_end or now) < policy.backoff_s * 2 ** (tried.count - 1):
            backing_off += 1
            continue
        keys[sku] = run_key(sku, content_hash, window, tried.count)
    done = {sku for sku, digest in current_hash.items() if published.get(sku) == digest}
    wanted = sorted(keys, key=positions.__getitem__)
    by_queue: dict[str | None, list[str]] = {}
    for sku in wanted:
        by_queue.setdefault(queue_of(sku) if queue_of else None, []).append(sku)
    groups: list[tuple[str | None, list[str]]] = []
    for queue, skus in by_queue.items():
        if len(wanted) > policy.batch_threshold:
            groups += [(queue, group) for group in batches(skus, positions, partitions, done, policy.batch_size)]
        else:
            groups += [(queue, [sku]) for sku in skus]
    groups.sort(key=lambda item: positions[item[1][0]])
    requests = [request_for(group, keys, queue) for queue, group in groups[: policy.max_runs_per_tick]]
    deferred = sum(len(group) for _, group in groups[policy.max_runs_per_tick :])
    return Decision(requests, len(wanted), unpublished_rendering, backing_off, gave_up, deferred)


def request_for(group: list[str], keys: dict[str, str], queue: str | None = None) -> dg.RunRequest:
    job_name = f"sku_video_{queue}_job" if queue else None
    if len(group) == 1:
        return dg.RunRequest(run_key=keys[group[0]], partition_key=group[0], tags={RENDER_TAG: "sku"},
                             job_name=job_name)
    digest = hashlib.sha256("\n".join(keys[sku] for sku in group).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=f"batch:{group[0]}..{group[-1]}:{len(group)}:{digest}",
        tags={RANGE_START_TAG: group[0], RANGE_END_TAG: group[-1], RENDER_TAG: "batch"},
        job_name=job_name,
    )


def render_decision(instance: dg.DagsterInstance, storage: StorageResource, catalog, *, job_name: str,
                    policy: RenderPolicy, now: datetime | None = None,
                    queue_of: Callable[[str], str] | None = None) -> Decision:
    """Read the durable state (catalog rows given, manifest, partitions, runs) and decide."""
    now_s = (now or datetime.now(UTC)).timestamp()
    rows = list(zip(catalog["sku_id"], catalog["content_hash"],
                    catalog["content_since"] if "content_since" in catalog else [""] * len(catalog)))
    published = published_hashes(storage)
    partitions = list(instance.get_dynamic_partitions(sku_partitions.name))
    positions = {sku: index for index, sku in enumerate(partitions)}
    window, window_start = retry_window(instance)
    in_flight = {sku for record in sku_runs(instance, job_name, IN_FLIGHT)
                 for sku in skus_of_run(record.dagster_run, positions, partitions)}
    unpublished_since = {sku: max(stamp_seconds(since), window_start) for sku, digest, since in rows
                         if published.get(sku) != digest}
    attempts: dict[str, Attempts] = {}
    if unpublished_since:
        earliest = datetime.fromtimestamp(min(unpublished_since.values()), UTC)
        for record in sku_runs(instance, job_name, FINISHED, created_after=earliest):
            created = record.create_timestamp.timestamp()
            for sku in skus_of_run(record.dagster_run, positions, partitions):
                if sku in unpublished_since and created >= unpublished_since[sku]:
                    before = attempts.get(sku, Attempts())
                    ends = [t for t in (before.last_end, record.end_time or created) if t is not None]
                    attempts[sku] = Attempts(before.count + 1, max(ends))
    return decide(catalog=rows, published=published, partitions=partitions, in_flight=in_flight,
                  attempts=attempts, window=window, now=now_s, policy=policy, queue_of=queue_of)
