"""Clip provider `wan`: Wan video models animate the keyframe.

There is no Wan2.1-1.3B image-to-video model; the image-conditioned choices are VACE-1.3B (the keyframe as
the first frame of a masked video, 480p), Wan2.2-TI2V-5B (1280x704, 24 fps) and Wan2.1-I2V-14B (480p or
720p). Frame counts are 4k+1; the VAE stays in float32, as Wan's authors run it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import Field

from resources.providers.gpu.diffusion import DiffusionClips, Variant

WAN_VARIANTS = {
    "vace-1.3b": Variant(
        provider="wan", model="Wan-AI/Wan2.1-VACE-1.3B-diffusers", pipeline="WanVACEPipeline",
        size=(832, 480), frames=81, fps=16, steps=30, guidance=5.0, fp32_vae="AutoencoderKLWan",
    ),
    "ti2v-5b": Variant(
        provider="wan_ti2v", model="Wan-AI/Wan2.2-TI2V-5B-Diffusers", pipeline="WanImageToVideoPipeline",
        size=(1280, 704), frames=121, fps=24, steps=50, guidance=5.0, fp32_vae="AutoencoderKLWan",
    ),
    "i2v-14b-480p": Variant(
        provider="wan_i2v_14b_480p", model="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        pipeline="WanImageToVideoPipeline", size=(832, 480), frames=81, fps=16, steps=40, guidance=5.0,
        fp32_vae="AutoencoderKLWan",
    ),
    "i2v-14b-720p": Variant(
        provider="wan_i2v_14b_720p", model="Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
        pipeline="WanImageToVideoPipeline", size=(1280, 720), frames=81, fps=16, steps=40, guidance=5.0,
        fp32_vae="AutoencoderKLWan",
    ),
}
# VACE regenerates where the mask is white and keeps what the mask leaves black; frames it regenerates are
# given as mid grey, the value VACE was trained with for "nothing here yet".
VACE_UNKNOWN_GREY = (128, 128, 128)


class WanClips(DiffusionClips):
    """Clip provider `wan`: a Wan model continues the keyframe into a short video, which is then looped."""

    variants: ClassVar[dict[str, Variant]] = WAN_VARIANTS

    variant: Literal["vace-1.3b", "ti2v-5b", "i2v-14b-480p", "i2v-14b-720p"] = Field(
        default="vace-1.3b", description="Wan model: vace-1.3b, ti2v-5b, i2v-14b-480p or i2v-14b-720p."
    )

    def conditioning(self, pipe: Any, keyframe: Image.Image, frames: int) -> dict:
        if self.native.pipeline != "WanVACEPipeline":
            return {"image": keyframe}
        unknown = Image.new("RGB", keyframe.size, VACE_UNKNOWN_GREY)
        keep, regenerate = Image.new("L", keyframe.size, 0), Image.new("L", keyframe.size, 255)
        return {"video": [keyframe] + [unknown] * (frames - 1), "mask": [keep] + [regenerate] * (frames - 1)}
