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


BRAND_KEYS: tuple[str, ...] = ("display_name", "background", "palette", "logo", "logo_position")
LOGO_POSITIONS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
MAX_DISPLAY_NAME = 200


class BrandKitError(ValueError):
    """A brand kit entry that cannot be used; `path` is the key inside the kit that is wrong."""

    def __init__(self, path: tuple[str, ...], message: str):
        self.path = path
        super().__init__(message)


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
    def from_dict(cls, name: str, data: dict) -> BrandKit:
        """Build a kit from its YAML mapping; raises BrandKitError naming the kit and the bad key."""

        def fail(path: tuple[str, ...], message: str) -> BrandKitError:
            return BrandKitError(path, f"brand kit {name!r}: {'.'.join(path) + ': ' if path else ''}{message}")

        def mapping(value: object, path: tuple[str, ...], keys: tuple[str, ...]) -> dict:
            if not isinstance(value, dict):
                raise fail(path, f"expected a mapping with {', '.join(keys)}")
            for key in value:
                if key not in keys:
                    raise fail((*path, str(key)), f"unknown key (expected {', '.join(keys)})")
            return value

        def colour(value: object, path: tuple[str, ...]) -> RGB:
            if not isinstance(value, str):
                raise fail(path, "expected a colour like '#1F4E5F'")
            try:
                return parse_hex(value)
            except ValueError as bad:
                raise fail(path, str(bad)) from None

        data = mapping(data, (), BRAND_KEYS)
        if "background" not in data:
            raise fail(("background",), "missing key")
        background = mapping(data["background"], ("background",), ("style", "colors"))
        style = background.get("style", "studio")
        if style not in BACKGROUND_STYLES:
            raise fail(("background", "style"), f"{style!r} is not one of {', '.join(BACKGROUND_STYLES)}")
        colors = background.get("colors")
        if not isinstance(colors, list) or len(colors) not in (1, 2):
            raise fail(("background", "colors"), "must list one or two colours")
        first = colour(colors[0], ("background", "colors"))
        second = colour(colors[-1], ("background", "colors"))
        palette = mapping(data.get("palette", {}), ("palette",), ("accent", "text"))
        display_name = data.get("display_name", name)
        if not isinstance(display_name, (str, int, float)) or len(str(display_name)) > MAX_DISPLAY_NAME:
            raise fail(("display_name",), f"expected text of at most {MAX_DISPLAY_NAME} characters")
        logo = data.get("logo")
        if logo is not None and (not isinstance(logo, str) or not logo.strip()):
            raise fail(("logo",), "expected a path or URI of the logo image")
        position = data.get("logo_position", "top-left")
        if position not in LOGO_POSITIONS:
            raise fail(("logo_position",), f"{position!r} is not one of {', '.join(LOGO_POSITIONS)}")
        return cls(
            name=name,
            display_name=str(display_name),
            background_style=style,
            background_colors=(first, second),
            accent=colour(palette.get("accent", "#333333"), ("palette", "accent")),
            text=colour(palette.get("text", "#111111"), ("palette", "text")),
            logo=logo,
            logo_position=position,
        )

    def fingerprint(self) -> str:
        """Stable hash of everything that changes how the kit renders (logo bytes are hashed separately)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]
