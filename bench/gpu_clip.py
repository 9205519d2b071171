"""GPU benchmark: the stock diffusers call against our runner with each option, full-size models, random weights.

On a GPU machine with torch, transformers and accelerate and no network (wheels from
scripts/fetch-gpu-wheels.sh):   make bench-gpu   [BENCH_GPU_ARGS="--models wan,wan_a14b --steps 4"]
Anywhere, on the CPU, with tiny models:   python -m bench.gpu_clip --dry-run

Each model is built from its published configuration with random weights (bf16; Wan's VAE in fp32) and
called as its provider calls it for a 1280x720 SKU: Wan2.1-VACE-1.3B at 480p and 81 frames (`wan`, the
bulk tier's model; the default), Wan2.2-I2V-A14B at 480p and 81 frames (`wan_a14b`), HunyuanVideo-1.5
480p image-to-video at 121 frames (`hunyuan`), CogVideoX-5B-I2V at 720x480 and 49 frames (`cogvideox`),
FLUX.1-schnell at 1280x720 (`flux`). In one run and with the same steps, each runner gets a fresh denoiser
(same seed) and the providers' own `optimise` (resources/providers/gpu/runner.py):

- stock: the plain pipeline call (PyTorch's default attention, no compile);
- one option at a time: attention backend (cuDNN's fused attention on Hopper), FP8 weights, first-block
  cache, regional compile, a step-distilled LoRA (rank 64, random, fused; guidance off, so one denoiser call
  a step instead of two);
- ours: the options that combine (attention, FP8, regional compile), at the model's own guidance;
- ours + distilled LoRA: the same with the LoRA and guidance off.

It prints seconds per denoising step (between scheduler steps) and per call, peak GPU memory, speedup over
stock, the FLOP utilisation of the denoising loop (FLOPs of one transformer forward counted by
torch.utils.flop_counter at the real shapes, times the forwards the run made, over the GPU's dense bf16
peak; cache rows count the blocks they skip as work done) and GPU dollars per clip at the price table's
rate, at the benchmark's steps and at the runner's default steps (the model's own, or 4 with a distilled
LoRA). Runners that would not finish inside --budget-s (default 450 s, so the run ends within 8 minutes)
are skipped and listed. The JSON goes to bench/results/ with the GPU's name.

Random weights give real speed, not real pictures: the cache's skip decisions and the LoRA's effect on
quality need real weights. --dry-run runs the same code on the CPU with the tiny test architectures, which
checks the benchmark; its figures mean nothing.

No Dagster or media code is imported: the bare GPU machine has only the wheels above.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from resources.providers.gpu.models import (
    COGVIDEOX_VARIANTS,
    FLUX_VARIANTS,
    HUNYUAN_VARIANTS,
    WAN_VARIANTS,
    Variant,
    conditioning,
    generation_multiple,
    image_sized_generation,
)
from resources.providers.gpu.runner import (
    Lora,
    Optimisations,
    denoisers,
    generation_size,
    optimise,
    timed_call,
)
from tests.resources.providers.gpu import tiny_pipelines
from tests.resources.providers.gpu.tiny_pipelines import (
    CogVideoXArchitecture,
    FluxArchitecture,
    HunyuanVideo15Architecture,
    WanArchitecture,
    initialised_as,
)

REQUEST_SIZE = (1280, 720)
DISTILLED_STEPS = 4
LORA_RANK = 64
TARGET_SPEEDUP = 2.0
TARGET_MFU = 0.40
TARGET_BULK_CLIP_USD = 0.005
COMPILE_ALLOWANCE_S = 120.0  # what a regional compile adds to a runner's first call, for the time budget
PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "peft", "torchao")
PRICES = Path(__file__).resolve().parents[1] / "resources" / "prices.yaml"
PROMPT = "Product video: slow, smooth camera push-in on a bottle. Soft studio light, static background."
NEGATIVE_PROMPT = "blurry, low quality, flicker, distorted product, text, watermark"
NOTE = "Random weights: these are real speeds, not real pictures."
DRY_RUN_NOTE = ("CPU dry run: tiny models on the CPU check the benchmark's code; its figures mean nothing and "
                "real ones need a GPU.")
# Dense bf16 tensor-core peaks from the vendor's data sheets, matched against torch's device name in order.
PEAK_BF16_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                    ("A100", 312.0), ("L40S", 362.1), ("L4", 121.0))
PRICE_ROWS = (("H200", "h200"), ("H100", "h100"), ("A100", "a100"), ("L40S", "l40s"), ("L4", "l4"),
              ("A10G", "a10g"), ("4090", "rtx4090"))

T5_XXL = {
    "vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
    "relative_attention_num_buckets": 32, "feed_forward_proj": "gated-gelu",
}
FLUX_SCHNELL = FluxArchitecture(
    transformer={},  # the class defaults are FLUX.1's: 19 double and 38 single blocks, no guidance input
    vae={
        "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 16,
        "sample_size": 1024, "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False,
        "use_post_quant_conv": False,
    },
    clip={
        "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
        "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768,
        "hidden_act": "quick_gelu", "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
    },
    t5=T5_XXL,
)
_WAN_14B = {
    "patch_size": (1, 2, 2), "num_attention_heads": 40, "attention_head_dim": 128, "in_channels": 36,
    "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 13824, "num_layers": 40,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024,
}
UMT5_XXL = T5_XXL | {"vocab_size": 256384}
WAN_VACE_1_3B = WanArchitecture(
    transformer={
        "patch_size": (1, 2, 2), "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
        "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024,
        "vace_layers": list(range(0, 30, 2)), "vace_in_channels": 96,
    },
    vae={},  # the class defaults are the Wan2.1 VAE's
    text_encoder=UMT5_XXL,
)
WAN22_I2V_A14B = WanArchitecture(transformer=_WAN_14B, vae={}, text_encoder=UMT5_XXL,
                                 pipeline={"boundary_ratio": 0.9})
HUNYUAN15_480P_I2V = HunyuanVideo15Architecture(
    transformer={},  # the class defaults are the 480p image-to-video model's: 54 blocks, 2048 wide
    vae={},
    text_encoder={  # Qwen2.5-VL-7B's language model
        "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000,
        "rope_theta": 1000000.0, "rope_scaling": {"type": "default", "mrope_section": [16, 24, 24]},
        "bos_token_id": None, "eos_token_id": 258,
    },
    text_encoder_2={  # ByT5-small
        "vocab_size": 384, "d_model": 1472, "d_kv": 64, "d_ff": 3584, "num_layers": 12, "num_heads": 6,
        "relative_attention_num_buckets": 32, "feed_forward_proj": "gated-gelu",
    },
    image_encoder={  # SigLIP so400m, patch 14, 384 px
        "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
        "image_size": 384, "patch_size": 14,
    },
    image_size=384,
    guidance=6.0,  # guidance on: two denoiser calls a step, the costlier case
)
COGVIDEOX_5B_I2V = CogVideoXArchitecture(
    transformer={
        "num_attention_heads": 48, "attention_head_dim": 64, "in_channels": 32, "out_channels": 16,
        "time_embed_dim": 512, "text_embed_dim": 4096, "num_layers": 42, "sample_width": 90,
        "sample_height": 60, "sample_frames": 49, "patch_size": 2, "temporal_compression_ratio": 4,
        "max_text_seq_length": 226,
        "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": True,
    },
    vae={"scaling_factor": 0.7},
    text_encoder=T5_XXL,
)


@dataclass(frozen=True)
class Case:
    name: str  # the estimator (resources/pricing.py) knows the bulk models by these names
    variant: Variant
    build: Callable[..., Any]  # (dtype=, device=) -> a pipeline with random weights
    size: tuple[int, int] | None = None  # generation size; None: as the provider sizes it for REQUEST_SIZE
    frames: int | None = None


@dataclass(frozen=True)
class Runner:
    name: str
    options: Optimisations
    distilled: bool = False  # the LoRA's steps and guidance off


@dataclass
class Row:
    model: str
    runner: str
    options: dict
    size: str
    steps: int
    guidance: float | None
    forwards: int  # denoiser calls in the timed run (2 a step with classifier-free guidance)
    seconds_per_step: float
    seconds_per_call: float
    peak_gib: float | None
    forward_tflop: float = 0.0
    mfu: float | None = None
    speedup: float = 1.0
    default_steps: int = 0
    gpu_usd_per_call: float = 0.0
    gpu_usd_per_clip_at_default_steps: float = 0.0


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------- what is measured


def cases(dry_run: bool) -> dict[str, Case]:
    if dry_run:
        tiny = {"size": (64, 48), "frames": 9}
        return {
            "wan": Case("wan2.1-vace-1.3b (tiny)", WAN_VARIANTS["vace-1.3b"], tiny_pipelines.build_wan_vace, **tiny),
            "wan_a14b": Case("wan2.2-i2v-a14b (tiny)", WAN_VARIANTS["i2v-a14b"], tiny_pipelines.build_wan_i2v_a14b,
                             **tiny),
            "hunyuan": Case("hunyuanvideo-1.5-480p-i2v (tiny)", HUNYUAN_VARIANTS["480p-i2v"],
                            tiny_pipelines.build_hunyuan_i2v, frames=9),
            "cogvideox": Case("cogvideox-5b-i2v (tiny)", COGVIDEOX_VARIANTS["5b-i2v"],
                              partial(tiny_pipelines.build_cogvideox_i2v, tiny_pipelines.tiny_cogvideox(64, 48, 9)),
                              **tiny),
            "flux": Case("flux.1-schnell (tiny)", FLUX_VARIANTS["schnell"], tiny_pipelines.build_flux,
                         size=(64, 48)),
        }
    return {
        "wan": Case("wan2.1-vace-1.3b", WAN_VARIANTS["vace-1.3b"],
                    partial(tiny_pipelines.build_wan_vace, WAN_VACE_1_3B)),
        "wan_a14b": Case("wan2.2-i2v-a14b", WAN_VARIANTS["i2v-a14b"],
                         partial(tiny_pipelines.build_wan_i2v_a14b, WAN22_I2V_A14B)),
        # The 50-step checkpoint's settings (guidance on); the step-distilled one is the same network.
        "hunyuan": Case("hunyuanvideo-1.5-480p-i2v", HUNYUAN_VARIANTS["480p-i2v"],
                        partial(tiny_pipelines.build_hunyuan_i2v, HUNYUAN15_480P_I2V)),
        "cogvideox": Case("cogvideox-5b-i2v", COGVIDEOX_VARIANTS["5b-i2v"],
                          partial(tiny_pipelines.build_cogvideox_i2v, COGVIDEOX_5B_I2V)),
        "flux": Case("flux.1-schnell", FLUX_VARIANTS["schnell"], partial(tiny_pipelines.build_flux, FLUX_SCHNELL)),
    }


def runners(case: Case, pipe: Any, device: str, loras: tuple[Lora, ...], dry_run: bool) -> list[Runner]:
    # cuDNN's fused attention is the fastest attention PyTorch ships for Hopper; elsewhere its default is.
    hopper = device.startswith("cuda") and torch.cuda.get_device_capability(device) >= (9, 0)
    attention = "_native_cudnn" if hopper else "flash"
    compiles = bool(getattr(pipe.transformer, "_repeated_blocks", None)) and not dry_run
    combined = Optimisations(attention_backend=attention, fp8_weights=True, regional_compile=compiles)
    listed = [
        Runner("stock", Optimisations()),
        Runner("attention backend", Optimisations(attention_backend=attention)),
        Runner("fp8 weights", Optimisations(fp8_weights=True)),
        Runner("first-block cache", Optimisations(cache_hook="first_block_cache")),
    ]
    if compiles:
        listed.append(Runner("regional compile", Optimisations(regional_compile=True)))
    if loras:
        listed.append(Runner("distilled LoRA", Optimisations(loras=loras), distilled=True))
    listed.append(Runner("ours", combined))
    if loras:
        listed.append(Runner("ours + distilled LoRA", replace(combined, loras=loras), distilled=True))
    return listed


def random_loras(pipe: Any, folder: Path) -> tuple[Lora, ...]:
    """A random rank-64 LoRA per denoiser, saved and loaded the way a published one is."""
    if not hasattr(pipe, "load_lora_weights"):
        return ()
    loras = []
    for index, (name, _) in enumerate(denoisers(pipe)):
        saved = tiny_pipelines.save_lora(pipe, folder / name, denoiser=name, rank=LORA_RANK, seed=index)
        loras.append(Lora(name=f"random rank-{LORA_RANK}", source=str(saved), weight_name=None, denoiser=name))
    return tuple(loras)


def fresh_denoisers(pipe: Any, dtype: torch.dtype, device: str) -> None:
    """New random denoisers, seeded alike, so that no runner inherits another's fused, cast or compiled one."""
    for index, (name, old) in enumerate(denoisers(pipe)):
        model_class, config = type(old), dict(old.config)
        setattr(pipe, name, None)
        del old
        free_memory(device)
        with initialised_as(dtype, device):
            torch.manual_seed(index)
            setattr(pipe, name, model_class.from_config(config).eval().requires_grad_(False))
    torch.compiler.reset()


