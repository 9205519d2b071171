"""`clip` per SKU: a seamless 3-5 s loop made from the keyframe, with blocking QA checks."""

from dataclasses import asdict

import dagster as dg
from pydantic import Field

from assets.catalog.sku_catalog import Sku, sku_lookup
from assets.sku_video.artifacts import (
    AttemptSummary,
    ClipRecord,
    ClipSettings,
    KeyframeRecord,
    RenderCost,
    Rendition,
    commit_stage,
    cost_metadata,
    load_files,
    merge_outcomes,
    qa_summary,
    read_json_record,
    read_record,
    record_render_charge,
    render_prefix,
    renditions,
    save_attempt,
)
from assets.sku_video.escalation import escalate
from assets.sku_video.per_sku import SkuOutcome, log_once, run_per_sku, sku_asset
from resources import storage_keys
from resources.pool_slots import PoolSettings, pool_slot
from resources.pricing import render_cost
from resources.providers.api.fal_catalog import fal_model_names
from resources.providers.base import ClipRequest
from resources.providers.emulation import emulated_scopes, is_emulated
from resources.routing import PolicyError, load_policy
from resources.storage import StorageResource
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

    def clip_of(rendition: Rendition, spent_before: float):
        """Escalate one aspect of the SKU to a clip; returns its pointer record (or None), checks and escalation."""
        sku = rendition.sku
        keyframe_record = read_record(storage, rendition, KeyframeRecord)
        if keyframe_record is None:
            raise dg.Failure(description=f"{rendition.label}: no keyframe for content {sku.content_hash}; "
                             "materialize `keyframe` first")
        width, height = rendition.clip_size
        thresholds = quality_bar.thresholds(sku.tier)

        def judge(record: ClipRecord) -> list:
            return judge_clip(record.scores, width=width, height=height, fps=config.fps, thresholds=thresholds)

        route = policy.route(sku.fields)
        layers = KeyframeLayers.from_files(load_files(storage, keyframe_record))

        def render(name: str, provider, seed: int, attempt: int) -> tuple[ClipRecord, bool]:
            with pool_slot(ledger, provider.pool, context.run.run_id, f"clip[{rendition.label}]", context.log.info):
                record, reused = render_attempt(storage, rendition, keyframe_record, layers, name, provider, config,
                                                seed, attempt, context.log.info)
            if not reused:
                record_render_charge(ledger, rendition, "clip", name, provider, seed, record.cost)
            return record, reused

        result = escalate(route.clip, providers, retakes=policy.retakes, base_seed=config.seed, render=render,
                          judge=judge, log=lambda message: context.log.info(f"{rendition.label}: {message}"),
                          log_unavailable=log_unavailable, max_usd=policy.max_usd_per_sku, price_usd=attempt_price,
                          spent_before=spent_before)
        if result.record is None:
            return None, [], result, route
        record = result.record.model_copy(update={
            "route": route.rule,
            "attempts": tuple(AttemptSummary(**asdict(a)) for a in result.attempts),
        })
        commit_stage(storage, rendition, record)
        return record, judge(record), result, route

    def clip_for(sku_id: str) -> SkuOutcome:
        sku = lookup(sku_id)
        made = []
        spent = 0.0
        for rendition in renditions(sku):
            record, outcomes, result, route = clip_of(rendition, spent)
            if record is None:
                raise dg.Failure(description=f"{rendition.label}: no clip rendered. {result.reason(route.rule)}")
            spent += sum(a.original_cost_usd for a in result.attempts)
            made.append((rendition, record, outcomes, result))
        outcomes = merge_outcomes([(rendition, checks) for rendition, _, checks, _ in made])
        attempts = [a for *_, result in made for a in result.attempts]
        first = made[0][1]
        return SkuOutcome(
            metadata={
                **cost_metadata([record.cost for _, record, _, _ in made], reused=all(a.reused for a in attempts)),
                "status": "ok" if all(result.passed for *_, result in made) else "failed QA",
                "content_hash": sku.content_hash,
                "tier": sku.tier,
                "aspects": ", ".join(sku.aspects),
                "route": route.rule,
                "why": " | ".join(
                    (f"{rendition.aspect}: " if rendition.suffixed else "") + result.reason(route.rule)
                    for rendition, _, _, result in made
                ),
                "attempts": len(attempts),
                "total_cost_usd": dg.MetadataValue.float(sum(result.spent_usd for *_, result in made)),
                "qa": qa_summary(outcomes),
                "duration_s": dg.MetadataValue.float(float(first.scores.duration_s)),
                "clip": dg.MetadataValue.path(storage.url(first.file("clip.mp4"))),
                "emulated": any(record.cost.emulated for _, record, _, _ in made),
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


def render_attempt(storage: StorageResource, rendition: Rendition, keyframe_record: KeyframeRecord,
                   layers: KeyframeLayers, name: str, provider, config: ClipConfig, seed: int, attempt: int,
                   log) -> tuple[ClipRecord, bool]:
    """One take by one provider (by its routing name): reused when this name, seed and settings are on record."""
    sku = rendition.sku
    prefix = render_prefix(rendition, "clip", name, seed)
    request = ClipRequest(
        sku_id=sku.sku_id,
        content_hash=sku.content_hash,
        tier=sku.tier,
        aspect=rendition.aspect,
        prompt=sku.prompt,
        category=sku.category,
        keyframe=layers,
        size=rendition.clip_size,
        duration_s=config.duration_s,
        fps=config.fps,
        seed=seed,
        keyframe_key=keyframe_record.file("keyframe.png"),
        attempt=attempt,
        budget_scopes=emulated_scopes(provider),
    )
    # A provider with its own style choices (the CPU loop) names them, so a changed choice is a new take.
    extra = provider.take_settings(request) if hasattr(provider, "take_settings") else {}
    settings = ClipSettings(provider=name, duration_s=config.duration_s, fps=config.fps, seed=seed,
                            size=rendition.clip_size, **extra)
    earlier = read_json_record(storage, storage_keys.attempt_record(prefix), ClipRecord)
    if earlier is not None and earlier.settings == settings:
        log(f"{rendition.label}: {name} seed {seed} already rendered for {sku.content_hash}, reused")
        return earlier, True
    result = provider.render_clip(request, log)
    record = save_attempt(
        storage,
        rendition,
        ClipRecord,
        prefix,
        {"clip.mp4": result.clip.mp4, "poster.jpg": result.clip.poster},
        RenderCost.of(result.cost, emulated=is_emulated(provider)),
        clip_scores(sku, layers, result.clip),
        settings,
    )
    return record, False
