"""Schedule `nightly_catalog_refresh`: reload the catalog and re-render only what changed or failed."""

import dagster as dg

from assets.catalog.rows import CatalogFileError
from assets.catalog.sku_catalog import ingest_catalog, read_catalog, register_skus
from assets.sku_video.publish import published_versions
from pipelines import settings
from pipelines.jobs import sku_video_job
from resources.storage import StorageResource

IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


def skus_in_flight(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=sku_video_job.name, statuses=IN_FLIGHT))
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}


def refresh_requests(instance: dg.DagsterInstance, storage: StorageResource, day: str) -> list[dg.RunRequest]:
    """Runs for new and changed SKUs, and for SKUs whose current content is not published (last attempt failed)."""
    report = ingest_catalog(storage, settings.catalog_source(), settings.brand_kits(), settings.max_pixels())
    register_skus(instance, list(report.accepted["sku_id"]))
    instance.report_runless_asset_event(
        dg.AssetMaterialization("sku_catalog", metadata={**report.metadata(), "refresh": day})
    )
    catalog = read_catalog(storage)
    hashes = dict(zip(catalog["sku_id"], catalog["content_hash"]))
    changed = set(report.to_render)
    published = published_versions(storage)
    busy = skus_in_flight(instance)
    retry = [s for s, h in hashes.items() if s not in changed and s not in busy and (s, h) not in published]
    requests = [dg.RunRequest(run_key=f"{s}:{hashes[s]}", partition_key=s) for s in report.to_render]
    # A retry gets the day in its key: the first attempt already used the plain key.
    requests += [dg.RunRequest(run_key=f"{s}:{hashes[s]}:retry-{day}", partition_key=s) for s in retry]
    return requests


@dg.schedule(
    name="nightly_catalog_refresh",
    cron_schedule=settings.nightly_cron(),
    execution_timezone="UTC",
    job=sku_video_job,
    description="Reload the catalog; render new and changed SKUs and retry failed ones. Unchanged SKUs launch nothing.",
)
def nightly_catalog_refresh(context: dg.ScheduleEvaluationContext, storage: StorageResource):
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    try:
        requests = refresh_requests(context.instance, storage, day)
    except CatalogFileError as error:
        return dg.SkipReason(f"catalog not refreshed: {error}")
    if not requests:
        return dg.SkipReason("catalog unchanged and every SKU published: nothing to render")
    context.log.info(f"nightly refresh: {len(requests)} SKU runs requested")
    return requests