def bench_keyframe(size: tuple[int, int]) -> Image.Image:
    """A product-like first frame; random weights do not look at it, only its size matters."""
    image = Image.new("RGB", size, (226, 232, 238))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rounded_rectangle((width * 0.4, height * 0.2, width * 0.6, height * 0.85), radius=width // 40,
                           fill=(32, 92, 160))
    return image


def call_arguments(case: Case, pipe: Any, steps: int, guidance: float | None) -> dict:
    """What the case's provider passes for a REQUEST_SIZE SKU, at `steps` and `guidance`."""
    variant = case.variant
    denoising = {"num_inference_steps": steps, "generator": torch.Generator("cpu").manual_seed(0),
                 "output_type": "pt", **({} if guidance is None else {"guidance_scale": guidance})}
    if variant.pipeline.startswith("Flux"):
        width, height = case.size or generation_size((1280, 720), REQUEST_SIZE, pipe.vae_scale_factor * 2)
        return {"prompt": PROMPT, "width": width, "height": height, "max_sequence_length": 256, **denoising}
    frames = case.frames or variant.frames
    if case.size:
        width, height = case.size
    elif variant.fixed_size:
        width, height = variant.size
    elif variant.size is None:
        width, height = image_sized_generation(pipe, REQUEST_SIZE)
    else:
        width, height = generation_size(variant.size, REQUEST_SIZE, generation_multiple(pipe))
    return {
        "prompt": PROMPT, "negative_prompt": NEGATIVE_PROMPT, "width": width, "height": height,
        "num_frames": frames, **conditioning(variant, pipe, bench_keyframe((width, height)), frames, guidance),
        **denoising,
    }


