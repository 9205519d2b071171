"""Keyframe provider `flux`: FLUX.1 paints the scene, the real product is composited into it.

The model only ever sees a prompt built from the brand kit and the category (Kontext also sees the brand
background it restyles), never the product, so it cannot redraw the product: the product's cut-out, shadow
and logo are placed exactly as the CPU `compose` provider places them, over the generated scene.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import Field

from resources.providers.base import KeyframeRequest, KeyframeResult, Log, measure_usage
from resources.providers.gpu.diffusion import DiffusionProvider, as_uint8_frames, generate, shared_pipeline
from resources.providers.gpu.models import FLUX_VARIANTS, Variant
from resources.providers.gpu.runner import generation_size
from videokit.media.brand import RGB, BrandKit
from videokit.media.images import open_image
from videokit.sku_video.compose import TARGET_SAFE_SHARE, compose_keyframe, render_background
from videokit.sku_video.loop import fit_to_size

BACKDROPS = {
    "studio": "a seamless studio sweep lit by a soft overhead light",
    "gradient": "a smooth vertical colour gradient backdrop",
    "solid": "a flat, evenly lit single-colour backdrop",
}


def scene_prompt(brand: BrandKit, category: str, hint: str) -> str:
    """The empty set the product will stand in, in the brand's colours and style."""
    first, second = (_hex(color) for color in brand.background_colors)
    parts = [
        f"Empty product photography set for {category}: {BACKDROPS[brand.background_style]}",
        f"in {first} fading to {second}, with touches of {_hex(brand.accent)}",
        hint,
        "clean floor in the centre, shallow depth of field, no product, no text, no logo, no people",
    ]
    return ", ".join(part for part in parts if part)


def _hex(color: RGB) -> str:
    return "#{:02X}{:02X}{:02X}".format(*color)


class FluxKeyframes(DiffusionProvider):
    """Keyframe provider `flux`: a generated scene in the brand's colours behind the real product cut-out."""

    variants: ClassVar[dict[str, Variant]] = FLUX_VARIANTS

    variant: Literal["schnell", "kontext"] = Field(default="schnell", description="schnell or kontext")
    max_sequence_length: int = Field(default=256, description="T5 prompt tokens; schnell allows 256 at most.")
    margin: float = Field(default=0.08, description="Safe margin as a share of the frame's short side.")
    product_scale: float = Field(default=0.72, description="Largest product height, share of the frame height.")
    target_share: float = Field(
        default=TARGET_SAFE_SHARE, description="Product box as a share of the safe area, before the limits."
    )

    def render_keyframe(self, request: KeyframeRequest, log: Log) -> KeyframeResult:
        spec = self.pipeline_spec()
        pipe = shared_pipeline(spec, log)
        with measure_usage() as usage:
            arguments = self.pipeline_arguments(
                pipe, request.brand, request.category, request.prompt, request.size, request.seed
            )
            generation = generate(pipe, arguments, spec, self.name, log)
            scene = fit_to_size(as_uint8_frames(generation.output.images)[0], request.size)
            staged = compose_keyframe(
                open_image(request.packshot),
                request.brand,
                request.size,
                logo=open_image(request.logo) if request.logo else None,
                margin=self.margin,
                product_scale=self.product_scale,
                target_share=self.target_share,
            )
            layers = replace(staged, background=scene)
        log(
            f"{self.name}: {request.sku_id} scene {arguments['width']}x{arguments['height']} in "
            f"{generation.seconds:.1f}s, product composited"
        )
        return KeyframeResult(layers=layers, cost=self.priced(generation, usage, self.runner_record(spec, arguments)))

    def pipeline_arguments(
        self, pipe: Any, brand: BrandKit, category: str, hint: str, requested: tuple[int, int], seed: int
    ) -> dict:
        """Everything one pipeline call takes to paint the brand's empty set for a keyframe of that size."""
        width, height = generation_size(self.native_size(requested), requested, pipe.vae_scale_factor * 2)
        arguments = {
            "prompt": scene_prompt(brand, category, hint),
            "width": width,
            "height": height,
            "max_sequence_length": self.max_sequence_length,
            **self.denoising(seed),
        }
        if self.variant == "kontext":
            backdrop = Image.fromarray(render_background(brand, (width, height)))
            arguments |= {"image": backdrop, "max_area": width * height, "_auto_resize": False}
        return arguments
