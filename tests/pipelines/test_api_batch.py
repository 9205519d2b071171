"""A batched clip run of several API-routed SKUs through the real graph and the Runway emulator."""

import dagster as dg

from assets.catalog.sku_catalog import sku_catalog
from devkit.emulators import TaskScript, start_emulators
from pipelines.resources import build_resources
from resources.quality import QualityBarResource
from resources.routing import RoutingResource
from resources.storage import StorageResource
from tests.pipelines.fixtures import write_catalog
from tests.pipelines.test_graph import SKU_ASSETS, catalog_config

RENDER_S = 4.0
HEROES = [f"HERO-{n}" for n in (1, 2, 3)]


def test_api_waits_of_a_batch_overlap(tmp_path, monkeypatch):
    folder = tmp_path / "catalog"
    write_catalog(folder, *(f"{sku},Fizz bottle {sku},beverage,fresh,packshots/hero.png,hero,,1:1" for sku in HEROES))
    (tmp_path / "routing.yaml").write_text("retakes: 0\ndefault: {keyframe: [compose], clip: [runway]}\n")
    monkeypatch.setenv("SKUVID_POOL_LIMITS", "api=4")
    with start_emulators(script=TaskScript(running_s=RENDER_S), output_short_side=180) as emulators:
        settings = emulators.provider_settings()["runway"]
        monkeypatch.setenv("RUNWAYML_API_SECRET", settings["api_key"])
        monkeypatch.setenv("SKUVID_RUNWAY_BASE_URL", settings["base_url"])
        resources = {**build_resources(), "storage": StorageResource(root=str(tmp_path / "data")),
                     "routing": RoutingResource(path=str(tmp_path / "routing.yaml")),
                     # Small stand-in clips keep the test short; this test is about waiting, not quality.
                     "quality_bar": QualityBarResource(hero={"min_motion": 0.0, "min_product_psnr_clip": 0.0,
                                                             "min_sharpness_ratio": 0.0})}
        tags = {"dagster/asset_partition_range_start": HEROES[0], "dagster/asset_partition_range_end": HEROES[-1]}
        with dg.instance_for_test() as instance:
            dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(folder))
            keyframe, clip, _ = SKU_ASSETS
            assert dg.materialize([keyframe], instance=instance, resources=resources, tags=tags).success
            short = {"ops": {"clip": {"config": {"duration_s": 3.0, "fps": 12}}}}  # less encoding and QA after the wait
            result = dg.materialize([clip], instance=instance, resources=resources, tags=tags, run_config=short)
            assert result.success
            created = sorted(task.created for task in emulators.runway.tasks.values())
    assert len(created) == len(HEROES)
    # Every task was submitted before the first one had finished rendering: the waits overlapped (one after
    # another, each would start after the previous one's RENDER_S).
    assert created[-1] - created[0] < RENDER_S, [round(c - created[0], 1) for c in created]
