"""Reading and validating catalog files: every bad row becomes a reject naming its row, field and reason.

No Dagster here, so the catalog asset and the S3 drop sensor validate the same way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources import storage_keys
from videokit.media.brand import ASPECTS
from videokit.media.images import ALLOWED_FORMATS, DEFAULT_MAX_PIXELS, digest_image

REQUIRED_COLUMNS = ("sku_id", "title", "category", "brand", "image", "tier")
OPTIONAL_COLUMNS = {"prompt": "", "aspect": "16:9", "aspects": ""}
# `aspects` lists every aspect a SKU is rendered in ("16:9 9:16 1:1"; commas, semicolons or spaces); empty means
# the single `aspect`. Separators other than whitespace are accepted because a CSV cell holds them as easily.
ASPECT_SEPARATORS = re.compile(r"[\s,;|]+")
SKU_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TIERS = ("hero", "bulk")
IMAGE_FORMATS = ALLOWED_FORMATS
MIN_IMAGE_SIDE = 64
# Bump when a renderer change should re-render every SKU.
RENDER_VERSION = "2"  # 2: colour-keeping light, turn style, products sized to the safe area, BT.709
# A catalog file is refused whole past these; rows and reasons past these are bounded too.
MAX_CATALOG_BYTES = 32 * 1024 * 1024
MAX_DECODED_BYTES = 64 * 1024 * 1024  # Parquet columns once decompressed and dictionaries expanded
MAX_ROWS = 100_000  # Dagster advises at most 100,000 partitions per asset
MAX_FIELD_CHARS = 4_096
ECHO_CHARS = 80
MAX_REASON_CHARS = 500
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


@dataclass(frozen=True)
class ImageUnavailable:
    """A packshot that could not be read (yet): its row waits for it when the ingest allows waiting."""

    reason: str


@dataclass
class ValidatedCatalog:
    accepted: pd.DataFrame
    rejects: list[Reject]
    waiting: dict[int, ImageUnavailable] = field(default_factory=dict)  # row number -> why its image is not here

    def rejects_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rejects], columns=list(Reject.__dataclass_fields__))


def catalog_format(name: str) -> str:
    lowered = name.lower()
    for suffix, kind in CATALOG_FORMATS.items():
        if lowered.endswith(suffix):
            return kind
    raise CatalogFileError(f"{name}: unknown catalog format (expected one of {', '.join(CATALOG_FORMATS)})")


def read_table(data: bytes, name: str) -> pd.DataFrame:
    """Parse a catalog file into a frame of strings; raises CatalogFileError naming the file.

    Bounded before anything is built: the file's size, its rows, and (CSV) each field, or (Parquet) the
    size its columns decode to, so a hostile file costs a short refusal, not gigabytes.
    """
    kind = catalog_format(name)
    if len(data) > MAX_CATALOG_BYTES:
        raise CatalogFileError(f"{name}: file is {len(data):,} bytes, over the limit of {MAX_CATALOG_BYTES:,}; split it")
    try:
        if kind == "csv":
            frame = csv_frame(data, name)
        elif kind == "parquet":
            frame = parquet_frame(data, name)
        else:
            frame = jsonl_frame(data, name)
    except CatalogFileError:
        raise
    except Exception as error:  # noqa: BLE001 - every parser has its own error types; the file is unusable
        raise CatalogFileError(f"{name}: cannot be read as {kind} ({clip(str(error), 200)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogFileError(f"{name}: missing required column(s) {', '.join(missing)}")
    for column, default in OPTIONAL_COLUMNS.items():
        if column not in frame.columns:
            frame[column] = default
    frame = frame.astype(object).where(frame.notna(), "")
    return frame.map(lambda v: str(v).strip())


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` cut to `limit` characters, saying how long it was, so reasons never echo a huge value whole."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def shown(value: str) -> str:
    """A row's value as quoted in a reason, bounded."""
    return repr(value) if len(value) <= ECHO_CHARS else f"{value[:ECHO_CHARS]!r}... ({len(value):,} characters)"


def too_many_rows(name: str) -> CatalogFileError:
    return CatalogFileError(f"{name}: more than {MAX_ROWS:,} rows; split the file")


def csv_frame(data: bytes, name: str) -> pd.DataFrame:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CatalogFileError(f"{name}: not UTF-8 text (byte {error.start:,})") from None
    # The csv module stops at its field size limit (128 KiB), where pandas' parser would take any length.
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        header = next(reader, None)
        if header is None:
            raise CatalogFileError(f"{name}: empty file")
        header = [column.strip() for column in header]
        rows = []
        for fields in reader:
            if not fields:  # blank line
                continue
            if len(fields) > len(header):
                raise CatalogFileError(f"{name} line {reader.line_num}: {len(fields)} fields, the header has {len(header)}")
            if len(rows) == MAX_ROWS:
                raise too_many_rows(name)
            rows.append(fields + [""] * (len(header) - len(fields)))
    except csv.Error as error:
        raise CatalogFileError(f"{name} line {reader.line_num}: {error}") from None
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        raise CatalogFileError(f"{name}: column {clip(duplicated[0])} appears more than once")
    return pd.DataFrame(rows, columns=header, dtype=object)


