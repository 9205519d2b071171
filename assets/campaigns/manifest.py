"""A campaign's manifest: one Parquet row per recipient and aspect, written in parts by the chunk steps and
compacted into `manifest.parquet` by the merge step. Parts left by a run that stopped still count on the next run.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd

from assets.campaigns.records import RecipientWork
from assets.catalog.sku_catalog import write_parquet
from resources import storage_keys as keys
from resources.storage import StorageResource
from videokit.campaigns.recipient_clip import RenderResult
from videokit.media.probe import probe_mp4

MANIFEST_COLUMNS = [
    "recipient_id", "aspect", "key", "url", "duration_s", "n_frames", "width", "height", "bytes", "row_hash",
    "qa_passed", "qa_summary", "overlay_diff", "join_psnr_db", "join_step", "cpu_s", "rendered_at",
]


def manifest_row(storage: StorageResource, key: str, recipient: RecipientWork, aspect: str, mp4: bytes,
                 result: RenderResult | None) -> dict:
    """The row of one stored clip; `result` is None for a clip found in storage without a row."""
    report = probe_mp4(mp4)
    qa = result.qa if result else None
    return {
        "recipient_id": recipient.recipient_id, "aspect": aspect, "key": key, "url": storage.url(key),
        "duration_s": float(report.duration_s), "n_frames": int(report.n_frames), "width": int(report.width),
        "height": int(report.height), "bytes": len(mp4), "row_hash": recipient.row_hash,
        "qa_passed": bool(qa.passed) if qa else True, "qa_summary": qa.summary if qa else "found in storage",
        "overlay_diff": float(qa.overlay_diff) if qa else float("nan"),
        "join_psnr_db": float(qa.join_psnr_db) if qa else float("nan"),
        "join_step": float(qa.join_step) if qa else float("nan"),
        "cpu_s": float(result.cpu_s) if result else 0.0,
        "rendered_at": datetime.now(UTC).isoformat(),
    }


def read_parts(storage: StorageResource, parts: list[str]) -> pd.DataFrame:
    frames = [pd.read_parquet(io.BytesIO(storage.read_bytes(key))) for key in parts]
    frames = [frame for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MANIFEST_COLUMNS)


def read_previous_manifest(storage: StorageResource, prefix: str) -> pd.DataFrame:
    """The compacted manifest plus parts left by an interrupted run; the newest row per clip wins."""
    compacted = keys.campaign_manifest(prefix)
    found = [compacted] if storage.exists(compacted) else []
    found += [k for k in storage.list_keys(keys.campaign_manifest_parts(prefix)) if k.endswith(".parquet")]
    merged = read_parts(storage, found)
    if merged.empty:
        return merged
    return merged.sort_values("rendered_at").drop_duplicates(["recipient_id", "aspect"], keep="last")


def write_part(storage: StorageResource, key: str, rows: list[dict]) -> str | None:
    if not rows:
        return None
    write_parquet(storage, key, pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
    return key
