"""`published_video` per SKU: the QA-passed clip and poster in the published area, plus its manifest row.

The manifest is a Parquet dataset with one file per SKU (`published/manifest/{sku}.parquet`), so concurrent
runs never race on one shared file; a storefront reads the folder as one table.

`video_url` and `poster_url` are relative to the published root (`SKU-1/<hash>.mp4`), so the folder can be
served by any static server, moved or synced to a CDN; with `SKUVID_PUBLIC_BASE_URL` set they are absolute
URLs under that base. `video_key` and `poster_key` are the storage keys the pipeline itself reads.
"""

import io
import os
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from assets.catalog.sku_catalog import sku_lookup, write_parquet
from assets.queues import on_queue
from assets.sku_video.artifacts import (
    ClipRecord,
    KeyframeRecord,
    RenderCost,
    Rendition,
    cost_metadata,
    merge_outcomes,
    read_record,
    renditions,
)
from assets.sku_video.per_sku import SkuOutcome, run_per_sku, sku_asset
from resources import storage_keys
from resources.pricing import PricesResource
from resources.providers.base import measure_usage
from resources.quality import QualityBarResource
from resources.storage import StorageResource
from videokit.sku_video.qa import CheckOutcome, judge_clip

MANIFEST_PREFIX = storage_keys.MANIFEST_PREFIX
PUBLISHED_ROOT = storage_keys.PUBLISHED_ROOT
PUBLIC_BASE_URL_ENV = "SKUVID_PUBLIC_BASE_URL"
MANIFEST_COLUMNS = [
    "sku_id", "aspect", "title", "tier", "content_hash", "video_url", "poster_url", "video_key", "poster_key",
    "duration_s", "width", "height", "bytes", "provider", "model", "emulated", "cost_usd", "qa_summary",
    "published_at",
]


def public_url(key: str) -> str:
    """Where a storefront finds a published file: relative to the published root, or under the public base URL."""
    relative = storage_keys.relative_to_published(key)
    base = os.environ.get(PUBLIC_BASE_URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{relative}" if base else relative


def manifest_key(sku_id: str) -> str:
    return storage_keys.manifest(sku_id)


def read_manifest(storage: StorageResource) -> pd.DataFrame:
    """Every published row, one per SKU and aspect (rows written before aspects get the SKU's catalog aspect
    only when they are published again; until then their `aspect` is empty)."""
    frames = [pd.read_parquet(io.BytesIO(storage.read_bytes(k))) for k in storage.list_keys(MANIFEST_PREFIX)
              if k.endswith(".parquet")]
    frames = [frame.reindex(columns=MANIFEST_COLUMNS) for frame in frames]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MANIFEST_COLUMNS)


def published_keys(rendition: Rendition) -> tuple[str, str]:
    sku = rendition.sku
    return (storage_keys.published_video(sku.sku_id, sku.content_hash, rendition.key_aspect),
            storage_keys.published_poster(sku.sku_id, sku.content_hash, rendition.key_aspect))


def read_manifest_rows(storage: StorageResource, sku_id: str) -> list[dict]:
    key = manifest_key(sku_id)
    if not storage.exists(key):
        return []
    return pd.read_parquet(io.BytesIO(storage.read_bytes(key))).to_dict("records")


def read_manifest_row(storage: StorageResource, sku_id: str, aspect: str | None = None) -> dict | None:
    """The SKU's row in `aspect`, else its first row (its catalog aspect), or None when it is not published."""
    rows = read_manifest_rows(storage, sku_id)
    matching = [row for row in rows if aspect is not None and row.get("aspect") == aspect]
    return (matching or rows or [None])[0]


def manifest_row(rendition: Rendition, clip_record: ClipRecord, keyframe_record: KeyframeRecord, video_bytes: int,
                 n_checks: int) -> dict:
    sku, scores = rendition.sku, clip_record.scores
    video_key, poster_key = published_keys(rendition)
    return {
        "sku_id": sku.sku_id,
        "aspect": rendition.aspect,
        "title": sku.title,
        "tier": sku.tier,
        "content_hash": sku.content_hash,
        "video_url": public_url(video_key),
        "poster_url": public_url(poster_key),
        "video_key": video_key,
        "poster_key": poster_key,
        "duration_s": float(scores.duration_s),
        "width": int(scores.width),
        "height": int(scores.height),
        "bytes": video_bytes,
        "provider": clip_record.cost.provider,
        "model": clip_record.cost.model,
        "emulated": clip_record.cost.emulated,
        "cost_usd": float(clip_record.cost.cost_usd) + float(keyframe_record.cost.cost_usd),
        "qa_summary": f"all {n_checks} clip checks passed",
        "published_at": datetime.now(UTC).isoformat(),
    }


def copy_published(storage: StorageResource, rendition: Rendition, clip_record: ClipRecord) -> int:
    """Copy clip and poster to their published keys; returns the video's size."""
    video_key, poster_key = published_keys(rendition)
    video = storage.read_bytes(clip_record.file("clip.mp4"))
    storage.write_bytes(video_key, video)
    storage.write_bytes(poster_key, storage.read_bytes(clip_record.file("poster.jpg")))
    return len(video)