def parquet_frame(data: bytes, name: str) -> pd.DataFrame:
    parquet = pq.ParquetFile(io.BytesIO(data))
    metadata = parquet.metadata
    if metadata.num_rows > MAX_ROWS:
        raise too_many_rows(name)
    nested = [f.name for f in parquet.schema_arrow if pa.types.is_nested(f.type)]
    if nested:
        raise CatalogFileError(f"{name}: column {clip(nested[0])} is nested; catalog columns hold plain values")
    # Page sizes bound plain and compressed data; a dictionary-encoded column can still repeat one huge value
    # in every row, so strings are read as dictionaries (their stored size) and measured before expanding.
    strings = [f.name for f in parquet.schema_arrow if is_variable_width(f.type)]
    decoded = sum(metadata.row_group(index).total_byte_size for index in range(metadata.num_row_groups))
    if decoded <= MAX_DECODED_BYTES:
        table = pq.read_table(io.BytesIO(data), read_dictionary=strings)
        decoded = sum(expanded_bytes(table.column(column)) for column in strings)
    if decoded > MAX_DECODED_BYTES:
        raise CatalogFileError(f"{name}: columns decode to {decoded:,} bytes, over the limit of {MAX_DECODED_BYTES:,}")
    return pd.read_parquet(io.BytesIO(data))


