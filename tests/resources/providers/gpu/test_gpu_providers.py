"""The diffusers providers on the CPU, offline, with tiny random-weight pipelines loaded from folders.

The pipelines go through the same `from_pretrained` path as hub ids; only sizes, steps and frames are
tiny. Random weights make noise, so these tests check plumbing, determinism, costs and failure modes, not
pictures.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image

from devkit.sample_art import draw_packshot
from resources.pricing import PricesResource
from resources.providers.base import ClipProvider, ClipRequest, KeyframeProvider, KeyframeRequest, Usage
from resources.providers.cpu import ComposeKeyframes
from resources.providers.gpu import diffusion
from resources.providers.gpu.cogvideox import CogVideoXClips
from resources.providers.gpu.diffusion import (
    ClipTooShort,
    GpuOutOfMemory,
    WeightsUnavailable,
    generation_size,
    release_pipelines,
)
from resources.providers.gpu.flux import FluxKeyframes
from resources.providers.gpu.hunyuan import HunyuanClips
from resources.providers.gpu.wan import WanClips
from tests.resources.providers.gpu import tiny_pipelines
from videokit.media.brand import BrandKit
from videokit.media.encode import decode_rgb
from videokit.media.probe import probe_mp4
from videokit.sku_video.compose import render_background

SIZE = (320, 180)
KIT = BrandKit.from_dict("test", {
    "background": {"style": "gradient", "colors": ["#EEF2F5", "#B8C6D1"]},
    "palette": {"accent": "#2F5D8A", "text": "#14202B"},
})
# Tiny pipelines generate a few frames at a low rate so that one second of loop fits in them.
TINY = {"device": "cpu", "dtype": "float32", "width": 64, "height": 48, "steps": 2}
TINY_CLIP = TINY | {"frames": 9, "fps": 4}
OOM_MESSAGE = (
    "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which "
    "1.25 GiB is free."
)


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny-pipelines")
    return {
        "flux": str(tiny_pipelines.save_flux(root / "flux")),
        "flux-kontext": str(tiny_pipelines.save_flux(root / "flux-kontext", kontext=True)),
        "wan-vace": str(tiny_pipelines.save_wan_vace(root / "wan-vace")),
        "wan-ti2v": str(tiny_pipelines.save_wan_ti2v(root / "wan-ti2v")),
        "cogvideox": str(tiny_pipelines.save_cogvideox_i2v(root / "cogvideox", width=64, height=48,
                                                             frames=9)),
        "wan-i2v-a14b": str(tiny_pipelines.save_wan_i2v_a14b(root / "wan-i2v-a14b")),
        "hunyuan-i2v": str(tiny_pipelines.save_hunyuan_i2v(root / "hunyuan-i2v")),
    }


@pytest.fixture(scope="session")
def tiny_loras(tmp_path_factory) -> dict[str, Path]:
    """Random LoRAs for both experts of the tiny Wan2.2-A14B, as diffusers saves them."""
    root = tmp_path_factory.mktemp("tiny-loras")
    pipe = tiny_pipelines.build_wan_i2v_a14b()
    return {denoiser: tiny_pipelines.save_lora(pipe, root / denoiser, denoiser=denoiser, seed=index)
            for index, denoiser in enumerate(("transformer", "transformer_2"))}


@pytest.fixture(autouse=True)
def no_pipeline_left_loaded():
    yield
    release_pipelines()


@pytest.fixture
def logs() -> list[str]:
    return []


def packshot_png() -> bytes:
    buffer = io.BytesIO()
    packshot = draw_packshot("bottle", color=(32, 92, 160), accent=(240, 236, 228), label="TEST", size=256)
    packshot.save(buffer, "PNG")
    return buffer.getvalue()


def keyframe_request(seed: int = 0) -> KeyframeRequest:
    return KeyframeRequest(sku_id="sku-1", content_hash="c0ffee", title="Bottle", category="drinkware",
                           prompt="morning light", packshot=packshot_png(), brand=KIT, logo=None, size=SIZE,
                           seed=seed)


def clip_request(seed: int = 0) -> ClipRequest:
    keyframe = ComposeKeyframes(prices=PricesResource()).render_keyframe(keyframe_request(), print).layers
    return ClipRequest(sku_id="sku-1", content_hash="c0ffee", tier="bulk", aspect="16:9", prompt="slow turn",
                       keyframe=keyframe, size=SIZE, duration_s=1.0, fps=8, seed=seed)


def flux(tiny_folders, **settings) -> FluxKeyframes:
    folder = tiny_folders["flux-kontext" if settings.get("variant") == "kontext" else "flux"]
    return FluxKeyframes(prices=PricesResource(), model="tiny/flux", local_path=folder, **TINY | settings)


# Provider name (its resource key and price row): resource class, variant, tiny pipeline folder.
CLIP_PROVIDERS = {
    "wan": (WanClips, "vace-1.3b", "wan-vace"),
    "wan_ti2v": (WanClips, "ti2v-5b", "wan-ti2v"),
    "cogvideox": (CogVideoXClips, "5b-i2v", "cogvideox"),
    "wan_i2v_a14b": (WanClips, "i2v-a14b", "wan-i2v-a14b"),
    "hunyuan_i2v": (HunyuanClips, "480p-i2v-distilled", "hunyuan-i2v"),
}


def clip_provider(tiny_folders, name: str, **settings) -> WanClips | CogVideoXClips | HunyuanClips:
    resource, variant, folder = CLIP_PROVIDERS[name]
    return resource(prices=PricesResource(), variant=variant, model=f"tiny/{folder}",
                    local_path=tiny_folders[folder], **TINY_CLIP | settings)


def wan(tiny_folders, **settings) -> WanClips:
    return clip_provider(tiny_folders, "wan", **settings)


# --------------------------------------------------------------------------- keyframes


@pytest.mark.parametrize("variant", ["schnell", "kontext"])
def test_flux_keyframe_is_a_generated_scene_with_the_real_product(tiny_folders, logs, variant):
    provider = flux(tiny_folders, variant=variant)
    assert isinstance(provider, KeyframeProvider) and provider.availability().available
    assert provider.name == {"schnell": "flux", "kontext": "flux_kontext"}[variant] and provider.pool == "gpu"

    result = provider.render_keyframe(keyframe_request(), logs.append)

    composed = ComposeKeyframes(prices=PricesResource()).render_keyframe(keyframe_request(), print).layers
    layers = result.layers
    assert layers.size == SIZE and layers.background.shape == (SIZE[1], SIZE[0], 3)
    assert not np.array_equal(layers.background, render_background(KIT, SIZE)), "the scene is generated"
    # The product, its place and its shadow are the compose provider's, pixel for pixel.
    assert np.array_equal(layers.product, composed.product) and layers.product_xy == composed.product_xy
    assert np.array_equal(layers.shadow_alpha, composed.shadow_alpha)
    opaque = layers.product_mask()
    assert np.array_equal(layers.flatten()[opaque], composed.flatten()[opaque])
    assert result.cost.provider == provider.name and result.cost.model == "tiny/flux"
    assert result.cost.gpu_s == 0 and result.cost.cpu_s > 0 and result.cost.cost_usd > 0
    assert f"{provider.name}: denoising step 2/2" in " ".join(logs)


def test_flux_same_seed_same_scene_other_seed_other_scene(tiny_folders):
    provider = flux(tiny_folders)
    first = provider.render_keyframe(keyframe_request(seed=1), print).layers.background
    again = provider.render_keyframe(keyframe_request(seed=1), print).layers.background
    other = provider.render_keyframe(keyframe_request(seed=2), print).layers.background
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


# --------------------------------------------------------------------------- clips


@pytest.mark.parametrize("name", sorted(CLIP_PROVIDERS))
def test_clip_is_fitted_looped_and_encoded_like_every_provider(tiny_folders, logs, name):
    provider = clip_provider(tiny_folders, name)
    assert isinstance(provider, ClipProvider) and provider.availability().available
    assert (provider.name, provider.pool) == (name, "gpu")

    result = provider.render_clip(clip_request(), logs.append)

    report = probe_mp4(result.clip.mp4)
    assert (report.codec, report.pix_fmt, report.faststart) == ("h264", "yuv420p", True)
    assert (report.width, report.height, report.fps) == (*SIZE, 8)
    assert result.clip.n_frames == report.n_frames == 8
    assert Image.open(io.BytesIO(result.clip.poster)).size == SIZE
    assert result.cost.provider == name and result.cost.model == provider.model
    assert result.cost.gpu_s == 0 and result.cost.cpu_s > 0
    assert result.cost.runner["steps"] == 2 and result.cost.runner["dtype"] == "float32"
    progress = f"{provider.name}: denoising step 2/2" if name != "hunyuan_i2v" else f"{provider.name}: 2 denoising steps"
    assert progress in " ".join(logs)


def pictures(mp4: bytes) -> np.ndarray:
    return np.stack(list(decode_rgb(mp4))).astype(np.int16)


def same_pictures(a: bytes, b: bytes) -> bool:
    """Same decoded frames up to the encoder's own rounding (x264 may pick other bits run to run)."""
    return float(np.abs(pictures(a) - pictures(b)).mean()) < 0.5


