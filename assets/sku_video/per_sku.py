"""Runs a per-SKU step over every partition of a run, single or batched.

A batched backfill run hands an asset a range of partitions. Returning one MaterializeResult would
record every SKU of the range as materialized, with one SKU's metadata. So a batched step yields one
AssetMaterialization per SKU that succeeded (its own metadata, no per-call partition reload) and the check
evaluations of every SKU, and ends failed, naming the SKUs that did not make it: Dagster then shows those
partitions failed and the others materialized, in the run, the asset's partition counts and the backfill.
One SKU's failure never stops the rest of the batch. A ranged run of the whole SKU job (all three stages)
needs each step's output for the next stage to start: there a step whose SKUs all succeeded materializes the
range through its output, and a step with a failed SKU ends failed, so that run's later stages wait for the
next request of the SKUs still unpublished.

Failures of the machinery (storage, the ledger's database, the network) are retried per SKU with backoff;
after that the step asks Dagster to retry it (a retried step reuses every finished artifact and every paid
job). Content failures (QA, bad input) are never retried.
"""

import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import dagster as dg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from assets.partitions import sku_partitions
from assets.sku_video.artifacts import check_results, metadata_value
from resources.infrastructure import describe_error, is_infrastructure_error
from videokit.sku_video.qa import CheckOutcome

SKU_BATCH_SIZE = 100
# Each stage runs in its own backfill runs: Dagster puts assets into one backfill run only when their backfill
# policies are equal, so the sizes differ on purpose. A stage's run then starts only for SKUs whose upstream
# stage materialized, and a SKU that failed upstream is marked failed downstream instead of being attempted.
STAGE_BATCH_SIZES = {"keyframe": 2 * SKU_BATCH_SIZE, "clip": SKU_BATCH_SIZE, "published_video": 4 * SKU_BATCH_SIZE}
# A job holding all three stages (sku_video_job, a single SKU's run) takes the smallest size, which is what we want.
warnings.filterwarnings("ignore", message=r"Asset job \S+ materializes assets with varying BackfillPolicies",
                        category=UserWarning)
SKU_ATTEMPTS_ENV, STEP_RETRIES_ENV, STEP_RETRY_WAIT_ENV = "SKUVID_SKU_ATTEMPTS", "SKUVID_STEP_RETRIES", "SKUVID_STEP_RETRY_WAIT_S"
FAILED_SKUS_NAMED = 20
SKU_STAGES = ("keyframe", "clip", "published_video")


@dataclass
class SkuOutcome:
    metadata: dict
    checks: list[CheckOutcome] = field(default_factory=list)


def sku_backfill_policy(asset: str) -> dg.BackfillPolicy:
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=STAGE_BATCH_SIZES.get(asset, SKU_BATCH_SIZE))


def check_specs(asset: str, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    """Checks partitioned like their asset: the run plans one execution per SKU and each evaluation lands on its
    SKU's execution (unpartitioned specs leave a planned execution with no partition and no result)."""
    # Partitioned check specs are a preview API; Dagster is pinned, so their behaviour cannot change under us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(name, asset=asset, blocking=True, description=why, partitions_def=sku_partitions)
                for name, why in checks.items()]


def sku_asset(name: str, *, deps: list, kinds: set[str], description: str, checks: dict[str, str],
              required_resource_keys: set[str] | None = None, op_tags: dict[str, str] | None = None):
    """A per-SKU asset: partitioned by `sku`, batched in backfills, its blocking checks evaluated per SKU.

    A multi_asset with one spec, because only that form lets a batched run report each SKU's checks itself.
    The spec is skippable: a batched step reports its SKUs one by one instead of through the step's output.
    """
    return dg.multi_asset(
        name=name,
        specs=[dg.AssetSpec(name, deps=deps, group_name="sku_video", kinds=kinds, description=description,
                            skippable=True)],
        partitions_def=sku_partitions,
        check_specs=check_specs(name, checks),
        can_subset=True,
        backfill_policy=sku_backfill_policy(name),
        required_resource_keys=required_resource_keys,
        op_tags=op_tags,
    )


def log_once(log: Callable[[str], None]) -> Callable[[str], None]:
    """A logger that drops repeats. In a batched run a provider's state (no key, no weights) is the same for
    every SKU: one line per step, not one per SKU (each SKU's metadata still says why it was skipped)."""
    said: set[str] = set()

    def say(message: str) -> None:
        if message not in said:
            said.add(message)
            log(message)

    return say


