"""Contact sheet of the CPU loop on the sample SKUs: one row per SKU, frames across the loop.

Run from the repository root:
    python bench/contact_sheet.py --out bench/results/cpu_loop_after.png
    python bench/contact_sheet.py --repo /path/to/older/checkout --out bench/results/cpu_loop_before.png

--repo renders with another checkout's videokit (an older commit, for before/after sheets); the
sample packshots, logos and brand kits always come from this repository's samples/. Each row is
labelled with the SKU and the loop's frame numbers; the frames are the ones a shopper sees while the
loop plays: rest, the light's pass and the push's peak.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parents[1]
SAMPLES = HERE / "samples"
LOOP_SHARES = (0.0, 0.25, 0.42, 0.5, 0.58, 0.75)  # of the loop; the light passes in 0.3-0.7
THUMB_WIDTH = 320
LABEL_HEIGHT = 18


def sample_rows(limit: int | None) -> list[dict[str, str]]:
    with open(SAMPLES / "catalog.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return rows[:limit] if limit else rows


def load_brands() -> dict:
    sys.path.insert(0, str(HERE))
    from samples.make_samples import load_brands as load

    kits = load()
    sys.path.remove(str(HERE))
    return kits


def render_row(modules, row: dict[str, str], kit, aspect: str) -> list[tuple[int, np.ndarray]]:
    brand, compose, motion = modules
    keyframe_size = brand.KEYFRAME_SIZES[aspect]
    clip_size = brand.CLIP_SIZES[aspect]
    packshot = Image.open(SAMPLES / row["image"])
    logo = Image.open(SAMPLES / kit.logo) if kit.logo else None
    layers = compose.compose_keyframe(packshot, kit, keyframe_size, logo=logo)
    spec_fields = {"seed": 0}
    if hasattr(motion, "motion_style_for"):  # as the CPU tier picks it: from the prompt, else the category
        spec_fields["style"] = motion.motion_style_for(row["category"], row["prompt"])
    spec = motion.MotionSpec(**spec_fields)
    renderer = motion.LoopRenderer(layers, clip_size, spec)
    frames = []
    for share in LOOP_SHARES:
        index = round(share * spec.n_frames)
        frames.append((index, np.ascontiguousarray(renderer.rgba_frame(index)[..., :3])))
    return frames


def contact_sheet(rows, aspect: str, modules, kits) -> Image.Image:
    brand = modules[0]
    width, height = brand.CLIP_SIZES[aspect]
    thumb = (THUMB_WIDTH, round(THUMB_WIDTH * height / width))
    cell_h = thumb[1] + LABEL_HEIGHT
    sheet = Image.new("RGB", (thumb[0] * len(LOOP_SHARES), cell_h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for row_index, row in enumerate(rows):
        frames = render_row(modules, row, kits[row["brand"]], aspect)
        for column, (frame_index, frame) in enumerate(frames):
            x, y = column * thumb[0], row_index * cell_h
            sheet.paste(Image.fromarray(frame).resize(thumb, Image.LANCZOS), (x, y + LABEL_HEIGHT))
            draw.text((x + 4, y + 3), f"{row['sku_id']}  frame {frame_index}", fill=(0, 0, 0))
    return sheet


def videokit_from(repo: Path):
    sys.path.insert(0, str(repo))
    for name in [name for name in sys.modules if name == "videokit" or name.startswith("videokit.")]:
        del sys.modules[name]
    # Checkouts since the layout by product keep these in videokit.media / videokit.sku_video; older ones flat.
    layouts = (("media.brand", "sku_video.compose", "sku_video.motion"), ("brand", "compose", "motion"))
    try:
        for names in layouts:
            try:
                return tuple(importlib.import_module(f"videokit.{name}") for name in names)
            except ModuleNotFoundError:
                continue
        raise SystemExit(f"{repo}: no videokit with brand, compose and motion modules")
    finally:
        sys.path.remove(str(repo))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=HERE, help="checkout whose videokit renders the frames")
    parser.add_argument("--aspect", default="16:9", choices=("16:9", "9:16", "1:1"))
    parser.add_argument("--limit", type=int, default=None, help="first N sample SKUs only")
    parser.add_argument("--sku", action="append", default=[], help="only these sample SKUs (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    kits = load_brands()
    modules = videokit_from(args.repo.resolve())
    rows = [row for row in sample_rows(args.limit) if not args.sku or row["sku_id"] in args.sku]
    sheet = contact_sheet(rows, args.aspect, modules, kits)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"{args.out}: {sheet.width}x{sheet.height}")


if __name__ == "__main__":
    main()