def test_same_seed_same_clip(tiny_folders):
    provider = wan(tiny_folders)
    first = provider.render_clip(clip_request(seed=7), print).clip
    again = provider.render_clip(clip_request(seed=7), print).clip
    other = provider.render_clip(clip_request(seed=8), print).clip
    assert same_pictures(first.mp4, again.mp4)
    assert not same_pictures(first.mp4, other.mp4)


def test_configured_seed_overrides_the_requests(tiny_folders):
    provider = wan(tiny_folders, seed=3)
    assert same_pictures(provider.render_clip(clip_request(seed=1), print).clip.mp4,
                         provider.render_clip(clip_request(seed=2), print).clip.mp4)


def test_model_is_loaded_once_for_many_renders(tiny_folders, monkeypatch):
    loads = []
    real_load = diffusion.load_pipeline
    monkeypatch.setattr(diffusion, "load_pipeline", lambda spec, log: loads.append(spec) or real_load(spec, log))

    provider = wan(tiny_folders)
    provider.render_clip(clip_request(seed=1), print)
    provider.render_clip(clip_request(seed=2), print)
    wan(tiny_folders).render_clip(clip_request(), print)  # another instance, same settings
    assert len(loads) == 1

    clip_provider(tiny_folders, "wan_ti2v").render_clip(clip_request(), print)
    assert len(loads) == 2 and len(diffusion._loaded) == 1, "one model in memory at a time"