def publish_renditions(storage: StorageResource, sku_id: str,
                       passed: list[tuple[Rendition, ClipRecord, KeyframeRecord, int]]) -> list[dict]:
    """Copy each QA-passed rendition's files, then write the SKU's manifest rows (the commit point, written after
    every file it names). `passed` holds (rendition, clip record, keyframe record, number of clip checks)."""
    rows = [manifest_row(rendition, clip_record, keyframe_record, copy_published(storage, rendition, clip_record),
                         n_checks)
            for rendition, clip_record, keyframe_record, n_checks in passed]
    write_parquet(storage, manifest_key(sku_id), pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
    return rows


def is_current(row: dict | None, rendition: Rendition) -> bool:
    """A row written before the URL settings changed (or by an older release, with no aspect) is written again."""
    video_key, _ = published_keys(rendition)
    return (row is not None and row.get("content_hash") == rendition.sku.content_hash
            and row.get("video_url") == public_url(video_key) and row.get("aspect") == rendition.aspect
            and "emulated" in row)


PUBLISH_CHECKS = {"published_video_in_manifest": "The video is published and the manifest row has the current content."}


@sku_asset(
    "published_video",
    deps=["clip"],
    kinds={"mp4"},
    description="The clip and poster a storefront can serve, and the SKU's row in the published manifest.",
    checks=PUBLISH_CHECKS,
    op_tags=on_queue("cpu"),
)
def published_video(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    quality_bar: QualityBarResource,
    prices: PricesResource,
):
    lookup = sku_lookup(storage)

    def passed_clip(rendition: Rendition) -> tuple[ClipRecord, KeyframeRecord, int]:
        sku = rendition.sku
        clip_record = read_record(storage, rendition, ClipRecord)
        keyframe_record = read_record(storage, rendition, KeyframeRecord)
        if clip_record is None or keyframe_record is None:
            raise dg.Failure(description=f"{rendition.label}: nothing to publish for content {sku.content_hash}; "
                             "run `clip` first")
        width, height = rendition.clip_size
        outcomes = judge_clip(clip_record.scores, width=width, height=height, fps=clip_record.settings.fps,
                              thresholds=quality_bar.thresholds(sku.tier))
        failed = [o for o in outcomes if not o.passed]
        if failed:
            raise dg.Failure(
                description=f"{rendition.label}: clip failed QA, not published: "
                + "; ".join(f"{o.name}: {o.summary}" for o in failed)
            )
        return clip_record, keyframe_record, len(outcomes)

    def publish(sku_id: str) -> SkuOutcome:
        sku = lookup(sku_id)
        # Every aspect must pass before any is published: a storefront never gets half of a SKU's set.
        passed = [(rendition, *passed_clip(rendition)) for rendition in renditions(sku)]
        existing = {row.get("aspect"): row for row in read_manifest_rows(storage, sku.sku_id)}
        reused = all(is_current(existing.get(rendition.aspect), rendition) for rendition, *_ in passed)
        with measure_usage() as usage:
            if reused:
                rows = [existing[rendition.aspect] for rendition, *_ in passed]
            else:
                rows = publish_renditions(storage, sku.sku_id, passed)
        own_cost = prices.table.cost(provider="publish", model="copy", cpu_s=usage.cpu_s, wall_s=usage.wall_s)
        in_manifest = merge_outcomes([
            (rendition, [CheckOutcome("published_video_in_manifest", True, f"published {row['video_key']}",
                                      {"bytes": int(row["bytes"])})])
            for (rendition, *_), row in zip(passed, rows, strict=True)
        ])
        first = rows[0]
        return SkuOutcome(
            metadata={
                **cost_metadata([RenderCost.of(own_cost)], reused=reused),
                "status": "published",
                "aspects": ", ".join(row["aspect"] for row in rows),
                "video_cost_usd": dg.MetadataValue.float(sum(float(row["cost_usd"]) for row in rows)),
                "clip_provider": first["provider"],
                "clip_emulated": any(bool(row["emulated"]) for row in rows),
                "content_hash": sku.content_hash,
                "bytes": dg.MetadataValue.int(sum(int(row["bytes"]) for row in rows)),
                "video": dg.MetadataValue.url(storage.url(first["video_key"])),
                "poster": dg.MetadataValue.url(storage.url(first["poster_key"])),
                "public_video_url": first["video_url"],
            },
            checks=in_manifest,
        )

    yield from run_per_sku(context, "published_video", list(PUBLISH_CHECKS), publish)


def published_versions(storage: StorageResource) -> set[tuple[str, str]]:
    """(sku_id, content_hash) of every published video, from one listing of the published area."""
    parsed = (storage_keys.parse_published_video(key) for key in storage.list_keys(f"{PUBLISHED_ROOT}/"))
    return {version for version in parsed if version is not None}