# --------------------------------------------------------------------------- measuring


def measure(case: Case, runner: Runner, pipe: Any, steps: int, dtype: torch.dtype, device: str,
            console: Console) -> tuple[Row, float | None]:
    """Fresh denoisers with the runner's options, one warm-up call, then one timed call."""
    fresh_denoisers(pipe, dtype, device)
    if not runner.options.attention_backend:
        # diffusers keeps the last backend set as the process default: put PyTorch's own back.
        for _, denoiser in denoisers(pipe):
            denoiser.set_attention_backend("native")
    applied = optimise(pipe, replace(runner.options, steps=steps), device, lambda line: console.print(f"    {line}"))
    guidance = 1.0 if runner.distilled else case.variant.guidance
    arguments = call_arguments(case, pipe, steps, guidance)

    started = time.perf_counter()
    first_forward = warm_up(pipe, arguments)
    console.print(f"  {case.name} / {runner.name}: warm-up (and compile) {time.perf_counter() - started:.1f}s")
    flops = forward_flops(pipe.transformer, first_forward) if runner.name == "stock" else None

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    with step_clock(pipe, device) as step_ends, counted_calls(pipe) as forwards:
        generation = timed_call(pipe, arguments, device)
    row = Row(
        model=case.name,
        runner=runner.name,
        options=applied,
        size=_size(arguments, generation.output),
        steps=steps,
        guidance=guidance,
        forwards=forwards[0],
        seconds_per_step=statistics.median(later - earlier for earlier, later in pairwise(step_ends)),
        seconds_per_call=generation.seconds,
        peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else None,
        default_steps=DISTILLED_STEPS if runner.distilled else case.variant.steps,
    )
    del generation, first_forward
    free_memory(device)
    return row, flops


