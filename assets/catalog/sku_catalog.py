"""The SKU catalog: validated rows, content hashes, brand kits, and one `sku` partition per SKU."""

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.catalog.packshot_intake import intake_packshots
from assets.catalog.rows import (
    DEFAULT_MAX_PIXELS,
    CatalogFileError,
    CheckedImage,
    ValidatedCatalog,
    check_logo,
    clip,
    read_table,
    source_key,
    validate_catalog,
)
from assets.partitions import sku_partitions
from resources import storage_keys
from resources.sources import read_source
from resources.storage import StorageError, StorageResource, parent_of
from videokit.media.brand import BrandKit, BrandKitError
from videokit.yaml_input import YamlInputError, load_yaml

CATALOG_KEY = storage_keys.CATALOG
REJECTS_KEY = storage_keys.CATALOG_REJECTS
BRANDS_KEY = storage_keys.BRAND_KITS
REJECTS_SHOWN = 50


class CatalogConfig(dg.Config):
    source: str = Field(default="samples/catalog.csv", description="Catalog file: path, s3:// or https:// URI.")
    brands: str = Field(default="samples/brands.yaml", description="Brand kits YAML: path, s3:// or https:// URI.")
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, description="Reject packshots with more pixels than this.")


@dataclass(frozen=True)
class Sku:
    """One catalog row as the downstream assets need it."""

    sku_id: str
    title: str
    category: str
    brand: BrandKit
    logo_key: str | None
    tier: str
    prompt: str
    aspect: str
    image_key: str
    content_hash: str
    fields: dict[str, str]  # every catalog column, for routing rules on any field
    aspects: tuple[str, ...] = ()  # every aspect it is rendered in, `aspect` first; () reads as (aspect,)

    def __post_init__(self):
        if not self.aspects:
            object.__setattr__(self, "aspects", (self.aspect,))

    @property
    def prefix(self) -> str:
        return storage_keys.sku_content(self.sku_id, self.content_hash)


BrandKits = dict[str, tuple[BrandKit, dict, CheckedImage | None]]


def load_brand_kits(uri: str) -> BrandKits:
    """Parse the brand kits file and read each logo; errors name the file and the brand."""
    try:
        document = load_yaml(read_source(uri), source=uri)
    except StorageError as error:
        raise CatalogFileError(f"{uri}: cannot read brand kits ({error})") from None
    except YamlInputError as error:
        raise CatalogFileError(f"cannot read brand kits: {error}") from None
    data = document.data
    if not isinstance(data, dict) or not isinstance(data.get("brands"), dict):
        raise CatalogFileError(f"{uri}: expected a top-level 'brands:' mapping")
    if set(data) != {"brands"}:
        extra = min(str(key) for key in data if key != "brands")
        raise CatalogFileError(f"{uri} line {document.line_of((extra,))}: {extra}: unknown key (expected brands)")
    kits = {}
    for name, entry in data["brands"].items():
        try:
            kit = BrandKit.from_dict(str(name), entry or {})
        except BrandKitError as error:
            raise CatalogFileError(f"{uri} line {document.line_of(('brands', name, *error.path))}: {error}") from None
        try:
            logo = read_source(kit.logo, base=parent_of(uri)) if kit.logo else None
        except (ValueError, StorageError) as error:
            raise CatalogFileError(f"{uri}: {error}") from None
        try:
            checked_logo = check_logo(logo) if logo is not None else None
        except ValueError as error:  # read, but not an image skuvid will draw (a text file, a bomb, a GIF)
            raise CatalogFileError(f"{uri}: brand {clip(str(name))}: logo {clip(kit.logo)}: {error}") from None
        kits[str(name)] = (kit, entry or {}, checked_logo)
    return kits


def store_brand_kits(storage: StorageResource, kits: BrandKits) -> dict[str, str]:
    """Copy kits and logos into storage; returns each brand's fingerprint (kit fields plus logo pixels)."""
    stored, fingerprints = {}, {}
    for name, (kit, spec, logo) in kits.items():
        logo_key = None
        if logo is not None:  # keyed by its pixels, like packshots: a re-tagged copy is the same logo
            logo_key = source_key(logo.sha256, logo.format)
            if not storage.exists(logo_key):
                storage.write_bytes(logo_key, logo.data)
        fingerprints[name] = hashlib.sha256(f"{kit.fingerprint()}:{logo_key}".encode()).hexdigest()[:16]
        stored[name] = {"spec": spec, "logo_key": logo_key, "fingerprint": fingerprints[name]}
    storage.update(BRANDS_KEY, partial(merge_brand_kits, stored))
    return fingerprints


