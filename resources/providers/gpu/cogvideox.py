"""Clip provider `cogvideox`: CogVideoX-5B-I2V animates the keyframe.

The model is fixed at 720x480, 49 frames, 8 fps: its learned positional embeddings know no other size, so
portrait and square SKUs are cropped from the landscape video. Its transformer declares no repeated blocks,
so regional compile does not apply. Decoding 49 frames at once needs more memory than denoising: the VAE
decodes in tiles by default.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from resources.providers.gpu.diffusion import DiffusionClips
from resources.providers.gpu.models import COGVIDEOX_VARIANTS, Variant

__all__ = ["COGVIDEOX_VARIANTS", "CogVideoXClips"]


class CogVideoXClips(DiffusionClips):
    """Clip provider `cogvideox`: CogVideoX continues the keyframe into a 6 s video, which is then looped."""

    variants: ClassVar[dict[str, Variant]] = COGVIDEOX_VARIANTS

    variant: Literal["5b-i2v"] = Field(default="5b-i2v", description="CogVideoX model.")
    vae_tiling: bool = Field(default=True, description="Decode in tiles: less memory, slightly slower.")
