"""What the diffusers providers (`flux`, `wan`, `cogvideox`) share.

- Where weights come from: `local_path` (a folder written by save_pretrained) or the Hugging Face cache.
  A run never starts a multi-GB download unless `download` is on; missing weights are a clear error that
  names the model id and the `local_path` setting.
- A pipeline is loaded once per process and reused for every SKU, one model at a time (two video models
  rarely fit one GPU together), with its speed settings applied once: dtype, device, CPU offload,
  attention backend, fused projections, cache hook, regional compile.
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
import math
import re
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from dagster import ConfigurableResource
from PIL import Image
from pydantic import Field

from resources.pricing import CostRecord, PricesResource
from resources.providers.base import Availability, ClipRequest, ClipResult, Log, Usage, measure_usage
from videokit.media.encode import ClipFile, EncodeSettings
from videokit.sku_video.loop import SourceTooShort, fit_to_size, loop_source_indices, looped_clip

Dtype = Literal["bfloat16", "float16", "float32"]
Offload = Literal["none", "model", "sequential"]
CacheHook = Literal["none", "first_block_cache", "pyramid_attention_broadcast", "taylorseer_cache"]

# A generated clip slightly shorter than the loop needs is played this much faster at most.
PROGRESS_LOGS_PER_RUN = 10


class WeightsUnavailable(RuntimeError):
    """The weights are neither in `local_path`, nor in the Hugging Face cache, nor to be downloaded."""


class GpuOutOfMemory(RuntimeError):
    """CUDA ran out of memory even with CPU offload and VAE tiling."""


class ClipTooShort(ValueError):
    """The configured frames and fps make a video shorter than the requested loop."""


@dataclass(frozen=True)
class Variant:
    """A published model and how it is run: its pipeline class and its native settings."""

    # The provider's name when it runs this model: routing, the price table and storage paths know it by this,
    # so two variants wired side by side (wan, wan_ti2v) never share a price or a stored clip.
    provider: str
    model: str  # Hugging Face hub id
    pipeline: str  # diffusers pipeline class
    size: tuple[int, int] | None  # native (width, height), landscape; None: the requested size
    steps: int
    guidance: float
    frames: int = 1
    fps: int = 0
    fixed_size: bool = False  # generates only at `size` (learned positional embeddings)
    fp32_vae: str | None = None  # VAE class kept in float32 whatever the pipeline's dtype


@dataclass(frozen=True)
class Optimisations:
    attention_backend: str | None = None
    fuse_projections: bool = False
    cache_hook: CacheHook = "none"
    cache_threshold: float = 0.05
    regional_compile: bool = False


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


@dataclass(frozen=True)
class Generation:
    output: Any
    seconds: float  # wall seconds of the pipeline call, between device synchronisations
    cpu_s: float
    on_gpu: bool


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


def shared_pipeline(spec: PipelineSpec, log: Log) -> Any:
    """The pipeline for `spec`, loaded on first use; loading another model first releases this one."""
    if spec not in _loaded:
        release_pipelines()
        log(f"loading {spec.model} ({spec.pipeline}) from {spec.source} on {spec.device}, {spec.dtype}")
        started = time.perf_counter()
        _loaded[spec] = load_pipeline(spec)
        log(f"loaded {spec.model} in {time.perf_counter() - started:.1f}s")
    return _loaded[spec]


def release_pipelines() -> None:
    if _loaded:
        _loaded.clear()
        gc.collect()
        _empty_cuda_cache()


def load_pipeline(spec: PipelineSpec) -> Any:
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
    optimise(pipe, spec.optimisations)
    return pipe


def place(pipe: Any, device: str, offload: Offload) -> None:
    if offload == "none" or not device.startswith("cuda"):
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)


def optimise(pipe: Any, options: Optimisations) -> None:
    """Speed settings on the denoiser; the GPU benchmark applies the same function to measure them."""
    if options.regional_compile and options.cache_hook != "none":
        # A cache hook keeps per-block state (which block, cond or uncond pass) that compiled blocks guard on:
        # they recompile step after step instead of running faster.
        raise ValueError("regional_compile and cache_hook do not combine; choose one")
    denoiser = pipe.transformer
    if options.attention_backend:
        denoiser.set_attention_backend(options.attention_backend)
    if options.fuse_projections:
        fuse_projections(denoiser)
    if options.cache_hook != "none":
        denoiser.enable_cache(cache_config(options, pipe))
    if options.regional_compile:
        if not getattr(denoiser, "_repeated_blocks", None):
            raise ValueError(
                f"{type(denoiser).__name__} declares no repeated blocks to compile; "
                "set regional_compile: false"
            )
        denoiser.compile_repeated_blocks(fullgraph=True)


def fuse_projections(denoiser: Any) -> None:
    """One matmul for q, k and v (k and v for cross-attention) instead of three."""
    attention_modules = [module for module in denoiser.modules() if hasattr(module, "fuse_projections")]
    for module in attention_modules:
        module.fuse_projections()
    if not attention_modules:
        denoiser.fuse_qkv_projections()


def cache_config(options: Optimisations, pipe: Any) -> Any:
    import diffusers

    if options.cache_hook == "first_block_cache":
        return diffusers.FirstBlockCacheConfig(threshold=options.cache_threshold)
    if options.cache_hook == "pyramid_attention_broadcast":
        return diffusers.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=lambda: pipe.current_timestep,
        )
    return diffusers.TaylorSeerCacheConfig()


# --------------------------------------------------------------------------- running


def generate(pipe: Any, arguments: dict, spec: PipelineSpec, label: str, log: Log) -> Generation:
    """Run the pipeline, logging progress; when CUDA runs out of memory, retry once with CPU offload and VAE
    tiling."""
    import torch

    steps = arguments["num_inference_steps"]
    arguments = arguments | {"callback_on_step_end": progress_logger(label, steps, log)}
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


def timed_call(pipe: Any, arguments: dict, device: str) -> Generation:
    on_gpu = device.startswith("cuda")
    _synchronise(on_gpu)
    with measure_usage() as usage:
        output = pipe(**arguments)
        _synchronise(on_gpu)
    return Generation(output=output, seconds=usage.wall_s, cpu_s=usage.cpu_s, on_gpu=on_gpu)


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


def _synchronise(on_gpu: bool) -> None:
    if on_gpu:
        import torch

        torch.cuda.synchronize()


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


def generation_size(native: tuple[int, int], target: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The native area at the target's aspect ratio, in multiples of `multiple`.

    A portrait or square SKU is generated as such instead of being cropped out of a landscape video.
    """
    area, aspect = native[0] * native[1], target[0] / target[1]
    width = max(multiple, round(math.sqrt(area * aspect) / multiple) * multiple)
    height = max(multiple, round(math.sqrt(area / aspect) / multiple) * multiple)
    return width, height


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
    cache_hook: CacheHook = Field(default="none", description="Reuse denoiser outputs across steps.")
    cache_threshold: float = Field(default=0.05, description="first_block_cache: change that recomputes.")
    regional_compile: bool = Field(default=False, description="torch.compile the repeated transformer blocks")
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
        except WeightsUnavailable as error:
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
                regional_compile=self.regional_compile,
            ),
        )

    def native_size(self, requested: tuple[int, int]) -> tuple[int, int]:
        width, height = self.native.size or requested
        return self.width or width, self.height or height

    def denoising(self, request_seed: int) -> dict:
        """Steps, guidance and a seeded CPU generator (same latents on every device) for one pipeline call."""
        import torch

        return {
            "num_inference_steps": self.steps or self.native.steps,
            "guidance_scale": self.native.guidance if self.guidance is None else self.guidance,
            "generator": torch.Generator("cpu").manual_seed(request_seed if self.seed is None else self.seed),
            "output_type": "pt",
        }

    def priced(self, generation: Generation, usage: Usage) -> CostRecord:
        """The generation's GPU seconds at the GPU's rate plus the CPU work around it; on a CPU device, all
        of it is CPU work."""
        gpu_s = generation.seconds if generation.on_gpu else 0.0
        cpu_s = usage.cpu_s - generation.cpu_s if generation.on_gpu else usage.cpu_s
        return self.prices.table.cost(
            provider=self.name, model=self.model_id, cpu_s=cpu_s, gpu_s=gpu_s, gpu_type=self.gpu_type,
            wall_s=usage.wall_s,
        )


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

    @abstractmethod
    def conditioning(self, pipe: Any, keyframe: Image.Image, frames: int) -> dict:
        """Pipeline arguments that make the video start from `keyframe`."""

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
        return ClipResult(clip=clip, cost=self.priced(generation, usage))

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
        # Width and height are whole latent patches: the VAE's downscale times the transformer's patch.
        patch = pipe.transformer.config.patch_size
        multiple = pipe.vae_scale_factor_spatial * (patch[-1] if isinstance(patch, (tuple, list)) else patch)
        return generation_size(self.native_size(requested), requested, multiple)
