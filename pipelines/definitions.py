"""The one Definitions object: assets, checks, jobs, sensors, schedules and resources of skuvid."""

import dagster as dg

from assets.campaigns.campaign_clips import campaign_clips
from assets.catalog.sku_catalog import sku_catalog
from assets.costs.cost_report import cost_estimate, cost_report
from assets.sku_video.clips import clip
from assets.sku_video.keyframes import keyframe
from assets.sku_video.publish import published_video
from assets.training.training_module import training_module
from pipelines.executors import default_executor
from pipelines.jobs import campaign_job, catalog_job, sku_video_job, sku_video_queue_jobs, training_job
from pipelines.resources import build_resources
from pipelines.schedules import nightly_catalog_refresh
from pipelines.sensors import new_sku_drops, sku_renders


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[sku_catalog, keyframe, clip, published_video, cost_estimate, cost_report, campaign_clips,
                training_module],
        jobs=[catalog_job, sku_video_job, campaign_job, training_job, *sku_video_queue_jobs()],
        sensors=[new_sku_drops, sku_renders],
        schedules=[nightly_catalog_refresh],
        resources=resources if resources is not None else build_resources(),
        # In-process by default: a run's steps share one process, so a SKU (or a batch of them in a backfill run)
        # pays for one process start, not one per step; backfill runs use the implicit asset job, so it is set
        # here. With SKUVID_CELERY_BROKER_URL, steps go to Celery workers (pipelines/executors.py).
        executor=default_executor(),
    )


defs = build_definitions()
