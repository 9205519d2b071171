"""Clip provider `cogvideox`: CogVideoX-5B-I2V animates the keyframe.

The model is fixed at 720x480, 49 frames, 8 fps: its learned positional embeddings know no other size, so
portrait and square SKUs are cropped from the landscape video. Its transformer declares no repeated blocks,
so regional compile does not apply. Decoding 49 frames at once needs more memory than denoising: the VAE
decodes in tiles by default.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import Field

from resources.providers.gpu.diffusion import DiffusionClips, Variant

COGVIDEOX_VARIANTS = {
    "5b-i2v": Variant(
        provider="cogvideox", model="THUDM/CogVideoX-5b-I2V", pipeline="CogVideoXImageToVideoPipeline",
        size=(720, 480), frames=49, fps=8, steps=50, guidance=6.0, fixed_size=True,
    ),
}


class CogVideoXClips(DiffusionClips):
    """Clip provider `cogvideox`: CogVideoX continues the keyframe into a 6 s video, which is then looped."""

    variants: ClassVar[dict[str, Variant]] = COGVIDEOX_VARIANTS

    variant: Literal["5b-i2v"] = Field(default="5b-i2v", description="CogVideoX model.")
    vae_tiling: bool = Field(default=True, description="Decode in tiles: less memory, slightly slower.")

    def conditioning(self, pipe: Any, keyframe: Image.Image, frames: int) -> dict:
        # Guidance that grows over the steps, as CogVideoX's authors sample; the text length is the one the
        # transformer's positional embeddings were trained at.
        return {
            "image": keyframe,
            "use_dynamic_cfg": True,
            "max_sequence_length": pipe.transformer.config.max_text_seq_length,
        }
