"""The CPU tier: keyframes composed from the packshot, clips animated from the keyframe's layers.

Needs no GPU and no key, so it is always available and is the last link of every routing chain.
"""

from __future__ import annotations

from typing import ClassVar

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from resources.pricing import PricesResource
from resources.providers.base import (
    Availability,
    ClipRequest,
    ClipResult,
    KeyframeRequest,
    KeyframeResult,
    Log,
    measure_usage,
)
from videokit.media.encode import EncodeSettings
from videokit.media.images import open_image
from videokit.sku_video.compose import TARGET_SAFE_SHARE, compose_keyframe
from videokit.sku_video.motion import (
    CATEGORY_STYLES,
    MOTION_STYLES,
    MotionSpec,
    MotionStyle,
    motion_style_for,
    render_motion_clip,
)


class ComposeKeyframes(ConfigurableResource):
    """Keyframe provider `compose`: the product cut out of its packshot, placed on the brand background."""

    name: ClassVar[str] = "compose"
    model: ClassVar[str] = "compose-v1"
    pool: ClassVar[str | None] = None

    prices: PricesResource
    margin: float = Field(default=0.08, description="Safe margin as a share of the frame's short side.")
    product_scale: float = Field(default=0.72, description="Largest product height, share of the frame height.")
    target_share: float = Field(
        default=TARGET_SAFE_SHARE, description="Product box as a share of the safe area, before the limits."
    )

    def availability(self) -> Availability:
        return Availability.ok()

    def render_keyframe(self, request: KeyframeRequest, log: Log) -> KeyframeResult:
        with measure_usage() as usage:
            logo = open_image(request.logo) if request.logo else None
            layers = compose_keyframe(
                open_image(request.packshot),
                request.brand,
                request.size,
                logo=logo,
                margin=self.margin,
                product_scale=self.product_scale,
                target_share=self.target_share,
            )
        log(f"compose: {request.sku_id} keyframe {request.size[0]}x{request.size[1]} in {usage.wall_s:.2f}s")
        cost = self.prices.table.cost(provider=self.name, model=self.model, cpu_s=usage.cpu_s, wall_s=usage.wall_s)
        return KeyframeResult(layers=layers, cost=cost)


class MotionClips(ConfigurableResource):
    """Clip provider `motion`: a seamless camera/parallax loop rendered from the keyframe's layers."""

    name: ClassVar[str] = "motion"
    model: ClassVar[str] = "motion-v1"
    pool: ClassVar[str | None] = None

    prices: PricesResource
    push: float = Field(default=0.035, description="Maximum camera push-in (0.035 = 3.5% zoom).")
    float_px: float = Field(default=10.0, description="Product float amplitude in pixels at 720p.")
    sweep: bool = Field(default=True, description="Pass a soft light sweep across the product.")
    crf: int = Field(default=21, description="x264 constant rate factor.")
    preset: str = Field(default="veryfast", description="x264 preset.")
    category_styles: dict[str, str] = Field(
        default_factory=lambda: dict(CATEGORY_STYLES),
        description="Motion style (float or turn) per catalog category, for SKUs whose prompt names none; "
        "categories not listed float.",
    )

    @field_validator("category_styles")
    @classmethod
    def _known_styles(cls, table: dict[str, str]) -> dict[str, str]:
        for category, style in table.items():
            if style not in MOTION_STYLES:
                raise ValueError(f"category_styles: {category}: {style!r} is not one of {', '.join(MOTION_STYLES)}")
        return table

    def availability(self) -> Availability:
        return Availability.ok()

    def style_for(self, request: ClipRequest) -> MotionStyle:
        return motion_style_for(request.category, request.prompt, self.category_styles)

    def take_settings(self, request: ClipRequest) -> dict:
        """What besides provider, seed, size and timing makes a take: a changed style is a new take."""
        return {"motion_style": self.style_for(request)}

    def render_clip(self, request: ClipRequest, log: Log) -> ClipResult:
        spec = MotionSpec(
            duration_s=request.duration_s,
            fps=request.fps,
            push=self.push,
            float_px=self.float_px,
            sweep=self.sweep,
            seed=request.seed,
            style=self.style_for(request),
        )
        with measure_usage() as usage:
            clip = render_motion_clip(request.keyframe, request.size, spec, EncodeSettings(crf=self.crf, preset=self.preset))
        log(f"motion: {request.sku_id} {clip.n_frames} frames at {request.size[0]}x{request.size[1]} in {usage.wall_s:.2f}s")
        cost = self.prices.table.cost(provider=self.name, model=self.model, cpu_s=usage.cpu_s, wall_s=usage.wall_s)
        return ClipResult(clip=clip, cost=cost)
