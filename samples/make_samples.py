"""Generate the sample catalog's media: a packshot per SKU and a logo per brand.

    python samples/make_samples.py [--out samples] [--size 1200] [--workers N]

Reads catalog.csv and brands.yaml beside this script and writes <out>/packshots/<sku_id>.png and
<out>/logos/<brand>.png. Output is deterministic, so running it again rewrites identical files.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image

from devkit.sample_art import draw_logo, draw_packshot
from videokit.media.brand import RGB, BrandKit, parse_hex

SAMPLES_DIR = Path(__file__).resolve().parent
CATALOG_CSV = SAMPLES_DIR / "catalog.csv"
BRANDS_YAML = SAMPLES_DIR / "brands.yaml"

# The middle part of a sample sku_id names the product: NW-BPK-001 is a backpack.
KIND_BY_CODE: dict[str, str] = {
    "BTL": "bottle",
    "CAN": "can",
    "MUG": "mug",
    "KTL": "kettle",
    "SNK": "sneaker",
    "HPH": "headphones",
    "SPK": "speaker",
    "WCH": "watch",
    "BPK": "backpack",
    "LMP": "lamp",
}

# Body colour and accent (label, trim, dial) per SKU; SKUs not listed use their brand's palette.
COLOURWAYS: dict[str, tuple[str, str]] = {
    "NW-BPK-001": ("#55643F", "#2B2B2B"),
    "NW-BPK-002": ("#A5482C", "#2E2A26"),
    "NW-SNK-001": ("#1F4E5F", "#E0C9A6"),
    "NW-SNK-002": ("#E6E1D6", "#1F4E5F"),
    "NW-WCH-001": ("#8A5A36", "#24372D"),
    "HD-MUG-001": ("#4A5560", "#E8DFCF"),
    "HD-MUG-002": ("#E0D4BC", "#2F5D8A"),
    "HD-KTL-001": ("#2F5D8A", "#202124"),
    "HD-LMP-001": ("#7D957A", "#2F5D8A"),
    "HD-LMP-002": ("#B8623F", "#3C332B"),
    "VT-HPH-001": ("#2A2B2F", "#E4572E"),
    "VT-HPH-002": ("#E4E0D6", "#2A2B2F"),
    "VT-SPK-001": ("#5C3E2A", "#C9A15A"),
    "VT-SPK-002": ("#ECEAE4", "#2A2B2F"),
    "FJ-CAN-001": ("#187A5C", "#D4E77A"),
    "FJ-CAN-002": ("#C0402F", "#F7C77A"),
    "FJ-BTL-001": ("#1E5440", "#EEE6D2"),
}

# Drawn as cut-outs (RGBA, transparent background) so both cut-out paths downstream get exercised.
TRANSPARENT_SKUS = frozenset({"NW-SNK-002", "VT-HPH-001"})

SKU_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class PackshotSpec:
    """Everything draw_packshot needs for one SKU."""

    kind: str
    color: RGB
    accent: RGB
    label: str
    transparent: bool
    seed: int


def load_brands(path: Path = BRANDS_YAML) -> dict[str, BrandKit]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {name: BrandKit.from_dict(name, kit) for name, kit in data["brands"].items()}


def load_catalog(path: Path = CATALOG_CSV) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def brand_word(brand: BrandKit) -> str:
    """The short name a brand prints on its products and logo: the first word of its display name."""
    return brand.display_name.split()[0]


def product_kind(sku_id: str) -> str:
    """The packshot kind for a sample SKU, from the product code in its id (NW-BPK-001 -> backpack)."""
    parts = sku_id.split("-")
    if len(parts) < 2 or parts[1] not in KIND_BY_CODE:
        raise ValueError(f"sku {sku_id!r}: no product code from {sorted(KIND_BY_CODE)} in its id")
    return KIND_BY_CODE[parts[1]]


def packshot_spec(sku_id: str, brand: BrandKit) -> PackshotSpec:
    """Which product, in which colours, a sample SKU's packshot shows."""
    if sku_id in COLOURWAYS:
        color, accent = (parse_hex(value) for value in COLOURWAYS[sku_id])
    else:
        color, accent = brand.accent, brand.text
    return PackshotSpec(
        kind=product_kind(sku_id),
        color=color,
        accent=accent,
        label=brand_word(brand).upper(),
        transparent=sku_id in TRANSPARENT_SKUS,
        seed=zlib.crc32(sku_id.encode()),
    )


def make_samples(
    out: Path,
    catalog_path: Path = CATALOG_CSV,
    brands_path: Path = BRANDS_YAML,
    size: int = 1200,
    workers: int = 1,
) -> list[Path]:
    """Write a logo per brand and a packshot per catalog row under `out`; returns the files written.

    With workers > 1 the packshots are drawn in that many processes.
    """
    brands = load_brands(brands_path)
    written = []
    for name, brand in brands.items():
        logo = draw_logo(brand_word(brand), color=brand.text, accent=brand.accent)
        written.append(_save(logo, out / "logos" / f"{name}.png"))
    jobs = []
    for row in load_catalog(catalog_path):
        if not SKU_ID.match(row["sku_id"]):
            raise ValueError(f"sku_id {row['sku_id']!r} must match {SKU_ID.pattern}")
        jobs.append((packshot_spec(row["sku_id"], brands[row["brand"]]), size, out / row["image"]))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return written + list(pool.map(_write_packshot, jobs))
    return written + [_write_packshot(job) for job in jobs]


def _write_packshot(job: tuple[PackshotSpec, int, Path]) -> Path:
    spec, size, path = job
    image = draw_packshot(
        spec.kind,
        color=spec.color,
        accent=spec.accent,
        label=spec.label,
        size=size,
        transparent=spec.transparent,
        seed=spec.seed,
    )
    return _save(image, path)


def _save(image: Image.Image, path: Path) -> Path:
    """Write a PNG atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(temporary, format="PNG", compress_level=1)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help="folder for packshots/ and logos/")
    parser.add_argument("--size", type=int, default=1200, help="packshot side in pixels")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes drawing packshots"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    written = make_samples(args.out, size=args.size, workers=args.workers)
    print(f"wrote {len(written)} files under {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
