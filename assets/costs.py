"""Cost you can see: the pre-flight estimate for the current catalog, in the UI as an asset."""

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.catalog import read_catalog, sku_catalog
from assets.cost_estimate import Capacity, Estimate, estimate_backfill, load_policy
from resources.pricing import PricesResource
from resources.routing import RoutingResource
from resources.storage import StorageResource


class EstimateConfig(dg.Config):
    gpus: int = Field(default=1, description="GPUs rendering in parallel.")
    gpu_type: str = Field(default="h100", description="GPU row of the price table.")
    api_concurrency: int = Field(default=4, description="Concurrent jobs per API provider (organisation limit).")
    cpu_workers: int = Field(default=2, description="CPU workers for the CPU tier.")
    retake_rate: float = Field(default=0.0, description="Expected QA retakes per clip.")


def estimate_markdown(estimate: Estimate) -> str:
    rows = [{"provider": line.provider, "stage": line.stage, "renders": round(line.renders),
             "GPU-hours": round(line.gpu_hours, 2), "API $": round(line.api_usd, 2), "total $": round(line.total_usd, 2),
             "$ per render": round(line.usd_per_render, 4), "wall-clock h": round(line.wall_s / 3600, 2),
             "basis": "estimate" if line.estimate else "measured/list"} for line in estimate.lines]
    rows += [{"provider": name, "stage": "clip", "renders": estimate.skus, "total $": round(b["total_usd"], 2),
              "$ per render": round(b["usd_per_clip"], 4), "wall-clock h": round(b["wall_s"] / 3600, 2),
              "basis": f"hybrid saves {b['hybrid_saving_pct']:.1f}%"} for name, b in estimate.baselines.items()]
    return pd.DataFrame(rows).fillna("").to_markdown(index=False)


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
    capacity = Capacity(gpus=config.gpus, gpu_type=config.gpu_type, api_concurrency=config.api_concurrency,
                        cpu_workers=config.cpu_workers, retake_rate=config.retake_rate)
    estimate = estimate_backfill(catalog.to_dict("records"), load_policy(table, routing.path), table, capacity)
    runway = estimate.baselines.get("all runway", {})
    return dg.MaterializeResult(
        metadata={
            "skus": estimate.skus,
            "heroes": estimate.heroes,
            "total_usd": dg.MetadataValue.float(estimate.total_usd),
            "usd_per_clip": dg.MetadataValue.float(estimate.usd_per_clip),
            "wall_clock_h": dg.MetadataValue.float(estimate.wall_s / 3600),
            "saving_vs_all_runway_pct": dg.MetadataValue.float(runway.get("hybrid_saving_pct", 0.0)),
            "prices_as_of": table.as_of,
            "estimate": dg.MetadataValue.md(estimate_markdown(estimate)),
        }
    )
