"""What the diffusers providers (`flux`, `wan`, `cogvideox`) share.

- Where weights come from: `local_path` (a folder written by save_pretrained) or the Hugging Face cache.
  A run never starts a multi-GB download unless `download` is on; missing weights are a clear error that
  names the model id and the `local_path` setting.
- A pipeline is loaded once per process and reused for every SKU, one model at a time (two video models
  rarely fit one GPU together), with its runner options applied once (runner.py): dtype, device, CPU
  offload, step-distilled LoRAs, fused projections, FP8 weights, attention backend, cache policy, regional
  compile. What was applied, fallbacks included, goes into every render's cost record as `runner`, with the
  steps and guidance the render used.
- A generation logs its denoising progress, is timed between device synchronisations (GPU seconds), and
  when CUDA runs out of memory it is retried once with CPU offload and VAE tiling before failing with the
  numbers.
- Generated frames become our clip the way API output does: fitted to the requested size, resampled to its
  fps and length, crossfaded into a seamless loop and encoded with videokit, so QA and publish treat every
  provider alike.

torch and diffusers are imported only when a model is used: the project runs without the `gpu` extra.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from dagster import ConfigurableResource
from PIL import Image
from pydantic import Field

from resources.pricing import CostRecord, PricesResource
from resources.providers.base import Availability, ClipRequest, ClipResult, Log, Usage, measure_usage
from resources.providers.gpu.models import Variant, conditioning, generation_multiple, image_sized_generation
from resources.providers.gpu.runner import (
    CacheHook,
    Generation,
    Lora,
    LoraUnavailable,
    Optimisations,
    accepted_arguments,
    generation_size,
    lora_source,
    optimise,
    timed_call,
)
from videokit.media.encode import ClipFile, EncodeSettings
from videokit.sku_video.loop import SourceTooShort, fit_to_size, loop_source_indices, looped_clip

Dtype = Literal["bfloat16", "float16", "float32"]
Offload = Literal["none", "model", "sequential"]

PROGRESS_LOGS_PER_RUN = 10


class WeightsUnavailable(RuntimeError):
    """The weights are neither in `local_path`, nor in the Hugging Face cache, nor to be downloaded."""


class GpuOutOfMemory(RuntimeError):
    """CUDA ran out of memory even with CPU offload and VAE tiling."""


class ClipTooShort(ValueError):
    """The configured frames and fps make a video shorter than the requested loop."""


@dataclass(frozen=True)
class PipelineSpec:
    """Everything that decides what a loaded pipeline is: equal specs share one loaded pipeline."""

    model: str
    source: str  # local folder, or the hub id when downloads are on
    pipeline: str
    dtype: Dtype
    device: str
    offload: Offload
    vae_tiling: bool
    fp32_vae: str | None
    optimisations: Optimisations


# --------------------------------------------------------------------------- weights


def weights_source(model: str, local_path: str | None, download: bool) -> str:
    """The folder (or, with downloads on, the hub id) to load `model` from; never waits on the network."""
    if local_path:
        if not (Path(local_path) / "model_index.json").is_file():
            raise WeightsUnavailable(
                f"{model}: local_path {local_path!r} is not a diffusers pipeline folder (no "
                "model_index.json); point local_path at a folder written by save_pretrained or downloaded "
                "from the hub"
            )
        return local_path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(model, local_files_only=True)
    except LocalEntryNotFoundError:
        if download:
            return model
    raise WeightsUnavailable(
        f"{model}: weights are not (all) in the Hugging Face cache and downloads are off; set local_path "
        f"to a folder with the pipeline (save_pretrained or `hf download {model} --local-dir DIR`), fill "
        f"the cache with `hf download {model}`, or set download: true"
    )


# --------------------------------------------------------------------------- loading, once per process


_loaded: dict[PipelineSpec, Any] = {}
_applied: dict[PipelineSpec, dict[str, Any]] = {}  # what optimise applied to each loaded pipeline


def shared_pipeline(spec: PipelineSpec, log: Log) -> Any:
    """The pipeline for `spec`, loaded on first use; loading another model first releases this one."""
    if spec not in _loaded:
        release_pipelines()
        log(f"loading {spec.model} ({spec.pipeline}) from {spec.source} on {spec.device}, {spec.dtype}")
        started = time.perf_counter()
        _loaded[spec] = load_pipeline(spec, log)
        log(f"loaded {spec.model} in {time.perf_counter() - started:.1f}s")
    return _loaded[spec]


def release_pipelines() -> None:
    if _loaded:
        _loaded.clear()
        _applied.clear()
        gc.collect()
        _empty_cuda_cache()


def applied_options(spec: PipelineSpec) -> dict[str, Any]:
    return dict(_applied.get(spec, {}))


def load_pipeline(spec: PipelineSpec, log: Log = print) -> Any:
    import diffusers
    import torch

    components = {}
    if spec.fp32_vae:
        vae_class = getattr(diffusers, spec.fp32_vae)
        components["vae"] = vae_class.from_pretrained(spec.source, subfolder="vae", dtype=torch.float32)
    pipeline_class = getattr(diffusers, spec.pipeline)
    pipe = pipeline_class.from_pretrained(spec.source, dtype=getattr(torch, spec.dtype), **components)
    pipe.set_progress_bar_config(disable=True)
    place(pipe, spec.device, spec.offload)
    if spec.vae_tiling:
        pipe.vae.enable_tiling()
    _applied[spec] = optimise(pipe, spec.optimisations, spec.device, log)
    return pipe


def place(pipe: Any, device: str, offload: Offload) -> None:
    if offload == "none" or not device.startswith("cuda"):
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)


# --------------------------------------------------------------------------- running


def generate(pipe: Any, arguments: dict, spec: PipelineSpec, label: str, log: Log) -> Generation:
    """Run the pipeline, logging progress; when CUDA runs out of memory, retry once with CPU offload and VAE
    tiling."""
    import torch

    steps = arguments["num_inference_steps"]
    arguments = arguments | {"callback_on_step_end": progress_logger(label, steps, log)}
    if "callback_on_step_end" not in accepted_arguments(pipe, arguments):
        log(f"{label}: {steps} denoising steps ({type(pipe).__name__} reports no progress per step)")
    seed_state = arguments["generator"].get_state()
    try:
        return timed_call(pipe, arguments, spec.device)
    except torch.OutOfMemoryError as error:
        log(f"{label}: CUDA out of memory ({_first_line(error)}); retrying once with CPU offload and VAE "
            "tiling")
    _empty_cuda_cache()
    fall_back_to_offload(pipe, spec)
    # The failed attempt drew noise from the generator: rewind it, so the retry makes what one try would have.
    arguments["generator"].set_state(seed_state)
    try:
        return timed_call(pipe, arguments, spec.device)
    except torch.OutOfMemoryError as error:
        raise GpuOutOfMemory(out_of_memory_message(spec, arguments, error)) from error


def fall_back_to_offload(pipe: Any, spec: PipelineSpec) -> None:
    # Sequential offload when model offload was already on: it keeps one layer, not one model, on the GPU.
    if spec.offload == "none":
        pipe.enable_model_cpu_offload(device=spec.device)
    else:
        pipe.enable_sequential_cpu_offload(device=spec.device)
    pipe.vae.enable_tiling()


def progress_logger(label: str, total_steps: int, log: Log) -> Callable:
    """A diffusers `callback_on_step_end` that logs about every tenth of the denoising steps."""
    every = max(1, total_steps // PROGRESS_LOGS_PER_RUN)
    started = time.perf_counter()

    def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
        done = step + 1
        if done % every == 0 or done == total_steps:
            log(f"{label}: denoising step {done}/{total_steps}, {time.perf_counter() - started:.1f}s")
        return tensors

    return on_step_end


def out_of_memory_message(spec: PipelineSpec, arguments: dict, error: Exception) -> str:
    asked, free, total = _memory_numbers(str(error))
    frames = f", {arguments['num_frames']} frames" if "num_frames" in arguments else ""
    return (
        f"{spec.model}: CUDA out of memory at {arguments['width']}x{arguments['height']}{frames} even with "
        f"CPU offload and VAE tiling: asked {asked}, free {free} of {total}. Lower width, height or frames, "
        "or run on a GPU with more memory."
    )


def _memory_numbers(message: str) -> tuple[str, str, str]:
    """(asked, free, total) as PyTorch words them; free and total read from the device when there is one."""
    import torch

    asked, free, total = (
        match.group(1) if match else "unknown"
        for match in (
            re.search(r"Tried to allocate ([\d.]+ \w+)", message),
            re.search(r"of which ([\d.]+ \w+) is free", message),
            re.search(r"total capacity of ([\d.]+ \w+)", message),
        )
    )
    if torch.cuda.is_available():
        free_bytes, total_bytes = torch.cuda.mem_get_info()
        free, total = f"{free_bytes / 2**30:.2f} GiB", f"{total_bytes / 2**30:.2f} GiB"
    return asked, free, total


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _empty_cuda_cache() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def as_uint8_frames(frames: Any) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] on any device -> (N, H, W, 3) uint8 on the CPU, converted on-device."""
    return frames.float().mul(255).round_().clamp_(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


# --------------------------------------------------------------------------- clips from generated frames


def loop_frame_indices(n_frames: int, source_fps: float, request: ClipRequest, provider: str) -> list[int]:
    """Which generated frames the loop plays forward, at `request.fps`."""
    try:
        return loop_source_indices(n_frames, source_fps, round(request.duration_s * request.fps), request.fps)
    except SourceTooShort as error:
        raise ClipTooShort(f"{provider}: {error}: raise frames") from None


def clip_from_frames(frames: np.ndarray, indices: list[int], request: ClipRequest,
                     settings: EncodeSettings) -> ClipFile:
    """Generated (N, H, W, 3) uint8 frames, picked by `indices`, fitted to the request's size and looped."""
    return looped_clip([frames[index] for index in indices], request.size, request.fps,
                       round(request.duration_s * request.fps), settings)


# --------------------------------------------------------------------------- resources


class DiffusionProvider(ConfigurableResource):
    """Settings every diffusers provider shares: which weights, where they run, how fast, what it costs."""

    variants: ClassVar[dict[str, Variant]]
    # Renders hold a slot of the Dagster `gpu` pool: one model at a time on the GPU.
    pool: ClassVar[str | None] = "gpu"

    prices: PricesResource
    variant: str
    model: str | None = Field(default=None, description="Hugging Face hub id; default: the variant's.")
    local_path: str | None = Field(
        default=None,
        description="Folder with the pipeline (save_pretrained layout); loaded instead of the hub id.",
    )
    download: bool = Field(
        default=False, description="Download the weights from the hub when they are not in the local cache."
    )
    device: str = Field(default="cuda", description="torch device: cuda, cuda:1, cpu.")
    dtype: Dtype = Field(default="bfloat16", description="Weights and activations dtype.")
    offload: Offload = Field(default="none", description="CPU offload: none, model (per model), sequential.")
    vae_tiling: bool = Field(default=False, description="Decode in tiles: less memory, slightly slower.")
    attention_backend: str | None = Field(
        default=None, description="diffusers attention backend (native, _native_cudnn, flash, sage, ...)."
    )
    fuse_projections: bool = Field(default=False, description="Fuse the attention q/k/v projections.")
    cache_hook: CacheHook = Field(
        default="none",
        description="Reuse denoiser outputs across steps: first_block_cache, mag_cache, taylorseer_cache, "
        "pyramid_attention_broadcast.",
    )
    cache_threshold: float = Field(
        default=0.05, description="first_block_cache, mag_cache: the change (or error) that recomputes."
    )
    mag_ratios: list[float] | None = Field(
        default=None, description="mag_cache: the model's magnitude ratios (from a calibration run)."
    )
    fp8_weights: bool = Field(
        default=False,
        description="FP8 denoiser weights: torchao float8 matmuls when installed on an FP8 GPU, else float8 "
        "storage with layerwise casting (logged).",
    )
    regional_compile: bool = Field(default=False, description="torch.compile the repeated transformer blocks")
    lora: str | None = Field(
        default=None,
        description="Step-distilled LoRA fused into the denoiser: hub id, local folder or .safetensors file. "
        "Sets guidance off and distilled_steps unless steps or guidance are set.",
    )
    lora_weight_name: str | None = Field(default=None, description="The LoRA's file in its repo or folder.")
    lora_2: str | None = Field(
        default=None, description="LoRA for the second denoiser (Wan2.2-A14B's low-noise expert)."
    )
    lora_2_weight_name: str | None = Field(default=None, description="The second LoRA's file.")
    lora_scale: float = Field(default=1.0, description="Strength the LoRAs are fused at.")
    distilled_steps: int = Field(default=4, description="Steps with a step-distilled LoRA.")
    steps: int | None = Field(default=None, description="Denoising steps; default: the variant's.")
    guidance: float | None = Field(default=None, description="Guidance scale; default: the variant's.")
    seed: int | None = Field(default=None, description="Seed for every SKU; default: the request's seed.")
    width: int | None = Field(default=None, description="Generation width; default: the variant's or SKU's.")
    height: int | None = Field(default=None, description="Generation height; default: as for width.")
    gpu_type: str = Field(default="h100", description="Row of the price table's gpu_hour_usd.")

    @property
    def name(self) -> str:
        return self.native.provider

    @property
    def native(self) -> Variant:
        return self.variants[self.variant]

    @property
    def model_id(self) -> str:
        return self.model or self.native.model

    def availability(self) -> Availability:
        # Cheapest checks first: a CPU-tier run asks every SKU, and importing torch costs seconds.
        if find_spec("diffusers") is None or find_spec("torch") is None:
            return Availability(
                False, f"{self.name}: torch and diffusers are not installed (pip install 'skuvid[gpu]')"
            )
        try:
            weights_source(self.model_id, self.local_path, self.download)
            self.loras()
        except (WeightsUnavailable, LoraUnavailable) as error:
            return Availability(False, f"{self.name}: {error}")
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            return Availability(
                False, f"{self.name}: device {self.device!r} asked for, but this machine has no CUDA GPU"
            )
        return Availability.ok()

    def pipeline_spec(self) -> PipelineSpec:
        return PipelineSpec(
            model=self.model_id,
            source=weights_source(self.model_id, self.local_path, self.download),
            pipeline=self.native.pipeline,
            dtype=self.dtype,
            device=self.device,
            offload=self.offload,
            vae_tiling=self.vae_tiling,
            fp32_vae=self.native.fp32_vae,
            optimisations=Optimisations(
                attention_backend=self.attention_backend,
                fuse_projections=self.fuse_projections,
                cache_hook=self.cache_hook,
                cache_threshold=self.cache_threshold,
                mag_ratios=tuple(self.mag_ratios) if self.mag_ratios else self.default_mag_ratios(),
                steps=self.step_count(),
                fp8_weights=self.fp8_weights,
                regional_compile=self.regional_compile,
                loras=self.loras(),
            ),
        )

    def loras(self) -> tuple[Lora, ...]:
        configured = [("lora", self.lora, self.lora_weight_name, "transformer"),
                      ("lora_2", self.lora_2, self.lora_2_weight_name, "transformer_2")]
        loras = []
        for setting, name, weight_name, denoiser in configured:
            if name:
                source, weight = lora_source(name, weight_name, self.download, setting)
                loras.append(Lora(name=name, source=source, weight_name=weight, scale=self.lora_scale,
                                  denoiser=denoiser))
        return tuple(loras)

    def default_mag_ratios(self) -> tuple[float, ...] | None:
        """FLUX.1's ratios ship with diffusers; every other model needs its own calibration."""
        if self.cache_hook != "mag_cache" or not self.native.pipeline.startswith("Flux"):
            return None
        from diffusers.hooks.mag_cache import FLUX_MAG_RATIOS

        return tuple(float(ratio) for ratio in FLUX_MAG_RATIOS)

    def step_count(self) -> int:
        if self.steps:
            return self.steps
        return self.distilled_steps if self.lora else self.native.steps

    def guidance_scale(self) -> float | None:
        """A step-distilled LoRA was trained without guidance: one denoiser call per step, not two."""
        if self.guidance is not None:
            return self.guidance
        return 1.0 if self.lora else self.native.guidance

    def runner_record(self, spec: PipelineSpec, arguments: dict) -> dict[str, Any]:
        """What ran: the options applied (fallbacks included) with the render's steps and guidance."""
        return {
            "steps": arguments["num_inference_steps"],
            "guidance": arguments.get("guidance_scale", self.guidance_scale()),
            "dtype": spec.dtype,
            **applied_options(spec),
        }

    def native_size(self, requested: tuple[int, int]) -> tuple[int, int]:
        width, height = self.native.size or requested
        return self.width or width, self.height or height

    def denoising(self, request_seed: int) -> dict:
        """Steps, guidance and a seeded CPU generator (same latents on every device) for one pipeline call."""
        import torch

        guidance = self.guidance_scale()
        return {
            "num_inference_steps": self.step_count(),
            **({} if guidance is None else {"guidance_scale": guidance}),
            "generator": torch.Generator("cpu").manual_seed(request_seed if self.seed is None else self.seed),
            "output_type": "pt",
        }

    def priced(self, generation: Generation, usage: Usage, runner: dict[str, Any] | None = None) -> CostRecord:
        """The generation's GPU seconds at the GPU's rate plus the CPU work around it; on a CPU device, all
        of it is CPU work. `runner` says how it ran."""
        gpu_s = generation.seconds if generation.on_gpu else 0.0
        cpu_s = usage.cpu_s - generation.cpu_s if generation.on_gpu else usage.cpu_s
        cost = self.prices.table.cost(
            provider=self.name, model=self.model_id, cpu_s=cpu_s, gpu_s=gpu_s, gpu_type=self.gpu_type,
            wall_s=usage.wall_s,
        )
        return replace(cost, runner=runner) if runner else cost


DEFAULT_CLIP_PROMPT = (
    "Product video: slow, smooth camera push-in. The product stays exactly as it is: same shape, colours and "
    "label. Soft studio light, static background, no text, no people."
)
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, low quality, flicker, distorted or melting product, changing label, extra objects, text, "
    "watermark, people, hands, jump cut"
)


