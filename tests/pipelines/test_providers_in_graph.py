"""Every provider family through the real asset graph: GPU models (tiny, offline, on CPU) and an API emulator."""

from pathlib import Path

import dagster as dg
import pytest

from assets.catalog.sku_catalog import sku_catalog
from pipelines.resources import build_resources
from resources.providers.api.runway import RunwayClips
from resources.providers.gpu.cogvideox import CogVideoXClips
from resources.providers.gpu.flux import FluxKeyframes
from resources.providers.gpu.wan import WanClips
from resources.quality import QualityBarResource
from resources.routing import RoutingResource
from resources.storage import StorageResource
from tests.pipelines.test_graph import SKU_ASSETS, catalog_config, metadata

TINY = {"device": "cpu", "dtype": "float32", "width": 64, "height": 48, "steps": 2}
# Random weights make random pictures: the bulk tier's bar is relaxed through its normal configuration.
RELAXED_BULK = QualityBarResource(bulk={
    "max_brand_delta_e": 1000.0, "min_product_psnr_clip": 0.0, "max_loop_seam_ratio": 1000.0, "max_flicker": 1000.0,
    "min_motion": 0.0, "max_frozen_s": 100.0, "min_sharpness_ratio": 0.0, "max_black_frame_ratio": 1.0,
    "min_keyframe_sharpness": 0.0,
})


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    pytest.importorskip("diffusers")
    from tests.resources.providers.gpu import tiny_pipelines

    root = tmp_path_factory.mktemp("tiny")
    return {
        "flux": str(tiny_pipelines.save_flux(root / "flux")),
        "wan": str(tiny_pipelines.save_wan_vace(root / "wan")),
        "wan_ti2v": str(tiny_pipelines.save_wan_ti2v(root / "wan_ti2v")),
        "cogvideox": str(tiny_pipelines.save_cogvideox_i2v(root / "cogvideox", width=64, height=48, frames=9)),
    }


def route_everything_to(tmp_path: Path, keyframe: str, clip: str) -> RoutingResource:
    path = tmp_path / "routing.yaml"
    path.write_text(f"retakes: 0\ndefault: {{keyframe: [{keyframe}], clip: [{clip}]}}\n")
    return RoutingResource(path=str(path))


@pytest.mark.parametrize("clip_provider", ["wan", "wan_ti2v", "cogvideox"])
def test_keyframe_and_clip_through_each_gpu_family(catalog_dir, tmp_path, tiny_models, clip_provider):
    prices = build_resources()["prices"]
    clips = {
        "wan": WanClips(prices=prices, variant="vace-1.3b", local_path=tiny_models["wan"], frames=9, fps=4, **TINY),
        "wan_ti2v": WanClips(prices=prices, variant="ti2v-5b", local_path=tiny_models["wan_ti2v"], frames=9, fps=4,
                             **TINY),
        "cogvideox": CogVideoXClips(prices=prices, local_path=tiny_models["cogvideox"], frames=9, fps=4, **TINY),
    }
    resources = {
        **build_resources(),
        "storage": StorageResource(root=str(tmp_path / "data")),
        "flux": FluxKeyframes(prices=prices, local_path=tiny_models["flux"], **TINY),
        clip_provider: clips[clip_provider],
        "quality_bar": RELAXED_BULK,
        "routing": route_everything_to(tmp_path, "flux", clip_provider),
    }
    with dg.instance_for_test() as instance:
        dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(catalog_dir))
        result = dg.materialize(SKU_ASSETS, partition_key="BULK-2", instance=instance, resources=resources)
        assert result.success
        assert metadata(result, "keyframe")["provider"] == "flux"
        clip = metadata(result, "clip")
        assert clip["provider"] == clips[clip_provider].name == clip_provider
        assert clip["duration_s"] == pytest.approx(4.0) and clip["attempts"] == 1
        assert metadata(result, "published_video")["status"] == "published"


def test_api_hero_through_the_emulator_leaks_no_key(catalog_dir, tmp_path, monkeypatch):
    from devkit.emulators import start_emulators

    with start_emulators() as emulators:
        settings = emulators.provider_settings()["runway"]
        monkeypatch.setenv("RUNWAYML_API_SECRET", settings["api_key"])
        monkeypatch.setenv("SKUVID_RUNWAY_BASE_URL", settings["base_url"])
        # The emulator's stand-in motion on this plain packshot sits under the hero bar; this test is about keys.
        resources = {**build_resources(), "storage": StorageResource(root=str(tmp_path / "data")),
                     "quality_bar": QualityBarResource(hero={"min_motion": 0.0})}
        assert isinstance(resources["runway"], RunwayClips)
        (tmp_path / "instance").mkdir()
        (tmp_path / "instance" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
            dg.materialize([sku_catalog], instance=instance, resources=resources,
                           run_config=catalog_config(catalog_dir))
            result = dg.materialize(SKU_ASSETS, partition_key="HERO-1", instance=instance, resources=resources)
            assert metadata(result, "clip")["provider"] == "runway"
            assert emulators.runway.submissions == 1
            event_text = "\n".join(repr(record) for record in instance.all_logs(result.run_id))
        key = settings["api_key"]
        assert key not in event_text
        for folder in (tmp_path / "data", tmp_path / "instance", tmp_path):
            for path in folder.rglob("*"):
                if path.is_file():
                    assert key.encode() not in path.read_bytes(), f"API key found in {path}"
