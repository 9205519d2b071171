"""The whole graph, in process, on a temporary instance: catalog -> keyframe -> clip -> checks -> publish."""

from __future__ import annotations

import io
from dataclasses import replace

import av
import dagster as dg
import numpy as np
import pytest

from assets.catalog.sku_catalog import sku_catalog
from assets.sku_video.clips import clip
from assets.sku_video.keyframes import keyframe
from assets.sku_video.publish import published_video, read_manifest
from resources.providers.base import ClipRequest, ClipResult
from resources.providers.cpu import MotionClips
from videokit.media.encode import ClipFile, EncodeSettings, encode_jpeg, encode_mp4

SKU_ASSETS = [keyframe, clip, published_video]


def catalog_config(folder) -> dict:
    return {"ops": {"sku_catalog": {"config": {"source": str(folder / "catalog.csv"), "brands": str(folder / "brands.yaml")}}}}


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[-1].metadata.items()}


def test_two_skus_end_to_end_then_reused(catalog_dir, resources):
    with dg.instance_for_test() as instance:
        catalog = dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        meta = metadata(catalog, "sku_catalog")
        assert (meta["accepted"], meta["rejected_rows"]) == (2, 1)
        assert "bad id" in meta["rejects"] and "sku_id" in meta["rejects"]
        assert sorted(instance.get_dynamic_partitions("sku")) == ["BULK-2", "HERO-1"]

        for sku in ("HERO-1", "BULK-2"):
            result = dg.materialize(SKU_ASSETS, partition_key=sku, instance=instance, resources=resources)
            assert result.success
            evaluations = result.get_asset_check_evaluations()
            assert len(evaluations) == 10
            assert all(e.passed for e in evaluations), [(e.check_name, e.description) for e in evaluations]
            clip_meta = metadata(result, "clip")
            assert clip_meta["provider"] == "motion" and clip_meta["reused"] is False
            assert 0 < clip_meta["cost_usd"] < 0.001 and clip_meta["cpu_s"] > 0

        manifest = read_manifest(resources["storage"]).set_index("sku_id")
        assert sorted(manifest.index) == ["BULK-2", "HERO-1"]
        assert (manifest.loc["HERO-1", "width"], manifest.loc["HERO-1", "height"]) == (1280, 720)
        assert (manifest.loc["BULK-2", "width"], manifest.loc["BULK-2", "height"]) == (720, 720)
        video = resources["storage"].read_bytes(f"published/HERO-1/{manifest.loc['HERO-1', 'content_hash']}.mp4")
        with av.open(io.BytesIO(video)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
            assert sum(1 for _ in container.decode(stream)) == 96

        again = dg.materialize(SKU_ASSETS, partition_key="HERO-1", instance=instance, resources=resources)
        for asset in ("keyframe", "clip", "published_video"):
            assert metadata(again, asset)["reused"] is True
            assert metadata(again, asset)["cost_usd"] == 0.0
        assert all(e.passed for e in again.get_asset_check_evaluations())


class BlackClips(MotionClips):
    """A provider gone wrong: every frame black."""

    def render_clip(self, request: ClipRequest, log) -> ClipResult:
        result = super().render_clip(request, log)
        width, height = request.size
        n = round(request.duration_s * request.fps)
        frames = (np.zeros((height, width, 3), np.uint8) for _ in range(n))
        mp4 = encode_mp4(frames, request.size, request.fps, EncodeSettings())
        black = ClipFile(mp4=mp4, poster=encode_jpeg(np.zeros((height, width, 3), np.uint8)), width=width,
                         height=height, fps=request.fps, n_frames=n)
        return replace(result, clip=black)


def test_failed_clip_check_blocks_publish(catalog_dir, resources):
    resources = {**resources, "motion": BlackClips(prices=resources["prices"])}
    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        result = dg.materialize(SKU_ASSETS, partition_key="BULK-2", instance=instance, resources=resources,
                                raise_on_error=False)
        failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
        assert "clip_content" in failed
        assert not result.asset_materializations_for_node("published_video")
        assert read_manifest(resources["storage"]).empty


def partition_events(instance, asset: str) -> dict[str, dict]:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    return {r.partition_key: {k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records}


def range_tags(start: str, end: str) -> dict:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def partition_status(instance, asset: str, keys: list[str]) -> dict:
    from assets.partitions import sku_partitions

    statuses = instance.get_status_by_partition(dg.AssetKey(asset), keys, sku_partitions)
    return {key: statuses[key].value if statuses[key] else None for key in keys}


def test_batched_run_gives_each_sku_its_own_metadata_and_checks(catalog_dir, resources):
    """A SKU that fails in a batch is failed, not materialized: per partition in the run and the asset's status."""
    from resources.quality import QualityBarResource

    # The bulk tier's bar is set out of reach, so BULK-2 fails QA inside the same batch as HERO-1.
    resources = {**resources, "quality_bar": QualityBarResource(bulk={"min_product_psnr_clip": 200.0})}
    keys = ["HERO-1", "BULK-2"]
    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        # A backfill runs each stage in its own batched runs (their backfill policies differ on purpose).
        stages = {asset.key.path[-1]: dg.materialize([asset], instance=instance, resources=resources,
                                                      raise_on_error=False, tags=range_tags(*keys))
                  for asset in SKU_ASSETS}
        assert stages["keyframe"].success
        assert not stages["clip"].success
        failure = next(e for e in stages["clip"].all_events if e.event_type_value == "STEP_FAILURE")
        assert "1 of 2 SKUs failed" in failure.step_failure_data.user_failure_data.description
        assert "BULK-2" in failure.step_failure_data.user_failure_data.description

        clips = partition_events(instance, "clip")
        assert set(clips) == {"HERO-1"}, "a SKU that failed QA is not recorded as materialized"
        assert clips["HERO-1"]["status"] == "ok" and clips["HERO-1"]["content_hash"]
        assert partition_status(instance, "clip", keys) == {"HERO-1": "MATERIALIZED", "BULK-2": "FAILED"}

        evaluations = {(e.asset_key.path[-1], e.check_name, e.partition): e.passed
                       for result in stages.values() for e in result.get_asset_check_evaluations()}
        assert evaluations[("clip", "clip_product_fidelity", "BULK-2")] is False
        assert evaluations[("clip", "clip_product_fidelity", "HERO-1")] is True
        assert evaluations[("published_video", "published_video_in_manifest", "HERO-1")] is True
        assert evaluations[("published_video", "published_video_in_manifest", "BULK-2")] is False

        published = partition_events(instance, "published_video")
        assert set(published) == {"HERO-1"} and published["HERO-1"]["status"] == "published"
        assert partition_status(instance, "published_video", keys) == {"HERO-1": "MATERIALIZED", "BULK-2": "FAILED"}
        # The UI's count of published SKUs, the manifest and the catalog agree.
        assert list(read_manifest(resources["storage"])["sku_id"]) == ["HERO-1"]


def test_batched_run_does_not_reload_the_partitions_per_sku(catalog_dir, resources, monkeypatch):
    """Per-SKU work in a batched run must not grow with the catalog: no partition list load per SKU."""
    with (catalog_dir / "catalog.csv").open("a") as catalog:
        catalog.write("BULK-3,Blue mug,kitchen,night,packshots/bulk.png,bulk,,1:1\n"
                      "BULK-4,Green mug,kitchen,night,packshots/bulk.png,bulk,,16:9\n")
    loads = []
    real = dg.DagsterInstance.get_dynamic_partitions
    monkeypatch.setattr(dg.DagsterInstance, "get_dynamic_partitions",
                        lambda self, *args, **kwargs: loads.append(1) or real(self, *args, **kwargs))
    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        counts = []
        for start, end in (("HERO-1", "BULK-2"), ("HERO-1", "BULK-4")):
            loads.clear()
            for asset in SKU_ASSETS:
                assert dg.materialize([asset], instance=instance, resources=resources,
                                      tags=range_tags(start, end)).success
            counts.append(len(loads))
        assert counts[0] == counts[1], f"partition list loads for 2 SKUs vs 4 SKUs: {counts}"
        assert set(partition_events(instance, "clip")) == {"HERO-1", "BULK-2", "BULK-3", "BULK-4"}


def test_cost_estimate_asset_for_the_current_catalog(catalog_dir, resources):
    from assets.costs.cost_report import cost_estimate

    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        result = dg.materialize([cost_estimate], instance=instance, resources=resources, selection=[cost_estimate])
        meta = metadata(result, "cost_estimate")
        assert (meta["skus"], meta["heroes"]) == (2, 1)
        assert meta["total_usd"] > 0 and meta["saving_vs_all_runway_pct"] > 0
        assert "runway" in meta["estimate"] and "hybrid saves" in meta["estimate"]


def test_cost_report_from_the_ledger_with_last_backfill(catalog_dir, resources, tmp_path):
    from assets.costs.cost_report import REPORT_CHART_KEY, cost_report
    from resources.ledger import LedgerResource

    resources = {**resources, "ledger": LedgerResource(url=f"sqlite:///{tmp_path}/ledger.sqlite")}
    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        # A batched backfill run, tagged as the backfill daemon tags it.
        dg.materialize(SKU_ASSETS, instance=instance, resources=resources,
                       tags={"dagster/backfill": "bf1", "dagster/asset_partition_range_start": "HERO-1",
                             "dagster/asset_partition_range_end": "BULK-2"})
        report = dg.materialize([cost_report], instance=instance, resources=resources, selection=[cost_report])
        meta = metadata(report, "cost_report")
        assert meta["charges"] == 4 and meta["skus"] == 2  # a keyframe and a clip per SKU
        assert meta["usd_compose"] > 0 and meta["usd_motion"] > 0
        assert meta["total_usd"] == pytest.approx(meta["usd_compose"] + meta["usd_motion"])
        assert meta["last_backfill_actual_usd"] == pytest.approx(meta["total_usd"])
        assert meta["last_backfill_estimate_usd"] > 0
        assert "By tier" in meta["report"] and "hero" in meta["report"] and "data:image/png;base64," in meta["report"]
        assert resources["storage"].read_bytes(REPORT_CHART_KEY)[:8] == b"\x89PNG\r\n\x1a\n"
