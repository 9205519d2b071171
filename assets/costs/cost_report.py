"""Cost you can see: the pre-flight estimate for the current catalog, and the report of what was spent."""

import base64
import io
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.catalog.sku_catalog import read_catalog, sku_catalog
from assets.costs.estimate import Capacity, Estimate, estimate_backfill
from assets.partitions import sku_partitions
from assets.sku_video.clips import CLIP_PROVIDERS
from assets.sku_video.keyframes import KEYFRAME_PROVIDERS
from resources import storage_keys
from resources.ledger import LedgerResource
from resources.pricing import PricesResource
from resources.provider_limits import LimitsError, load_limits
from resources.providers.emulation import EMULATED_SCOPE
from resources.routing import RoutingResource, load_policy
from resources.storage import StorageResource

REPORT_CHART_KEY = storage_keys.COST_REPORT_CHART


class EstimateConfig(dg.Config):
    gpus: int = Field(default=1, description="GPUs rendering in parallel.")
    gpu_type: str = Field(default="h100", description="GPU row of the price table.")
    api_concurrency: int = Field(
        default=4, description="Concurrent jobs on an API account without limits in resources/provider_limits.yaml."
    )
    account_tiers: dict[str, int] = Field(
        default_factory=dict, description="Usage tier per API account (e.g. {runway: 5}); default: the limits file's."
    )
    cpu_workers: int = Field(default=2, description="CPU workers for the CPU tier.")
    retake_rate: float = Field(default=0.0, description="Expected QA retakes per clip.")


def estimate_markdown(estimate: Estimate) -> str:
    rows = [{"provider": line.provider, "stage": line.stage, "renders": round(line.renders),
             "GPU-hours": round(line.gpu_hours, 2), "API $": round(line.api_usd, 2), "total $": round(line.total_usd, 2),
             "$ per render": round(line.usd_per_render, 4), "wall-clock h": round(line.wall_s / 3600, 2),
             "basis": line.limit or ("estimate" if line.estimate else "measured/list")} for line in estimate.lines]
    rows += [{"provider": name, "stage": "clip", "renders": estimate.skus, "total $": round(b["total_usd"], 2),
              "$ per render": round(b["usd_per_clip"], 4), "wall-clock h": round(b["wall_s"] / 3600, 2),
              "basis": f"hybrid saves {b['hybrid_saving_pct']:.1f}%"} for name, b in estimate.baselines.items()]
    return pd.DataFrame(rows).astype(object).fillna("").to_markdown(index=False)


@dg.asset(
    deps=[sku_catalog],
    group_name="costs",
    kinds={"python"},
    description="What rendering the whole catalog would cost and take, per provider, against all-Runway and all-Kling.",
)
def cost_estimate(config: EstimateConfig, storage: StorageResource, prices: PricesResource,
                  routing: RoutingResource) -> dg.MaterializeResult:
    table = prices.table
    catalog = read_catalog(storage)
    try:
        limits = load_limits().with_tiers(config.account_tiers)
    except LimitsError as error:
        raise dg.Failure(description=str(error)) from None
    capacity = Capacity(gpus=config.gpus, gpu_type=config.gpu_type, api_concurrency=config.api_concurrency,
                        cpu_workers=config.cpu_workers, retake_rate=config.retake_rate, limits=limits)
    estimate = estimate_backfill(catalog.to_dict("records"), load_policy(table, routing.path), table, capacity)
    runway = estimate.baselines.get("all runway", {})
    return dg.MaterializeResult(
        metadata={
            "skus": estimate.skus,
            "heroes": estimate.heroes,
            "total_usd": dg.MetadataValue.float(estimate.total_usd),
            "usd_per_clip": dg.MetadataValue.float(estimate.usd_per_clip),
            "wall_clock_h": dg.MetadataValue.float(estimate.wall_s / 3600),
            "wall_clock_days": dg.MetadataValue.float(estimate.wall_s / 86_400),
            "saving_vs_all_runway_pct": dg.MetadataValue.float(runway.get("hybrid_saving_pct", 0.0)),
            "prices_as_of": table.as_of,
            "estimate": dg.MetadataValue.md(estimate_markdown(estimate)),
        }
    )


