"""How a loaded diffusers pipeline is made fast, and what was actually applied, for the clip's metadata.

The options every diffusers provider shares, applied once when its pipeline is loaded, in this order:

1. step-distilled LoRAs (`load_lora_weights`), fused into the weights so they cost nothing per step;
2. fused q/k/v projections;
3. FP8 weights: torchao's float8 matmuls when torchao is installed and the GPU has FP8 tensor cores, else
   diffusers' layerwise casting (float8 storage, computed in the pipeline's dtype: half the memory, no
   speed), and the fallback is logged;
4. the attention backend (`set_attention_backend`): a backend whose kernel is not installed, or that needs
   CUDA on a machine without it, falls back to PyTorch's native attention, logged;
5. a cache policy on the denoiser (`enable_cache`): first-block cache, MagCache, TaylorSeer or pyramid
   attention broadcast;
6. regional compile (`compile_repeated_blocks`).

Each applies to every denoiser of the pipeline (Wan2.2-A14B has two experts: `transformer`, `transformer_2`).
No Dagster and no media code here: bench/gpu_clip.py runs this on a bare GPU machine.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

CacheHook = Literal["none", "first_block_cache", "mag_cache", "taylorseer_cache", "pyramid_attention_broadcast"]
Log = Callable[[str], None]
DENOISERS = ("transformer", "transformer_2")
# Backends PyTorch runs on any device; every other one (flash, sage, cuDNN, ...) needs a CUDA GPU.
PORTABLE_ATTENTION = ("native", "_native_math")
# torchao's float8 matmuls need FP8 tensor cores: Ada (8.9) and Hopper (9.0) onwards.
FP8_MATMUL_CAPABILITY = (8, 9)


class LoraUnavailable(RuntimeError):
    """A LoRA named in the settings is neither a local file or folder nor in the Hugging Face cache."""


@dataclass(frozen=True)
class Lora:
    """A LoRA to fuse into one denoiser: `source` is a local folder or the resolved hub snapshot folder."""

    name: str  # as configured (hub id, folder or file), for the metadata
    source: str
    weight_name: str | None
    scale: float = 1.0
    denoiser: str = "transformer"


@dataclass(frozen=True)
class Optimisations:
    attention_backend: str | None = None
    fuse_projections: bool = False
    cache_hook: CacheHook = "none"
    cache_threshold: float = 0.05
    mag_ratios: tuple[float, ...] | None = None  # MagCache's per-model magnitude ratios
    steps: int = 0  # the steps MagCache interpolates its ratios to
    fp8_weights: bool = False
    regional_compile: bool = False
    loras: tuple[Lora, ...] = ()


# --------------------------------------------------------------------------- LoRA sources


def lora_source(name: str, weight_name: str | None, download: bool, setting: str = "lora") -> tuple[str, str | None]:
    """(folder, weight file) of a LoRA given as a local .safetensors file, a local folder or a hub id."""
    path = Path(name)
    if path.is_file():
        return str(path.parent), weight_name or path.name
    if path.is_dir():
        return str(path), weight_name
    if name.startswith((".", "/", "~")) or name.endswith(".safetensors"):
        raise LoraUnavailable(f"{setting} {name!r}: no such file or folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = [weight_name] if weight_name else None
    try:
        return snapshot_download(name, allow_patterns=patterns, local_files_only=not download), weight_name
    except LocalEntryNotFoundError:
        raise LoraUnavailable(
            f"{setting} {name!r}: not in the Hugging Face cache and downloads are off; fetch it with "
            f"`hf download {name}{' ' + weight_name if weight_name else ''}` or point {setting} at a local "
            "file or folder"
        ) from None


# --------------------------------------------------------------------------- applying the options


def denoisers(pipe: Any) -> list[tuple[str, Any]]:
    return [(name, getattr(pipe, name)) for name in DENOISERS if getattr(pipe, name, None) is not None]


def optimise(pipe: Any, options: Optimisations, device: str, log: Log = print) -> dict[str, Any]:
    """Apply `options` to a loaded pipeline; returns what was applied, fallbacks included."""
    if options.regional_compile and options.cache_hook != "none":
        # A cache hook keeps per-block state (which block, cond or uncond pass) that compiled blocks guard on:
        # they recompile step after step instead of running faster.
        raise ValueError("regional_compile and cache_hook do not combine; choose one")
    applied: dict[str, Any] = {}
    if options.loras:
        applied["lora"] = fuse_loras(pipe, options.loras)
    models = denoisers(pipe)
    if options.fuse_projections:
        for _, denoiser in models:
            fuse_projections(denoiser)
        applied["fused_projections"] = True
    if options.fp8_weights:
        outcomes = [fp8_weights(denoiser, device, log) for _, denoiser in models]
        applied["fp8"] = outcomes[0]
    if options.attention_backend:
        outcomes = [attention_backend(denoiser, options.attention_backend, device, log) for _, denoiser in models]
        applied["attention"] = outcomes[0]
    if options.cache_hook != "none":
        for _, denoiser in models:
            try:
                denoiser.enable_cache(cache_config(options, pipe))
            except ValueError as error:  # diffusers registers each cache per block class
                raise ValueError(f"cache_hook {options.cache_hook} does not apply to {type(denoiser).__name__} "
                                 f"in this diffusers ({error}); choose another or none") from error
        applied["cache"] = cache_description(options)
    if options.regional_compile:
        for _, denoiser in models:
            if not getattr(denoiser, "_repeated_blocks", None):
                raise ValueError(
                    f"{type(denoiser).__name__} declares no repeated blocks to compile; set regional_compile: false"
                )
            denoiser.compile_repeated_blocks(fullgraph=True)
        applied["compile"] = "repeated blocks"
    return applied


def fuse_loras(pipe: Any, loras: tuple[Lora, ...]) -> list[str]:
    if not hasattr(pipe, "load_lora_weights"):
        raise ValueError(f"{type(pipe).__name__} has no LoRA loader in diffusers; remove the lora setting")
    if find_spec("peft") is None:
        raise ValueError("LoRAs need the peft package (pip install 'skuvid[gpu]')")
    names = [f"distilled_{index}" for index in range(len(loras))]
    for lora, adapter in zip(loras, names, strict=True):
        into = {"load_into_transformer_2": True} if lora.denoiser == "transformer_2" else {}
        pipe.load_lora_weights(lora.source, weight_name=lora.weight_name, adapter_name=adapter, **into)
    # Fused into the weights and the adapters dropped: no LoRA matmuls per step, and FP8 and compile see
    # plain linear layers.
    for lora, adapter in zip(loras, names, strict=True):
        pipe.fuse_lora(components=[lora.denoiser], lora_scale=lora.scale, adapter_names=[adapter])
    pipe.unload_lora_weights()
    return [f"{lora.name}{':' + lora.weight_name if lora.weight_name else ''} x{lora.scale:g} -> {lora.denoiser}"
            for lora in loras]


def fuse_projections(denoiser: Any) -> None:
    """One matmul for q, k and v (k and v for cross-attention) instead of three."""
    attention_modules = [module for module in denoiser.modules() if hasattr(module, "fuse_projections")]
    for module in attention_modules:
        module.fuse_projections()
    if not attention_modules:
        denoiser.fuse_qkv_projections()


def fp8_weights(denoiser: Any, device: str, log: Log) -> str:
    import torch

    on_cuda = device.startswith("cuda") and torch.cuda.is_available()
    if find_spec("torchao") is None:
        reason = "torchao is not installed"
    elif not on_cuda or torch.cuda.get_device_capability(device) < FP8_MATMUL_CAPABILITY:
        reason = "no GPU with FP8 tensor cores here"
    else:
        try:
            from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
        except (ImportError, RuntimeError) as error:  # a torchao built for another torch
            reason = f"torchao does not load: {str(error).strip().splitlines()[0]}"
        else:
            # Only the repeated blocks' linear layers: embeddings and the output projection stay exact.
            quantize_(denoiser, Float8DynamicActivationFloat8WeightConfig(),
                      filter_fn=lambda module, name: isinstance(module, torch.nn.Linear) and "blocks." in name)
            return "torchao float8 weights and activations"
    log(f"fp8_weights: {reason}; falling back to float8 storage with layerwise casting (half the weight memory, "
        "no speed-up)")
    denoiser.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=denoiser.dtype)
    return f"float8_e4m3fn storage, layerwise casting ({reason})"


def attention_backend(denoiser: Any, backend: str, device: str, log: Log) -> str:
    """Set `backend`, or fall back to native attention when its kernel or a CUDA GPU is missing."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    known = sorted(name.value for name in AttentionBackendName)
    if backend not in known:
        raise ValueError(f"attention_backend {backend!r} must be one of {', '.join(known)}")
    if backend not in PORTABLE_ATTENTION and not device.startswith("cuda"):
        reason = f"it needs a CUDA GPU and the device is {device}"
    else:
        try:
            denoiser.set_attention_backend(backend)
            return backend
        except (RuntimeError, ImportError, OSError) as error:  # a missing or unloadable kernel
            reason = str(error).strip().splitlines()[0]
    log(f"attention backend {backend!r} not usable ({reason}); using native attention")
    denoiser.set_attention_backend("native")
    return f"native (asked {backend}: {reason})"


