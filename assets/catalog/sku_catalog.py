"""The SKU catalog: validated rows, content hashes, brand kits, and one `sku` partition per SKU."""

import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.catalog.drops import Drop, read_drop, write_drop_report
from assets.catalog.packshot_intake import intake_packshots
from assets.catalog.partition_capacity import PartitionCapacityError, check_partition_capacity
from assets.catalog.rows import (
    DEFAULT_MAX_PIXELS,
    CatalogFileError,
    CheckedImage,
    Reject,
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
PACKSHOT_WAIT_SETTING = "SKUVID_PACKSHOT_WAIT_S"
PACKSHOT_POLL_SETTING = "SKUVID_PACKSHOT_POLL_S"


class CatalogConfig(dg.Config):
    source: str = Field(default="samples/catalog.csv", description="Catalog file: path, s3:// or https:// URI.")
    brands: str = Field(default="samples/brands.yaml", description="Brand kits YAML: path, s3:// or https:// URI.")
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, description="Reject packshots with more pixels than this.")
    modified_at: str = Field(default="", description="When the file was last changed (ISO 8601, UTC); empty: its "
                             "modification time, or now. Between files, the newer edit of a SKU wins.")
    packshot_wait_s: float | None = Field(default=None, description="How long rows whose packshot cannot be read "
                                          f"yet wait for it before they are rejected; empty: {PACKSHOT_WAIT_SETTING}.")
    drop_bucket: str = Field(default="", description="Set by the drop sensor: the dropped object's bucket.")
    drop_key: str = Field(default="", description="Set by the drop sensor: the dropped object's exact key; the file "
                          "is read by bucket and key and its rejects report is written beside it.")
    drop_zone_prefix: str = Field(default="", description="Set by the drop sensor: the drop zone's prefix.")

    def drop(self) -> Drop | None:
        return Drop(self.drop_bucket, self.drop_key, self.drop_zone_prefix) if self.drop_key else None

    def wait_s(self) -> float:
        return self.packshot_wait_s if self.packshot_wait_s is not None else packshot_wait_s()


def packshot_wait_s() -> float:
    return setting_seconds(PACKSHOT_WAIT_SETTING, 900.0)


def setting_seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        seconds = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value[:40]!r}: expected a number of seconds") from None
    if not 0 <= seconds <= 7 * 86_400:
        raise ValueError(f"{name}={value[:40]!r}: expected 0 to 604800 seconds")
    return seconds


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
    kept_newer: list[str] = field(default_factory=list)  # rows left out: the catalog holds a newer edit
    # The parsed file, so rows waiting on a packshot can be validated again (ingest_waiting_rows).
    table: pd.DataFrame | None = None
    brand_fingerprints: dict[str, str] = field(default_factory=dict)
    modified_at: str = ""

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
            "kept_newer_edits": len(self.kept_newer),
            "waiting_rows": len(self.validated.waiting),
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
    kept_newer: list[str] = field(default_factory=list)


