"""Artifact records: typed round trip, records from older releases, damaged or newer records, and what makes a take."""

import json
from dataclasses import asdict, replace

import pytest

from assets.catalog.sku_catalog import Sku
from assets.sku_video.artifacts import (
    RECORD_VERSION,
    ClipRecord,
    KeyframeRecord,
    KeyframeSettings,
    Rendition,
    RenderCost,
    commit_stage,
    read_record,
    render_prefix,
    renditions,
    save_attempt,
)
from assets.sku_video.clips import ClipConfig, render_attempt
from devkit.sample_art import draw_packshot
from resources import storage_keys
from resources.pricing import CostRecord, PricesResource
from resources.providers.cpu import MotionClips
from resources.storage import StorageResource
from videokit.media.brand import BrandKit
from videokit.sku_video.compose import compose_keyframe
from videokit.sku_video.qa import KeyframeScores

KIT = BrandKit.from_dict("fresh", {"background": {"style": "studio", "colors": ["#F1ECE4", "#D6CBBB"]}})
COST = CostRecord(provider="compose", model="compose-v1", cpu_s=0.5, gpu_s=0.0, api_usd=0.0, cost_usd=0.00001,
                  wall_s=0.6)
SCORES = KeyframeScores(width=1280, height=720, expected_width=1280, expected_height=720, size_ok=True,
                        aspect=16 / 9, mean_luma=200.0, sharpness=12.5, product_sharpness_ratio=None,
                        brand_delta_e=0.0, product_psnr=float("inf"))


def make_sku(aspects=(), category="kitchen", prompt="") -> Sku:
    return Sku(sku_id="SKU-1", title="Mug", category=category, brand=KIT, logo_key=None, tier="bulk", prompt=prompt,
               aspect="16:9", image_key="sources/x.png", content_hash="0123456789abcdef", fields={},
               aspects=tuple(aspects))


@pytest.fixture
def storage(tmp_path):
    return StorageResource(root=str(tmp_path / "data"))


def save_keyframe(storage, rendition: Rendition) -> KeyframeRecord:
    prefix = render_prefix(rendition, "keyframe", "compose", 0)
    record = save_attempt(storage, rendition, KeyframeRecord, prefix, {"keyframe.png": b"png"}, RenderCost.of(COST),
                          SCORES, KeyframeSettings(provider="compose", size=(1280, 720)))
    commit_stage(storage, rendition, record)
    return record


def test_a_record_reads_back_as_it_was_written(storage):
    rendition = renditions(make_sku())[0]
    written = save_keyframe(storage, rendition)
    assert read_record(storage, rendition, KeyframeRecord) == written
    stored = storage.read_json(storage_keys.stage_pointer(rendition.prefix, "keyframe"))
    assert stored["version"] == RECORD_VERSION and stored["scores"]["product_psnr"] == float("inf")
    assert rendition.prefix == "skus/SKU-1/0123456789abcdef", "a single-aspect SKU keeps its keys"
    assert read_record(storage, rendition, ClipRecord) is None


def test_a_record_from_before_versions_still_reads(storage):
    """As the previous release wrote it: no version, no aspect, settings with a list, cost with `emulated`."""
    rendition = renditions(make_sku())[0]
    prefix = render_prefix(rendition, "keyframe", "compose", 0)
    old = {"sku_id": "SKU-1", "content_hash": "0123456789abcdef", "stage": "keyframe", "prefix": prefix,
           "files": {"keyframe.png": f"{prefix}/keyframe.png"}, "cost": {**COST.to_dict(), "emulated": False},
           "scores": asdict(SCORES), "settings": {"provider": "compose", "size": [1280, 720]},
           "created_at": "2026-11-30T10:00:00+00:00"}
    storage.write_json(storage_keys.stage_pointer(rendition.prefix, "keyframe"), old)
    record = read_record(storage, rendition, KeyframeRecord)
    assert record is not None and record.version == 0 and record.settings.size == (1280, 720)
    assert record.file("keyframe.png") == f"{prefix}/keyframe.png" and record.cost.cost_usd == COST.cost_usd


@pytest.mark.parametrize("damage", ["newer", "missing field", "wrong type", "not json"])
def test_a_record_that_does_not_validate_counts_as_absent(storage, damage):
    rendition = renditions(make_sku())[0]
    data = save_keyframe(storage, rendition).to_json()
    key = storage_keys.stage_pointer(rendition.prefix, "keyframe")
    if damage == "newer":
        data["version"] = RECORD_VERSION + 1
    elif damage == "missing field":
        del data["scores"]["sharpness"]
    elif damage == "wrong type":
        data["cost"]["cost_usd"] = "a lot"
    if damage == "not json":
        storage.write_bytes(key, b"{truncated")
    else:
        storage.write_json(key, data)
    assert read_record(storage, rendition, KeyframeRecord) is None


def test_each_aspect_has_its_own_records(storage):
    sku = make_sku(aspects=("16:9", "9:16", "1:1"))
    made = {r.aspect: save_keyframe(storage, r) for r in renditions(sku)}
    assert [r.prefix for r in renditions(sku)] == [f"skus/SKU-1/{sku.content_hash}/{slug}" for slug in
                                                   ("16x9", "9x16", "1x1")]
    for rendition in renditions(sku):
        record = read_record(storage, rendition, KeyframeRecord)
        assert record == made[rendition.aspect] and record.aspect == rendition.aspect


def test_the_clip_request_carries_the_category_and_a_changed_style_is_a_new_take(storage):
    """An old take (no style on record) is rendered again; the category table picks the style; a re-run reuses."""
    sku = make_sku(category="footwear")
    rendition = renditions(sku)[0]
    keyframe_record = save_keyframe(storage, rendition)
    layers = compose_keyframe(draw_packshot("mug", color=(200, 70, 60), accent=(250, 240, 230), size=300), KIT,
                              (720, 720))
    config = ClipConfig(duration_s=3.0, fps=12)
    small = replace(rendition, aspect="1:1")
    motion = MotionClips(prices=PricesResource())
    record, reused = render_attempt(storage, small, keyframe_record, layers, "motion", motion, config, 0, 1, print)
    assert not reused and record.settings.motion_style == "turn", "footwear turns by the default table"

    old = record.to_json()
    del old["settings"]["motion_style"]
    del old["version"]
    storage.write_json(storage_keys.attempt_record(record.prefix), old)
    floating = MotionClips(prices=PricesResource(), category_styles={"footwear": "float"})
    again, reused = render_attempt(storage, small, keyframe_record, layers, "motion", floating, config, 0, 1, print)
    assert not reused and again.settings.motion_style == "float"
    third, reused = render_attempt(storage, small, keyframe_record, layers, "motion", floating, config, 0, 1, print)
    assert reused and third == again
    stored = json.loads(storage.read_bytes(storage_keys.attempt_record(record.prefix)))
    assert stored["settings"]["motion_style"] == "float"


def test_a_style_table_with_an_unknown_style_is_refused():
    with pytest.raises(Exception, match="wobble"):
        MotionClips(prices=PricesResource(), category_styles={"footwear": "wobble"})
