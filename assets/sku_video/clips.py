"""`clip` per SKU: a seamless 3-5 s loop made from the keyframe, with blocking QA checks."""

from dataclasses import asdict

import dagster as dg
from pydantic import Field

from assets.catalog.sku_catalog import Sku, sku_lookup
from assets.sku_video.artifacts import (
    cost_metadata,
    load_files,
    pointer_key,
    qa_summary,
    read_record,
    record_render_charge,
    render_prefix,
    save_attempt,
)
from assets.sku_video.escalation import escalate
from assets.sku_video.per_sku import SkuOutcome, log_once, run_per_sku, sku_asset
from resources.pool_slots import PoolSettings, pool_slot
from resources.pricing import render_cost
from resources.providers.api.fal_catalog import fal_model_names
from resources.providers.base import ClipRequest
from resources.providers.emulation import emulated_scopes, is_emulated
from resources.routing import PolicyError, load_policy
from resources.storage import StorageResource
from videokit.media.brand import CLIP_SIZES
from videokit.media.encode import ClipFile
from videokit.sku_video.compose import KeyframeLayers, render_background
from videokit.sku_video.qa import ClipScores, judge_clip, measure_clip

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


CLIP_PROVIDERS = ("motion", "wan", "wan_ti2v", "cogvideox", "runway", "kling", *fal_model_names())


@sku_asset(
    "clip",
    deps=["keyframe"],
    kinds={"mp4"},
    description="The SKU's looping clip (H.264 MP4 with faststart) and its poster, from the first provider "
    "of its routing chain that is available and passes QA.",
    checks=CLIP_CHECKS,
    required_resource_keys={"storage", "quality_bar", "routing", "prices", "ledger", *CLIP_PROVIDERS},
)
def clip(context: dg.AssetExecutionContext, config: ClipConfig):
    resources = context.resources
    storage, quality_bar, ledger = resources.storage, resources.quality_bar, resources.ledger
    if not 3.0 <= config.duration_s <= 5.0 or not 12 <= config.fps <= 60:
        raise dg.Failure(description=f"clip config: duration_s {config.duration_s} must be 3-5 and fps {config.fps} 12-60")
    try:
        policy = load_policy(resources.prices.table, resources.routing.path)
    except PolicyError as error:
        raise dg.Failure(description=str(error)) from None
    providers = {name: getattr(context.resources, name) for name in CLIP_PROVIDERS}
    prices = resources.prices.table

    def attempt_price(name: str) -> float:
        return render_cost(prices.providers[name], prices)
    log_unavailable = log_once(context.log.info)

    lookup = sku_lookup(storage)

    def clip_for(sku_id: str) -> SkuOutcome:
        sku = lookup(sku_id)
        keyframe_record = read_record(storage, sku, "keyframe")
        if keyframe_record is None:
            raise dg.Failure(description=f"{sku.sku_id}: no keyframe for content {sku.content_hash}; materialize `keyframe` first")
        size = CLIP_SIZES[sku.aspect]
        thresholds = quality_bar.thresholds(sku.tier)

        def judge(record: dict) -> list:
            return judge_clip(ClipScores(**record["scores"]), width=size[0], height=size[1], fps=config.fps,
                              thresholds=thresholds)

        route = policy.route(sku.fields)
        layers = KeyframeLayers.from_files(load_files(storage, keyframe_record))

        def render(name: str, provider, seed: int, attempt: int) -> tuple[dict, bool]:
            with pool_slot(ledger, provider.pool, context.run.run_id, f"clip[{sku.sku_id}]", context.log.info):
                record, reused = render_attempt(storage, sku, keyframe_record, layers, name, provider, config, seed,
                                                attempt, context.log.info)
            if not reused:
                record_render_charge(ledger, sku, "clip", name, provider, seed, record["cost"])
            return record, reused

        result = escalate(route.clip, providers, retakes=policy.retakes, base_seed=config.seed, render=render,
                          judge=judge, log=lambda message: context.log.info(f"{sku.sku_id}: {message}"),
                          log_unavailable=log_unavailable, max_usd=policy.max_usd_per_sku, price_usd=attempt_price)
        if result.record is None:
            raise dg.Failure(description=f"{sku.sku_id}: no clip rendered. {result.reason(route.rule)}")
        record = {**result.record, "route": route.rule, "attempts": [asdict(a) for a in result.attempts]}
        storage.write_json(pointer_key(sku, "clip"), record)
        outcomes = judge(record)
        return SkuOutcome(
            metadata={
                **cost_metadata(record["cost"], reused=all(a.reused for a in result.attempts)),
                "status": "ok" if result.passed else "failed QA",
                "content_hash": sku.content_hash,
                "tier": sku.tier,
                "route": route.rule,
                "why": result.reason(route.rule),
                "attempts": len(result.attempts),
                "total_cost_usd": dg.MetadataValue.float(result.spent_usd),
                "qa": qa_summary(outcomes),
                "duration_s": dg.MetadataValue.float(float(record["scores"]["duration_s"])),
                "clip": dg.MetadataValue.path(storage.url(record["files"]["clip.mp4"])),
                "emulated": bool(record["cost"].get("emulated", False)),
            },
            checks=outcomes,
        )

    def waits_on_api(sku_id: str) -> bool:
        """The SKU's route starts on a paid API: its render only waits on HTTP, so it overlaps the others'."""
        chain = policy.route(lookup(sku_id).fields).clip
        first = next((providers[name] for name in chain if providers[name].availability().available), None)
        return getattr(first, "pool", None) == "api"

    # API waits overlap up to the `api` pool's limit (its ledger leases bound them across runs too);
    # CPU and GPU SKUs stay one after another in this step.
    yield from run_per_sku(context, "clip", list(CLIP_CHECKS), clip_for, waits_on_network=waits_on_api,
                           network_workers=PoolSettings.from_env().limits.get("api", 1))


def render_attempt(storage: StorageResource, sku: Sku, keyframe_record: dict, layers: KeyframeLayers, name: str,
                   provider, config: ClipConfig, seed: int, attempt: int, log) -> tuple[dict, bool]:
    """One take by one provider (by its routing name): reused when this name, seed and settings are on record."""
    prefix = render_prefix(sku, "clip", name, seed)
    settings = {"provider": name, "duration_s": config.duration_s, "fps": config.fps, "seed": seed,
                "size": list(CLIP_SIZES[sku.aspect])}
    if storage.exists(f"{prefix}/record.json"):
        record = storage.read_json(f"{prefix}/record.json")
        if record["settings"] == settings:
            log(f"{sku.sku_id}: {name} seed {seed} already rendered for {sku.content_hash}, reused")
            return record, True
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
        seed=seed,
        keyframe_key=keyframe_record["files"]["keyframe.png"],
        attempt=attempt,
        budget_scopes=emulated_scopes(provider),
    )
    result = provider.render_clip(request, log)
    record = save_attempt(
        storage,
        sku,
        "clip",
        prefix,
        {"clip.mp4": result.clip.mp4, "poster.jpg": result.clip.poster},
        result.cost,
        asdict(clip_scores(sku, layers, result.clip)),
        settings,
    )
    if is_emulated(provider):
        record["cost"]["emulated"] = True
        storage.write_json(f"{prefix}/record.json", record)
    return record, False
