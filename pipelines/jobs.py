"""Jobs people launch: refresh the catalog, and render one SKU through keyframe, clip and publish."""

import functools

import dagster as dg

from assets.campaigns.campaign_clips import campaign_clips
from assets.catalog.sku_catalog import sku_catalog
from assets.queues import QUEUES
from assets.sku_video.clips import clip
from assets.sku_video.keyframes import keyframe
from assets.sku_video.publish import published_video
from assets.training.training_module import training_module
from pipelines.executors import distributed, queue_executor

catalog_job = dg.define_asset_job(
    "catalog_job",
    selection=[sku_catalog],
    description="Validate the catalog file and register new SKUs as partitions.",
)

sku_video_job = dg.define_asset_job(
    "sku_video_job",
    selection=dg.AssetSelection.assets(keyframe, clip, published_video),
    description="Keyframe -> clip -> QA checks -> published video, for one SKU partition.",
)

campaign_job = dg.define_asset_job(
    "campaign_job",
    selection=[campaign_clips],
    description="Render every recipient's personalized clip of one campaign partition.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=[training_module],
    description="Render one training module partition from its script.",
)


@functools.cache  # one definition per queue: the sensor and Definitions must hold the same job
def sku_video_queue_job(queue: str):
    """`sku_video_job` whose clip step goes to one Celery queue (keyframe and publish steps ask for `cpu`
    themselves); the launcher picks the job from the SKU's route (pipelines/executors.py)."""
    return dg.define_asset_job(
        f"sku_video_{queue}_job",
        selection=dg.AssetSelection.assets(keyframe, clip, published_video),
        description=f"Keyframe -> clip -> QA checks -> published video, the clip rendered on a `{queue}` worker.",
        executor_def=queue_executor(queue),
    )


def sku_video_queue_jobs() -> list:
    """One SKU job per Celery queue; none when runs execute in-process (no broker configured)."""
    return [sku_video_queue_job(queue) for queue in QUEUES] if distributed() else []
