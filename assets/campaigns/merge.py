"""The merge step of a campaign: the chunks' manifest parts and the reused rows become one manifest, every
reject (rows that failed validation, clips that failed to render or failed QA) one rejects file.
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass

import pandas as pd

from assets.campaigns.inputs import REJECT_COLUMNS, Reject, write_rejects
from assets.campaigns.manifest import MANIFEST_COLUMNS, read_parts
from assets.campaigns.records import CampaignPlan, ChunkOutcome
from assets.catalog.sku_catalog import write_parquet
from resources import storage_keys as keys
from resources.storage import StorageResource

REJECTS_SHOWN = 20


@dataclass
class CampaignReport:
    plan: CampaignPlan
    rejects: list[Reject]
    rendered: int
    qa_failed: int
    chunks: int
    workers: int  # distinct processes that rendered chunks
    cpu_s: float  # plan + chunks + merge
    workers_cpu_s: float  # chunks only
    wall_s: float  # plan start to merge end
    render_wall_s: float  # first chunk start to last chunk end
    prepare_s: float
    peak_rss_mb: float  # the largest step process
    min_join_psnr_db: float
    max_join_step: float
    manifest_key: str
    rejects_key: str
    manifest: pd.DataFrame

    @property
    def clips_per_min(self) -> float:
        return 60.0 * self.rendered / self.render_wall_s if self.render_wall_s > 0 and self.rendered else 0.0


def compact_manifest(storage: StorageResource, plan: CampaignPlan, outcomes: list[ChunkOutcome]) -> pd.DataFrame:
    """One row per recipient and aspect, sorted; the parts are removed once the manifest is written."""
    prefix = keys.campaign(plan.campaign, plan.spec_hash)
    parts = [plan.reused_part] if plan.reused_part else []
    parts += [o.manifest_part for o in sorted(outcomes, key=lambda o: (o.aspect, o.index)) if o.manifest_part]
    rows = read_parts(storage, parts)
    manifest = rows.sort_values(["recipient_id", "aspect"], kind="stable").reset_index(drop=True)[MANIFEST_COLUMNS]
    write_parquet(storage, keys.campaign_manifest(prefix), manifest)
    for stale in storage.list_keys(keys.campaign_manifest_parts(prefix)):
        storage.delete(stale)
    return manifest


def merge_chunks(storage: StorageResource, plan: CampaignPlan, outcomes: list[ChunkOutcome]) -> CampaignReport:
    cpu0 = time.process_time()
    prefix = keys.campaign(plan.campaign, plan.spec_hash)
    manifest = compact_manifest(storage, plan, outcomes)
    rejects = list(plan.rejects) + [reject for o in outcomes for reject in o.rejects]
    write_rejects(storage, keys.campaign_rejects(prefix), rejects)
    psnrs = [o.min_join_psnr_db for o in outcomes if o.min_join_psnr_db is not None]
    steps = [o.max_join_step for o in outcomes if o.max_join_step is not None]
    workers_cpu = float(sum(o.cpu_s for o in outcomes))
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return CampaignReport(
        plan=plan, rejects=rejects, rendered=sum(o.rendered for o in outcomes),
        qa_failed=sum(o.qa_failed for o in outcomes), chunks=len(outcomes),
        workers=len({(o.host, o.pid) for o in outcomes}),
        cpu_s=plan.cpu_s + workers_cpu + time.process_time() - cpu0, workers_cpu_s=workers_cpu,
        wall_s=time.time() - plan.started_at,
        render_wall_s=(max(o.ended_at for o in outcomes) - min(o.started_at for o in outcomes)) if outcomes else 0.0,
        prepare_s=plan.prepare_s + float(sum(o.prepare_s for o in outcomes)),
        peak_rss_mb=max([plan.peak_rss_mb, own_peak, *(o.peak_rss_mb for o in outcomes)]),
        min_join_psnr_db=min(psnrs, default=math.nan), max_join_step=max(steps, default=math.nan),
        manifest_key=keys.campaign_manifest(prefix), rejects_key=keys.campaign_rejects(prefix), manifest=manifest,
    )


def rejects_markdown(rejects: list[Reject], rejects_url: str) -> str:
    if not rejects:
        return "No rejected recipients."
    shown = sorted(rejects, key=lambda r: r.row)[:REJECTS_SHOWN]
    table = pd.DataFrame([r.model_dump() for r in shown], columns=REJECT_COLUMNS).to_markdown(index=False)
    more = len(rejects) - len(shown)
    return table + (f"\n\n... and {more} more in {rejects_url}" if more > 0 else "")
