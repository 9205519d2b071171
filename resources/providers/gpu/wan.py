"""Clip provider `wan`: Wan video models animate the keyframe.

There is no Wan2.1-1.3B image-to-video model; the image-conditioned choices are VACE-1.3B (the keyframe as
the first frame of a masked video, 480p), Wan2.2-TI2V-5B (1280x704, 24 fps), Wan2.1-I2V-14B (480p or 720p)
and Wan2.2-I2V-A14B (two 14B experts, 480p or 720p; lightx2v publishes 4-step LoRAs for each expert, set
as `lora` and `lora_2`). Frame counts are 4k+1; the VAE stays in float32, as Wan's authors run it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from resources.providers.gpu.diffusion import DiffusionClips
from resources.providers.gpu.models import VACE_UNKNOWN_GREY, WAN_VARIANTS, Variant

__all__ = ["VACE_UNKNOWN_GREY", "WAN_VARIANTS", "WanClips"]


class WanClips(DiffusionClips):
    """Clip provider `wan`: a Wan model continues the keyframe into a short video, which is then looped."""

    variants: ClassVar[dict[str, Variant]] = WAN_VARIANTS

    variant: Literal["vace-1.3b", "ti2v-5b", "i2v-14b-480p", "i2v-14b-720p", "i2v-a14b"] = Field(
        default="vace-1.3b",
        description="Wan model: vace-1.3b, ti2v-5b, i2v-14b-480p, i2v-14b-720p or i2v-a14b (Wan2.2, two experts).",
    )