@pytest.mark.parametrize("settings", [
    {"cache_hook": "first_block_cache", "cache_threshold": 0.2},
    {"cache_hook": "pyramid_attention_broadcast"},
    {"cache_hook": "taylorseer_cache", "steps": 4},
    {"fuse_projections": True, "attention_backend": "native"},
    {"cache_hook": "mag_cache", "mag_ratios": [1.0, 0.99, 0.98, 0.97], "steps": 4},
])
def test_speed_settings_apply_and_still_make_a_clip(tiny_folders, settings):
    result = wan(tiny_folders, **settings).render_clip(clip_request(), print)
    assert probe_mp4(result.clip.mp4).n_frames == 8


def forwards_per_render(provider, logs: list[str]) -> tuple[object, int]:
    """(result, transformer calls of every expert) for one render with `provider`."""
    pipe = diffusion.shared_pipeline(provider.pipeline_spec(), logs.append)
    calls = []
    hooks = [model.register_forward_pre_hook(lambda *_: calls.append(1)) for _, model in diffusion_denoisers(pipe)]
    try:
        return provider.render_clip(clip_request(), logs.append), len(calls)
    finally:
        for hook in hooks:
            hook.remove()


def diffusion_denoisers(pipe):
    from resources.providers.gpu.runner import denoisers

    return denoisers(pipe)


def test_step_distilled_loras_fuse_into_both_experts_with_guidance_off(tiny_folders, tiny_loras, logs):
    stock = clip_provider(tiny_folders, "wan_i2v_a14b", steps=None, distilled_steps=2)
    stock_result, stock_forwards = forwards_per_render(stock.model_copy(update={"steps": 2}), logs)
    distilled = stock.model_copy(update={
        "lora": str(tiny_loras["transformer"]),
        "lora_2": str(tiny_loras["transformer_2"] / "pytorch_lora_weights.safetensors"),
    })
    result, forwards = forwards_per_render(distilled, logs)

    runner = result.cost.runner
    assert (runner["steps"], runner["guidance"]) == (2, 1.0), "distilled steps, guidance off"
    assert [line.split(" -> ")[1] for line in runner["lora"]] == ["transformer", "transformer_2"]
    assert "pytorch_lora_weights.safetensors" in runner["lora"][1]
    # Guidance off: one call per step instead of a conditional and an unconditional one.
    assert (stock_forwards, forwards) == (4, 2)
    assert stock_result.cost.runner["guidance"] == 3.5 and "lora" not in stock_result.cost.runner
    loaded = next(iter(diffusion._loaded.values()))
    assert not any("lora" in name for name, _ in loaded.transformer_2.named_modules()), "fused, adapters gone"


