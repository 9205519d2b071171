"""Sensors that only request runs.

`new_sku_drops` lists catalog files dropped into the S3 drop zone and requests one `catalog_job` run per file; it
never reads a file: validation, packshot intake, the rejects report and partition registration happen in that run.
`sku_renders` requests the renders of every accepted SKU whose current content is not published
(pipelines/render_requests.py), one run per SKU or, for many, runs of up to 100 SKUs each.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
from dagster_aws.s3.sensor import get_objects

from assets.catalog.drops import REJECTS_SUFFIX, Drop
from assets.catalog.rows import CATALOG_FORMATS
from assets.catalog.sku_catalog import read_catalog_if_any
from pipelines import settings
from pipelines.executors import distributed
from pipelines.jobs import catalog_job, sku_video_job, sku_video_queue_jobs
from pipelines.launch import queue_chooser
from pipelines.render_requests import TRIGGER_TAG, RenderPolicy, render_decision
from pipelines.resources import build_resources
from resources.storage import StorageResource

__all__ = ["Drop", "DropCursor", "new_sku_drops", "sku_renders"]

MAX_FILES_PER_TICK = 200
DROP_TAG = "skuvid/drop"


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


def pending_drops(bucket: str, prefix: str, cursor: DropCursor) -> list[dict]:
    since = datetime.fromisoformat(cursor.last_modified) - timedelta(seconds=1) if cursor.last_modified else None
    objects = get_objects(bucket, prefix, since_last_modified=since, client=boto3.client("s3"))
    return [o for o in objects if cursor.is_new(o)]


def drop_run_key(obj: dict, bucket: str) -> str:
    """The file's identity (bucket, key, ETag, LastModified): a re-tick never ingests it twice, a rewrite does."""
    identity = json.dumps([bucket, obj["Key"], obj.get("ETag", ""), obj["LastModified"].isoformat()])
    return "drop:" + hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def ingest_request(obj: dict, bucket: str, prefix: str) -> dg.RunRequest:
    drop = Drop(bucket, obj["Key"], prefix)
    config = {
        "source": drop.uri,
        "brands": settings.brand_kits(),
        "max_pixels": settings.max_pixels(),
        "modified_at": obj["LastModified"].astimezone(UTC).isoformat(timespec="microseconds"),
        "drop_bucket": bucket,
        "drop_key": obj["Key"],
        "drop_zone_prefix": prefix,
    }
    return dg.RunRequest(run_key=drop_run_key(obj, bucket), run_config={"ops": {"sku_catalog": {"config": config}}},
                         tags={TRIGGER_TAG: "drop", DROP_TAG: drop.uri[:200]})


@dg.sensor(
    name="new_sku_drops",
    job=catalog_job,
    # A tick only lists the zone (0.04 s with a 100,000-row file in it), so a drop is seen within about 10 s.
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING if settings.drop_zone() else dg.DefaultSensorStatus.STOPPED,
    description="Each catalog file (CSV, Parquet, JSON Lines) dropped into SKUVID_DROP_ZONE gets one catalog "
                "ingest run; the sensor never reads the files.",
)
def new_sku_drops(context: dg.SensorEvaluationContext):
    zone = settings.drop_zone()
    if zone is None:
        return dg.SkipReason("SKUVID_DROP_ZONE is not set (s3://bucket/prefix/)")
    bucket, prefix = zone
    cursor = DropCursor.parse(context.cursor)
    requests = []
    for obj in pending_drops(bucket, prefix, cursor):
        if len(requests) == MAX_FILES_PER_TICK:
            break
        cursor.advance(obj)
        if is_catalog_file(obj["Key"]):
            requests.append(ingest_request(obj, bucket, prefix))
    if not requests:
        context.update_cursor(cursor.dump())
        return dg.SkipReason(f"no new catalog files in s3://{bucket}/{prefix}")
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())


@dg.sensor(
    name="sku_renders",
    # On Celery workers each SKU runs as the job of the queue its route asks for (pipelines/launch.py).
    jobs=[sku_video_job, *sku_video_queue_jobs()],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a render of every accepted SKU whose current content is not published (new, changed or "
                "failed; failed ones after a backoff, a few times per nightly window), batched when many.",
)
def sku_renders(context: dg.SensorEvaluationContext, storage: StorageResource):
    catalog = read_catalog_if_any(storage)
    if catalog is None:
        return dg.SkipReason("no catalog yet")
    policy = RenderPolicy.from_env()
    queue_of = queue_chooser(catalog, build_resources()) if distributed() else None
    decision = render_decision(context.instance, storage, catalog, job_name=sku_video_job.name, policy=policy,
                               queue_of=queue_of)
    if decision.gave_up:
        context.log.warning(f"{len(decision.gave_up):,} SKUs failed {policy.max_attempts} times and wait for the "
                            f"next nightly refresh: {', '.join(decision.gave_up[:20])}")
    if not decision.run_requests:
        return dg.SkipReason(decision.summary())
    context.log.info(decision.summary())
    return dg.SensorResult(run_requests=decision.run_requests)
