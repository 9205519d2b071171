"""GPU benchmark: the stock diffusers call against our runner, full-size models with random weights.

Run from the repository root:  python -m bench.gpu_clip [--steps 4] [--models wan,cogvideox,flux] [--dry-run]

Each model is built from its published configuration with random weights (bf16; Wan's VAE in fp32) and
called with the arguments its provider makes for a 1280x720 SKU: Wan2.1-VACE-1.3B at 480p and 81 frames,
CogVideoX-5B-I2V at 720x480 and 49 frames, FLUX.1-schnell at 1280x720. In the same run and with the same
steps, it is timed three ways, each on a freshly built pipeline:

- stock: the plain pipeline call (PyTorch's default attention, no compile);
- ours: the providers' `optimise` (attention backend, fused q/k/v projections, regional torch.compile);
- ours, cache hook instead of compile: the first-block cache replaces compile (the two do not combine); it
  skips transformer blocks when a step changes little, and so changes the pictures slightly.

It prints seconds per denoising step and per call, peak GPU memory, the speedup over stock, the model FLOP
utilisation of the denoising loop (FLOPs of one transformer forward counted by torch.utils.flop_counter at
the real shapes, times the forwards the run made, over the dense bf16 peak of the GPU) and the GPU cost
per clip at the price table's rate, at the benchmark's steps and at the provider's default steps. CUDA
graphs are not used: at these sizes a step is a few long kernels, not launch-bound, and the cache hook and
the scheduler run Python between steps.

Random weights give the real speed, not real pictures. --dry-run runs the same code on the CPU with the
tiny test architectures, which checks the benchmark; its figures mean nothing, and real ones need a GPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from bench.cpu_tier import KIT, product_packshot
from resources.pricing import PricesResource
from resources.providers.gpu.cogvideox import CogVideoXClips
from resources.providers.gpu.diffusion import DiffusionProvider, Optimisations, optimise, timed_call
from resources.providers.gpu.flux import FluxKeyframes
from resources.providers.gpu.wan import WanClips
from tests.resources.providers.gpu import tiny_pipelines
from tests.resources.providers.gpu.tiny_pipelines import (
    CogVideoXArchitecture,
    FluxArchitecture,
    WanArchitecture,
)
from videokit.sku_video.compose import compose_keyframe

REQUEST_SIZE = (1280, 720)
TARGET_SPEEDUP = 1.5
TARGET_MFU = 0.40
TARGET_WAN_CLIP_USD = 0.01
PACKAGES = ("torch", "diffusers", "transformers", "accelerate")
NOTE = "Random weights: these are real speeds, not real pictures."
DRY_RUN_NOTE = "Dry run: tiny models on the CPU check the code and the figures mean nothing; they need a GPU."
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
WAN_VACE_1_3B = WanArchitecture(
    transformer={
        "patch_size": (1, 2, 2), "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
        "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024,
        "vace_layers": list(range(0, 30, 2)), "vace_in_channels": 96,
    },
    vae={},  # the class defaults are the Wan2.1 VAE's
    text_encoder=T5_XXL | {"vocab_size": 256384},  # UMT5-XXL
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
    name: str
    provider: DiffusionProvider  # makes the pipeline arguments exactly as for a SKU
    build: Callable[..., Any]  # (dtype=, device=) -> a pipeline with random weights
    # CogVideoX's transformer declares no repeated blocks, so regional compile does not apply to it.
    regional_compile: bool = True


@dataclass
class Row:
    model: str
    runner: str
    size: str
    steps: int
    forwards: int  # transformer calls in the timed run (2 a step with classifier-free guidance)
    seconds_per_step: float
    seconds_per_call: float
    peak_gib: float | None
    forward_tflop: float = 0.0
    mfu: float | None = None
    speedup: float = 1.0
    default_steps: int = 0
    gpu_usd_per_call: float = 0.0
    gpu_usd_per_clip_at_default_steps: float = 0.0


def cases(dry_run: bool, device: str, steps: int) -> dict[str, Case]:
    common = {"prices": PricesResource(), "device": device, "steps": steps}
    if dry_run:
        tiny = common | {"width": 64, "height": 48}
        tiny_cogvideox = tiny_pipelines.tiny_cogvideox(64, 48, 9)
        return {
            "wan": Case("wan2.1-vace-1.3b (tiny)", WanClips(**tiny, frames=9, fps=4),
                        tiny_pipelines.build_wan_vace),
            "cogvideox": Case("cogvideox-5b-i2v (tiny)", CogVideoXClips(**tiny, frames=9, fps=4),
                              partial(tiny_pipelines.build_cogvideox_i2v, tiny_cogvideox),
                              regional_compile=False),
            "flux": Case("flux.1-schnell (tiny)", FluxKeyframes(**tiny), tiny_pipelines.build_flux),
        }
    return {
        "wan": Case("wan2.1-vace-1.3b", WanClips(**common),
                    partial(tiny_pipelines.build_wan_vace, WAN_VACE_1_3B)),
        "cogvideox": Case("cogvideox-5b-i2v", CogVideoXClips(**common),
                          partial(tiny_pipelines.build_cogvideox_i2v, COGVIDEOX_5B_I2V),
                          regional_compile=False),
        "flux": Case("flux.1-schnell", FluxKeyframes(**common),
                     partial(tiny_pipelines.build_flux, FLUX_SCHNELL)),
    }


def runners(case: Case, device: str) -> dict[str, Optimisations]:
    # cuDNN's fused attention is the fastest attention PyTorch ships for Hopper; elsewhere its default is.
    hopper = device.startswith("cuda") and torch.cuda.get_device_capability(device) >= (9, 0)
    attention = "_native_cudnn" if hopper else "native"
    return {
        "stock": Optimisations(),
        "ours": Optimisations(attention_backend=attention, fuse_projections=True,
                              regional_compile=case.regional_compile),
        "ours, cache hook instead of compile": Optimisations(
            attention_backend=attention, fuse_projections=True, cache_hook="first_block_cache"
        ),
    }


def case_arguments(case: Case, pipe: Any) -> dict:
    if isinstance(case.provider, FluxKeyframes):
        return case.provider.pipeline_arguments(pipe, KIT, "drinkware", "", REQUEST_SIZE, seed=0)
    keyframe = compose_keyframe(product_packshot(), KIT, REQUEST_SIZE).flatten()
    return case.provider.pipeline_arguments(pipe, keyframe, REQUEST_SIZE, "", seed=0)


def measure(case: Case, runner: str, options: Optimisations, dtype: torch.dtype, device: str,
            console: Console) -> tuple[Row, float | None]:
    """A fresh pipeline with `options`, warmed up, then one timed call; for stock also one forward's FLOPs."""
    pipe = case.build(dtype=dtype, device=device)
    pipe.set_progress_bar_config(disable=True)
    optimise(pipe, options)
    arguments = case_arguments(case, pipe)

    started = time.perf_counter()
    first_forward = warm_up(pipe, arguments)
    console.print(f"  {case.name} / {runner}: warm-up (and compile) {time.perf_counter() - started:.1f}s")
    flops = forward_flops(pipe.transformer, first_forward) if runner == "stock" else None

    step_ends: list[float] = []

    def step_clock(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
        _synchronise(device)
        step_ends.append(time.perf_counter())
        return tensors

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    with counted_calls(pipe.transformer) as forwards:
        generation = timed_call(pipe, arguments | {"callback_on_step_end": step_clock}, device)
    row = Row(
        model=case.name,
        runner=runner,
        size=_size(arguments),
        steps=arguments["num_inference_steps"],
        forwards=forwards[0],
        seconds_per_step=statistics.median(later - earlier for earlier, later in pairwise(step_ends)),
        seconds_per_call=generation.seconds,
        peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else None,
    )
    del pipe, generation, first_forward
    _free_memory(device)
    return row, flops


def warm_up(pipe: Any, arguments: dict) -> tuple[tuple, dict]:
    """The same call to latents; returns the transformer's first inputs.

    All the steps, not a few: later steps take other paths (a cache hook starts skipping blocks), and each
    path compiles, or picks its kernels, the first time it runs.
    """
    captured: list[tuple[tuple, dict]] = []

    def capture(module: Any, args: tuple, kwargs: dict) -> None:
        if not captured:
            captured.append((args, kwargs))

    hook = pipe.transformer.register_forward_pre_hook(capture, with_kwargs=True)
    pipe(**arguments | {"output_type": "latent"})
    hook.remove()
    return captured[0]


@contextmanager
def counted_calls(module: torch.nn.Module) -> Iterator[list[int]]:
    calls = [0]
    hook = module.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        hook.remove()


def forward_flops(transformer: Any, call: tuple[tuple, dict]) -> float:
    args, kwargs = call
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        transformer(*args, **kwargs)
    return float(counter.get_total_flops())


def finish(rows: list[Row], flops: float, peak: float | None, usd_per_hour: float,
           default_steps: int) -> None:
    """Speedup over stock, FLOP utilisation and GPU cost, from the timings and one forward's FLOPs."""
    stock = rows[0]
    for row in rows:
        row.forward_tflop = flops / 1e12
        row.mfu = flops * row.forwards / (row.seconds_per_step * row.steps) / peak if peak else None
        row.speedup = stock.seconds_per_call / row.seconds_per_call
        row.default_steps = default_steps
        row.gpu_usd_per_call = row.seconds_per_call / 3600 * usd_per_hour
        at_default_steps = row.seconds_per_call + (default_steps - row.steps) * row.seconds_per_step
        row.gpu_usd_per_clip_at_default_steps = at_default_steps / 3600 * usd_per_hour


def print_table(console: Console, rows: list[Row], title: str) -> None:
    table = Table(title=title)
    for column in ("model", "runner", "size", "steps", "forwards", "TFLOP/forward", "s/step", "s/call",
                   "peak GiB", "speedup", "MFU", "$/call", "$/clip (default steps)"):
        table.add_column(column, justify="left" if column in ("model", "runner", "size") else "right")
    for row in rows:
        table.add_row(
            row.model, row.runner, row.size, str(row.steps), str(row.forwards), f"{row.forward_tflop:.3g}",
            f"{row.seconds_per_step:.3f}", f"{row.seconds_per_call:.2f}",
            "—" if row.peak_gib is None else f"{row.peak_gib:.1f}", f"{row.speedup:.2f}x",
            "—" if row.mfu is None else f"{row.mfu:.0%}", f"{row.gpu_usd_per_call:.5f}",
            f"{row.gpu_usd_per_clip_at_default_steps:.5f} ({row.default_steps})",
        )
    console.print(table)


def verdicts(rows: list[Row]) -> Iterator[str]:
    for row in rows:
        if row.runner == "ours":
            mfu = "n/a" if row.mfu is None else f"{row.mfu:.0%} (target {TARGET_MFU:.0%} on an H100)"
            yield f"{row.model}: ours {row.speedup:.2f}x stock (target {TARGET_SPEEDUP}x), MFU {mfu}"
        if row.model.startswith("wan") and row.runner != "stock":
            cost = row.gpu_usd_per_clip_at_default_steps
            verdict = "meets" if cost < TARGET_WAN_CLIP_USD else "misses"
            yield (f"{row.model} / {row.runner}: ${cost:.4f} per {row.size} clip at {row.default_steps} "
                   f"steps, {verdict} the ${TARGET_WAN_CLIP_USD} target")


def gpu_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def peak_flops(name: str) -> float | None:
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def price_row(name: str) -> str:
    return next((row for key, row in PRICE_ROWS if key in name), "h100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="denoising steps timed per call (at least 2)")
    parser.add_argument("--models", default="wan,cogvideox,flux")
    parser.add_argument("--dry-run", action="store_true", help="tiny models on the CPU: checks the benchmark")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2: seconds per step are timed between steps")
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --dry-run to check the benchmark on the CPU")

    console = Console(width=200)
    device, dtype = ("cpu", torch.float32) if args.dry_run else ("cuda", torch.bfloat16)
    name = gpu_name(device)
    prices = PricesResource().table
    gpu_type = price_row(name)
    console.print(f"[bold]skuvid GPU clip benchmark[/] on {name}; prices: {gpu_type} at "
                  f"${prices.gpu_rate(gpu_type)}/h ({prices.as_of})")
    console.print(f"[yellow]{NOTE}[/]")
    if args.dry_run:
        console.print(f"[yellow]{DRY_RUN_NOTE}[/]")

    rows: list[Row] = []
    all_cases = cases(args.dry_run, device, args.steps)
    for key in args.models.split(","):
        case = all_cases[key]
        measured = [measure(case, runner, options, dtype, device, console)
                    for runner, options in runners(case, device).items()]
        case_rows = [row for row, _ in measured]
        stock_flops = measured[0][1]
        default_steps = case.provider.native.steps
        finish(case_rows, stock_flops, peak_flops(name), prices.gpu_rate(gpu_type), default_steps)
        rows += case_rows

    print_table(console, rows, f"{name}, {'float32' if args.dry_run else 'bf16'}, {args.steps} steps")
    for line in [DRY_RUN_NOTE] if args.dry_run else verdicts(rows):
        console.print(line)

    slug = "dry-run" if args.dry_run else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = args.out or Path(f"bench/results/gpu_clip-{slug}.json")
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "gpu": name,
        "dry_run": args.dry_run,
        "notes": [NOTE, DRY_RUN_NOTE] if args.dry_run else [NOTE],
        "price_row": gpu_type,
        "gpu_hour_usd": prices.gpu_rate(gpu_type),
        "peak_bf16_tflops": (peak_flops(name) or 0) / 1e12 or None,
        "versions": {package: metadata.version(package) for package in PACKAGES},
        "rows": [asdict(row) for row in rows],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {out}")


def _size(arguments: dict) -> str:
    frames = f"x{arguments['num_frames']}" if "num_frames" in arguments else ""
    return f"{arguments['width']}x{arguments['height']}{frames}"


def _free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
