"""`campaign_clips` through the default (in-process) executor: chunks as steps, rejects, manifest, deterministic keys,
idempotent re-runs."""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.campaigns.campaign_clips import (
    campaign_clips,
    merge_campaign_chunks,
    plan_campaign_chunks,
    render_campaign_chunk,
)
from assets.catalog.sku_catalog import write_parquet
from assets.partitions import campaign_partitions
from assets.sku_video.publish import MANIFEST_COLUMNS as PUBLISHED_COLUMNS
from assets.sku_video.publish import manifest_key
from resources.pricing import PricesResource
from resources.step_outputs import step_outputs_io_manager
from resources.storage import StorageResource
from samples.campaign.make_campaign_samples import draw_logo, write_template
from videokit.media.probe import probe_mp4

SPEC = """
name: spring
template: {video: media/template.mp4}
recipients: recipients.csv
output: {aspects: ["16:9", "1:1"], short_side: 360}
slots:
  - {name: greeting, kind: text, text: "Hi {first_name}!", start_s: 0.5, end_s: 1.0,
     box: {x: 0.1, y: 0.3, w: 0.8, h: 0.3}, font: {min_size: 22, max_size: 60}}
  - {name: logo, kind: image, column: logo, start_s: 1.0, end_s: 1.5, box: {x: 0.35, y: 0.3, w: 0.3, h: 0.4}}
"""

RECIPIENTS = """recipient_id,first_name,logo
a1,Ada,logos/acme.png
a2,,logos/acme.png
a3,Grace,logos/gone.png
a4,Bartholomew-Maximilian-Konstantin,logos/globex.png
a5,Linus,logos/globex.png
bad id,Ken,logos/acme.png
a6,Radia,logos/acme.png
"""


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    write_template(folder / "template.mp4", (640, 360), 2.0, 30)
    for name in ("acme", "globex"):
        draw_logo(name, 160).save(folder / f"{name}.png")
    return folder


@pytest.fixture
def campaign_dir(tmp_path, media) -> Path:
    folder = tmp_path / "campaign"
    (folder / "logos").mkdir(parents=True)
    (folder / "media").mkdir()
    (folder / "media" / "template.mp4").write_bytes((media / "template.mp4").read_bytes())
    for name in ("acme", "globex"):
        (folder / "logos" / f"{name}.png").write_bytes((media / f"{name}.png").read_bytes())
    (folder / "spring.yaml").write_text(SPEC)
    (folder / "recipients.csv").write_text(RECIPIENTS)
    return folder


@pytest.fixture
def resources(tmp_path) -> dict:
    return {"storage": StorageResource(root=str(tmp_path / "data")), "prices": PricesResource(),
            "step_outputs": step_outputs_io_manager}


def run(instance, resources, spec: Path, partition: str = "spring", chunk_size: int = 2, cache: Path | None = None):
    config = {"spec": str(spec), "chunk_size": chunk_size}
    if cache is not None:
        config["cache_dir"] = str(cache)
    return dg.materialize([campaign_clips], instance=instance, resources=resources, partition_key=partition,
                          run_config={"ops": {"campaign_clips": {"config": config}}}, raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("campaign_clips")[-1].metadata.items()}