def warm_up(pipe: Any, arguments: dict) -> tuple[tuple, dict]:
    """The same call to latents; returns the transformer's first inputs.

    All the steps, not a few: later steps take other paths (a cache hook starts skipping blocks, Wan2.2 hands
    over to its second expert), and each path compiles, or picks its kernels, the first time it runs.
    """
    captured: list[tuple[tuple, dict]] = []

    def capture(module: Any, args: tuple, kwargs: dict) -> None:
        if not captured:
            captured.append((args, kwargs))

    hook = pipe.transformer.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        timed_call(pipe, arguments | {"output_type": "latent"}, "cpu")
    finally:
        hook.remove()
    return captured[0]


@contextmanager
def step_clock(pipe: Any, device: str) -> Iterator[list[float]]:
    """The end of every denoising step: every pipeline calls its scheduler's `step` once a step."""
    ends: list[float] = []
    scheduler = pipe.scheduler
    original = scheduler.step

    def timed_step(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        synchronise(device)
        ends.append(time.perf_counter())
        return result

    scheduler.step = timed_step
    try:
        yield ends
    finally:
        del scheduler.step  # the instance attribute goes; the class's method shows again


@contextmanager
def counted_calls(pipe: Any) -> Iterator[list[int]]:
    calls = [0]
    hooks = [model.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
             for _, model in denoisers(pipe)]
    try:
        yield calls
    finally:
        for hook in hooks:
            hook.remove()


def forward_flops(transformer: Any, call: tuple[tuple, dict]) -> float:
    args, kwargs = call
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        transformer(*args, **kwargs)
    return float(counter.get_total_flops())


def finish(rows: list[Row], flops: float, peak: float | None, usd_per_hour: float) -> None:
    """Speedup over stock, FLOP utilisation and GPU cost, from the timings and one forward's FLOPs."""
    stock = rows[0]
    for row in rows:
        row.forward_tflop = flops / 1e12
        row.mfu = flops * row.forwards / (row.seconds_per_step * row.steps) / peak if peak else None
        row.speedup = stock.seconds_per_call / row.seconds_per_call
        row.gpu_usd_per_call = row.seconds_per_call / 3600 * usd_per_hour
        at_default_steps = row.seconds_per_call + (row.default_steps - row.steps) * row.seconds_per_step
        row.gpu_usd_per_clip_at_default_steps = at_default_steps / 3600 * usd_per_hour


def run_case(case: Case, steps: int, dtype: torch.dtype, device: str, deadline: float, dry_run: bool,
             console: Console, report: Report) -> None:
    console.print(f"[bold]{case.name}[/]: building with random weights")
    pipe = case.build(dtype=dtype, device=device)
    pipe.set_progress_bar_config(disable=True)
    with tempfile.TemporaryDirectory(prefix="skuvid-lora-") as folder:
        loras = () if case.variant.distilled else random_loras(pipe, Path(folder))
        measured: list[Row] = []
        stock_flops, stock_seconds = 0.0, 0.0
        for runner in runners(case, pipe, device, loras, dry_run):
            needed = stock_seconds * 1.3 + (COMPILE_ALLOWANCE_S if runner.options.regional_compile else 0.0)
            if measured and time.perf_counter() + needed > deadline:
                report.skipped.append({"model": case.name, "runner": runner.name,
                                       "reason": f"would pass the time budget (about {needed:.0f}s more)"})
                continue
            started = time.perf_counter()
            try:
                row, flops = measure(case, runner, pipe, steps, dtype, device, console)
            except ValueError as error:  # an option this model does not take (a cache its blocks lack)
                report.skipped.append({"model": case.name, "runner": runner.name, "reason": str(error)})
                console.print(f"  {case.name} / {runner.name}: skipped, {error}")
                continue
            if flops is not None:
                stock_flops, stock_seconds = flops, time.perf_counter() - started
            measured.append(row)
    del pipe
    free_memory(device)
    if measured:
        finish(measured, stock_flops, peak_flops(gpu_name(device)), gpu_rate(price_row(gpu_name(device)))[0])
        report.rows += measured


# --------------------------------------------------------------------------- reporting


def print_table(console: Console, rows: list[Row], title: str) -> None:
    table = Table(title=title)
    for column in ("model", "runner", "size", "steps", "calls", "TFLOP/call", "s/step", "s/call", "peak GiB",
                   "speedup", "MFU", "$/call", "$/clip (default steps)"):
        table.add_column(column, justify="left" if column in ("model", "runner", "size") else "right")
    for row in rows:
        table.add_row(
            row.model, row.runner, row.size, str(row.steps), str(row.forwards), f"{row.forward_tflop:.3g}",
            f"{row.seconds_per_step:.3f}", f"{row.seconds_per_call:.2f}",
            "-" if row.peak_gib is None else f"{row.peak_gib:.1f}", f"{row.speedup:.2f}x",
            "-" if row.mfu is None else f"{row.mfu:.0%}", f"{row.gpu_usd_per_call:.5f}",
            f"{row.gpu_usd_per_clip_at_default_steps:.5f} ({row.default_steps})",
        )
    console.print(table)


def verdicts(rows: list[Row]) -> Iterator[str]:
    for row in rows:
        if row.runner in ("ours", "ours + distilled LoRA"):
            mfu = "n/a" if row.mfu is None else f"{row.mfu:.0%} (target {TARGET_MFU:.0%})"
            yield f"{row.model} / {row.runner}: {row.speedup:.2f}x stock (target {TARGET_SPEEDUP}x), MFU {mfu}"
        if row.model == "wan2.1-vace-1.3b" and row.runner == "ours + distilled LoRA":
            cost = row.gpu_usd_per_clip_at_default_steps
            verdict = "meets" if cost < TARGET_BULK_CLIP_USD else "misses"
            yield (f"{row.model} / {row.runner}: ${cost:.4f} per {row.size} bulk clip at {row.default_steps} "
                   f"steps, {verdict} the ${TARGET_BULK_CLIP_USD} target")


def gpu_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def peak_flops(name: str) -> float | None:
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def price_row(name: str) -> str:
    return next((row for key, row in PRICE_ROWS if key in name), "h100")


def gpu_rate(row: str) -> tuple[float, str]:
    """($ per GPU-hour, the table's date) from the price table, read without the project's own loader."""
    table = yaml.safe_load(PRICES.read_text())
    return float(table["gpu_hour_usd"][row]["usd"]), str(table["as_of"])


def versions() -> dict[str, str | None]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="denoising steps timed per call (at least 2)")
    parser.add_argument("--models", default=None,
                        help="comma-separated: wan, wan_a14b, hunyuan, cogvideox, flux (default: wan; all in a dry run)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="skip runners that would end later (default 450 on a GPU, none in a dry run)")
    parser.add_argument("--dry-run", action="store_true", help="tiny models on the CPU: checks the benchmark")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2: seconds per step are timed between steps")
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --dry-run to check the benchmark on the CPU")

    started = time.perf_counter()
    console = Console(width=200)
    device, dtype = ("cpu", torch.float32) if args.dry_run else ("cuda", torch.bfloat16)
    name = gpu_name(device)
    row = price_row(name)
    rate, as_of = gpu_rate(row)
    console.print(f"[bold]skuvid GPU clip benchmark[/] on {name}; prices: {row} at ${rate}/h ({as_of})")
    console.print(f"[yellow]{NOTE}[/]")
    if args.dry_run:
        console.print(f"[yellow]{DRY_RUN_NOTE}[/]")

    all_cases = cases(args.dry_run)
    keys = (args.models or (",".join(all_cases) if args.dry_run else "wan")).split(",")
    unknown = sorted(set(keys) - set(all_cases))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(all_cases)}")
    budget = args.budget_s or (float("inf") if args.dry_run else 450.0)
    report = Report()
    for key in keys:
        run_case(all_cases[key], args.steps, dtype, device, started + budget, args.dry_run, console, report)

    print_table(console, report.rows, f"{name}, {'float32' if args.dry_run else 'bf16'}, {args.steps} steps")
    for skipped in report.skipped:
        console.print(f"skipped {skipped['model']} / {skipped['runner']}: {skipped['reason']}")
    for line in [DRY_RUN_NOTE] if args.dry_run else verdicts(report.rows):
        console.print(line)

    slug = "cpu-dry-run" if args.dry_run else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = args.out or Path(f"bench/results/gpu_clip-{slug}.json")
    document = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "gpu": name,
        "dry_run": args.dry_run,
        "notes": [NOTE, DRY_RUN_NOTE] if args.dry_run else [NOTE],
        "command": "python -m bench.gpu_clip " + " ".join(
            ["--dry-run"] * args.dry_run + [f"--steps {args.steps}"] + [f"--models {','.join(keys)}"]),
        "price_row": row,
        "gpu_hour_usd": rate,
        "prices_as_of": as_of,
        "peak_bf16_tflops": (peak_flops(name) or 0) / 1e12 or None,
        "versions": versions(),
        "wall_s": round(time.perf_counter() - started, 1),
        "rows": [asdict(row) for row in report.rows],
        "skipped": report.skipped,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {out} in {document['wall_s']}s")


def _size(arguments: dict, output: Any) -> str:
    """The generated size: from the output, since HunyuanVideo-1.5 sizes from its image."""
    frames = output.frames if hasattr(output, "frames") else output.images
    height, width = frames.shape[-2:]
    count = f"x{arguments['num_frames']}" if "num_frames" in arguments else ""
    return f"{width}x{height}{count}"


def free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
