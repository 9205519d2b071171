"""Schedule `nightly_catalog_refresh`: request one ingest run of SKUVID_CATALOG; it does no ingestion itself.

The run merges what changed in that file into the catalog; a SKU edited since by a newer drop keeps the drop's
edit (newest wins, by each file's modification time). Renders follow from the `sku_renders` sensor, for which the
refresh also opens a new retry window: SKUs that failed their attempts are tried again.
"""

import dagster as dg

from pipelines import settings
from pipelines.jobs import catalog_job
from pipelines.render_requests import NIGHTLY_TAG, TRIGGER_TAG


@dg.schedule(
    name="nightly_catalog_refresh",
    cron_schedule=settings.nightly_cron(),
    execution_timezone="UTC",
    job=catalog_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Ingest SKUVID_CATALOG (newer drop-zone edits win) and open a new retry window for failed SKUs.",
)
def nightly_catalog_refresh(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    config = {"source": settings.catalog_source(), "brands": settings.brand_kits(), "max_pixels": settings.max_pixels()}
    return dg.RunRequest(run_key=f"nightly:{day}", run_config={"ops": {"sku_catalog": {"config": config}}},
                         tags={TRIGGER_TAG: "nightly", NIGHTLY_TAG: day})
