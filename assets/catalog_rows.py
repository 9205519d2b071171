"""Reading and validating catalog files: every bad row becomes a reject naming its row, field and reason.

No Dagster here, so the catalog asset and the S3 drop sensor validate the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from PIL import Image

from videokit.brand import ASPECTS

REQUIRED_COLUMNS = ("sku_id", "title", "category", "brand", "image", "tier")
OPTIONAL_COLUMNS = {"prompt": "", "aspect": "16:9"}
SKU_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TIERS = ("hero", "bulk")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
MIN_IMAGE_SIDE = 64
DEFAULT_MAX_PIXELS = 40_000_000
# Bump when a renderer change should re-render every SKU.
RENDER_VERSION = "1"
CATALOG_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class CatalogFileError(ValueError):
    """The whole file is unusable (unreadable, unknown format, missing columns)."""


@dataclass(frozen=True)
class Reject:
    source: str
    row: int  # 1 = first data row (line 2 of a CSV with a header)
    sku_id: str
    field: str
    reason: str


@dataclass(frozen=True)
class CheckedImage:
    sha256: str
    format: str
    width: int
    height: int
    data: bytes


@dataclass
class ValidatedCatalog:
    accepted: pd.DataFrame
    rejects: list[Reject]

    def rejects_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rejects], columns=list(Reject.__dataclass_fields__))


def catalog_format(name: str) -> str:
    lowered = name.lower()
    for suffix, kind in CATALOG_FORMATS.items():
        if lowered.endswith(suffix):
            return kind
    raise CatalogFileError(f"{name}: unknown catalog format (expected one of {', '.join(CATALOG_FORMATS)})")


def read_table(data: bytes, name: str) -> pd.DataFrame:
    """Parse a catalog file into a frame of strings; raises CatalogFileError naming the file."""
    kind = catalog_format(name)
    try:
        if kind == "csv":
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, skipinitialspace=True)
        elif kind == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_json(io.BytesIO(data), lines=True, dtype=False)
    except Exception as error:  # every parser has its own error types; the file is unusable either way
        raise CatalogFileError(f"{name}: cannot be read as {kind} ({error})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogFileError(f"{name}: missing required column(s) {', '.join(missing)}")
    for column, default in OPTIONAL_COLUMNS.items():
        if column not in frame.columns:
            frame[column] = default
    frame = frame.astype(object).where(frame.notna(), "")
    return frame.map(lambda v: str(v).strip())


def read_whole_image(image: Image.Image) -> None:
    """Read every byte of the image, as cheaply as its format allows, so truncation and corruption show."""
    if image.format == "PNG":
        image.verify()  # checks every chunk's CRC without inflating the pixels
    elif image.format == "JPEG":
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))  # DCT-domain 1/8 decode
        image.load()
    else:
        image.load()


def check_image(data: bytes, *, max_pixels: int) -> CheckedImage:
    """Raise ValueError saying what is wrong with an image, else describe it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}")
            if image.format not in IMAGE_FORMATS:
                raise ValueError(f"image format {image.format} is not one of {', '.join(IMAGE_FORMATS)}")
            read_whole_image(image)
    except ValueError:
        raise
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError("file is not a readable image") from None
    except OSError as error:
        raise ValueError(f"image is truncated or corrupt ({error})") from None
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is {width}x{height}, smaller than {MIN_IMAGE_SIDE} px on a side")
    return CheckedImage(hashlib.sha256(data).hexdigest(), image.format, width, height, data)


def content_hash(row: Mapping[str, str], image_sha256: str, brand_fingerprint: str) -> str:
    """Hash of everything that changes the video; unchanged SKUs keep their hash and are not re-rendered."""
    fields = {k: row[k] for k in ("sku_id", "title", "category", "brand", "tier", "prompt", "aspect")}
    payload = json.dumps(
        {"fields": fields, "image": image_sha256, "brand": brand_fingerprint, "render": RENDER_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def field_problems(row: Mapping[str, str], brands: Mapping[str, str]) -> list[tuple[str, str]]:
    """(field, reason) for every problem in a row that can be seen without reading its image."""
    problems = []
    sku_id = row["sku_id"]
    if not sku_id:
        problems.append(("sku_id", "missing"))
    elif not SKU_ID.match(sku_id):
        problems.append(("sku_id", f"{sku_id!r} must match [A-Za-z0-9_-]{{1,64}}"))
    for name in ("title", "category"):
        if not row[name]:
            problems.append((name, "missing"))
    if not row["brand"]:
        problems.append(("brand", "missing"))
    elif row["brand"] not in brands:
        problems.append(("brand", f"no brand kit named {row['brand']!r} (known: {', '.join(sorted(brands))})"))
    if row["tier"] not in TIERS:
        problems.append(("tier", f"{row['tier']!r} is not one of {', '.join(TIERS)}"))
    if row["aspect"] not in ASPECTS:
        problems.append(("aspect", f"{row['aspect']!r} is not one of {', '.join(ASPECTS)}"))
    if not row["image"]:
        problems.append(("image", "missing"))
    return problems


def validate_catalog(
    table: pd.DataFrame,
    *,
    source: str,
    brand_fingerprints: Mapping[str, str],
    check_images: Callable[[list[str]], Mapping[str, Any]],
) -> ValidatedCatalog:
    """Validate every row; accepted rows get their image's sha256, format, storage key and content hash.

    `check_images` maps image URIs to an object with sha256/format/key, or to the reason the image is bad.
    """
    rows = table.to_dict("records")
    for row in rows:
        row["aspect"] = row["aspect"] or OPTIONAL_COLUMNS["aspect"]
    rejects: list[Reject] = []
    first_seen: dict[str, int] = {}
    candidates: list[tuple[int, dict]] = []
    for number, row in enumerate(rows, start=1):
        problems = field_problems(row, brand_fingerprints)
        sku_id = row["sku_id"]
        if sku_id and sku_id in first_seen:
            problems.append(("sku_id", f"duplicate of row {first_seen[sku_id]}"))
        elif sku_id:
            first_seen[sku_id] = number
        if problems:
            rejects.extend(Reject(source, number, sku_id, f, why) for f, why in problems)
        else:
            candidates.append((number, row))

    images = check_images([row["image"] for _, row in candidates])
    accepted = []
    for number, row in candidates:
        image = images[row["image"]]
        if isinstance(image, str):
            rejects.append(Reject(source, number, row["sku_id"], "image", image))
            continue
        accepted.append(
            {
                **{k: row[k] for k in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)},
                "image_sha256": image.sha256,
                "image_format": image.format,
                "image_key": image.key,
                "content_hash": content_hash(row, image.sha256, brand_fingerprints[row["brand"]]),
                "source": source,
                "row": number,
            }
        )
    rejects.sort(key=lambda r: (r.row, r.field))
    frame = pd.DataFrame(accepted, columns=[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "image_sha256", "image_format",
                                            "image_key", "content_hash", "source", "row"])
    return ValidatedCatalog(frame, rejects)


def source_key(sha256: str, image_format: str) -> str:
    """Content-addressed storage key of a packshot copy."""
    extension = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[image_format]
    return f"sources/{sha256[:2]}/{sha256}.{extension}"
