"""`clip` per SKU: a seamless 3-5 s loop made from the keyframe, with blocking QA checks."""

from dataclasses import asdict

import dagster as dg
from pydantic import Field

from assets.artifacts import (
    cost_metadata,
    load_files,
    qa_summary,
    read_record,
    render_prefix,
    save_render,
)
from assets.catalog import Sku, load_sku
from assets.partitions import sku_partitions
from assets.per_sku import SkuOutcome, check_specs, run_per_sku, sku_backfill_policy
from resources.generators.base import ClipRequest
from resources.generators.cpu import MotionClips
from resources.quality import QualityBarResource
from resources.storage import StorageResource
from videokit.brand import CLIP_SIZES
from videokit.compose import KeyframeLayers, render_background
from videokit.encode import ClipFile
from videokit.qa import ClipScores, judge_clip, measure_clip

CLIP_CHECKS = {
    "clip_format": "MP4, H.264, yuv420p, faststart; resolution, aspect, duration window and fps.",
    "clip_content": "No black frames, no frozen stretch, no flicker, not blurred.",
    "clip_loop_seam": "The last frame flows into the first.",
    "clip_brand_background": "Border colour stays within the ΔE limit of the brand background.",
    "clip_product_fidelity": "The product in the first frame matches the keyframe (PSNR).",
}


class ClipConfig(dg.Config):
    duration_s: float = Field(default=4.0, description="Clip length in seconds (3 to 5).")
    fps: int = Field(default=24, description="Frames per second.")
    seed: int = Field(default=0, description="Seed for providers with randomness; a new seed gives a new take.")


def clip_scores(sku: Sku, layers: KeyframeLayers, clip: ClipFile) -> ClipScores:
    size = (clip.width, clip.height)
    reference = layers.resized(size)
    return measure_clip(
        clip.mp4,
        keyframe=reference.flatten(),
        product_mask=reference.product_mask(),
        brand_background=render_background(sku.brand, size),
    )


@dg.multi_asset(
    name="clip",
    specs=[
        dg.AssetSpec(
            "clip",
            deps=["keyframe"],
            group_name="sku_video",
            kinds={"mp4"},
            description="The SKU's looping clip (H.264 MP4 with faststart) and its poster.",
        )
    ],
    partitions_def=sku_partitions,
    check_specs=check_specs("clip", CLIP_CHECKS),
    can_subset=True,
    backfill_policy=sku_backfill_policy(),
)
def clip(
    context: dg.AssetExecutionContext,
    config: ClipConfig,
    storage: StorageResource,
    motion: MotionClips,
    quality_bar: QualityBarResource,
):
    if not 3.0 <= config.duration_s <= 5.0 or not 12 <= config.fps <= 60:
        raise dg.Failure(description=f"clip config: duration_s {config.duration_s} must be 3-5 and fps {config.fps} 12-60")

    def clip_for(sku_id: str) -> SkuOutcome:
        sku = load_sku(storage, sku_id)
        keyframe_record = read_record(storage, sku, "keyframe")
        if keyframe_record is None:
            raise dg.Failure(description=f"{sku.sku_id}: no keyframe for content {sku.content_hash}; materialize `keyframe` first")
        size = CLIP_SIZES[sku.aspect]
        settings = {"provider": motion.name, "duration_s": config.duration_s, "fps": config.fps, "seed": config.seed,
                    "size": list(size)}
        record = read_record(storage, sku, "clip")
        reused = record is not None and record["settings"] == settings
        if reused:
            context.log.info(f"{sku.sku_id}: clip for {sku.content_hash} with these settings exists, reused")
        else:
            record = render_clip(storage, sku, keyframe_record, motion, config, settings, context.log.info)
        scores = ClipScores(**record["scores"])
        outcomes = judge_clip(scores, width=size[0], height=size[1], fps=config.fps,
                              thresholds=quality_bar.thresholds(sku.tier))
        return SkuOutcome(
            metadata={
                **cost_metadata(record["cost"], reused=reused),
                "status": "ok" if all(o.passed for o in outcomes) else "failed QA",
                "content_hash": sku.content_hash,
                "tier": sku.tier,
                "qa": qa_summary(outcomes),
                "duration_s": dg.MetadataValue.float(float(scores.duration_s)),
                "clip": dg.MetadataValue.path(storage.url(record["files"]["clip.mp4"])),
            },
            checks=outcomes,
        )

    yield from run_per_sku(context, "clip", list(CLIP_CHECKS), clip_for)


def render_clip(storage: StorageResource, sku: Sku, keyframe_record: dict, motion: MotionClips, config: ClipConfig,
                settings: dict, log) -> dict:
    layers = KeyframeLayers.from_files(load_files(storage, keyframe_record))
    request = ClipRequest(
        sku_id=sku.sku_id,
        content_hash=sku.content_hash,
        tier=sku.tier,
        aspect=sku.aspect,
        prompt=sku.prompt,
        keyframe=layers,
        size=CLIP_SIZES[sku.aspect],
        duration_s=config.duration_s,
        fps=config.fps,
        seed=config.seed,
        keyframe_key=keyframe_record["files"]["keyframe.png"],
    )
    result = motion.render_clip(request, log)
    return save_render(
        storage,
        sku,
        "clip",
        render_prefix(sku, "clip", motion.name, config.seed),
        {"clip.mp4": result.clip.mp4, "poster.jpg": result.clip.poster},
        result.cost,
        asdict(clip_scores(sku, layers, result.clip)),
        settings,
    )
