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

from assets.catalog.sku_catalog import Sku, sku_lookup, write_parquet
from assets.sku_video.artifacts import cost_metadata, read_record
from assets.queues import on_queue
from assets.sku_video.per_sku import SkuOutcome, run_per_sku, sku_asset
from resources.pricing import PricesResource
from resources.providers.base import measure_usage
from resources.quality import QualityBarResource
from resources.storage import StorageResource
from videokit.media.brand import CLIP_SIZES
from videokit.sku_video.qa import CheckOutcome, ClipScores, judge_clip

MANIFEST_PREFIX = "published/manifest"
PUBLISHED_ROOT = "published"
PUBLIC_BASE_URL_ENV = "SKUVID_PUBLIC_BASE_URL"
MANIFEST_COLUMNS = [
    "sku_id", "title", "tier", "content_hash", "video_url", "poster_url", "video_key", "poster_key", "duration_s",
    "width", "height", "bytes", "provider", "model", "emulated", "cost_usd", "qa_summary", "published_at",
]


def public_url(key: str) -> str:
    """Where a storefront finds a published file: relative to the published root, or under the public base URL."""
    relative = key.removeprefix(f"{PUBLISHED_ROOT}/")
    base = os.environ.get(PUBLIC_BASE_URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{relative}" if base else relative


def manifest_key(sku_id: str) -> str:
    return f"{MANIFEST_PREFIX}/{sku_id}.parquet"


def read_manifest(storage: StorageResource) -> pd.DataFrame:
    frames = [pd.read_parquet(io.BytesIO(storage.read_bytes(k))) for k in storage.list_keys(MANIFEST_PREFIX)
              if k.endswith(".parquet")]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MANIFEST_COLUMNS)


def published_keys(sku: Sku) -> tuple[str, str]:
    base = f"published/{sku.sku_id}/{sku.content_hash}"
    return f"{base}.mp4", f"{base}.jpg"


def read_manifest_row(storage: StorageResource, sku_id: str) -> dict | None:
    key = manifest_key(sku_id)
    if not storage.exists(key):
        return None
    return pd.read_parquet(io.BytesIO(storage.read_bytes(key))).iloc[0].to_dict()


def publish_files(
    storage: StorageResource, sku: Sku, clip_record: dict, keyframe_record: dict, scores: ClipScores, n_checks: int
) -> dict:
    """Copy clip and poster to their published keys, then write the manifest row (the commit point)."""
    video_key, poster_key = published_keys(sku)
    video = storage.read_bytes(clip_record["files"]["clip.mp4"])
    storage.write_bytes(video_key, video)
    storage.write_bytes(poster_key, storage.read_bytes(clip_record["files"]["poster.jpg"]))
    row = {
        "sku_id": sku.sku_id,
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
        "bytes": len(video),
        "provider": clip_record["cost"]["provider"],
        "model": clip_record["cost"]["model"],
        "emulated": bool(clip_record["cost"].get("emulated", False)),
        "cost_usd": float(clip_record["cost"]["cost_usd"]) + float(keyframe_record["cost"]["cost_usd"]),
        "qa_summary": f"all {n_checks} clip checks passed",
        "published_at": datetime.now(UTC).isoformat(),
    }
    write_parquet(storage, manifest_key(sku.sku_id), pd.DataFrame([row], columns=MANIFEST_COLUMNS))
    return row


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

    def publish(sku_id: str) -> SkuOutcome:
        sku = lookup(sku_id)
        clip_record = read_record(storage, sku, "clip")
        keyframe_record = read_record(storage, sku, "keyframe")
        if clip_record is None or keyframe_record is None:
            raise dg.Failure(description=f"{sku.sku_id}: nothing to publish for content {sku.content_hash}; run `clip` first")
        width, height = CLIP_SIZES[sku.aspect]
        scores = ClipScores(**clip_record["scores"])
        fps = clip_record["settings"]["fps"]
        outcomes = judge_clip(scores, width=width, height=height, fps=fps, thresholds=quality_bar.thresholds(sku.tier))
        failed = [o for o in outcomes if not o.passed]
        if failed:
            raise dg.Failure(
                description=f"{sku.sku_id}: clip failed QA, not published: "
                + "; ".join(f"{o.name}: {o.summary}" for o in failed)
            )
        existing = read_manifest_row(storage, sku.sku_id)
        video_key, _ = published_keys(sku)
        # A row written before the URL settings changed (or by an older release) is written again.
        reused = (existing is not None and existing["content_hash"] == sku.content_hash
                  and existing.get("video_url") == public_url(video_key) and "emulated" in existing)
        with measure_usage() as usage:
            row = existing if reused else publish_files(storage, sku, clip_record, keyframe_record, scores, len(outcomes))
        own_cost = prices.table.cost(provider="publish", model="copy", cpu_s=usage.cpu_s, wall_s=usage.wall_s)
        in_manifest = CheckOutcome(
            "published_video_in_manifest", True, f"published {row['video_key']}", {"bytes": int(row["bytes"])}
        )
        return SkuOutcome(
            metadata={
                **cost_metadata(own_cost.to_dict(), reused=reused),
                "status": "published",
                "video_cost_usd": dg.MetadataValue.float(float(row["cost_usd"])),
                "clip_provider": row["provider"],
                "clip_emulated": bool(row["emulated"]),
                "content_hash": sku.content_hash,
                "bytes": dg.MetadataValue.int(int(row["bytes"])),
                "video": dg.MetadataValue.url(storage.url(row["video_key"])),
                "poster": dg.MetadataValue.url(storage.url(row["poster_key"])),
                "public_video_url": row["video_url"],
            },
            checks=[in_manifest],
        )

    yield from run_per_sku(context, "published_video", list(PUBLISH_CHECKS), publish)


def published_versions(storage: StorageResource) -> set[tuple[str, str]]:
    """(sku_id, content_hash) of every published video, from one listing of the published area."""
    versions = set()
    for key in storage.list_keys("published/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".mp4"):
            versions.add((parts[1], parts[2].removesuffix(".mp4")))
    return versions
