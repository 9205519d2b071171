"""Draw the pictures the sample training modules show: a care label and a drying diagram.

Run from the repository root:  python samples/training/make_training_samples.py

The scripts (`product-care.md`, `quick-start.md`) are written by hand and kept in git; this script makes the
binary files they point at (`images/*.png`), so the repository stays small. Tests import the drawing
functions to put pictures beside their own scripts.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
FONTS = HERE.parents[1] / "videokit" / "fonts"
INK = (34, 40, 46)
PAPER = (250, 248, 242)
ACCENT = (47, 111, 94)
WARN = (196, 60, 48)


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size)


def _cross(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], width: int) -> None:
    x0, y0, x1, y1 = box
    draw.line((x0, y0, x1, y1), fill=INK, width=width)
    draw.line((x0, y1, x1, y0), fill=INK, width=width)


def draw_care_label(width: int = 1200, height: int = 700) -> Image.Image:
    """A woven care label: five ISO 3758 symbols over fibre content and origin."""
    image = Image.new("RGB", (width, height), (226, 222, 212))
    draw = ImageDraw.Draw(image)
    margin = width // 20
    draw.rounded_rectangle(
        (margin, margin, width - margin, height - margin),
        radius=width // 40,
        fill=PAPER,
        outline=(200, 196, 186),
        width=max(2, width // 300),
    )
    unit = (width - 2 * margin) // 6
    top = margin + height // 8
    line = max(3, unit // 18)
    centers = [margin + unit * (index + 1) for index in range(5)]
    half = unit // 3
    # Wash at 30 degrees: a tub with the number in it.
    cx = centers[0]
    draw.line(
        (
            cx - half,
            top,
            cx - half * 3 // 4,
            top + half * 2,
            cx + half * 3 // 4,
            top + half * 2,
            cx + half,
            top,
        ),
        fill=INK,
        width=line,
    )
    draw.arc((cx - half, top - half // 3, cx + half, top + half // 3), 0, 180, fill=INK, width=line)
    draw.text((cx, top + half * 6 // 5), "30", font=_font(half * 4 // 5, bold=True), fill=INK, anchor="mm")
    # Do not bleach: a crossed triangle.
    cx = centers[1]
    triangle = (cx, top, cx - half, top + half * 2, cx + half, top + half * 2)
    draw.polygon(triangle, outline=INK, width=line)
    _cross(draw, (cx - half, top, cx + half, top + half * 2), line)
    # Do not tumble dry: a square with a circle, crossed.
    cx = centers[2]
    draw.rectangle((cx - half, top, cx + half, top + half * 2), outline=INK, width=line)
    draw.ellipse(
        (cx - half * 2 // 3, top + half // 3, cx + half * 2 // 3, top + half * 5 // 3),
        outline=INK,
        width=line,
    )
    _cross(draw, (cx - half, top, cx + half, top + half * 2), line)
    # Do not iron: a crossed iron.
    cx = centers[3]
    draw.polygon(
        (
            cx - half,
            top + half * 2,
            cx + half,
            top + half * 2,
            cx + half * 3 // 4,
            top + half // 2,
            cx - half // 3,
            top + half // 2,
        ),
        outline=INK,
        width=line,
    )
    _cross(draw, (cx - half, top + half // 3, cx + half, top + half * 2), line)
    # Do not dry clean: a crossed circle.
    cx = centers[4]
    draw.ellipse((cx - half, top, cx + half, top + half * 2), outline=INK, width=line)
    _cross(draw, (cx - half, top, cx + half, top + half * 2), line)
    text_top = top + half * 3
    body = _font(max(12, height // 16))
    for index, words in enumerate(
        (
            "Shell: 100% recycled polyester",
            "Coating: polyurethane",
            "Hand wash only. Dry in the shade.",
            "Made in Portugal  -  NW-BPK-001",
        )
    ):
        draw.text((width // 2, text_top + index * height // 11), words, font=body, fill=INK, anchor="mm")
    return image


def draw_drying(width: int = 1200, height: int = 700) -> Image.Image:
    """Do and don't: a pack hanging upside down in the shade; no sun, no radiator."""
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    third = width // 3
    label = _font(max(12, height // 20), bold=True)
    # Left: the pack hanging upside down from a hook, pockets open.
    cx, top = third // 2 + width // 40, height // 6
    draw.line((cx - third // 3, top, cx + third // 3, top), fill=INK, width=max(3, width // 200))
    draw.arc((cx - 18, top, cx + 18, top + 40), 0, 180, fill=INK, width=max(3, width // 300))
    body = (cx - third // 4, top + 50, cx + third // 4, top + 50 + height // 2)
    draw.rounded_rectangle(body, radius=third // 8, fill=(86, 110, 62))
    # Upside down: the front pocket hangs at the bottom, unzipped.
    draw.rounded_rectangle(
        (cx - third // 6, body[3] - height // 5, cx + third // 6, body[3] - 30),
        radius=20,
        fill=(104, 130, 76),
    )
    for drop in range(3):
        x = cx - 40 + drop * 40
        draw.ellipse((x - 6, body[3] + 20 + drop * 14, x + 6, body[3] + 40 + drop * 14), fill=(90, 150, 210))
    draw.text((cx, height - height // 10), "Hang it in the shade", font=label, fill=ACCENT, anchor="mm")
    # Middle: the sun, crossed out.
    cx, cy, r = third + third // 2, height // 2 - height // 12, third // 5
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(246, 190, 60))
    for ray in range(12):
        angle = ray * math.pi / 6
        draw.line(
            (
                cx + math.cos(angle) * r * 1.25,
                cy + math.sin(angle) * r * 1.25,
                cx + math.cos(angle) * r * 1.6,
                cy + math.sin(angle) * r * 1.6,
            ),
            fill=(246, 190, 60),
            width=max(3, width // 250),
        )
    draw.line((cx - r * 1.7, cy - r * 1.7, cx + r * 1.7, cy + r * 1.7), fill=WARN, width=max(6, width // 120))
    draw.text((cx, height - height // 10), "No direct sun", font=label, fill=WARN, anchor="mm")
    # Right: a radiator, crossed out.
    cx, cy = 2 * third + third // 2, height // 2 - height // 12
    fins, fin_w = 5, third // 14
    left = cx - (fins - 1) * fin_w - 3 * fin_w // 4
    for fin in range(fins):
        x = left + fin * 2 * fin_w
        draw.rounded_rectangle(
            (x, cy - third // 4, x + fin_w * 3 // 2, cy + third // 4),
            radius=fin_w // 2,
            fill=(190, 196, 204),
            outline=INK,
            width=2,
        )
    draw.line(
        (left - 20, cy - third // 3, 2 * cx - left + 20, cy + third // 3),
        fill=WARN,
        width=max(6, width // 120),
    )
    draw.text((cx, height - height // 10), "No radiators", font=label, fill=WARN, anchor="mm")
    return image


def write_images(folder: Path, width: int = 1200, height: int = 700) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("care-label.png", draw_care_label), ("drying.png", draw_drying)):
        path = folder / name
        draw(width, height).save(path, "PNG", optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "images", help="folder for the pictures")
    args = parser.parse_args(argv)
    for path in write_images(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
