"""Runs a per-SKU step over every partition of a run, single or batched.

A batched backfill run hands an asset a range of partitions. Returning one MaterializeResult would
copy one SKU's metadata onto all of them, so each partition gets its own metadata
(`add_asset_metadata(partition_key=...)`) and its own check evaluations. One SKU's failure is recorded
on that SKU (failed checks, `status` metadata) and the rest of the batch goes on.
"""

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dagster as dg

from assets.partitions import sku_partitions
from assets.sku_video.artifacts import check_results, metadata_value
from videokit.sku_video.qa import CheckOutcome

SKU_BATCH_SIZE = 100


@dataclass
class SkuOutcome:
    metadata: dict
    checks: list[CheckOutcome] = field(default_factory=list)


def sku_backfill_policy() -> dg.BackfillPolicy:
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=SKU_BATCH_SIZE)


def check_specs(asset: str, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    """Checks partitioned like their asset: the run plans one execution per SKU and each evaluation lands on its
    SKU's execution (unpartitioned specs leave a planned execution with no partition and no result)."""
    # Partitioned check specs are a preview API; Dagster is pinned, so their behaviour cannot change under us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(name, asset=asset, blocking=True, description=why, partitions_def=sku_partitions)
                for name, why in checks.items()]


def sku_asset(name: str, *, deps: list, kinds: set[str], description: str, checks: dict[str, str],
              required_resource_keys: set[str] | None = None):
    """A per-SKU asset: partitioned by `sku`, batched in backfills, its blocking checks evaluated per SKU.

    A multi_asset with one spec, because only that form lets a batched run report each SKU's checks itself.
    """
    return dg.multi_asset(
        name=name,
        specs=[dg.AssetSpec(name, deps=deps, group_name="sku_video", kinds=kinds, description=description)],
        partitions_def=sku_partitions,
        check_specs=check_specs(name, checks),
        can_subset=True,
        backfill_policy=sku_backfill_policy(),
        required_resource_keys=required_resource_keys,
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
    reason = error.description if isinstance(error, dg.Failure) else f"{type(error).__name__}: {error}"
    return SkuOutcome(
        metadata={"status": "error", "error": reason},
        checks=[CheckOutcome(name, False, f"not rendered: {reason}", {}) for name in check_names],
    )


def add_sku_metadata(context: dg.AssetExecutionContext, asset: str, sku_id: str, metadata: dict) -> None:
    """`context.add_asset_metadata(metadata, partition_key=sku_id)` without its range check.

    That check loads every `sku` partition from the instance on each call: 36 ms a call at 10,000 SKUs,
    three calls a SKU, growing with the catalog. Our keys come from the step's own `partition_keys`, so the
    check cannot fail; Dagster is pinned, and the public call stays as the fallback.
    """
    step = getattr(context.op_execution_context, "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    if accumulator is None or not hasattr(accumulator, "with_additional_asset_metadata"):
        context.add_asset_metadata(metadata, partition_key=sku_id)
        return
    step._metadata_accumulator = accumulator.with_additional_asset_metadata(
        asset_key=dg.AssetKey(asset), partition_key=sku_id, metadata=metadata
    )


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
    context: dg.AssetExecutionContext, asset: str, check_names: list[str], step: Callable[[str], SkuOutcome]
) -> Iterator:
    keys = context.partition_keys
    if len(keys) == 1:
        # The check specs are partitioned, so Dagster ties these results to the run's SKU.
        outcome = step(keys[0])
        yield dg.MaterializeResult(metadata=outcome.metadata, check_results=check_results(asset, outcome.checks))
        return
    failed = 0
    for key in keys:
        try:
            outcome = step(key)
        except Exception as error:  # one SKU's failure is recorded on that SKU; the batch goes on
            context.log.error(f"{asset}[{key}] failed: {error}")
            outcome = failed_outcome(error, check_names)
        failed += not all(c.passed for c in outcome.checks) or outcome.metadata.get("status") == "error"
        add_sku_metadata(context, asset, key, outcome.metadata)
        # Not blocking here: the gate is per SKU (publish refuses a SKU whose clip failed QA),
        # so one bad SKU does not stop the other SKUs of the batch.
        yield from check_evaluations(asset, key, outcome.checks, blocking=False)
    context.log.info(f"{asset}: {len(keys) - failed} of {len(keys)} SKUs passed, {failed} failed")
    yield dg.MaterializeResult()
