"""`keyframe` per SKU: the still every clip starts from, with blocking QA checks."""

import os
from collections.abc import Callable

import dagster as dg
import numpy as np

from assets.catalog.sku_catalog import Sku, sku_catalog, sku_lookup
from assets.queues import on_queue
from assets.sku_video.artifacts import (
    KeyframeRecord,
    KeyframeSettings,
    RenderCost,
    Rendition,
    commit_stage,
    cost_metadata,
    merge_outcomes,
    qa_summary,
    read_record,
    record_render_charge,
    render_prefix,
    renditions,
    save_attempt,
)
from assets.sku_video.per_sku import SkuOutcome, log_once, run_per_sku, sku_asset
from resources.pool_slots import pool_slot
from resources.providers.base import KeyframeRequest
from resources.routing import PolicyError, load_policy
from resources.storage import StorageResource
from videokit.sku_video.compose import KeyframeLayers, render_background
from videokit.sku_video.qa import KeyframeScores, judge_keyframe, measure_keyframe

KEYFRAME_PROVIDERS = ("compose", "flux")
KEYFRAME_CHECKS = {
    "keyframe_format": "Resolution and aspect match the SKU's target size.",
    "keyframe_brand_background": "Border colour is within the ΔE limit of the brand kit's background.",
    "keyframe_product_fidelity": "Product pixels match the packshot cut-out (PSNR).",
    "keyframe_sharpness": "The keyframe is not blurred.",
}


def product_reference(layers: KeyframeLayers) -> np.ndarray:
    """The product layer's own pixels placed in frame: what the keyframe must show where the product is opaque."""
    width, height = layers.size
    reference = np.zeros((height, width, 3), np.uint8)
    x, y = layers.product_xy
    product = layers.product[max(0, -y) : height - y, max(0, -x) : width - x, :3]
    reference[max(0, y) : max(0, y) + product.shape[0], max(0, x) : max(0, x) + product.shape[1]] = product
    return reference


def keyframe_scores(sku: Sku, layers: KeyframeLayers, size: tuple[int, int]) -> KeyframeScores:
    return measure_keyframe(
        layers.flatten(),
        expected_size=size,
        product_reference=product_reference(layers),
        product_mask=layers.product_mask(),
        brand_background=render_background(sku.brand, layers.size),
    )


@sku_asset(
    "keyframe",
    deps=[sku_catalog],
    kinds={"png"},
    description="The SKU's keyframe: product cut out of its packshot on the brand background, with layers for motion.",
    checks=KEYFRAME_CHECKS,
    required_resource_keys={"storage", "quality_bar", "routing", "prices", "ledger", *KEYFRAME_PROVIDERS},
    # On Celery workers: compose is CPU work; SKUVID_KEYFRAME_QUEUE=gpu sends keyframes to gpu workers (flux).
    op_tags=on_queue(os.environ.get("SKUVID_KEYFRAME_QUEUE", "cpu")),
)
def keyframe(context: dg.AssetExecutionContext):
    resources = context.resources
    storage, quality_bar = resources.storage, resources.quality_bar
    try:
        policy = load_policy(resources.prices.table, resources.routing.path)
    except PolicyError as error:
        raise dg.Failure(description=str(error)) from None

    log_unavailable = log_once(context.log.info)
    lookup = sku_lookup(storage)

    def keyframe_of(rendition: Rendition) -> tuple[KeyframeRecord, bool]:
        record = read_record(storage, rendition, KeyframeRecord)
        if record is not None:
            context.log.info(f"{rendition.label}: keyframe for {rendition.sku.content_hash} exists, reused")
            return record, True
        name, provider = first_available_provider(policy.route(rendition.sku.fields).keyframe, context, log_unavailable)
        with pool_slot(resources.ledger, provider.pool, context.run.run_id, f"keyframe[{rendition.label}]",
                       context.log.info):
            record = render_keyframe(storage, rendition, provider, context.log.info)
        record_render_charge(resources.ledger, rendition, "keyframe", name, provider, 0, record.cost)
        return record, False

    def keyframe_for(sku_id: str) -> SkuOutcome:
        sku = lookup(sku_id)
        made = [(rendition, *keyframe_of(rendition)) for rendition in renditions(sku)]
        thresholds = quality_bar.thresholds(sku.tier)
        outcomes = merge_outcomes([(rendition, judge_keyframe(record.scores, thresholds))
                                   for rendition, record, _ in made])
        return SkuOutcome(
            metadata={
                **cost_metadata([record.cost for _, record, _ in made], reused=all(reused for *_, reused in made)),
                "status": "ok" if all(o.passed for o in outcomes) else "failed QA",
                "content_hash": sku.content_hash,
                "tier": sku.tier,
                "aspects": ", ".join(sku.aspects),
                "qa": qa_summary(outcomes),
                "keyframe": dg.MetadataValue.path(storage.url(made[0][1].file("keyframe.png"))),
            },
            checks=outcomes,
        )

    yield from run_per_sku(context, "keyframe", list(KEYFRAME_CHECKS), keyframe_for)


def first_available_provider(chain: tuple[str, ...], context: dg.AssetExecutionContext,
                             log_unavailable: Callable[[str], None]):
    skipped = []
    for name in chain:
        provider = getattr(context.resources, name)
        availability = provider.availability()
        if availability.available:
            return name, provider
        log_unavailable(f"keyframe provider {name} skipped: {availability.reason}")
        skipped.append(f"{name}: {availability.reason}")
    raise dg.Failure(description="no keyframe provider available: " + "; ".join(skipped))


def render_keyframe(storage: StorageResource, rendition: Rendition, provider, log) -> KeyframeRecord:
    sku = rendition.sku
    request = KeyframeRequest(
        sku_id=sku.sku_id,
        content_hash=sku.content_hash,
        title=sku.title,
        category=sku.category,
        prompt=sku.prompt,
        packshot=storage.read_bytes(sku.image_key),
        brand=sku.brand,
        logo=storage.read_bytes(sku.logo_key) if sku.logo_key else None,
        size=rendition.keyframe_size,
    )
    result = provider.render_keyframe(request, log)
    record = save_attempt(
        storage,
        rendition,
        KeyframeRecord,
        render_prefix(rendition, "keyframe", provider.name, request.seed),
        result.layers.to_files(),
        RenderCost.of(result.cost),
        keyframe_scores(sku, result.layers, request.size),
        KeyframeSettings(provider=provider.name, size=request.size),
    )
    commit_stage(storage, rendition, record)
    return record
