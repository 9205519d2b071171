"""The project's Definitions as a code location for Celery tests: resources from the environment (as every
process of a deployment builds them), with the GPU providers on tiny diffusers models on the CPU and a bar
that random weights can pass. The launcher (`dagster job execute -m tests.pipelines.celery_location`) and
every worker import this same module, so they build the same jobs and resources."""

import os

from pipelines.definitions import build_definitions
from pipelines.resources import build_resources
from resources.providers.gpu.wan import WanClips
from resources.quality import QualityBarResource

TINY = {"device": "cpu", "dtype": "float32", "width": 64, "height": 48, "steps": 2}
RELAXED = {
    "max_brand_delta_e": 1000.0, "min_product_psnr_clip": 0.0, "max_loop_seam_ratio": 1000.0, "max_flicker": 1000.0,
    "min_motion": 0.0, "max_frozen_s": 100.0, "min_sharpness_ratio": 0.0, "max_black_frame_ratio": 1.0,
    "min_keyframe_sharpness": 0.0,
}
# Where a clip renders is under test, not how it looks: emulator clips are small and upscaled, tiny models random.
RELAXED_BAR = QualityBarResource(bulk=RELAXED, hero=RELAXED)


def celery_test_resources() -> dict:
    resources = build_resources()
    wan_path = os.environ.get("SKUVID_WAN_PATH")
    if wan_path:
        resources["wan"] = WanClips(prices=resources["prices"], variant="vace-1.3b", local_path=wan_path, frames=9,
                                    fps=4, **TINY)
    return {**resources, "quality_bar": RELAXED_BAR}


defs = build_definitions(celery_test_resources())