def cache_config(options: Optimisations, pipe: Any) -> Any:
    import diffusers

    if options.cache_hook == "first_block_cache":
        return diffusers.FirstBlockCacheConfig(threshold=options.cache_threshold)
    if options.cache_hook == "mag_cache":
        if not options.mag_ratios:
            raise ValueError(
                "cache_hook mag_cache needs mag_ratios for this model (diffusers ships FLUX.1's): run once with "
                "diffusers' MagCacheConfig(calibrate=True) and set mag_ratios to what it logs"
            )
        return diffusers.MagCacheConfig(threshold=options.cache_threshold, mag_ratios=list(options.mag_ratios),
                                        num_inference_steps=options.steps)
    if options.cache_hook == "pyramid_attention_broadcast":
        return diffusers.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=lambda: pipe.current_timestep,
        )
    return diffusers.TaylorSeerCacheConfig()


def cache_description(options: Optimisations) -> str:
    if options.cache_hook in ("first_block_cache", "mag_cache"):
        return f"{options.cache_hook} (threshold {options.cache_threshold:g})"
    return options.cache_hook


# --------------------------------------------------------------------------- calling


@dataclass(frozen=True)
class Generation:
    output: Any
    seconds: float  # wall seconds of the pipeline call, between device synchronisations
    cpu_s: float
    on_gpu: bool