class DiffusionClips(DiffusionProvider):
    """A clip provider that animates the keyframe with an image-conditioned video model."""

    frames: int | None = Field(default=None, description="Frames to generate (4k+1); default: the variant's.")
    fps: int | None = Field(default=None, description="The model's frame rate; default: the variant's.")
    prompt: str = Field(default=DEFAULT_CLIP_PROMPT, description="Appended to the SKU's own prompt.")
    negative_prompt: str = Field(default=DEFAULT_NEGATIVE_PROMPT, description="What guidance steers from.")
    crf: int = Field(default=21, description="x264 constant rate factor.")
    preset: str = Field(default="veryfast", description="x264 preset.")

    def conditioning(self, pipe: Any, keyframe: Image.Image, frames: int) -> dict:
        """Pipeline arguments that make the video start from `keyframe`."""
        return conditioning(self.native, pipe, keyframe, frames, self.guidance_scale())

    def render_clip(self, request: ClipRequest, log: Log) -> ClipResult:
        fps = self.fps or self.native.fps
        # A configuration too short for the loop fails here, before the GPU spends anything.
        loop_frame_indices(self.frame_count(), fps, request, self.name)
        spec = self.pipeline_spec()
        pipe = shared_pipeline(spec, log)
        with measure_usage() as usage:
            arguments = self.pipeline_arguments(
                pipe, request.keyframe.flatten(), request.size, request.prompt, request.seed
            )
            generation = generate(pipe, arguments, spec, self.name, log)
            generated = as_uint8_frames(generation.output.frames[0])
            picked = loop_frame_indices(len(generated), fps, request, self.name)
            settings = EncodeSettings(crf=self.crf, preset=self.preset)
            clip = clip_from_frames(generated, picked, request, settings)
        log(
            f"{self.name}: {request.sku_id} {len(generated)} frames at "
            f"{arguments['width']}x{arguments['height']} in {generation.seconds:.1f}s -> "
            f"{clip.n_frames} frames at {clip.width}x{clip.height}"
        )
        return ClipResult(clip=clip, cost=self.priced(generation, usage, self.runner_record(spec, arguments)))

    def pipeline_arguments(self, pipe: Any, keyframe: np.ndarray, requested: tuple[int, int], hint: str,
                           seed: int) -> dict:
        """Everything one pipeline call takes to animate `keyframe` for a clip of the `requested` size."""
        frames = self.frame_count()
        width, height = self.generated_size(pipe, requested)
        first_frame = Image.fromarray(fit_to_size(keyframe, (width, height)))
        return {
            "prompt": f"{hint}. {self.prompt}" if hint else self.prompt,
            "negative_prompt": self.negative_prompt,
            "width": width,
            "height": height,
            "num_frames": frames,
            **self.conditioning(pipe, first_frame, frames),
            **self.denoising(seed),
        }

    def frame_count(self) -> int:
        frames = self.frames or self.native.frames
        if frames % 4 != 1:
            raise ValueError(f"{self.name}: frames must be 4k+1 (49, 81, 121), got {frames}")
        return frames

    def generated_size(self, pipe: Any, requested: tuple[int, int]) -> tuple[int, int]:
        if self.native.fixed_size:
            return self.native_size(requested)
        if self.native.size is None:
            return image_sized_generation(pipe, requested)
        return generation_size(self.native_size(requested), requested, generation_multiple(pipe))
