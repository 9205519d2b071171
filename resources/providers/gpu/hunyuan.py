"""Clip provider `hunyuan_i2v`: HunyuanVideo-1.5 image-to-video animates the keyframe.

The default is the step-distilled 480p image-to-video checkpoint (8 steps, its guider as published); the
50-step checkpoint is the variant `480p-i2v` (provider `hunyuan_i2v_50step`). The pipeline sizes the video
from the image's aspect and the transformer's target size (640 for 480p), so portrait and square SKUs are
generated as such. Its text encoder is Qwen2.5-VL-7B: with the 8.3B transformer, about 40 GB in bf16.
diffusers 0.42.1 has no LoRA loader for this pipeline, so `lora` is refused for it. Licence: Tencent Hunyuan
Community, which does not cover the EU, the UK and South Korea.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from resources.providers.gpu.diffusion import DiffusionClips
from resources.providers.gpu.models import HUNYUAN_VARIANTS, Variant

__all__ = ["HUNYUAN_VARIANTS", "HunyuanClips"]


class HunyuanClips(DiffusionClips):
    """Clip provider `hunyuan_i2v`: HunyuanVideo-1.5 continues the keyframe into a 5 s video, then looped."""

    variants: ClassVar[dict[str, Variant]] = HUNYUAN_VARIANTS

    variant: Literal["480p-i2v-distilled", "480p-i2v"] = Field(
        default="480p-i2v-distilled", description="480p-i2v-distilled (8 steps) or 480p-i2v (50 steps)."
    )