def utc_stamp(moment: datetime | None = None) -> str:
    """A UTC time as the catalog stores it: fixed-width ISO 8601, so stamps compare as strings."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def column_values(frame: pd.DataFrame, name: str) -> list[str]:
    """A column as strings; "" for every row when a catalog written before that column lacks it."""
    return [str(v) for v in frame[name].fillna("")] if name in frame else [""] * len(frame)


def upsert_catalog(accepted: pd.DataFrame, current: bytes | None, now: str | None = None) -> tuple[bytes, CatalogChanges]:
    """The catalog with `accepted` rows replacing or joining the current ones, and what that changed.

    Newest wins between files: a row whose file is older (`updated_at`, the file's own modification time) than
    the row the catalog holds from another file is left out, so the nightly reload of an old catalog file never
    reverts a SKU edited by a later drop. `content_since` is when a SKU's current content entered the catalog.
    Pure, because `StorageResource.update` runs it again if another writer got in first.
    """
    now = now or utc_stamp()
    previous = pd.read_parquet(io.BytesIO(current)) if current else pd.DataFrame(columns=["sku_id", "content_hash"])
    previous_hash = dict(zip(previous["sku_id"], previous["content_hash"]))
    # SKU ids are case-insensitive: a row for hero-1 updates HERO-1 under the spelling the catalog has
    # (its partition key and storage paths), rather than making a second SKU, partition and render.
    catalog_spelling = {sku_id.lower(): sku_id for sku_id in previous["sku_id"]}
    respelled = {s: catalog_spelling[s.lower()] for s in accepted["sku_id"]
                 if catalog_spelling.get(s.lower(), s) != s}
    if respelled:
        accepted = accepted.assign(sku_id=accepted["sku_id"].replace(respelled))
    previous_source = dict(zip(previous["sku_id"], column_values(previous, "source")))
    previous_updated = dict(zip(previous["sku_id"], column_values(previous, "updated_at")))
    previous_since = dict(zip(previous["sku_id"], column_values(previous, "content_since")))
    kept_newer = [s for s, source, updated in zip(accepted["sku_id"], column_values(accepted, "source"),
                                                  column_values(accepted, "updated_at"))
                  if s in previous_hash and previous_source[s] != source and previous_updated[s] > updated]
    if kept_newer:
        accepted = accepted[~accepted["sku_id"].isin(kept_newer)]
    pairs = list(zip(accepted["sku_id"], accepted["content_hash"]))
    accepted = accepted.assign(content_since=[previous_since[s] if previous_hash.get(s) == h and previous_since.get(s)
                                              else now for s, h in pairs])
    changes = CatalogChanges(
        new=[s for s, _ in pairs if s not in previous_hash],
        changed=[s for s, h in pairs if s in previous_hash and previous_hash[s] != h],
        unchanged=[s for s, h in pairs if previous_hash.get(s) == h],
        respelled=respelled,
        kept_newer=kept_newer,
    )
    kept = previous[~previous["sku_id"].isin(accepted["sku_id"])]
    merged = pd.concat([kept, accepted], ignore_index=True) if len(kept) else accepted
    return parquet_bytes(merged), changes


def ingest_catalog(storage: StorageResource, source: str, brands: str, max_pixels: int,
                   raw: bytes | None = None, instance: dg.DagsterInstance | None = None,
                   modified_at: str | None = None, wait_for_images: bool = False) -> IngestReport:
    """Validate a catalog file, copy its packshots into storage, and upsert its good rows into the catalog.

    `raw` is the file's content when the caller has read it already (a drop read by bucket and key); `source`
    then only names it and is the folder its relative image names resolve against. With `instance`, a file with
    more new SKUs than its storage can register as partitions is refused before anything is fetched or written.
    SKUs are never dropped implicitly: a SKU absent from this file keeps its row. `modified_at` is when the file
    was last changed (newest wins between files; default: its modification time, or now). With
    `wait_for_images`, rows whose packshot cannot be read yet are set aside (`validated.waiting`), not rejected.
    """
    kits = load_brand_kits(brands)
    if raw is None:
        try:
            raw = read_source(source)
        except StorageError as error:
            raise CatalogFileError(str(error)) from None
    table = read_table(raw, source)
    if instance is not None and "sku_id" in table:
        check_partition_capacity(instance, sku_partitions.name, source, table["sku_id"])
    fingerprints = store_brand_kits(storage, kits)
    report = upsert_rows(storage, source, table, fingerprints, max_pixels, modified_at or file_modified_at(source),
                         wait_for_images=wait_for_images)
    write_parquet(storage, REJECTS_KEY, report.validated.rejects_frame())
    return report


def file_modified_at(source: str) -> str:
    """The modification time of a local catalog file; now for anything else (the drop sensor passes S3's)."""
    try:
        return utc_stamp(datetime.fromtimestamp(os.stat(source.removeprefix("file://")).st_mtime, UTC))
    except (OSError, ValueError):
        return utc_stamp()


def upsert_rows(storage: StorageResource, source: str, table: pd.DataFrame, fingerprints: dict[str, str],
                max_pixels: int, modified_at: str, *, rows: list[int] | None = None,
                wait_for_images: bool = False) -> IngestReport:
    """Validate `table` (or only its `rows`, numbered from 1), copy their packshots, upsert the good ones."""
    part = table if rows is None else table.iloc[[number - 1 for number in rows]]
    validated = validate_catalog(
        part,
        source=source,
        brand_fingerprints=fingerprints,
        check_images=partial(intake_packshots, base=parent_of(source), storage=storage, max_pixels=max_pixels),
        row_numbers=rows,
        wait_for_images=wait_for_images,
    )
    validated.accepted = validated.accepted.assign(updated_at=modified_at)
    changes = storage.update(CATALOG_KEY, partial(upsert_catalog, validated.accepted, now=utc_stamp()))
    if changes.respelled:  # downstream (partitions, run requests) sees the catalog's spelling only
        validated.accepted = validated.accepted.assign(sku_id=validated.accepted["sku_id"].replace(changes.respelled))
    return IngestReport(source, validated, changes.new, changes.changed, changes.unchanged, changes.kept_newer,
                        table, fingerprints, modified_at)


def ingest_waiting_rows(storage: StorageResource, report: IngestReport, max_pixels: int) -> IngestReport:
    """The rows of `report` that waited on a packshot, validated again; `report` with their outcome merged in."""
    again = upsert_rows(storage, report.source, report.table, report.brand_fingerprints, max_pixels,
                        report.modified_at, rows=sorted(report.validated.waiting), wait_for_images=True)
    validated = ValidatedCatalog(
        pd.concat([report.accepted, again.accepted], ignore_index=True) if len(again.accepted) else report.accepted,
        sorted([*report.validated.rejects, *again.validated.rejects], key=lambda r: (r.row, r.field)),
        again.validated.waiting,
    )
    return IngestReport(report.source, validated, report.new + again.new, report.changed + again.changed,
                        report.unchanged + again.unchanged, report.kept_newer + again.kept_newer, report.table,
                        report.brand_fingerprints, report.modified_at)


def give_up_waiting(report: IngestReport, waited_s: float) -> None:
    """Rows still waiting on their packshot become rejects that say so."""
    for number, unavailable in sorted(report.validated.waiting.items()):
        sku_id = str(report.table.iloc[number - 1]["sku_id"])
        report.validated.rejects.append(Reject(report.source, number, clip(sku_id), "image", clip(
            f"packshot still unavailable after waiting {waited_s:.0f} s: {unavailable.reason}", 500)))
    report.validated.rejects.sort(key=lambda r: (r.row, r.field))
    report.validated.waiting = {}


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
    return dg.MaterializeResult(metadata=ingest_catalog_file(context.instance, storage, config, context.log))


def ingest_catalog_file(instance: dg.DagsterInstance, storage: StorageResource, config: CatalogConfig, log) -> dict:
    """The one ingestion path, for drops and catalog files alike: validate, copy packshots, upsert the catalog,
    register partitions, wait for late packshots, write the rejects; returns the materialization's metadata."""
    drop = config.drop()
    source = drop.uri if drop else config.source
    wait_s = config.wait_s()
    try:
        report = ingest_catalog(storage, source, config.brands, config.max_pixels,
                                raw=read_drop(drop) if drop else None, instance=instance,
                                modified_at=config.modified_at or None, wait_for_images=wait_s > 0)
    except (CatalogFileError, PartitionCapacityError) as error:
        if drop:
            reason = str(error).removeprefix(f"{source}: ")  # the report's source column names the file
            write_drop_report(drop, [Reject(source, 0, "", "file", reason)], log)
        raise dg.Failure(description=str(error)) from None
    new_partitions = register_skus(instance, list(report.accepted["sku_id"]))
    if report.validated.waiting:
        report, later_partitions = wait_for_packshots(instance, storage, log, config, report, drop, wait_s)
        new_partitions += later_partitions
    write_parquet(storage, REJECTS_KEY, report.validated.rejects_frame())
    if drop and report.validated.rejects:
        write_drop_report(drop, report.validated.rejects, log)
    log_rejects(log, report.validated.rejects)
    return {
        **report.metadata(),
        "new_partitions": len(new_partitions),
        "catalog": dg.MetadataValue.path(storage.url(CATALOG_KEY)),
        **({"drop": drop.uri, "rejects_report": drop.report_uri} if drop else {}),
    }


def log_rejects(log, rejects: list[Reject], shown: int = REJECTS_SHOWN) -> None:
    for reject in rejects[:shown]:
        log.warning(f"{reject.source} row {reject.row} ({reject.sku_id or 'no sku_id'}): {reject.field}: {reject.reason}")
    if len(rejects) > shown:
        log.warning(f"... and {len(rejects) - shown:,} more rejects in {REJECTS_KEY}")


def wait_for_packshots(instance: dg.DagsterInstance, storage: StorageResource, log, config: CatalogConfig,
                       report: IngestReport, drop: Drop | None, wait_s: float) -> tuple[IngestReport, list[str]]:
    """Rows whose packshot was not there are tried again until it lands or `wait_s` passes; the rows that were
    good are already in the catalog and their partitions registered, so their renders need not wait."""
    started = time.monotonic()
    poll_s = min(setting_seconds(PACKSHOT_POLL_SETTING, 30.0), wait_s)
    if drop:  # tell the submitter now which rows wait, not only when the wait is over
        waiting = [Reject(report.source, number, clip(str(report.table.iloc[number - 1]["sku_id"])), "image",
                          f"waiting up to {wait_s:.0f} s for the packshot: {unavailable.reason}")
                   for number, unavailable in sorted(report.validated.waiting.items())]
        write_drop_report(drop, sorted([*report.validated.rejects, *waiting], key=lambda r: (r.row, r.field)),
                          log)
    new_partitions: list[str] = []
    while report.validated.waiting and time.monotonic() - started < wait_s:
        log.info(f"{len(report.validated.waiting):,} rows wait for their packshots "
                 f"({wait_s - (time.monotonic() - started):.0f} s left)")
        time.sleep(max(0.0, min(poll_s, wait_s - (time.monotonic() - started))))
        before = len(report.accepted)
        report = ingest_waiting_rows(storage, report, config.max_pixels)
        new_partitions += register_skus(instance, list(report.accepted["sku_id"].iloc[before:]))
    if report.validated.waiting:
        give_up_waiting(report, wait_s)
    elif drop and not report.validated.rejects:
        write_drop_report(drop, [], log)  # the earlier report listed waiting rows: none is left
    return report, new_partitions


def read_catalog(storage: StorageResource) -> pd.DataFrame:
    if not storage.exists(CATALOG_KEY):
        raise dg.Failure(description="No catalog yet: materialize `sku_catalog` first.")
    return pd.read_parquet(io.BytesIO(storage.read_bytes(CATALOG_KEY)))


def read_catalog_if_any(storage: StorageResource) -> pd.DataFrame | None:
    return read_catalog(storage) if storage.exists(CATALOG_KEY) else None


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
