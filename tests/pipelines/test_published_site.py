"""What users see after a run: the published folder served over HTTP and played in Chromium, its file modes,
check evaluations tied to their SKU, and a cost report that agrees with the ledger."""

from __future__ import annotations

import functools
import http.server
import shutil
import stat
import threading
from pathlib import Path

import dagster as dg
import pytest

from assets.catalog.sku_catalog import sku_catalog
from assets.costs.cost_report import cost_report
from assets.sku_video.clips import clip
from assets.sku_video.keyframes import keyframe
from assets.sku_video.publish import published_video, read_manifest
from devkit.demo import write_gallery
from resources.ledger import LedgerResource
from resources.storage import FILE_MODE

SKU_ASSETS = [keyframe, clip, published_video]
CHROMIUM = shutil.which("chromium")


def catalog_config(folder) -> dict:
    return {"ops": {"sku_catalog": {"config": {"source": str(folder / "catalog.csv"), "brands": str(folder / "brands.yaml")}}}}


def metadata(result, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[-1].metadata.items()}


@pytest.fixture
def published(catalog_dir, resources, tmp_path):
    """Two SKUs through the graph on a fresh instance and ledger, as the demo runs them, plus the gallery."""
    resources = {**resources, "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")}
    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        runs = {sku: dg.materialize(SKU_ASSETS, partition_key=sku, instance=instance, resources=resources)
                for sku in ("HERO-1", "BULK-2")}
        assert all(r.success for r in runs.values())
        gallery = write_gallery(resources["storage"])
        yield instance, resources, runs, gallery


def test_manifest_urls_are_relative_to_the_published_root(published):
    _, resources, _, gallery = published
    manifest = read_manifest(resources["storage"])
    for row in manifest.itertuples():
        assert row.video_url == f"{row.sku_id}/{row.content_hash}.mp4"
        assert (gallery.parent / row.video_url).is_file() and (gallery.parent / row.poster_url).is_file()
    assert "file://" not in gallery.read_text()


def test_public_base_url_for_a_cdn(catalog_dir, resources, tmp_path, monkeypatch):
    monkeypatch.setenv("SKUVID_PUBLIC_BASE_URL", "https://cdn.example.com/videos/")
    resources = {**resources, "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")}
    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        assert dg.materialize(SKU_ASSETS, partition_key="BULK-2", instance=instance, resources=resources).success
    row = read_manifest(resources["storage"]).iloc[0]
    assert row["video_url"] == f"https://cdn.example.com/videos/BULK-2/{row['content_hash']}.mp4"


