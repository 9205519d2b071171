"""`campaign_clips` per campaign: one personalized clip per recipient and aspect, rendered in chunks as steps.

The partition key is the campaign name; the run config names the spec file. The asset is a graph:

    plan_campaign_chunks -> render_campaign_chunk (mapped, one step per chunk) -> merge_campaign_chunks

so the chunks run wherever the run's executor puts steps: one after another in process, in parallel processes,
or on `cpu` Celery workers on several machines. Records between the steps travel as JSON through shared storage
(`step_outputs`), clips and manifest parts through the StorageResource. Clips land at
`campaigns/{campaign}/{spec_hash}/{aspect}/{recipient_id}.mp4` (aspect written `16x9`), so a re-run renders
only what is missing or changed. Bad rows go to a rejects CSV with the reason and the others go on.
"""


import os
import tempfile

import dagster as dg
from pydantic import Field

from assets.campaigns.chunk_render import render_chunk
from assets.campaigns.inputs import CampaignError
from assets.campaigns.merge import REJECTS_SHOWN, CampaignReport, merge_chunks, rejects_markdown
from assets.campaigns.planning import plan_campaign
from assets.campaigns.records import CampaignChunk, CampaignPlan, ChunkOutcome
from assets.partitions import campaign_partitions
from assets.queues import on_queue
from resources.pricing import PricesResource
from resources.storage import StorageResource
from videokit.campaigns.spec import SpecError

DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "skuvid-campaign-cache")
STEP_OUTPUTS = "step_outputs"
QA_CHECK = "campaign_clips_qa"


class CampaignConfig(dg.Config):
    spec: str = Field(default="samples/campaign/campaign.yaml", description="Campaign spec YAML: path, s3:// or https://.")
    chunk_size: int = Field(default=50, description="Recipients per render step (one aspect each).")
    cache_dir: str = Field(default=DEFAULT_CACHE, description="Each worker's local folder for prepared template spans.")


class PlanConfig(dg.Config):
    spec: str
    chunk_size: int
    cache_dir: str


class ChunkConfig(dg.Config):
    cache_dir: str


@dg.config_mapping
def campaign_config(config: CampaignConfig) -> dict:
    """The asset's one config, handed to the steps that use it."""
    return {
        "plan_campaign_chunks": {"config": {"spec": config.spec, "chunk_size": config.chunk_size,
                                            "cache_dir": config.cache_dir}},
        "render_campaign_chunk": {"config": {"cache_dir": config.cache_dir}},
    }


@dg.op(
    out={"chunks": dg.DynamicOut(CampaignChunk, io_manager_key=STEP_OUTPUTS),
         "plan": dg.Out(CampaignPlan, io_manager_key=STEP_OUTPUTS)},
    tags=on_queue("cpu"),
    description="Validate the recipients, reuse clips already rendered, stage the template and logos in storage "
                "and cut the remaining clips into chunks of one aspect.",
)
def plan_campaign_chunks(context: dg.OpExecutionContext, config: PlanConfig, storage: StorageResource):
    try:
        plan, chunks = plan_campaign(storage, context.partition_key, config.spec, run_id=context.run_id,
                                     chunk_size=config.chunk_size, cache_dir=config.cache_dir, log=context.log.info)
    except (SpecError, CampaignError) as error:
        raise dg.Failure(description=str(error)) from None
    for chunk in chunks:
        yield dg.DynamicOutput(chunk, mapping_key=chunk.mapping_key, output_name="chunks")
    yield dg.Output(plan, output_name="plan")


@dg.op(out=dg.Out(ChunkOutcome, io_manager_key=STEP_OUTPUTS), tags=on_queue("cpu"),
       description="Render one chunk of recipients' clips (one aspect) and write its manifest part.")
def render_campaign_chunk(context: dg.OpExecutionContext, config: ChunkConfig, storage: StorageResource,
                          chunk: CampaignChunk) -> ChunkOutcome:
    return render_chunk(storage, chunk, run_id=context.run_id, cache_dir=config.cache_dir, log=context.log.info)


@dg.op(out={"result": dg.Out(dg.Nothing), "qa": dg.Out(dg.Nothing)}, tags=on_queue("cpu"),
       description="Merge the chunks into one manifest and one rejects file; the campaign's metadata and QA check.")
