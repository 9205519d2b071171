"""Sensor `new_sku_drops`: catalog files dropped into an S3 prefix become SKU partitions and runs."""

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import boto3
import dagster as dg
from dagster_aws.s3.sensor import get_objects

from assets.catalog import IngestReport, ingest_catalog
from assets.catalog_rows import CATALOG_FORMATS, CatalogFileError, Reject
from assets.partitions import sku_partitions
from pipelines import settings
from pipelines.jobs import sku_video_job
from resources.storage import StorageResource, write_uri

REJECTS_SUFFIX = ".rejects.csv"
MAX_FILES_PER_TICK = 20


@dataclass
class DropCursor:
    """Newest LastModified seen, and the key -> ETag seen at exactly that time.

    S3 times have 1 s resolution, so a second file (or a rewrite) in the same second is told apart by key
    and ETag; a file rewritten later has a newer LastModified and is seen again.
    """

    last_modified: str | None = None
    seen_at_last: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> "DropCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def is_new(self, obj: dict) -> bool:
        if self.last_modified is None:
            return True
        modified = obj["LastModified"]
        last = datetime.fromisoformat(self.last_modified)
        return modified > last or (modified == last and self.seen_at_last.get(obj["Key"]) != obj.get("ETag"))

    def advance(self, obj: dict) -> None:
        stamp = obj["LastModified"].isoformat()
        if stamp != self.last_modified:
            self.last_modified, self.seen_at_last = stamp, {}
        self.seen_at_last[obj["Key"]] = obj.get("ETag", "")

    def dump(self) -> str:
        return json.dumps(asdict(self))


def is_catalog_file(key: str) -> bool:
    lowered = key.lower()
    return not lowered.endswith(REJECTS_SUFFIX) and any(lowered.endswith(s) for s in CATALOG_FORMATS)


def rejects_csv(rejects: list[Reject]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(Reject.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rejects)
    return buffer.getvalue().encode()


def pending_drops(bucket: str, prefix: str, cursor: DropCursor) -> list[dict]:
    since = datetime.fromisoformat(cursor.last_modified) - timedelta(seconds=1) if cursor.last_modified else None
    objects = get_objects(bucket, prefix, since_last_modified=since, client=boto3.client("s3"))
    return [o for o in objects if cursor.is_new(o)]


def ingest_drop(storage: StorageResource, uri: str, log) -> IngestReport | None:
    """Ingest one dropped file; a bad file or bad rows get a rejects report next to it. None for a bad file."""
    try:
        report = ingest_catalog(storage, uri, settings.brand_kits(), settings.max_pixels())
    except CatalogFileError as error:
        log.warning(f"{uri}: rejected whole file: {error}")
        write_uri(uri + REJECTS_SUFFIX, rejects_csv([Reject(uri, 0, "", "file", str(error))]))
        return None
    if report.validated.rejects:
        write_uri(uri + REJECTS_SUFFIX, rejects_csv(report.validated.rejects))
    log.info(f"{uri}: {len(report.accepted)} accepted ({len(report.new)} new, {len(report.changed)} changed), "
             f"{report.rejected_rows} rejected rows")
    return report


def sku_run_requests(report: IngestReport) -> list[dg.RunRequest]:
    hashes = dict(zip(report.accepted["sku_id"], report.accepted["content_hash"]))
    # The run key is the SKU and its content: the same content never launches twice.
    return [dg.RunRequest(run_key=f"{sku}:{hashes[sku]}", partition_key=sku) for sku in report.to_render]


@dg.sensor(
    name="new_sku_drops",
    job=sku_video_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING if settings.drop_zone() else dg.DefaultSensorStatus.STOPPED,
    description="Catalog files (CSV, Parquet, JSON Lines) dropped into SKUVID_DROP_ZONE become SKU partitions and runs.",
)
def new_sku_drops(context: dg.SensorEvaluationContext, storage: StorageResource):
    zone = settings.drop_zone()
    if zone is None:
        return dg.SkipReason("SKUVID_DROP_ZONE is not set (s3://bucket/prefix/)")
    bucket, prefix = zone
    cursor = DropCursor.parse(context.cursor)
    drops = []
    for obj in pending_drops(bucket, prefix, cursor):
        if len(drops) == MAX_FILES_PER_TICK:
            break
        cursor.advance(obj)
        if is_catalog_file(obj["Key"]):
            drops.append(obj)
    if not drops:
        context.update_cursor(cursor.dump())
        return dg.SkipReason(f"no new catalog files in s3://{bucket}/{prefix}")
    run_requests, asset_events, accepted = [], [], []
    for obj in drops:
        uri = f"s3://{bucket}/{obj['Key']}"
        report = ingest_drop(storage, uri, context.log)
        if report is None:
            continue
        accepted.extend(report.accepted["sku_id"])
        run_requests.extend(sku_run_requests(report))
        asset_events.append(dg.AssetMaterialization("sku_catalog", metadata={**report.metadata(), "drop": uri}))
    existing = set(context.instance.get_dynamic_partitions(sku_partitions.name))
    new_partitions = list(dict.fromkeys(s for s in accepted if s not in existing))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[sku_partitions.build_add_request(new_partitions)] if new_partitions else [],
        asset_events=asset_events,
        cursor=cursor.dump(),
    )