def test_published_files_are_readable_by_others_as_the_umask_allows(published):
    _, _, _, gallery = published
    files = [p for p in gallery.parent.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE, path
    assert FILE_MODE & stat.S_IROTH  # the test machine's umask (022) lets others read


CHECK_HISTORY = """query ($asset: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $asset, checkName: $check, limit: 20) { runId partition evaluation { partition success } }
}"""


def test_every_check_evaluation_carries_its_sku(published):
    """What the UI's check history shows, asked through Dagster's GraphQL API as the UI asks it."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    instance, _, runs, _ = published
    for result in runs.values():
        assert len(result.get_asset_check_evaluations()) == 10
    run_skus = {result.run_id: sku for sku, result in runs.items()}
    checks = [(spec.asset_key, spec.name) for asset in SKU_ASSETS for spec in asset.check_specs]
    with define_out_of_process_context(str(Path("pipelines/definitions.py").resolve()), "defs", instance) as context:
        for asset_key, check in checks:
            answer = execute_dagster_graphql(context, CHECK_HISTORY,
                                             {"asset": {"path": asset_key.path}, "check": check})
            assert not answer.errors, answer.errors
            executions = answer.data["assetCheckExecutions"]
            assert {e["runId"] for e in executions} == set(run_skus), check
            for execution in executions:
                sku = run_skus[execution["runId"]]
                assert execution["partition"] == sku and execution["evaluation"]["partition"] == sku, execution
                assert execution["evaluation"]["success"]


def test_cost_report_matches_the_ledger_and_a_reused_run_costs_nothing(published):
    instance, resources, _, _ = published
    charges = resources["ledger"].charges()
    report = metadata(dg.materialize([cost_report], instance=instance, resources=resources), "cost_report")
    assert report["total_usd"] > 0
    assert report["total_usd"] == pytest.approx(sum(c.usd for c in charges))
    assert report["charges"] == len(charges) and report["emulated_charges"] == 0

    again = dg.materialize(SKU_ASSETS, partition_key="HERO-1", instance=instance, resources=resources)
    for asset in ("keyframe", "clip", "published_video"):
        assert metadata(again, asset)["cost_usd"] == 0.0
    assert len(resources["ledger"].charges()) == len(charges)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


PLAYBACK = """async () => {
  const videos = [...document.querySelectorAll('video')];
  const seen = videos.map(() => ({errors: 0, max: 0, looped: false, last: 0}));
  videos.forEach((v, i) => v.addEventListener('error', () => seen[i].errors++));
  const deadline = Date.now() + 12000;
  while (Date.now() < deadline && !seen.every(s => s.looped)) {
    videos.forEach((v, i) => {
      const s = seen[i];
      if (v.currentTime + 0.5 < s.last) s.looped = true;
      s.max = Math.max(s.max, v.currentTime);
      s.last = v.currentTime;
    });
    await new Promise(r => setTimeout(r, 50));
  }
  return videos.map((v, i) => ({src: v.currentSrc, ready: v.readyState, error: v.error && v.error.code,
                                 loop: v.loop, ...seen[i]}));
}"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/system-deps.sh)")
def test_gallery_served_over_http_plays_every_clip_in_chromium(published, tmp_path):
    from playwright.sync_api import sync_playwright

    _, _, _, gallery = published
    handler = functools.partial(QuietHandler, directory=str(gallery.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
            )
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                videos = page.evaluate(PLAYBACK)
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert len(videos) == 2
    for video in videos:
        assert video["src"].startswith("http://127.0.0.1:"), video
        assert video["ready"] == 4 and video["error"] is None and video["errors"] == 0, video
        assert video["loop"] and video["max"] > 1.0 and video["looped"], video


def test_gallery_opens_from_disk(published):
    _, _, _, gallery = published
    assert isinstance(gallery, Path) and gallery.name == "index.html"
    page = gallery.read_text()
    for row in read_manifest(published[1]["storage"]).itertuples():
        assert f'src="{row.video_url}"' in page and "$" in page


def test_emulated_api_clip_is_labelled_and_kept_out_of_real_totals(catalog_dir, tmp_path):
    from devkit.emulators import start_emulators
    from pipelines.resources import build_resources
    from resources.quality import QualityBarResource
    from resources.storage import StorageResource

    with start_emulators() as emulators, dg.instance_for_test() as instance:
        resources = {
            **build_resources(api_overrides={"runway": emulators.provider_settings()["runway"]}),
            "storage": StorageResource(root=str(tmp_path / "data")),
            "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
            # The emulator's stand-in motion sits under the hero bar's motion floor; this test is about labels.
            "quality_bar": QualityBarResource(hero={"min_motion": 0.0}),
        }
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        result = dg.materialize(SKU_ASSETS, partition_key="HERO-1", instance=instance, resources=resources)
        clip_meta = metadata(result, "clip")
        assert clip_meta["provider"] == "runway" and clip_meta["emulated"] is True
        assert metadata(result, "published_video")["clip_emulated"] is True
        row = read_manifest(resources["storage"]).set_index("sku_id").loc["HERO-1"]
        assert bool(row["emulated"]) is True
        page = write_gallery(resources["storage"]).read_text()
        assert "placeholder from a local runway emulator" in page and "gen4_turbo" not in page

        charges = resources["ledger"].charges()
        emulated = [c for c in charges if "emulated" in c.scopes]
        assert [c.provider for c in emulated] == ["runway"] and emulated[0].usd > 0
        report = metadata(dg.materialize([cost_report], instance=instance, resources=resources), "cost_report")
        assert report["emulated_usd"] == pytest.approx(emulated[0].usd) and report["emulated_charges"] == 1
        assert report["total_usd"] == pytest.approx(sum(c.usd for c in charges if c not in emulated))
        assert "runway" not in {k.removeprefix("usd_") for k in report if k.startswith("usd_")}