def accepted_arguments(pipe: Any, arguments: dict) -> dict:
    """The arguments the pipeline's `__call__` takes: HunyuanVideo-1.5 sizes from its image and has no step
    callback, so `width`, `height` and `callback_on_step_end` are left out for it."""
    parameters = inspect.signature(pipe.__call__).parameters
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return arguments
    return {name: value for name, value in arguments.items() if name in parameters}


def timed_call(pipe: Any, arguments: dict, device: str) -> Generation:
    on_gpu = device.startswith("cuda")
    synchronise(on_gpu)
    wall, cpu = time.perf_counter(), time.process_time()
    output = pipe(**accepted_arguments(pipe, arguments))
    synchronise(on_gpu)
    return Generation(output=output, seconds=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
                      on_gpu=on_gpu)


def synchronise(on_gpu: bool) -> None:
    if on_gpu:
        import torch

        torch.cuda.synchronize()


def generation_size(native: tuple[int, int], target: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The native area at the target's aspect ratio, in multiples of `multiple`.

    A portrait or square SKU is generated as such instead of being cropped out of a landscape video.
    """
    area, aspect = native[0] * native[1], target[0] / target[1]
    width = max(multiple, round(math.sqrt(area * aspect) / multiple) * multiple)
    height = max(multiple, round(math.sqrt(area / aspect) / multiple) * multiple)
    return width, height
