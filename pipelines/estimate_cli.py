"""`skuvid estimate`: the pre-flight table for a backfill, as text for people or JSON for machines."""

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from assets.catalog.rows import TIERS, read_table
from assets.costs.estimate import SECONDS_PER_DAY, Capacity, Estimate, estimate_backfill, synthetic_catalog
from resources.pricing import PricesResource
from resources.provider_limits import LimitsError, load_limits
from resources.routing import load_policy


def hours(seconds: float) -> str:
    if seconds >= 2 * SECONDS_PER_DAY:
        return f"{seconds / SECONDS_PER_DAY:.1f} days"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def estimate_table(estimate: Estimate) -> Table:
    table = Table(title=f"Estimate for {estimate.skus:,} SKUs ({estimate.heroes:,} heroes)")
    for column in ("provider", "stage", "renders", "GPU-hours", "API $", "total $", "$ per render", "wall-clock", "basis"):
        table.add_column(column, justify="left" if column in ("provider", "stage", "basis") else "right")
    for line in estimate.lines:
        table.add_row(line.provider, line.stage, f"{line.renders:,.0f}", f"{line.gpu_hours:,.2f}", f"{line.api_usd:,.2f}",
                      f"{line.total_usd:,.2f}", f"{line.usd_per_render:.4f}", hours(line.wall_s),
                      line.limit or ("estimate" if line.estimate else "measured/list"))
    table.add_section()
    table.add_row("hybrid total", "", f"{estimate.skus:,}", "", "", f"{estimate.total_usd:,.2f}",
                  f"{estimate.usd_per_clip:.4f}", hours(estimate.wall_s), "per clip")
    for name, baseline in estimate.baselines.items():
        table.add_row(name, "", f"{estimate.skus:,}", "", "", f"{baseline['total_usd']:,.2f}",
                      f"{baseline['usd_per_clip']:.4f}", hours(baseline["wall_s"]),
                      f"hybrid saves {baseline['hybrid_saving_pct']:.1f}%")
    return table


def catalog_rows(catalog: str | None, synthetic: int | None, hero_share: float) -> list[dict]:
    if synthetic:
        return synthetic_catalog(synthetic, hero_share)
    if catalog is None:
        raise SystemExit("give a CATALOG file or --synthetic N")
    rows = read_table(Path(catalog).read_bytes(), catalog).to_dict("records")
    return [row for row in rows if row["tier"] in TIERS]


def run_estimate(args, console: Console) -> int:
    prices = PricesResource(path=args.prices).table
    policy = load_policy(prices, args.policy)
    rows = catalog_rows(args.catalog, args.synthetic, args.hero_share)
    try:
        limits = None if args.no_limits else load_limits(args.limits).with_tiers(dict(args.tier))
    except LimitsError as error:
        raise SystemExit(str(error)) from None
    capacity = Capacity(gpus=args.gpus, gpu_type=args.gpu_type, api_concurrency=args.api_concurrency,
                        cpu_workers=args.cpu_workers, retake_rate=args.retake_rate, limits=limits)
    estimate = estimate_backfill(rows, policy, prices, capacity)
    if args.json:
        print(json.dumps(estimate.to_dict(), indent=2))
    else:
        console.print(estimate_table(estimate))
        console.print(f"prices as of {prices.as_of}; policy {policy.source}; {capacity.assumptions()}")
        for limit in estimate.assumptions["api_limits"]:
            console.print(f"API account limit: {limit}")
    return 0


def account_tier(text: str) -> tuple[str, int]:
    account, _, tier = text.partition("=")
    if not (account and tier.isdigit()):
        raise argparse.ArgumentTypeError(f"expected ACCOUNT=TIER such as runway=5, not {text!r}")
    return account, int(tier)


def add_estimate_parser(commands) -> None:
    parser = commands.add_parser("estimate", help="What a backfill will cost and how long it will take.")
    parser.add_argument("catalog", nargs="?", help="catalog file (CSV, Parquet, JSON Lines)")
    parser.add_argument("--synthetic", type=int, help="estimate a generated catalog of this many SKUs instead")
    parser.add_argument("--hero-share", type=float, default=0.1, help="share of heroes in --synthetic (default 0.1)")
    parser.add_argument("--policy", help="routing policy YAML (default: the packaged one)")
    parser.add_argument("--prices", help="price table YAML (default: the packaged one)")
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--gpu-type", default="h100")
    parser.add_argument("--api-concurrency", type=int, default=4,
                        help="tasks at a time on an API account with no limits in the limits file")
    parser.add_argument("--limits", help="API account limits YAML (default: resources/provider_limits.yaml)")
    parser.add_argument("--tier", type=account_tier, action="append", default=[], metavar="ACCOUNT=N",
                        help="usage tier of an API account, e.g. --tier runway=5 (repeatable)")
    parser.add_argument("--no-limits", action="store_true", help="ignore account limits (concurrency only)")
    parser.add_argument("--cpu-workers", type=int, default=2)
    parser.add_argument("--retake-rate", type=float, default=0.0, help="expected QA retakes per clip")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