def charges_frame(ledger: LedgerResource, catalog: pd.DataFrame) -> pd.DataFrame:
    """Every charge in the ledger; `emulated` marks list prices booked for an emulator's work (no money spent)."""
    frame = pd.DataFrame([asdict(c) for c in ledger.charges()],
                         columns=["job_key", "provider", "usd", "day", "scopes", "sku_id", "created_at"])
    tiers = dict(zip(catalog["sku_id"], catalog["tier"], strict=True))
    frame["tier"] = [tiers.get(sku, "unknown") for sku in frame["sku_id"]]
    frame["emulated"] = [EMULATED_SCOPE in (scopes or ()) for scopes in frame["scopes"]]
    return frame


def cost_chart(frame: pd.DataFrame, per_clip: pd.Series) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_provider, distribution) = plt.subplots(1, 2, figsize=(10, 4))
    totals = frame.groupby("provider")["usd"].sum().sort_values()
    by_provider.barh(totals.index, totals.values, color="#1F4E5F")
    by_provider.set_xlabel("USD")
    by_provider.set_title("Spend by provider")
    distribution.hist(per_clip.values, bins=min(30, max(5, len(per_clip) // 3)), color="#C8553D")
    distribution.set_xlabel("USD per SKU (keyframe + clip attempts)")
    distribution.set_ylabel("SKUs")
    distribution.set_title("Cost per clip")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
# How far back the newest backfill is looked for: its runs are among the newest runs while it is recent.
RECENT_RUNS = 1000


def newest_backfill_runs(instance: dg.DagsterInstance) -> tuple[str, list[dg.RunRecord]] | None:
    """The newest backfill among the recent runs, and all of its runs (public run queries and run tags only)."""
    recent = instance.get_run_records(limit=RECENT_RUNS)
    backfill_id = next((r.dagster_run.tags[BACKFILL_TAG] for r in recent if BACKFILL_TAG in r.dagster_run.tags), None)
    if backfill_id is None:
        return None
    return backfill_id, list(instance.get_run_records(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id})))


def run_skus(instance: dg.DagsterInstance, records: list[dg.RunRecord]) -> set[str]:
    """The SKUs the runs rendered: a run's partition tag, or every SKU of its partition range (batched runs)."""
    skus: set[str] = set()
    order: list[str] | None = None
    for record in records:
        tags = record.dagster_run.tags
        if PARTITION_TAG in tags:
            skus.add(tags[PARTITION_TAG])
        elif all(tag in tags for tag in RANGE_TAGS):
            order = order if order is not None else list(instance.get_dynamic_partitions(sku_partitions.name))
            start, end = (tags[tag] for tag in RANGE_TAGS)
            if start in order and end in order:
                skus.update(order[order.index(start):order.index(end) + 1])
    return skus


def last_backfill_comparison(instance: dg.DagsterInstance, frame: pd.DataFrame, catalog: pd.DataFrame,
                             estimate_for: Callable[[list[dict]], Estimate]) -> dict | None:
    """Estimate against actual for the SKUs of the newest backfill, counting charges made since its first run."""
    found = newest_backfill_runs(instance)
    if found is None:
        return None
    backfill_id, records = found
    skus = sorted(run_skus(instance, records))
    if not skus:
        return None
    started = datetime.fromtimestamp(min(record.create_timestamp.timestamp() for record in records), UTC)
    created = pd.to_datetime(frame["created_at"], utc=True)
    actual = float(frame[frame["sku_id"].isin(skus) & (created >= started)]["usd"].sum())
    estimate = estimate_for(catalog[catalog["sku_id"].isin(skus)].to_dict("records"))
    return {"backfill": backfill_id, "skus": len(skus), "estimate_usd": estimate.total_usd,
            "actual_usd": actual, "actual_vs_estimate_pct": 100 * (actual / estimate.total_usd - 1)
            if estimate.total_usd else 0.0}


@dg.asset(
    deps=["published_video"],
    group_name="costs",
    kinds={"python"},
    description="What was spent, from the ledger: by provider, tier and day, cost per clip, and estimate against "
    "actual for the last backfill, with a chart.",
    required_resource_keys={"storage", "prices", "routing", "ledger", *CLIP_PROVIDERS, *KEYFRAME_PROVIDERS},
)
def cost_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    resources = context.resources
    storage: StorageResource = resources.storage
    catalog = read_catalog(storage)
    everything = charges_frame(resources.ledger, catalog)
    emulated = everything[everything["emulated"]]
    frame = everything[~everything["emulated"]]
    emulated_metadata = {"emulated_usd": dg.MetadataValue.float(float(emulated["usd"].sum())),
                         "emulated_charges": len(emulated)}
    emulated_note = (f"\n\n{len(emulated)} emulated API jobs (list price ${emulated['usd'].sum():.4f}) are in the "
                     "ledger and not in these totals: a local emulator did that work and no money was spent."
                     if len(emulated) else "")
    if frame.empty:
        return dg.MaterializeResult(metadata={"total_usd": dg.MetadataValue.float(0.0), "charges": 0,
                                              **emulated_metadata,
                                              "report": dg.MetadataValue.md("No charges in the ledger yet." + emulated_note)})
    per_clip = frame.dropna(subset=["sku_id"]).groupby("sku_id")["usd"].sum()
    chart = cost_chart(frame, per_clip)
    storage.write_bytes(REPORT_CHART_KEY, chart)
    table, policy = resources.prices.table, load_policy(resources.prices.table, resources.routing.path)

    def estimate_for(rows: list[dict]) -> Estimate:
        return estimate_backfill(rows, policy, table, available=lambda p: getattr(resources, p).availability().available)

    comparison = last_backfill_comparison(context.instance, frame, catalog, estimate_for)
    sections = {
        "By provider": frame.groupby("provider")["usd"].agg(["count", "sum"]).rename(columns={"sum": "usd"}),
        "By tier": frame.groupby("tier")["usd"].agg(["count", "sum"]).rename(columns={"sum": "usd"}),
        "By day": frame.groupby("day")["usd"].agg(["count", "sum"]).rename(columns={"sum": "usd"}),
    }
    report = "\n\n".join(f"**{title}**\n\n{part.round(6).to_markdown()}" for title, part in sections.items())
    if comparison:
        report += "\n\n**Last backfill: estimate against actual**\n\n" + pd.DataFrame([comparison]).round(4).to_markdown(index=False)
    report += emulated_note
    image = base64.b64encode(chart).decode()
    return dg.MaterializeResult(
        metadata={
            "total_usd": dg.MetadataValue.float(float(frame["usd"].sum())),
            "charges": len(frame),
            **emulated_metadata,
            "skus": len(per_clip),
            "usd_per_clip_p50": dg.MetadataValue.float(float(per_clip.quantile(0.5))),
            "usd_per_clip_p90": dg.MetadataValue.float(float(per_clip.quantile(0.9))),
            "usd_per_clip_max": dg.MetadataValue.float(float(per_clip.max())),
            **{f"usd_{provider}": dg.MetadataValue.float(float(usd))
               for provider, usd in frame.groupby("provider")["usd"].sum().items()},
            **({"last_backfill_estimate_usd": dg.MetadataValue.float(comparison["estimate_usd"]),
                "last_backfill_actual_usd": dg.MetadataValue.float(comparison["actual_usd"])} if comparison else {}),
            "report": dg.MetadataValue.md(report + f"\n\n![cost chart](data:image/png;base64,{image})"),
            "chart": dg.MetadataValue.path(storage.url(REPORT_CHART_KEY)),
        }
    )
