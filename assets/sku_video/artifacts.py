"""Artifact records: what a stage produced for one SKU and content hash, stored beside the artifacts.

Artifacts live under `skus/{sku}/{hash}/{stage}/{provider}-s{seed}/`; the stage pointer
`skus/{sku}/{hash}/{stage}.json` is written last, so a record that exists is always complete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from assets.catalog.sku_catalog import Sku
from resources.pricing import CostRecord
from resources.storage import StorageResource
from videokit.sku_video.qa import CheckOutcome


def render_prefix(sku: Sku, stage: str, provider: str, seed: int) -> str:
    return f"{sku.prefix}/{stage}/{provider}-s{seed}"


def pointer_key(sku: Sku, stage: str) -> str:
    return f"{sku.prefix}/{stage}.json"


def read_record(storage: StorageResource, sku: Sku, stage: str) -> dict | None:
    key = pointer_key(sku, stage)
    return storage.read_json(key) if storage.exists(key) else None


def save_attempt(
    storage: StorageResource,
    sku: Sku,
    stage: str,
    prefix: str,
    files: Mapping[str, bytes],
    cost: CostRecord,
    scores: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict:
    """Write the files, then the record beside them (the commit point of this render)."""
    for name, data in files.items():
        storage.write_bytes(f"{prefix}/{name}", data)
    record = {
        "sku_id": sku.sku_id,
        "content_hash": sku.content_hash,
        "stage": stage,
        "prefix": prefix,
        "files": {name: f"{prefix}/{name}" for name in files},
        "cost": cost.to_dict(),
        "scores": dict(scores),
        "settings": dict(settings),
        "created_at": datetime.now(UTC).isoformat(),
    }
    storage.write_json(f"{prefix}/record.json", record)
    return record


def save_render(storage: StorageResource, sku: Sku, stage: str, prefix: str, files: Mapping[str, bytes],
                cost: CostRecord, scores: Mapping[str, Any], settings: Mapping[str, Any]) -> dict:
    """A render that is the stage's result at once: its record, then the stage pointer."""
    record = save_attempt(storage, sku, stage, prefix, files, cost, scores, settings)
    storage.write_json(pointer_key(sku, stage), record)
    return record


def record_render_charge(ledger, sku: Sku, stage: str, name: str, provider, seed: int, cost: Mapping[str, Any]) -> None:
    """Every CPU and GPU render goes into the ledger's charges (API providers record their own jobs)."""
    if provider.pool == "api":
        return
    key = hashlib.sha256(f"{sku.sku_id}:{sku.content_hash}:{stage}:{name}:{seed}".encode()).hexdigest()
    ledger.record_render_charge(key, name, float(cost["cost_usd"]), sku.sku_id)


def load_files(storage: StorageResource, record: Mapping[str, Any], names: list[str] | None = None) -> dict[str, bytes]:
    wanted = record["files"] if names is None else {n: record["files"][n] for n in names if n in record["files"]}
    return {name: storage.read_bytes(key) for name, key in wanted.items()}


def metadata_value(value: Any) -> Any:
    """Numbers stay numbers so the UI plots them; None and NaN become text."""
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value) if value == value else "n/a"
    return "n/a" if value is None else str(value)


def cost_metadata(cost: Mapping[str, Any], *, reused: bool) -> dict[str, Any]:
    """Cost of this materialization: zero when the artifact was reused, with what it originally cost."""
    spent = {k: (0.0 if reused else float(cost[k])) for k in ("cpu_s", "gpu_s", "api_usd", "cost_usd", "wall_s")}
    return {
        "provider": cost["provider"],
        "model": cost["model"],
        **{k: dg.MetadataValue.float(v) for k, v in spent.items()},
        "original_cost_usd": dg.MetadataValue.float(float(cost["cost_usd"])),
        "reused": reused,
    }


def check_results(asset_key: str, outcomes: list[CheckOutcome]) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=outcome.name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=outcome.summary,
            metadata={k: metadata_value(v) for k, v in outcome.scores.items()},
        )
        for outcome in outcomes
    ]


def qa_summary(outcomes: list[CheckOutcome]) -> str:
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return f"all {len(outcomes)} checks passed"
    return "; ".join(f"{o.name}: {o.summary}" for o in failed)
