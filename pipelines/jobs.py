"""Jobs people launch: refresh the catalog, and render one SKU through keyframe, clip and publish."""

import dagster as dg

from assets.campaigns import campaign_clips
from assets.training import training_module
from assets.catalog import sku_catalog
from assets.clips import clip
from assets.keyframes import keyframe
from assets.publish import published_video

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
