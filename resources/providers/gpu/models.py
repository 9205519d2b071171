"""The published models the diffusers providers run, and the arguments that make a clip start from a keyframe.

No Dagster and no media code here: bench/gpu_clip.py builds the same calls on a bare GPU machine.

Licences (the model card's): Wan2.1 and Wan2.2 Apache-2.0; CogVideoX-5B-I2V the CogVideoX licence
(commercial use after registration); FLUX.1-schnell Apache-2.0, FLUX.1-Kontext-dev non-commercial;
HunyuanVideo-1.5 the Tencent Hunyuan Community licence (not licensed in the EU, the UK and South Korea).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image


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
    guidance: float | None  # None: the checkpoint's own guider decides (HunyuanVideo-1.5)
    frames: int = 1
    fps: int = 0
    fixed_size: bool = False  # generates only at `size` (learned positional embeddings)
    fp32_vae: str | None = None  # VAE class kept in float32 whatever the pipeline's dtype
    # Step-distilled by its authors: published few-step weights, guidance off.
    distilled: bool = False
    licence: str = ""


FLUX_VARIANTS = {
    # Timestep-distilled: 4 steps, no guidance.
    "schnell": Variant(
        provider="flux", model="black-forest-labs/FLUX.1-schnell", pipeline="FluxPipeline", size=None,
        steps=4, guidance=0.0, distilled=True, licence="Apache-2.0",
    ),
    # Restyles the brand background instead of starting from noise.
    "kontext": Variant(
        provider="flux_kontext", model="black-forest-labs/FLUX.1-Kontext-dev", pipeline="FluxKontextPipeline",
        size=None, steps=28, guidance=2.5, licence="FLUX.1 [dev] non-commercial",
    ),
}

WAN_VARIANTS = {
    "vace-1.3b": Variant(
        provider="wan", model="Wan-AI/Wan2.1-VACE-1.3B-diffusers", pipeline="WanVACEPipeline",
        size=(832, 480), frames=81, fps=16, steps=30, guidance=5.0, fp32_vae="AutoencoderKLWan",
        licence="Apache-2.0",
    ),
    "ti2v-5b": Variant(
        provider="wan_ti2v", model="Wan-AI/Wan2.2-TI2V-5B-Diffusers", pipeline="WanImageToVideoPipeline",
        size=(1280, 704), frames=121, fps=24, steps=50, guidance=5.0, fp32_vae="AutoencoderKLWan",
        licence="Apache-2.0",
    ),
    "i2v-14b-480p": Variant(
        provider="wan_i2v_14b_480p", model="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        pipeline="WanImageToVideoPipeline", size=(832, 480), frames=81, fps=16, steps=40, guidance=5.0,
        fp32_vae="AutoencoderKLWan", licence="Apache-2.0",
    ),
    "i2v-14b-720p": Variant(
        provider="wan_i2v_14b_720p", model="Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
        pipeline="WanImageToVideoPipeline", size=(1280, 720), frames=81, fps=16, steps=40, guidance=5.0,
        fp32_vae="AutoencoderKLWan", licence="Apache-2.0",
    ),
    # Two 14B experts: `transformer` denoises the high-noise steps, `transformer_2` the rest (boundary 0.9).
    # Wan2.2's own I2V settings: 40 steps, guidance 3.5 for both experts.
    "i2v-a14b": Variant(
        provider="wan_i2v_a14b", model="Wan-AI/Wan2.2-I2V-A14B-Diffusers", pipeline="WanImageToVideoPipeline",
        size=(832, 480), frames=81, fps=16, steps=40, guidance=3.5, fp32_vae="AutoencoderKLWan",
        licence="Apache-2.0",
    ),
}

COGVIDEOX_VARIANTS = {
    "5b-i2v": Variant(
        provider="cogvideox", model="THUDM/CogVideoX-5b-I2V", pipeline="CogVideoXImageToVideoPipeline",
        size=(720, 480), frames=49, fps=8, steps=50, guidance=6.0, fixed_size=True,
        licence="CogVideoX licence (commercial use after registration)",
    ),
}

HUNYUAN_LICENCE = "Tencent Hunyuan Community (not licensed in the EU, UK, South Korea)"
HUNYUAN_VARIANTS = {
    # The step-distilled 480p image-to-video checkpoint: 8 steps (its authors recommend 8 or 12), guidance as
    # its own guider is configured.
    "480p-i2v-distilled": Variant(
        provider="hunyuan_i2v", model="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v_step_distilled",
        pipeline="HunyuanVideo15ImageToVideoPipeline", size=None, frames=121, fps=24, steps=8, guidance=None,
        distilled=True, licence=HUNYUAN_LICENCE,
    ),
    "480p-i2v": Variant(
        provider="hunyuan_i2v_50step", model="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v",
        pipeline="HunyuanVideo15ImageToVideoPipeline", size=None, frames=121, fps=24, steps=50, guidance=6.0,
        licence=HUNYUAN_LICENCE,
    ),
}

# VACE regenerates where the mask is white and keeps what the mask leaves black; frames it regenerates are
# given as mid grey, the value VACE was trained with for "nothing here yet".
VACE_UNKNOWN_GREY = (128, 128, 128)


def generation_multiple(pipe: Any) -> int:
    """Width and height are whole latent patches: the VAE's downscale times the transformer's patch."""
    patch = pipe.transformer.config.patch_size
    return pipe.vae_scale_factor_spatial * (patch[-1] if isinstance(patch, (tuple, list)) else patch)


def image_sized_generation(pipe: Any, requested: tuple[int, int]) -> tuple[int, int]:
    """HunyuanVideo-1.5 picks its size from the image's aspect and the transformer's target size."""
    height, width = pipe.video_processor.calculate_default_height_width(
        height=requested[1], width=requested[0], target_size=pipe.target_size
    )
    return width, height


def conditioning(variant: Variant, pipe: Any, keyframe: Image.Image, frames: int,
                 guidance: float | None) -> dict:
    """Pipeline arguments that make the video start from `keyframe` (already at the generated size)."""
    if variant.pipeline == "WanVACEPipeline":
        unknown = Image.new("RGB", keyframe.size, VACE_UNKNOWN_GREY)
        keep, regenerate = Image.new("L", keyframe.size, 0), Image.new("L", keyframe.size, 255)
        return {"video": [keyframe] + [unknown] * (frames - 1), "mask": [keep] + [regenerate] * (frames - 1)}
    if variant.pipeline == "CogVideoXImageToVideoPipeline":
        # Guidance that grows over the steps, as CogVideoX's authors sample; the text length is the one the
        # transformer's positional embeddings were trained at.
        return {"image": keyframe, "use_dynamic_cfg": True,
                "max_sequence_length": pipe.transformer.config.max_text_seq_length}
    if variant.pipeline == "HunyuanVideo15ImageToVideoPipeline":
        if guidance is not None:
            # Its guidance lives in the pipeline's guider, not in a call argument; 1 or less turns it off.
            pipe.guider = pipe.guider.new(guidance_scale=guidance, enabled=guidance > 1.0)
        return {"image": keyframe}
    if getattr(pipe, "transformer_2", None) is not None:
        # Wan2.2-A14B: the low-noise expert has its own guidance; a distilled LoRA turns both off.
        return {"image": keyframe, "guidance_scale_2": guidance}
    return {"image": keyframe}
