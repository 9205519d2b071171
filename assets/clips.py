"""`clip` per SKU: a seamless 3-5 s loop made from the keyframe, with blocking QA checks."""

from dataclasses import asdict

import dagster as dg
from pydantic import Field

from assets.artifacts import (
    check_results,
    cost_metadata,
    load_files,
    qa_summary,
    read_record,
    render_prefix,
    save_render,
)
from assets.catalog import Sku, load_sku
from assets.keyframes import keyframe
from assets.partitions import sku_partitions
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


@dg.asset(
    partitions_def=sku_partitions,
    deps=[keyframe],
    group_name="sku_video",
    kinds={"mp4"},
    check_specs=[dg.AssetCheckSpec(n, asset="clip", blocking=True, description=d) for n, d in CLIP_CHECKS.items()],
    description="The SKU's looping clip (H.264 MP4 with faststart) and its poster.",
)
def clip(
    context: dg.AssetExecutionContext,
    config: ClipConfig,
    storage: StorageResource,
    motion: MotionClips,
    quality_bar: QualityBarResource,
) -> dg.MaterializeResult:
    if not 3.0 <= config.duration_s <= 5.0 or not 12 <= config.fps <= 60:
        raise dg.Failure(description=f"clip config: duration_s {config.duration_s} must be 3-5 and fps {config.fps} 12-60")
    sku = load_sku(storage, context.partition_key)
    keyframe_record = read_record(storage, sku, "keyframe")
    if keyframe_record is None:
        raise dg.Failure(description=f"{sku.sku_id}: no keyframe for content {sku.content_hash}; materialize `keyframe` first")
    size = CLIP_SIZES[sku.aspect]
    settings = {"provider": motion.name, "duration_s": config.duration_s, "fps": config.fps, "seed": config.seed,
                "size": list(size)}
    record = read_record(storage, sku, "clip")
    reused = record is not None and record["settings"] == settings
    if not reused:
        layers = KeyframeLayers.from_files(load_files(storage, keyframe_record))
        request = ClipRequest(
            sku_id=sku.sku_id,
            content_hash=sku.content_hash,
            tier=sku.tier,
            aspect=sku.aspect,
            prompt=sku.prompt,
            keyframe=layers,
            size=size,
            duration_s=config.duration_s,
            fps=config.fps,
            seed=config.seed,
            keyframe_key=keyframe_record["files"]["keyframe.png"],
        )
        result = motion.render_clip(request, context.log.info)
        record = save_render(
            storage,
            sku,
            "clip",
            render_prefix(sku, "clip", motion.name, config.seed),
            {"clip.mp4": result.clip.mp4, "poster.jpg": result.clip.poster},
            result.cost,
            asdict(clip_scores(sku, layers, result.clip)),
            settings,
        )
    else:
        context.log.info(f"{sku.sku_id}: clip for {sku.content_hash} with these settings exists, reused")
    scores = ClipScores(**record["scores"])
    outcomes = judge_clip(scores, width=size[0], height=size[1], fps=config.fps, thresholds=quality_bar.thresholds(sku.tier))
    return dg.MaterializeResult(
        metadata={
            **cost_metadata(record["cost"], reused=reused),
            "content_hash": sku.content_hash,
            "tier": sku.tier,
            "qa_passed": all(o.passed for o in outcomes),
            "qa": qa_summary(outcomes),
            "duration_s": dg.MetadataValue.float(float(scores.duration_s)),
            "clip": dg.MetadataValue.path(storage.url(record["files"]["clip.mp4"])),
        },
        check_results=check_results("clip", outcomes),
    )
