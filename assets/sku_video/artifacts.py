"""Artifact records: what a stage produced for one rendition of a SKU's content, stored beside the artifacts.

A rendition is a SKU's content in one aspect. Keys come from resources.storage_keys; the stage pointer
(`.../{stage}.json`) is written last, so a record that exists is always complete.

Records are typed (`KeyframeRecord`, `ClipRecord`) with a versioned JSON form. Records written before versions
existed (version 0) have the same fields and read as they are; a record that does not validate (written by a
newer release, damaged, or missing a field) reads as absent, so the stage renders again instead of failing;
paid jobs are looked up in the ledger, so such a re-render never pays twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assets.catalog.sku_catalog import Sku
from resources import storage_keys
from resources.pricing import CostRecord
from resources.storage import StorageResource
from videokit.media.brand import CLIP_SIZES, KEYFRAME_SIZES
from videokit.sku_video.qa import CheckOutcome, ClipScores, KeyframeScores

RECORD_VERSION = 1


@dataclass(frozen=True)
class Rendition:
    """One aspect of a SKU's content: its own keyframe, clip, checks and published video."""

    sku: Sku
    aspect: str

    @property
    def suffixed(self) -> bool:
        """Only SKUs rendered in several aspects carry the aspect in their keys (single-aspect keys never moved)."""
        return len(self.sku.aspects) > 1

    @property
    def key_aspect(self) -> str | None:
        return self.aspect if self.suffixed else None

    @property
    def prefix(self) -> str:
        return storage_keys.rendition(self.sku.sku_id, self.sku.content_hash, self.key_aspect)

    @property
    def label(self) -> str:
        return f"{self.sku.sku_id} {self.aspect}" if self.suffixed else self.sku.sku_id

    @property
    def keyframe_size(self) -> tuple[int, int]:
        return KEYFRAME_SIZES[self.aspect]

    @property
    def clip_size(self) -> tuple[int, int]:
        return CLIP_SIZES[self.aspect]


def renditions(sku: Sku) -> list[Rendition]:
    return [Rendition(sku, aspect) for aspect in sku.aspects]


class RenderCost(BaseModel):
    """A render's CostRecord as stored, plus whether an emulator drew it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    model: str
    cpu_s: float
    gpu_s: float
    api_usd: float
    cost_usd: float
    wall_s: float
    provider_job_id: str = ""
    attempt: int = 1
    # API providers add their list price and whether this run booked the charge.
    list_usd: float = 0.0
    list_credits: float = 0.0
    charged_in_this_run: bool = False
    emulated: bool = False
    runner: dict | None = None  # GPU renders: how the model ran

    @classmethod
    def of(cls, cost: CostRecord, *, emulated: bool = False) -> RenderCost:
        return cls(**cost.to_dict(), emulated=emulated)


class KeyframeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    size: tuple[int, int]


class ClipSettings(BaseModel):
    """What makes a take: a record whose settings differ is not this take and is rendered again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    duration_s: float
    fps: int
    seed: int
    size: tuple[int, int]
    motion_style: str | None = None  # the CPU loop's style; providers without styles leave it unset


class AttemptSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    seed: int
    outcome: str
    cost_usd: float
    original_cost_usd: float
    reused: bool


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=RECORD_VERSION, ge=0, le=RECORD_VERSION)
    sku_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    content_hash: str = Field(min_length=1, max_length=64)
    aspect: str | None = None  # set for SKUs rendered in several aspects
    prefix: str
    files: dict[str, str]
    cost: RenderCost
    created_at: datetime

    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    def file(self, name: str) -> str:
        return self.files[name]


class KeyframeRecord(_Record):
    stage: Literal["keyframe"] = "keyframe"
    scores: KeyframeScores
    settings: KeyframeSettings


class ClipRecord(_Record):
    stage: Literal["clip"] = "clip"
    scores: ClipScores
    settings: ClipSettings
    route: str | None = None  # set on the stage pointer: the routing rule and every attempt that led here
    attempts: tuple[AttemptSummary, ...] = ()


StageRecord = TypeVar("StageRecord", KeyframeRecord, ClipRecord)


def parse_record(model: type[StageRecord], data: Any) -> StageRecord | None:
    """The record, or None when it does not validate (it then counts as absent)."""
    if isinstance(data, dict) and "version" not in data:  # written before records had versions: version 0
        data = {**data, "version": 0}
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def read_json_record(storage: StorageResource, key: str, model: type[StageRecord]) -> StageRecord | None:
    if not storage.exists(key):
        return None
    try:
        data = storage.read_json(key)
    except ValueError:  # not JSON at all: a damaged write from some other tool
        return None
    return parse_record(model, data)