def is_variable_width(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return True
    return any(test(kind) for test in (pa.types.is_string, pa.types.is_binary, pa.types.is_large_string,
                                       pa.types.is_large_binary))


def expanded_bytes(column: pa.ChunkedArray) -> int:
    """Bytes of a dictionary-read string column once every row holds its own value."""
    total = 0
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            dictionary = chunk.dictionary
            lengths = pc.binary_length(dictionary) if is_variable_width(dictionary.type) else None
            if lengths is None:  # fixed-width values expand to at most their width per row
                total += len(chunk) * max(1, dictionary.type.bit_width // 8)
            else:
                total += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
        else:
            total += chunk.nbytes
    return total


def jsonl_frame(data: bytes, name: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise CatalogFileError(f"{name} line {number}: not JSON ({clip(str(error))})") from None
        if not isinstance(record, dict):
            raise CatalogFileError(f"{name} line {number}: expected a JSON object, got {type(record).__name__}")
        if len(records) == MAX_ROWS:
            raise too_many_rows(name)
        records.append({str(key): ("" if value is None else value) for key, value in record.items()})
    if not records:
        raise CatalogFileError(f"{name}: no rows")
    return pd.DataFrame.from_records(records)


def check_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> CheckedImage:
    """Raise ValueError saying what is wrong with an image, else describe it by its upright pixels."""
    image_format, (width, height), digest = digest_image(data, max_pixels=max_pixels, formats=IMAGE_FORMATS)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is {width}x{height}, smaller than {MIN_IMAGE_SIDE} px on a side")
    return CheckedImage(digest, image_format, width, height, data)


def check_logo(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> CheckedImage:
    """A brand-kit logo checked like a packshot (formats, pixel limit, full decode), small sizes allowed."""
    image_format, (width, height), digest = digest_image(data, max_pixels=max_pixels, formats=IMAGE_FORMATS)
    return CheckedImage(digest, image_format, width, height, data)


def content_hash(row: Mapping[str, str], image_sha256: str, brand_fingerprint: str) -> str:
    """Hash of everything that changes the video; unchanged SKUs keep their hash and are not re-rendered.

    `image_sha256` is the packshot's pixel digest (videokit.media.images.pixel_digest), so a re-tagged or losslessly
    re-encoded copy of the same picture keeps the hash.
    """
    fields = {k: row[k] for k in ("title", "category", "brand", "tier", "prompt", "aspect")}
    listed = normalized_aspects(row.get("aspects", ""), row["aspect"])
    if listed:  # only SKUs rendered in several aspects hash them, so single-aspect hashes never moved
        fields["aspects"] = listed
    # The id's spelling is not content: HERO-1 and hero-1 are one SKU (see validate_catalog).
    fields["sku_id"] = row["sku_id"].lower()
    payload = json.dumps(
        {"fields": fields, "image_pixels": image_sha256, "brand": brand_fingerprint, "render": RENDER_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def split_aspects(value: str) -> list[str]:
    return [part for part in ASPECT_SEPARATORS.split(value.strip()) if part]


def aspects_problem(value: str, aspect: str) -> str | None:
    """Why an `aspects` cell cannot be used, or None."""
    listed = split_aspects(value)
    unknown = [a for a in listed if a not in ASPECTS]
    if unknown:
        return f"{shown(unknown[0])} is not one of {', '.join(ASPECTS)}"
    repeated = sorted({a for a in listed if listed.count(a) > 1})
    if repeated:
        return f"{repeated[0]} is listed more than once"
    if listed and aspect not in listed:
        return f"does not list the SKU's aspect {shown(aspect)}"
    return None


def normalized_aspects(value: str, aspect: str) -> str:
    """The `aspects` cell as stored: the SKU's `aspect` first, then the others in the order given, space-separated;
    empty when it names only `aspect` (a single-aspect SKU is stored, hashed and keyed as before)."""
    listed = split_aspects(value)
    ordered = [aspect, *(a for a in listed if a != aspect)]
    return " ".join(ordered) if len(ordered) > 1 else ""


def field_problems(row: Mapping[str, str], brands: Mapping[str, str]) -> list[tuple[str, str]]:
    """(field, reason) for every problem in a row that can be seen without reading its image."""
    problems = []
    for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        if len(row[name]) > MAX_FIELD_CHARS:
            problems.append((name, f"is {len(row[name]):,} characters, over the limit of {MAX_FIELD_CHARS:,}"))
    if problems:  # the other checks would only quote the oversized values
        return problems
    sku_id = row["sku_id"]
    if not sku_id:
        problems.append(("sku_id", "missing"))
    elif not SKU_ID.match(sku_id):
        problems.append(("sku_id", f"{shown(sku_id)} must match [A-Za-z0-9_-]{{1,64}}"))
    for name in ("title", "category"):
        if not row[name]:
            problems.append((name, "missing"))
    if not row["brand"]:
        problems.append(("brand", "missing"))
    elif row["brand"] not in brands:
        problems.append(("brand", f"no brand kit named {shown(row['brand'])} (known: {', '.join(sorted(brands))})"))
    if row["tier"] not in TIERS:
        problems.append(("tier", f"{shown(row['tier'])} is not one of {', '.join(TIERS)}"))
    if row["aspect"] not in ASPECTS:
        problems.append(("aspect", f"{shown(row['aspect'])} is not one of {', '.join(ASPECTS)}"))
    problem = aspects_problem(row["aspects"], row["aspect"])
    if problem:
        problems.append(("aspects", problem))
    if not row["image"]:
        problems.append(("image", "missing"))
    return problems


def validate_catalog(
    table: pd.DataFrame,
    *,
    source: str,
    brand_fingerprints: Mapping[str, str],
    check_images: Callable[[list[str]], Mapping[str, Any]],
    row_numbers: list[int] | None = None,
    wait_for_images: bool = False,
) -> ValidatedCatalog:
    """Validate every row; accepted rows get their image's sha256, format, storage key and content hash.

    `check_images` maps image URIs to an object with sha256/format/key, to the reason the image is bad, or to
    ImageUnavailable: with `wait_for_images` such a row is set aside as waiting, otherwise it is rejected.
    `row_numbers` are the rows' numbers in their file when `table` is a part of it (rows retried later).
    """
    rows = table.to_dict("records")
    for row in rows:
        row["aspect"] = row["aspect"] or OPTIONAL_COLUMNS["aspect"]
    rejects: list[Reject] = []
    waiting: dict[int, ImageUnavailable] = {}
    first_seen: dict[str, tuple[int, str]] = {}
    candidates: list[tuple[int, dict]] = []
    for number, row in zip(row_numbers or range(1, len(rows) + 1), rows, strict=True):
        problems = field_problems(row, brand_fingerprints)
        sku_id = row["sku_id"]
        folded = sku_id.lower()  # ids are ASCII (SKU_ID), so lower() is their case-insensitive form
        if sku_id and folded in first_seen:
            first_number, first_id = first_seen[folded]
            same = "" if first_id == sku_id else f" ({shown(first_id)}; SKU ids are compared without case)"
            problems.append(("sku_id", f"duplicate of row {first_number}{same}"))
        elif sku_id:
            first_seen[folded] = (number, sku_id)
        if problems:
            rejects.extend(Reject(source, number, clip(sku_id), f, why) for f, why in problems)
        else:
            candidates.append((number, row))

    images = check_images([row["image"] for _, row in candidates])
    accepted = []
    for number, row in candidates:
        image = images[row["image"]]
        if isinstance(image, ImageUnavailable):
            if wait_for_images:
                waiting[number] = image
                continue
            image = image.reason
        if isinstance(image, str):
            rejects.append(Reject(source, number, row["sku_id"], "image", clip(image, MAX_REASON_CHARS)))
            continue
        row["aspects"] = normalized_aspects(row["aspects"], row["aspect"])
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
    return ValidatedCatalog(frame, rejects, waiting)


def source_key(sha256: str, image_format: str) -> str:
    """Content-addressed storage key of a packshot copy."""
    extension = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[image_format]
    return storage_keys.source_image(sha256, extension)