def merge_brand_kits(stored: dict, current: bytes | None) -> tuple[bytes, None]:
    previous = json.loads(current) if current else {}
    return json.dumps({**previous, **stored}, indent=2, sort_keys=True, default=str).encode(), None


def rejects_markdown(validated: ValidatedCatalog) -> str:
    frame = validated.rejects_frame().head(REJECTS_SHOWN)
    if frame.empty:
        return "No rejected rows."
    table = frame.to_markdown(index=False)
    more = len(validated.rejects) - len(frame)
    return table + (f"\n\n... and {more} more in `{REJECTS_KEY}`" if more > 0 else "")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_parquet(storage: StorageResource, key: str, frame: pd.DataFrame) -> None:
    storage.write_bytes(key, parquet_bytes(frame))


@dataclass
class IngestReport:
    """What one catalog file did to the catalog: which SKUs are new, changed or unchanged, and what was rejected."""

    source: str
    validated: ValidatedCatalog
    new: list[str]
    changed: list[str]
    unchanged: list[str]

    @property
    def accepted(self) -> pd.DataFrame:
        return self.validated.accepted

    @property
    def rejected_rows(self) -> int:
        return len({r.row for r in self.validated.rejects})

    @property
    def to_render(self) -> list[str]:
        return self.new + self.changed

    def metadata(self) -> dict:
        accepted = self.accepted
        return {
            "source": self.source,
            "rows": len(accepted) + self.rejected_rows,
            "accepted": len(accepted),
            "rejected_rows": self.rejected_rows,
            "new_skus": len(self.new),
            "changed_skus": len(self.changed),
            "unchanged_skus": len(self.unchanged),
            "categories": accepted["category"].nunique(),
            "brands": accepted["brand"].nunique(),
            "heroes": int((accepted["tier"] == "hero").sum()),
            "rejects": dg.MetadataValue.md(rejects_markdown(self.validated)),
        }


@dataclass(frozen=True)
class CatalogChanges:
    new: list[str]
    changed: list[str]
    unchanged: list[str]
    respelled: dict[str, str] = field(default_factory=dict)  # id as the file spelled it -> the catalog's spelling


def upsert_catalog(accepted: pd.DataFrame, current: bytes | None) -> tuple[bytes, CatalogChanges]:
    """The catalog with `accepted` rows replacing or joining the current ones, and what that changed.

    Pure, because `StorageResource.update` runs it again if another writer got in first.
    """
    previous = pd.read_parquet(io.BytesIO(current)) if current else pd.DataFrame(columns=["sku_id", "content_hash"])
    previous_hash = dict(zip(previous["sku_id"], previous["content_hash"]))
    # SKU ids are case-insensitive: a row for hero-1 updates HERO-1 under the spelling the catalog has
    # (its partition key and storage paths), rather than making a second SKU, partition and render.
    catalog_spelling = {sku_id.lower(): sku_id for sku_id in previous["sku_id"]}
    respelled = {s: catalog_spelling[s.lower()] for s in accepted["sku_id"]
                 if catalog_spelling.get(s.lower(), s) != s}
    if respelled:
        accepted = accepted.assign(sku_id=accepted["sku_id"].replace(respelled))
    pairs = list(zip(accepted["sku_id"], accepted["content_hash"]))
    changes = CatalogChanges(
        new=[s for s, _ in pairs if s not in previous_hash],
        changed=[s for s, h in pairs if s in previous_hash and previous_hash[s] != h],
        unchanged=[s for s, h in pairs if previous_hash.get(s) == h],
        respelled=respelled,
    )
    kept = previous[~previous["sku_id"].isin(accepted["sku_id"])]
    merged = pd.concat([kept, accepted], ignore_index=True) if len(kept) else accepted
    return parquet_bytes(merged), changes