def read_record(storage: StorageResource, rendition: Rendition, model: type[StageRecord]) -> StageRecord | None:
    stage = model.model_fields["stage"].default
    return read_json_record(storage, storage_keys.stage_pointer(rendition.prefix, stage), model)


def render_prefix(rendition: Rendition, stage: str, provider: str, seed: int) -> str:
    return storage_keys.render_attempt(rendition.prefix, stage, provider, seed)


def save_attempt(storage: StorageResource, rendition: Rendition, model: type[StageRecord], prefix: str,
                 files: Mapping[str, bytes], cost: RenderCost, scores: Any, settings: Any) -> StageRecord:
    """Write the files, then the record beside them (the commit point of this render)."""
    for name, data in files.items():
        storage.write_bytes(f"{prefix}/{name}", data)
    record = model(
        sku_id=rendition.sku.sku_id,
        content_hash=rendition.sku.content_hash,
        aspect=rendition.key_aspect,
        prefix=prefix,
        files={name: f"{prefix}/{name}" for name in files},
        cost=cost,
        scores=scores,
        settings=settings,
        created_at=datetime.now(UTC),
    )
    storage.write_json(storage_keys.attempt_record(prefix), record.to_json())
    return record


def commit_stage(storage: StorageResource, rendition: Rendition, record: KeyframeRecord | ClipRecord) -> None:
    """Make `record` the rendition's result for its stage."""
    storage.write_json(storage_keys.stage_pointer(rendition.prefix, record.stage), record.to_json())


def record_render_charge(ledger, rendition: Rendition, stage: str, name: str, provider, seed: int,
                         cost: RenderCost) -> None:
    """Every CPU and GPU render goes into the ledger's charges (API providers record their own jobs)."""
    if provider.pool == "api":
        return
    sku = rendition.sku
    identity = f"{sku.sku_id}:{sku.content_hash}:{stage}:{name}:{seed}"
    if rendition.suffixed:
        identity += f":{rendition.aspect}"
    key = hashlib.sha256(identity.encode()).hexdigest()
    ledger.record_render_charge(key, name, float(cost.cost_usd), sku.sku_id)


def load_files(storage: StorageResource, record: KeyframeRecord | ClipRecord,
               names: list[str] | None = None) -> dict[str, bytes]:
    wanted = record.files if names is None else {n: record.files[n] for n in names if n in record.files}
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


SPENT_FIELDS = ("cpu_s", "gpu_s", "api_usd", "cost_usd", "wall_s")


def cost_metadata(costs: Iterable[RenderCost], *, reused: bool) -> dict[str, Any]:
    """Cost of this materialization (all its renditions): zero when reused, with what it originally cost."""
    costs = list(costs)
    spent = {k: (0.0 if reused else sum(float(getattr(c, k)) for c in costs)) for k in SPENT_FIELDS}
    return {
        "provider": ", ".join(dict.fromkeys(c.provider for c in costs)),
        "model": ", ".join(dict.fromkeys(c.model for c in costs)),
        **{k: dg.MetadataValue.float(v) for k, v in spent.items()},
        "original_cost_usd": dg.MetadataValue.float(sum(float(c.cost_usd) for c in costs)),
        "reused": reused,
        **runner_metadata(costs),
    }


def runner_metadata(costs: list[RenderCost]) -> dict[str, Any]:
    """How GPU models ran (steps, guidance, LoRA, cache, attention, FP8, compile), when any did."""
    runners = [c.runner for c in costs if c.runner]
    if not runners:
        return {}
    return {"runner": dg.MetadataValue.json(runners[0] if len(runners) == 1 else runners)}


def merge_outcomes(per_rendition: list[tuple[Rendition, list[CheckOutcome]]]) -> list[CheckOutcome]:
    """One result per check for the SKU: it passes when every aspect passes; summaries and scores name the aspect.

    A single-aspect SKU's outcomes are returned as they are.
    """
    if len(per_rendition) == 1:
        return per_rendition[0][1]
    merged: dict[str, list[tuple[str, CheckOutcome]]] = {}
    for rendition, outcomes in per_rendition:
        for outcome in outcomes:
            merged.setdefault(outcome.name, []).append((rendition.aspect, outcome))
    return [
        CheckOutcome(
            name,
            all(o.passed for _, o in entries),
            "; ".join(f"{aspect}: {o.summary}" for aspect, o in entries),
            {f"{storage_keys.aspect_slug(aspect)}.{k}": v for aspect, o in entries for k, v in o.scores.items()},
        )
        for name, entries in merged.items()
    ]


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