def failed_outcome(error: Exception, check_names: list[str]) -> SkuOutcome:
    reason = describe_error(error)
    return SkuOutcome(
        metadata={"status": "error", "error": reason},
        checks=[CheckOutcome(name, False, f"not rendered: {reason}", {}) for name in check_names],
    )


def succeeded(outcome: SkuOutcome) -> bool:
    return outcome.metadata.get("status") != "error" and all(c.passed for c in outcome.checks)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() else default


@dataclass
class SkuAttempt:
    """One SKU's result in a step: its outcome, and whether it failed on the machinery rather than its content."""

    key: str
    outcome: SkuOutcome
    infrastructure: bool = False


class SkuRunner:
    """Runs a step for one SKU: machinery failures retried with backoff; after a SKU gave up on them, the SKUs
    not yet started are not attempted (a store that stayed down for one SKU's retries is down for the next)."""

    def __init__(self, step: Callable[[str], SkuOutcome], check_names: list[str], log: Callable[[str], None]):
        self.step, self.check_names, self.log = step, check_names, log
        self.attempts = max(1, env_int(SKU_ATTEMPTS_ENV, 3))
        self.outage: str | None = None
        self._lock = threading.Lock()

    def _log_retry(self, key: str):
        def say(state) -> None:
            self.log(f"{key}: {describe_error(state.outcome.exception())}; retrying in {state.next_action.sleep:.0f} s")
        return say

    def __call__(self, key: str) -> SkuAttempt:
        if self.outage is not None:
            return SkuAttempt(key, failed_outcome(RuntimeError(f"not attempted: {self.outage}"), self.check_names), True)
        try:
            for attempt in Retrying(retry=retry_if_exception(is_infrastructure_error), reraise=True,
                                    stop=stop_after_attempt(self.attempts), before_sleep=self._log_retry(key),
                                    wait=wait_random_exponential(multiplier=2, max=30)):
                with attempt:
                    return SkuAttempt(key, self.step(key))
        except Exception as error:  # noqa: BLE001 - one SKU's failure is recorded on that SKU; the batch goes on
            infrastructure = is_infrastructure_error(error)
            if infrastructure:
                with self._lock:
                    self.outage = self.outage or describe_error(error)
            return SkuAttempt(key, failed_outcome(error, self.check_names), infrastructure)


def sku_attempts(keys: list[str], run: SkuRunner, waits_on_network: Callable[[str], bool] | None,
                 workers: int) -> Iterator[SkuAttempt]:
    """Every SKU's attempt. SKUs for which `waits_on_network` is true (paid API renders: the step only waits on
    HTTP) run in up to `workers` threads while the others run one after another here; results come in as
    they finish."""
    overlapping = [key for key in keys if waits_on_network is not None and workers > 1 and safe_test(waits_on_network, key)]
    if not overlapping:
        yield from map(run, keys)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sku-wait") as pool:
        futures = [pool.submit(run, key) for key in overlapping]
        for key in keys:
            if key not in overlapping:
                yield run(key)
        for future in as_completed(futures):
            yield future.result()


def safe_test(test: Callable[[str], bool], key: str) -> bool:
    try:
        return bool(test(key))
    except Exception:  # noqa: BLE001 - the SKU's own step reports what is wrong with it
        return False


def why_failed(outcome: SkuOutcome) -> str:
    if outcome.metadata.get("error"):
        return str(outcome.metadata["error"])
    checks = ", ".join(c.summary for c in outcome.checks if not c.passed)
    return f"{outcome.metadata.get('status', 'failed')} ({checks})" if checks else str(outcome.metadata.get("status"))


def failure_summary(asset: str, failed: list[SkuAttempt], total: int) -> str:
    named = "; ".join(f"{a.key}: {why_failed(a.outcome)}" for a in failed[:FAILED_SKUS_NAMED])
    more = f"; and {len(failed) - FAILED_SKUS_NAMED} more" if len(failed) > FAILED_SKUS_NAMED else ""
    return f"{asset}: {len(failed)} of {total} SKUs failed and are not materialized. {named}{more}"


def check_evaluations(asset: str, sku_id: str, checks: list[CheckOutcome], *, blocking: bool
                      ) -> Iterator[dg.AssetCheckEvaluation]:
    """The SKU's check results, each tied to its partition so the UI's check history shows the SKU."""
    for check in checks:
        yield dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset),
            check_name=check.name,
            passed=check.passed,
            metadata={k: metadata_value(v) for k, v in check.scores.items()},
            description=check.summary,
            severity=dg.AssetCheckSeverity.ERROR,
            blocking=blocking,
            partition=sku_id,
        )