def test_a_lora_that_is_not_here_makes_the_provider_unavailable(tiny_folders, tmp_path):
    absent_hub = clip_provider(tiny_folders, "wan_i2v_a14b", lora="skuvid-test/absent-lora",
                               lora_weight_name="four_step.safetensors")
    reason = absent_hub.availability().reason
    assert "lora 'skuvid-test/absent-lora'" in reason and "hf download" in reason
    absent_file = clip_provider(tiny_folders, "wan_i2v_a14b", lora_2=str(tmp_path / "missing.safetensors"))
    assert "lora_2" in absent_file.availability().reason and "no such file" in absent_file.availability().reason


def test_options_a_pipeline_lacks_are_refused_by_name(tiny_folders, tiny_loras):
    provider = clip_provider(tiny_folders, "hunyuan_i2v", lora=str(tiny_loras["transformer"]))
    with pytest.raises(ValueError, match="HunyuanVideo15ImageToVideoPipeline has no LoRA loader"):
        provider.render_clip(clip_request(), print)
    provider = clip_provider(tiny_folders, "hunyuan_i2v", cache_hook="first_block_cache")
    with pytest.raises(ValueError, match="first_block_cache does not apply to HunyuanVideo15Transformer3DModel"):
        provider.render_clip(clip_request(), print)


def test_fp8_weights_and_an_absent_attention_kernel_fall_back_logged_and_recorded(tiny_folders, logs):
    provider = wan(tiny_folders, fp8_weights=True, attention_backend="flash")
    result = provider.render_clip(clip_request(), logs.append)

    runner = result.cost.runner
    assert runner["fp8"].startswith("float8_e4m3fn storage, layerwise casting")
    assert runner["attention"].startswith("native (asked flash:")
    assert any("fp8_weights:" in line and "falling back" in line for line in logs)
    assert any("attention backend 'flash' not usable" in line for line in logs)
    loaded = next(iter(diffusion._loaded.values()))
    assert loaded.transformer.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert probe_mp4(result.clip.mp4).n_frames == 8


def test_unknown_attention_backend_and_mag_cache_without_ratios_fail_clearly(tiny_folders):
    with pytest.raises(ValueError, match="must be one of"):
        wan(tiny_folders, attention_backend="native_typo", device="cpu").render_clip(clip_request(), print)
    with pytest.raises(ValueError, match="mag_cache needs mag_ratios"):
        wan(tiny_folders, cache_hook="mag_cache").render_clip(clip_request(), print)


def test_regional_compile_and_a_cache_hook_are_refused_together(tiny_folders):
    provider = wan(tiny_folders, regional_compile=True, cache_hook="first_block_cache")
    with pytest.raises(ValueError, match="do not combine"):
        provider.render_clip(clip_request(), print)


def test_too_few_frames_for_the_loop_fails_before_loading(tiny_folders, monkeypatch):
    monkeypatch.setattr(diffusion, "load_pipeline", lambda spec, log: pytest.fail("loaded a model for nothing"))
    with pytest.raises(ClipTooShort, match="wan: 5 frames at 16 fps last 0.31s"):
        wan(tiny_folders, frames=5, fps=16).render_clip(clip_request(), print)
    with pytest.raises(ValueError, match="4k\\+1"):
        wan(tiny_folders, frames=10).render_clip(clip_request(), print)


def test_generation_keeps_the_model_area_at_the_requested_aspect():
    assert generation_size((832, 480), (1280, 720), 16) == (848, 480)
    assert generation_size((832, 480), (720, 1280), 16) == (480, 848)
    assert generation_size((832, 480), (720, 720), 16) == (624, 624)


# --------------------------------------------------------------------------- clear outcomes


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_without_cuda_is_unavailable(tiny_folders):
    availability = wan(tiny_folders, device="cuda").availability()
    assert not availability.available
    assert "no CUDA" in availability.reason and "wan" in availability.reason


def test_a_hub_id_loads_from_the_hugging_face_cache_without_the_network(tiny_folders, tmp_path, monkeypatch):
    import huggingface_hub

    snapshot = tmp_path / "models--skuvid-test--wan-vace" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_folders["wan-vace"], snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    provider = WanClips(prices=PricesResource(), model="skuvid-test/wan-vace", **TINY_CLIP)
    assert provider.availability().available
    assert provider.render_clip(clip_request(), print).clip.n_frames == 8


