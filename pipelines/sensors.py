"""Sensor `new_sku_drops`: catalog files dropped into an S3 prefix become SKU partitions and runs."""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

import boto3
import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3.sensor import get_objects

from assets.catalog.rows import CATALOG_FORMATS, CatalogFileError, Reject
from assets.catalog.sku_catalog import IngestReport, ingest_catalog
from assets.partitions import sku_partitions
from pipelines import settings
from pipelines.jobs import sku_video_job
from resources.csv_report import bounded, csv_report
from resources.sources import SourcePolicy
from resources.storage import StorageResource

REJECTS_SUFFIX = ".rejects.csv"
MAX_FILES_PER_TICK = 20
MAX_S3_KEY_BYTES = 1024


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
    return csv_report(list(Reject.__dataclass_fields__), ([getattr(r, f) for f in Reject.__dataclass_fields__]
                                                           for r in rejects))


def pending_drops(bucket: str, prefix: str, cursor: DropCursor) -> list[dict]:
    since = datetime.fromisoformat(cursor.last_modified) - timedelta(seconds=1) if cursor.last_modified else None
    objects = get_objects(bucket, prefix, since_last_modified=since, client=boto3.client("s3"))
    return [o for o in objects if cursor.is_new(o)]


@dataclass(frozen=True)
class Drop:
    """A dropped object, carried as its bucket and exact key: a key may hold `#`, `?`, `%`, `//` or `..`, so it
    is never rebuilt from or parsed as a URL."""

    bucket: str
    key: str
    prefix: str  # the drop zone's prefix, for reports whose natural key would be too long

    @property
    def uri(self) -> str:
        """An s3:// URI whose path is the percent-encoded key: names the drop in logs and reports, and is the
        folder that relative image names in the file resolve against."""
        return f"s3://{self.bucket}/{quote(self.key, safe='/')}"

    @property
    def report_key(self) -> str:
        key = self.key + REJECTS_SUFFIX
        if len(key.encode("utf-8", "surrogatepass")) <= MAX_S3_KEY_BYTES:
            return key
        digest = hashlib.sha256(self.key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.prefix}rejects/{digest}{REJECTS_SUFFIX}"


def read_drop(client, drop: Drop) -> bytes:
    """The object's bytes by bucket and key, within the source size limit; CatalogFileError otherwise."""
    limit = SourcePolicy.from_env().max_bytes
    try:
        response = client.get_object(Bucket=drop.bucket, Key=drop.key)
        if response.get("ContentLength", 0) > limit:
            raise CatalogFileError(f"{drop.uri}: larger than the {limit}-byte limit for an input file")
        data = response["Body"].read(limit + 1)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise CatalogFileError(f"{drop.uri}: cannot be read ({code})") from None
    if len(data) > limit:
        raise CatalogFileError(f"{drop.uri}: larger than the {limit}-byte limit for an input file")
    return data


def write_report(client, drop: Drop, rejects: list[Reject], log) -> None:
    try:
        client.put_object(Bucket=drop.bucket, Key=drop.report_key, Body=rejects_csv(rejects))
    except (ClientError, BotoCoreError) as error:
        log.error(f"{drop.uri}: cannot write its rejects report: {type(error).__name__}")


def ingest_drop(storage: StorageResource, client, drop: Drop, log) -> IngestReport | str:
    """Ingest one dropped file in its own error boundary; a bad file or bad rows get a rejects report next to
    it. Returns the report, or the reason the whole file was rejected."""
    try:
        report = ingest_catalog(storage, drop.uri, settings.brand_kits(), settings.max_pixels(),
                                raw=read_drop(client, drop))
    except CatalogFileError as error:
        reason = str(error).removeprefix(f"{drop.uri}: ")  # the report's source column names the file
    except Exception as error:  # one file's failure must never stop the files after it
        log.exception(f"{drop.uri}: failed while being ingested")
        reason = f"could not be processed ({type(error).__name__})"
    else:
        if report.validated.rejects:
            write_report(client, drop, report.validated.rejects, log)
        log.info(f"{drop.uri}: {len(report.accepted)} accepted ({len(report.new)} new, {len(report.changed)} "
                 f"changed), {report.rejected_rows} rejected rows")
        return report
    log.warning(f"{drop.uri}: rejected whole file: {reason}")
    write_report(client, drop, [Reject(drop.uri, 0, "", "file", reason)], log)
    return reason


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
    client = boto3.client("s3")
    for obj in drops:
        drop = Drop(bucket, obj["Key"], prefix)
        report = ingest_drop(storage, client, drop, context.log)
        if isinstance(report, str):
            asset_events.append(dg.AssetObservation("sku_catalog", metadata={
                "drop": drop.uri, "rejected_file": bounded(report), "rejects_report": f"s3://{bucket}/"
                f"{quote(drop.report_key, safe='/')}"}))
            continue
        accepted.extend(report.accepted["sku_id"])
        run_requests.extend(sku_run_requests(report))
        asset_events.append(dg.AssetMaterialization("sku_catalog", metadata={**report.metadata(), "drop": drop.uri}))
    existing = set(context.instance.get_dynamic_partitions(sku_partitions.name))
    new_partitions = list(dict.fromkeys(s for s in accepted if s not in existing))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[sku_partitions.build_add_request(new_partitions)] if new_partitions else [],
        asset_events=asset_events,
        cursor=cursor.dump(),
    )

