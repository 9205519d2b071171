"""One SKU in three aspects through the graph, and the catalog's `aspects` column."""

import io

import av
import dagster as dg
import pandas as pd
import pytest

from assets.catalog.rows import aspects_problem, content_hash, normalized_aspects
from assets.catalog.sku_catalog import sku_catalog
from assets.sku_video.clips import clip
from assets.sku_video.keyframes import keyframe
from assets.sku_video.publish import published_video, read_manifest
from devkit.demo import write_gallery
from pipelines.resources import build_resources
from resources import storage_keys
from resources.ledger import LedgerResource
from resources.storage import StorageResource
from tests.pipelines.fixtures import BRANDS_YAML, write_packshots

SIZES = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
FAST_CLIPS = {"ops": {"clip": {"config": {"duration_s": 3.0, "fps": 12}}}}


def test_aspects_cell_is_validated_and_normalised():
    assert aspects_problem("16:9, 9:16;1:1", "16:9") is None
    assert "'4:3' is not one of" in aspects_problem("16:9 4:3", "16:9")
    assert "9:16 is listed more than once" in aspects_problem("16:9 9:16 9:16", "16:9")
    assert "does not list the SKU's aspect '1:1'" in aspects_problem("16:9 9:16", "1:1")
    assert normalized_aspects("9:16 | 1:1 | 16:9", "16:9") == "16:9 9:16 1:1", "the SKU's aspect comes first"
    assert normalized_aspects("", "16:9") == normalized_aspects("16:9", "16:9") == ""


def test_only_several_aspects_change_the_content_hash():
    row = {"sku_id": "S-1", "title": "T", "category": "c", "brand": "b", "tier": "bulk", "prompt": "", "aspect": "1:1"}
    single = content_hash(row, "pixels", "kit")
    assert content_hash({**row, "aspects": ""}, "pixels", "kit") == single
    assert content_hash({**row, "aspects": "1:1"}, "pixels", "kit") == single
    assert content_hash({**row, "aspects": "1:1 16:9"}, "pixels", "kit") != single


@pytest.fixture
def three_aspect_catalog(tmp_path):
    folder = tmp_path / "catalog"
    write_packshots(folder)
    (folder / "brands.yaml").write_text(BRANDS_YAML)
    (folder / "catalog.csv").write_text(
        "sku_id,title,category,brand,image,tier,prompt,aspect,aspects\n"
        'TRIO-1,Fizz bottle,beverage,fresh,packshots/hero.png,bulk,,16:9,"16:9, 9:16, 1:1"\n'
        "BAD-1,Fizz bottle,beverage,fresh,packshots/hero.png,bulk,,16:9,16:9 2:1\n"
    )
    return folder


def test_one_sku_in_three_aspects_is_checked_and_published_three_times(three_aspect_catalog, tmp_path):
    resources = {**build_resources(), "storage": StorageResource(root=str(tmp_path / "data")),
                 "ledger": LedgerResource(url=f"sqlite:///{tmp_path}/ledger.sqlite")}
    storage = resources["storage"]
    config = {"ops": {"sku_catalog": {"config": {"source": str(three_aspect_catalog / "catalog.csv"),
                                                  "brands": str(three_aspect_catalog / "brands.yaml")}}}}
    with dg.instance_for_test() as instance:
        catalog = dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=config)
        rejects = catalog.asset_materializations_for_node("sku_catalog")[-1].metadata["rejects"].value
        assert "BAD-1" in rejects and "aspects" in rejects and "'2:1' is not one of" in rejects

        result = dg.materialize([keyframe, clip, published_video], partition_key="TRIO-1", instance=instance,
                                resources=resources, run_config=FAST_CLIPS)
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == 10 and all(e.passed for e in evaluations)
        clip_format = next(e for e in evaluations if e.check_name == "clip_format")
        assert {clip_format.metadata[f"{slug}.width"].value for slug in ("16x9", "9x16", "1x1")} == {1280, 720}
        assert clip_format.metadata["9x16.height"].value == 1280

        manifest = read_manifest(storage)
        assert len(manifest) == 3 and set(manifest["sku_id"]) == {"TRIO-1"}
        content = manifest["content_hash"].iloc[0]
        for row in manifest.itertuples():
            assert (row.width, row.height) == SIZES[row.aspect]
            assert row.qa_summary == "all 5 clip checks passed"
            assert row.video_key == storage_keys.published_video("TRIO-1", content, row.aspect)
            with av.open(io.BytesIO(storage.read_bytes(row.video_key))) as container:
                stream = container.streams.video[0]
                assert (stream.codec_context.width, stream.codec_context.height) == SIZES[row.aspect]
            assert storage.exists(storage_keys.stage_pointer(storage_keys.rendition("TRIO-1", content, row.aspect),
                                                             "clip"))

        page = write_gallery(storage).read_text()
        assert page.count("<video ") == 3 and all(f"TRIO-1 {aspect} - " in page for aspect in SIZES)

        again = dg.materialize([keyframe, clip, published_video], partition_key="TRIO-1", instance=instance,
                               resources=resources, run_config=FAST_CLIPS)
        for asset in ("keyframe", "clip", "published_video"):
            meta = again.asset_materializations_for_node(asset)[-1].metadata
            assert meta["reused"].value is True and meta["cost_usd"].value == 0.0
        assert pd.testing.assert_frame_equal(read_manifest(storage), manifest) is None


def test_a_backfill_estimate_counts_every_aspect():
    from assets.costs.estimate import Capacity, estimate_backfill
    from resources.pricing import PricesResource
    from resources.routing import load_policy

    prices = PricesResource().table
    row = {"sku_id": "S-1", "title": "T", "category": "kitchen", "brand": "b", "tier": "bulk", "prompt": "",
           "aspect": "16:9"}
    one = estimate_backfill([row], load_policy(prices, None), prices, Capacity(retake_rate=0.0))
    three = estimate_backfill([{**row, "aspects": "16:9 9:16 1:1"}], load_policy(prices, None), prices,
                              Capacity(retake_rate=0.0))
    assert sum(line.renders for line in three.lines) == 3 * sum(line.renders for line in one.lines) == 6
    assert three.total_usd == pytest.approx(3 * one.total_usd)