def run_per_sku(
    context: dg.AssetExecutionContext,
    asset: str,
    check_names: list[str],
    step: Callable[[str], SkuOutcome],
    *,
    waits_on_network: Callable[[str], bool] | None = None,
    network_workers: int = 1,
) -> Iterator:
    keys = context.partition_keys
    run = SkuRunner(step, check_names, context.log.warning)
    retries = env_int(STEP_RETRIES_ENV, 2)
    if len(keys) == 1:
        attempt = run(keys[0])
        if succeeded(attempt.outcome):
            # The check specs are partitioned, so Dagster ties these results to the run's SKU.
            yield dg.MaterializeResult(metadata=attempt.outcome.metadata,
                                       check_results=check_results(asset, attempt.outcome.checks))
            return
        yield from check_evaluations(asset, keys[0], attempt.outcome.checks, blocking=False)
        raise_for_failures(context, asset, [attempt], 1, retries)
    failed: list[SkuAttempt] = []
    done: list[SkuAttempt] = []
    feeding = feeds_a_later_stage(context, asset)
    backfill = context.run.tags.get("dagster/backfill")

    def materialization(attempt: SkuAttempt) -> dg.AssetMaterialization:
        return dg.AssetMaterialization(asset_key=asset, partition=attempt.key, metadata=attempt.outcome.metadata,
                                       tags={"dagster/backfill": backfill} if backfill else None)

    for attempt in sku_attempts(keys, run, waits_on_network, network_workers):
        if not succeeded(attempt.outcome):
            failed.append(attempt)
            context.log.error(f"{asset}[{attempt.key}] failed: {why_failed(attempt.outcome)}")
        elif feeding:
            done.append(attempt)
        else:
            yield materialization(attempt)
        # Not blocking here: the gate is per SKU (publish refuses a SKU whose clip failed QA),
        # so one bad SKU does not stop the other SKUs of the batch.
        yield from check_evaluations(asset, attempt.key, attempt.outcome.checks, blocking=False)
    context.log.info(f"{asset}: {len(keys) - len(failed)} of {len(keys)} SKUs materialized, {len(failed)} failed")
    if feeding and not failed:
        # A later stage in this run starts only from this step's output, which stands for the whole range: every
        # SKU succeeded, so it is true. Per-SKU metadata then goes through the public per-partition call, which
        # reloads the partition list each time (runs of one stage, as backfills launch, never pay that).
        for attempt in done:
            context.add_asset_metadata(attempt.outcome.metadata, partition_key=attempt.key)
        yield dg.MaterializeResult()
        return
    yield from map(materialization, done)
    if failed:
        raise_for_failures(context, asset, failed, len(keys), retries)


def feeds_a_later_stage(context: dg.AssetExecutionContext, asset: str) -> bool:
    """Whether this run also runs a later SKU stage (a ranged run of the whole SKU job), which needs the output."""
    later = SKU_STAGES[SKU_STAGES.index(asset) + 1:] if asset in SKU_STAGES else ()
    if context.run.asset_selection:
        in_run = {key.to_user_string() for key in context.run.asset_selection}
    elif context.run.step_keys_to_execute:  # a re-execution of some steps
        in_run = set(context.run.step_keys_to_execute)
    else:  # every step of the job; a SKU stage's step is named like its asset
        in_run = {node.name for node in context.job_def.graph.nodes}
    return any(name in in_run for name in later)


def raise_for_failures(context: dg.AssetExecutionContext, asset: str, failed: list[SkuAttempt], total: int,
                       retries: int) -> None:
    """End the step failed, naming the SKUs. Failures of the machinery ask Dagster to retry the step (it reuses
    what is done and paid); content failures end it for good."""
    summary = failure_summary(asset, failed, total)
    metadata = {"failed_skus": dg.MetadataValue.json([a.key for a in failed])}
    if any(a.infrastructure for a in failed) and context.retry_number < retries:
        context.log.warning(f"{summary}. Retrying the step (attempt {context.retry_number + 2} of {retries + 1}).")
        raise dg.RetryRequested(max_retries=retries, seconds_to_wait=env_int(STEP_RETRY_WAIT_ENV, 60))
    raise dg.Failure(description=summary, metadata=metadata)