def merge_campaign_chunks(context: dg.OpExecutionContext, storage: StorageResource, prices: PricesResource,
                          plan: CampaignPlan, outcomes: list[ChunkOutcome]):
    report = merge_chunks(storage, plan, outcomes)
    for reject in report.rejects[:REJECTS_SHOWN]:
        context.log.warning(f"row {reject.row} ({reject.recipient_id or 'no id'}): {reject.field}: {reject.reason}")
    metadata, cost_usd = campaign_metadata(storage, prices, report)
    context.log.info(f"{report.rendered} clips in {report.wall_s:.1f} s ({report.clips_per_min:.1f} clips/min) from "
                     f"{report.chunks} chunks on {report.workers} processes, {plan.reused} reused, "
                     f"{len(report.rejects)} rejects; cost ${cost_usd:.5f}")
    yield dg.Output(None, output_name="result", metadata=metadata)
    yield dg.AssetCheckResult(
        check_name=QA_CHECK,
        passed=report.qa_failed == 0,
        description=f"{report.qa_failed} of {report.rendered + report.qa_failed} rendered clips failed QA",
        metadata={"qa_failed": dg.MetadataValue.int(report.qa_failed),
                  "min_join_psnr_db": dg.MetadataValue.float(float(report.min_join_psnr_db))},
    )


def campaign_metadata(storage: StorageResource, prices: PricesResource, report: CampaignReport) -> tuple[dict, float]:
    plan = report.plan
    cost = prices.table.cost(provider="personalize", model="smart-render", cpu_s=report.cpu_s, wall_s=report.wall_s)
    per_clip = cost.cost_usd / report.rendered if report.rendered else 0.0
    metadata = {
        "provider": cost.provider,
        "model": cost.model,
        "spec_hash": plan.spec_hash,
        "aspects": ", ".join(plan.aspects),
        "recipients": dg.MetadataValue.int(plan.recipients),
        "accepted": dg.MetadataValue.int(plan.accepted),
        "rejected_rows": dg.MetadataValue.int(len({r.row for r in report.rejects})),
        "clips": dg.MetadataValue.int(report.rendered),
        "clips_reused": dg.MetadataValue.int(plan.reused),
        "qa_failed": dg.MetadataValue.int(report.qa_failed),
        "chunks": dg.MetadataValue.int(report.chunks),
        "chunk_processes": dg.MetadataValue.int(report.workers),
        "cpu_s": dg.MetadataValue.float(round(report.cpu_s, 3)),
        "workers_cpu_s": dg.MetadataValue.float(round(report.workers_cpu_s, 3)),
        "wall_s": dg.MetadataValue.float(round(report.wall_s, 3)),
        "render_wall_s": dg.MetadataValue.float(round(report.render_wall_s, 3)),
        "template_prepare_s": dg.MetadataValue.float(round(report.prepare_s, 3)),
        "template_prepare_cpu_s": dg.MetadataValue.float(round(plan.prepare_cpu_s, 3)),
        "cost_usd": dg.MetadataValue.float(cost.cost_usd),
        "cost_per_clip_usd": dg.MetadataValue.float(per_clip),
        "clips_per_min": dg.MetadataValue.float(round(report.clips_per_min, 2)),
        "peak_rss_mb": dg.MetadataValue.float(round(report.peak_rss_mb, 1)),
        "min_join_psnr_db": dg.MetadataValue.float(float(report.min_join_psnr_db)),
        "max_join_step": dg.MetadataValue.float(float(report.max_join_step)),
        "reused": report.rendered == 0,
        "manifest": dg.MetadataValue.path(storage.url(report.manifest_key)),
        "rejects": dg.MetadataValue.md(rejects_markdown(report.rejects, storage.url(report.rejects_key))),
    }
    return metadata, cost.cost_usd


@dg.graph_asset(
    partitions_def=campaign_partitions,
    group_name="campaigns",
    kinds={"mp4", "parquet"},
    config=campaign_config,
    check_specs=[dg.AssetCheckSpec(QA_CHECK, asset="campaign_clips",
                                   description="Every clip rendered in the run passed its per-clip QA.")],
    description="One personalized clip per recipient and aspect (smart rendering, in chunks that run as steps), "
                "a Parquet manifest and a rejects CSV, for the campaign named by the partition key.",
)
def campaign_clips():
    chunks, plan = plan_campaign_chunks()
    outcomes = chunks.map(render_campaign_chunk)
    return merge_campaign_chunks(plan, outcomes.collect())