def ingest_catalog(storage: StorageResource, source: str, brands: str, max_pixels: int,
                   raw: bytes | None = None) -> IngestReport:
    """Validate a catalog file, copy its packshots into storage, and upsert its good rows into the catalog.

    `raw` is the file's content when the caller has read it already (a drop read by bucket and key); `source`
    then only names it and is the folder its relative image names resolve against.
    SKUs are never dropped implicitly: a SKU absent from this file keeps its row.
    """
    kits = load_brand_kits(brands)
    if raw is None:
        try:
            raw = read_source(source)
        except StorageError as error:
            raise CatalogFileError(str(error)) from None
    table = read_table(raw, source)
    fingerprints = store_brand_kits(storage, kits)
    validated = validate_catalog(
        table,
        source=source,
        brand_fingerprints=fingerprints,
        check_images=partial(intake_packshots, base=parent_of(source), storage=storage, max_pixels=max_pixels),
    )
    changes = storage.update(CATALOG_KEY, partial(upsert_catalog, validated.accepted))
    if changes.respelled:  # downstream (partitions, run requests) sees the catalog's spelling only
        validated.accepted = validated.accepted.assign(sku_id=validated.accepted["sku_id"].replace(changes.respelled))
    write_parquet(storage, REJECTS_KEY, validated.rejects_frame())
    return IngestReport(source, validated, changes.new, changes.changed, changes.unchanged)


def register_skus(instance: dg.DagsterInstance, sku_ids: list[str]) -> list[str]:
    existing = set(instance.get_dynamic_partitions(sku_partitions.name))
    new_keys = [s for s in sku_ids if s not in existing]
    if new_keys:
        instance.add_dynamic_partitions(sku_partitions.name, new_keys)
    return new_keys


@dg.asset(
    group_name="catalog",
    kinds={"parquet"},
    description="Validated SKU catalog with a content hash per SKU; registers each SKU as a `sku` partition.",
)
def sku_catalog(context: dg.AssetExecutionContext, config: CatalogConfig, storage: StorageResource) -> dg.MaterializeResult:
    try:
        report = ingest_catalog(storage, config.source, config.brands, config.max_pixels)
    except CatalogFileError as error:
        raise dg.Failure(description=str(error)) from None
    new_partitions = register_skus(context.instance, list(report.accepted["sku_id"]))
    for reject in report.validated.rejects:
        context.log.warning(f"{reject.source} row {reject.row} ({reject.sku_id or 'no sku_id'}): {reject.field}: {reject.reason}")
    return dg.MaterializeResult(
        metadata={
            **report.metadata(),
            "new_partitions": len(new_partitions),
            "catalog": dg.MetadataValue.path(storage.url(CATALOG_KEY)),
        }
    )


def read_catalog(storage: StorageResource) -> pd.DataFrame:
    if not storage.exists(CATALOG_KEY):
        raise dg.Failure(description="No catalog yet: materialize `sku_catalog` first.")
    return pd.read_parquet(io.BytesIO(storage.read_bytes(CATALOG_KEY)))


def sku_lookup(storage: StorageResource) -> Callable[[str], Sku]:
    """SKUs looked up in one read of the catalog and brand kits: a step's snapshot, however many SKUs its
    batch holds (reading a 10,000-row catalog per SKU cost more than the lookup)."""
    catalog = read_catalog(storage)
    positions = {sku_id: index for index, sku_id in enumerate(catalog["sku_id"])}
    brands = storage.read_json(BRANDS_KEY)

    def lookup(sku_id: str) -> Sku:
        if sku_id not in positions:
            raise dg.Failure(description=f"SKU {sku_id!r} is not in the current catalog ({storage.url(CATALOG_KEY)}).")
        row = catalog.iloc[positions[sku_id]]
        brand = brands[row["brand"]]
        return Sku(
            sku_id=sku_id,
            title=row["title"],
            category=row["category"],
            brand=BrandKit.from_dict(row["brand"], brand["spec"]),
            logo_key=brand["logo_key"],
            tier=row["tier"],
            prompt=row["prompt"],
            aspect=row["aspect"],
            image_key=row["image_key"],
            content_hash=row["content_hash"],
            fields={str(k): str(v) for k, v in row.items()},
            # Catalogs written before the `aspects` column read as single-aspect.
            aspects=(row["aspect"], *(a for a in str(row.get("aspects") or "").split() if a != row["aspect"])),
        )

    return lookup