def test_asking_a_provider_without_weights_does_not_import_torch():
    # A CPU-tier run asks every GPU provider for every SKU; importing torch would cost seconds per run.
    code = (
        "import sys\n"
        "from resources.providers.gpu.wan import WanClips\n"
        "from resources.pricing import PricesResource\n"
        "availability = WanClips(prices=PricesResource(), model='skuvid-test/absent').availability()\n"
        "assert not availability.available, availability\n"
        "print(sorted({'torch', 'diffusers'} & set(sys.modules)))\n"
    )
    repo = Path(__file__).resolve().parents[4]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_missing_weights_name_the_model_and_the_local_path_setting(tmp_path):
    provider = WanClips(prices=PricesResource(), model="skuvid-test/not-downloaded", device="cpu")
    availability = provider.availability()
    assert not availability.available
    assert "skuvid-test/not-downloaded" in availability.reason and "local_path" in availability.reason
    with pytest.raises(WeightsUnavailable, match="skuvid-test/not-downloaded.*local_path"):
        provider.render_clip(clip_request(), print)

    empty = WanClips(prices=PricesResource(), model="tiny/wan-vace", local_path=str(tmp_path), **TINY_CLIP)
    assert "no model_index.json" in empty.availability().reason
    with pytest.raises(WeightsUnavailable, match=f"local_path '{tmp_path}'"):
        empty.render_clip(clip_request(), print)


class OutOfMemoryOnCall:
    """A loaded pipeline whose first `failures` calls run out of CUDA memory; records the fallback."""

    def __init__(self, pipe, failures: int):
        self.pipe, self.failures, self.offloads = pipe, failures, []

    def __call__(self, **arguments):
        if self.failures:
            self.failures -= 1
            raise torch.OutOfMemoryError(OOM_MESSAGE)
        return self.pipe(**arguments)

    def enable_model_cpu_offload(self, device):
        self.offloads.append(("model", device))

    def enable_sequential_cpu_offload(self, device):
        self.offloads.append(("sequential", device))

    def __getattr__(self, name):
        return getattr(self.pipe, name)


def flaky_loader(monkeypatch, failures: int) -> list[OutOfMemoryOnCall]:
    loaded = []
    real_load = diffusion.load_pipeline

    def load(spec, log):
        loaded.append(OutOfMemoryOnCall(real_load(spec, log), failures))
        return loaded[-1]

    monkeypatch.setattr(diffusion, "load_pipeline", load)
    return loaded


def test_out_of_memory_retries_once_with_offload_and_vae_tiling(tiny_folders, monkeypatch, logs):
    loaded = flaky_loader(monkeypatch, failures=1)

    provider = wan(tiny_folders)
    retried = provider.render_clip(clip_request(), logs.append)

    assert loaded[0].offloads == [("model", "cpu")] and loaded[0].pipe.vae.use_tiling
    assert any("CUDA out of memory" in line and "retrying once" in line for line in logs)
    assert same_pictures(retried.clip.mp4, provider.render_clip(clip_request(), print).clip.mp4), "same seed, same clip"


def test_out_of_memory_twice_fails_with_asked_and_free(tiny_folders, monkeypatch):
    loaded = flaky_loader(monkeypatch, failures=2)

    with pytest.raises(GpuOutOfMemory) as failure:
        wan(tiny_folders, offload="model").render_clip(clip_request(), print)

    message = str(failure.value)
    assert message.startswith("tiny/wan-vace: CUDA out of memory at 80x48, 9 frames")
    assert "asked 20.00 GiB, free 1.25 GiB of 79.19 GiB" in message
    assert loaded[0].offloads == [("sequential", "cpu")]


def test_cost_is_priced_as_gpu_seconds_on_a_gpu(tiny_folders):
    provider = wan(tiny_folders, gpu_type="h100")
    generation = diffusion.Generation(output=None, seconds=36.0, cpu_s=30.0, on_gpu=True)
    cost = provider.priced(generation, Usage(wall_s=40.0, cpu_s=32.0))
    assert (cost.gpu_s, cost.cpu_s, cost.wall_s) == (36.0, 2.0, 40.0)
    table = PricesResource().table
    assert cost.cost_usd == pytest.approx(36 / 3600 * table.gpu_rate("h100") + 2 / 3600 * table.vcpu_hour_usd)