def test_campaign_renders_good_rows_rejects_bad_ones_and_skips_on_rerun(campaign_dir, resources, tmp_path):
    storage: StorageResource = resources["storage"]
    cache = tmp_path / "cache"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(campaign_partitions.name, ["spring"])
        first = run(instance, resources, campaign_dir / "spring.yaml", cache=cache)
        assert first.success
        meta = metadata(first)
        assert (meta["recipients"], meta["accepted"], meta["rejected_rows"]) == (7, 3, 4)
        assert (meta["clips"], meta["clips_reused"], meta["qa_failed"]) == (6, 0, 0)
        # 3 accepted recipients in chunks of 2, per aspect: 4 render steps, each asking for a `cpu` worker.
        assert meta["chunks"] == 4
        steps = {e.step_key for e in first.all_events if e.is_step_success}
        assert sorted(k for k in steps if "render_campaign_chunk" in k) == [
            f"campaign_clips.render_campaign_chunk[a{a}_0000{i}]" for a in ("16x9", "1x1") for i in (0, 1)]
        ops = [plan_campaign_chunks, render_campaign_chunk, merge_campaign_chunks]
        assert all(op.tags["dagster-celery/queue"] == "cpu" for op in ops)
        assert meta["cpu_s"] > meta["workers_cpu_s"] > 0 and meta["wall_s"] > 0
        assert meta["cost_usd"] > 0 and meta["cost_per_clip_usd"] == pytest.approx(meta["cost_usd"] / 6, rel=1e-3)
        assert meta["clips_per_min"] > 0 and meta["peak_rss_mb"] > 0  # the 2 GiB target is bench/campaign.py's
        assert meta["min_join_psnr_db"] > 35
        assert all(check.passed for check in first.get_asset_check_evaluations())

        prefix = f"campaigns/spring/{meta['spec_hash']}"
        keys = storage.list_keys(prefix)
        clips = sorted(k.removeprefix(prefix + "/") for k in keys if k.endswith(".mp4") and "/inputs/" not in k)
        assert clips == [f"{aspect}/{rid}.mp4" for aspect in ("16x9", "1x1") for rid in ("a1", "a5", "a6")]
        assert not [k for k in keys if "manifest-parts" in k]
        report = probe_mp4(storage.read_bytes(f"{prefix}/1x1/a1.mp4"))
        assert (report.width, report.height, report.n_frames, report.duration_s) == (360, 360, 60, 2.0)

        manifest = pd.read_parquet(io.BytesIO(storage.read_bytes(f"{prefix}/manifest.parquet")))
        assert len(manifest) == 6 and manifest["qa_passed"].all()
        assert set(manifest["aspect"]) == {"16:9", "1:1"} and (manifest["duration_s"] == 2.0).all()
        assert manifest["url"].str.endswith(".mp4").all() and (manifest["bytes"] > 0).all()

        rejects = pd.read_csv(io.BytesIO(storage.read_bytes(f"{prefix}/rejects.csv")), dtype=str,
                              keep_default_na=False)
        assert list(rejects.columns) == ["row", "recipient_id", "field", "reason"]
        by_id = {row.recipient_id: row for row in rejects.itertuples()}
        assert (by_id["a2"].row, by_id["a2"].field, by_id["a2"].reason) == ("3", "first_name", "missing value")
        assert by_id["a3"].field == "logo" and by_id["a3"].reason == "not allowed by the source policy: logos/gone.png"
        assert by_id["a4"].field == "first_name" and "does not fit" in by_id["a4"].reason
        assert by_id["bad id"].field == "recipient_id"

        second = run(instance, resources, campaign_dir / "spring.yaml", cache=cache)
        meta2 = metadata(second)
        assert (meta2["clips"], meta2["clips_reused"], meta2["reused"]) == (0, 6, True)
        assert meta2["spec_hash"] == meta["spec_hash"]

        # One recipient's name changes: only their two clips are rendered again.
        (campaign_dir / "recipients.csv").write_text(RECIPIENTS.replace("a5,Linus", "a5,Linnea"))
        third = metadata(run(instance, resources, campaign_dir / "spring.yaml", cache=cache, chunk_size=50))
        assert (third["clips"], third["clips_reused"], third["chunks"]) == (2, 4, 2)  # one chunk per aspect


def test_spec_errors_fail_the_run_naming_the_key(campaign_dir, resources):
    (campaign_dir / "spring.yaml").write_text(SPEC.replace("Hi {first_name}!", "Hi {firstname}!"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(campaign_partitions.name, ["spring"])
        result = run(instance, resources, campaign_dir / "spring.yaml")
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.user_failure_data.description
        assert "spring.yaml: slots[0].text: field 'firstname' is not a column" in message


def test_partition_must_match_the_spec_name(campaign_dir, resources):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(campaign_partitions.name, ["autumn"])
        result = run(instance, resources, campaign_dir / "spring.yaml", partition="autumn")
        assert not result.success


def test_sku_template_is_the_published_clip_looped(campaign_dir, resources, tmp_path):
    storage: StorageResource = resources["storage"]
    clip = write_template(tmp_path / "sku.mp4", (640, 360), 1.0, 24, audio=False, preset="ultrafast").read_bytes()
    storage.write_bytes("published/SKU-1/abc.mp4", clip)
    row = {column: None for column in PUBLISHED_COLUMNS}
    row.update(sku_id="SKU-1", content_hash="abc", video_url=storage.url("published/SKU-1/abc.mp4"))
    write_parquet(storage, manifest_key("SKU-1"), pd.DataFrame([row], columns=PUBLISHED_COLUMNS))
    spec = SPEC.replace("template: {video: media/template.mp4}", "template: {sku: SKU-1, duration_s: 2.5}")
    (campaign_dir / "spring.yaml").write_text(spec.replace('["16:9", "1:1"]', '["9:16"]'))
    (campaign_dir / "recipients.csv").write_text("recipient_id,first_name,logo\nz1,Zoe,logos/acme.png\n")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(campaign_partitions.name, ["spring"])
        result = run(instance, resources, campaign_dir / "spring.yaml", cache=tmp_path / "cache")
        assert result.success
        meta = metadata(result)
        assert meta["clips"] == 1
        report = probe_mp4(storage.read_bytes(f"campaigns/spring/{meta['spec_hash']}/9x16/z1.mp4"))
        assert (report.width, report.height, report.n_frames, report.fps) == (360, 640, 60, 24.0)
