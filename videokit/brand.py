"""Brand kits and output sizes: the small vocabulary every media module shares."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Literal

BackgroundStyle = Literal["studio", "gradient", "solid"]
BACKGROUND_STYLES: tuple[str, ...] = ("studio", "gradient", "solid")

# Keyframes are rendered at these sizes; clips are 720p-class at the same aspect.
KEYFRAME_SIZES: dict[str, tuple[int, int]] = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (1080, 1080)}
CLIP_SIZES: dict[str, tuple[int, int]] = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
ASPECTS: tuple[str, ...] = tuple(KEYFRAME_SIZES)

RGB = tuple[int, int, int]
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_hex(value: str) -> RGB:
    match = _HEX.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a colour like '#1F4E5F'")
    digits = match.group(1)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


@dataclass(frozen=True)
class BrandKit:
    """How a brand looks on screen. Colours are RGB tuples; the logo is a path relative to the kit file."""

    name: str
    display_name: str
    background_style: BackgroundStyle
    # studio: centre light -> edge; gradient: top -> bottom; solid: first colour only.
    background_colors: tuple[RGB, RGB]
    accent: RGB
    text: RGB
    logo: str | None = None
    logo_position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-left"

    @classmethod
    def from_dict(cls, name: str, data: dict) -> "BrandKit":
        """Build a kit from its YAML mapping; raises ValueError naming the bad key."""
        try:
            background = data["background"]
            style = background.get("style", "studio")
            if style not in BACKGROUND_STYLES:
                raise ValueError(f"background.style {style!r} is not one of {', '.join(BACKGROUND_STYLES)}")
            colors = background["colors"]
            if not isinstance(colors, list) or len(colors) not in (1, 2):
                raise ValueError("background.colors must list one or two colours")
            first = parse_hex(colors[0])
            second = parse_hex(colors[-1])
            palette = data.get("palette", {})
            return cls(
                name=name,
                display_name=str(data.get("display_name", name)),
                background_style=style,
                background_colors=(first, second),
                accent=parse_hex(palette.get("accent", "#333333")),
                text=parse_hex(palette.get("text", "#111111")),
                logo=data.get("logo"),
                logo_position=data.get("logo_position", "top-left"),
            )
        except KeyError as missing:
            raise ValueError(f"brand kit {name!r}: missing key {missing.args[0]!r}") from None
        except ValueError as bad:
            raise ValueError(f"brand kit {name!r}: {bad}") from None

    def fingerprint(self) -> str:
        """Stable hash of everything that changes how the kit renders (logo bytes are hashed separately)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]
