"""What a backfill will cost and how long it will take, before it runs: per provider, against single-API baselines."""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

from resources.pricing import DEFAULT_GPU_TYPE, PriceTable, render_cost
from resources.provider_limits import ProviderLimits, account_of
from resources.routing import RoutingPolicy, first_available

BASELINES = ("runway", "kling")
SECONDS_PER_DAY = 86_400


@dataclass
class ProviderLine:
    provider: str
    stage: str
    kind: str
    renders: float = 0.0
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    api_usd: float = 0.0
    total_usd: float = 0.0
    wall_s: float = 0.0
    estimate: bool = False
    busy_s: float = 0.0  # API lines: task-seconds of provider latency the renders occupy
    limit: str = ""  # API lines: the account limit the wall-clock time assumes

    @property
    def usd_per_render(self) -> float:
        return self.total_usd / self.renders if self.renders else 0.0


@dataclass
class Estimate:
    skus: int
    heroes: int
    lines: list[ProviderLine]
    total_usd: float
    wall_s: float
    baselines: dict[str, dict] = field(default_factory=dict)
    assumptions: dict = field(default_factory=dict)

    @property
    def usd_per_clip(self) -> float:
        return self.total_usd / self.skus if self.skus else 0.0

    def to_dict(self) -> dict:
        lines = [{**asdict(line), "usd_per_render": line.usd_per_render} for line in self.lines]
        return {"skus": self.skus, "heroes": self.heroes, "total_usd": self.total_usd, "usd_per_clip": self.usd_per_clip,
                "wall_s": self.wall_s, "providers": lines, "baselines": self.baselines, "assumptions": self.assumptions}


@dataclass(frozen=True)
class Capacity:
    gpus: int = 1
    gpu_type: str = DEFAULT_GPU_TYPE
    api_concurrency: int = 4  # tasks at a time on an API account without limits of its own
    cpu_workers: int = 2
    retake_rate: float = 0.0  # expected extra renders per clip from QA retakes
    limits: ProviderLimits | None = None  # concurrency and daily caps per API account (usage tiers)

    def assumptions(self) -> dict:
        plain = {key: value for key, value in asdict(self).items() if key != "limits"}
        return {**plain, "limits": self.limits.source if self.limits else "none"}


def api_wall_s(lines: list[ProviderLine], capacity: Capacity) -> None:
    """Wall-clock time of the API lines, per account: tasks run `concurrency` at a time, and past a daily cap
    the rest waits for the next day (a cap binds however many workers there are)."""
    accounts: dict[str, list[ProviderLine]] = defaultdict(list)
    for line in lines:
        accounts[account_of(line.provider)].append(line)
    for account, group in accounts.items():
        limit = capacity.limits.for_account(account) if capacity.limits else None
        concurrency = limit.concurrency if limit else capacity.api_concurrency
        renders, busy_s = sum(line.renders for line in group), sum(line.busy_s for line in group)
        wall = busy_s / concurrency
        cap = limit.daily_generations if limit else None
        if cap and renders > cap:
            full_days = math.ceil(renders / cap) - 1
            last_day_busy_s = busy_s * (renders - full_days * cap) / renders
            wall = max(wall, full_days * SECONDS_PER_DAY + last_day_busy_s / concurrency)
        for line in group:
            line.wall_s = wall
            line.limit = limit.describe() if limit else f"{account}: {concurrency} at a time, no daily cap"


def tally(routes: Iterable[tuple[str, str, float]], prices: PriceTable, capacity: Capacity) -> tuple[list[ProviderLine], float]:
    """Lines per provider and the wall-clock time, from (stage, provider, renders) triples.

    Pools run side by side: GPU work shares the GPUs, CPU work the CPU workers, and each API account runs as
    many tasks at a time and as many a day as its usage tier allows (`api_wall_s`).
    """
    lines: dict[str, ProviderLine] = {}
    for stage, provider, renders in routes:
        cost = prices.providers[provider]
        line = lines.setdefault(provider, ProviderLine(provider, stage, cost.kind, estimate=cost.estimate))
        line.renders += renders
        line.cpu_hours += renders * cost.cpu_s / 3600
        line.gpu_hours += renders * cost.gpu_s / 3600
        line.api_usd += renders * cost.api_usd
        line.total_usd += renders * render_cost(cost, prices, capacity.gpu_type)
        line.busy_s += renders * cost.latency_s if cost.kind == "api" else 0.0
    gpu_wall = sum(line.gpu_hours for line in lines.values()) * 3600 / capacity.gpus
    cpu_wall = sum(line.cpu_hours for line in lines.values()) * 3600 / capacity.cpu_workers
    for line in lines.values():
        if line.kind == "gpu":
            line.wall_s = line.gpu_hours * 3600 / capacity.gpus
        elif line.kind == "cpu":
            line.wall_s = line.cpu_hours * 3600 / capacity.cpu_workers
    api_wall_s([line for line in lines.values() if line.kind == "api"], capacity)
    api_wall = max((line.wall_s for line in lines.values() if line.kind == "api"), default=0.0)
    return sorted(lines.values(), key=lambda line: (line.stage, -line.total_usd)), max(gpu_wall, cpu_wall, api_wall)


def estimate_backfill(
    skus: Iterable[Mapping[str, str]],
    policy: RoutingPolicy,
    prices: PriceTable,
    capacity: Capacity = Capacity(),
    available: Callable[[str], bool] = lambda provider: True,
) -> Estimate:
    """Route every SKU to the first available provider of its chains and add up what the renders cost."""
    counts: dict[tuple[str, str], float] = defaultdict(float)
    rows = list(skus)
    # A SKU listing several aspects renders a keyframe and a clip per aspect.
    renditions = [max(1, len(str(sku.get("aspects") or "").split())) for sku in rows]
    for sku, aspects in zip(rows, renditions):
        route = policy.route(sku)
        counts[("keyframe", first_available(route.keyframe, available))] += aspects
        counts[("clip", first_available(route.clip, available))] += aspects * (1 + capacity.retake_rate)
    lines, wall = tally(((stage, p, n) for (stage, p), n in counts.items()), prices, capacity)
    keyframe_counts = [(stage, p, n) for (stage, p), n in counts.items() if stage == "keyframe"]
    baselines = {}
    total = sum(line.total_usd for line in lines)
    for api in BASELINES:
        if api not in prices.providers:
            continue
        base_lines, base_wall = tally([*keyframe_counts, ("clip", api, sum(renditions) * (1 + capacity.retake_rate))],
                                      prices, capacity)
        base_total = sum(line.total_usd for line in base_lines)
        baselines[f"all {api}"] = {
            "total_usd": base_total,
            "usd_per_clip": base_total / len(rows) if rows else 0.0,
            "wall_s": base_wall,
            "hybrid_saving_pct": 100 * (1 - total / base_total) if base_total else 0.0,
        }
    return Estimate(
        skus=len(rows),
        heroes=sum(1 for sku in rows if sku.get("tier") == "hero"),
        lines=lines,
        total_usd=total,
        wall_s=wall,
        baselines=baselines,
        assumptions={**capacity.assumptions(), "prices_as_of": prices.as_of, "policy": policy.source,
                     "api_limits": sorted({line.limit for line in lines if line.limit})},
    )


SYNTHETIC_CATEGORIES = ("beverage", "kitchen", "footwear", "audio", "accessories", "home")


def synthetic_catalog(skus: int, hero_share: float) -> list[dict[str, str]]:
    """A catalog of `skus` rows where every 1/hero_share-th SKU is a hero, for "what would N videos cost?"."""
    if not 0 <= hero_share <= 1:
        raise ValueError(f"hero share {hero_share} must be between 0 and 1")
    heroes = round(skus * hero_share)
    return [
        {"sku_id": f"SYN-{i:06d}", "tier": "hero" if i * heroes // skus != (i + 1) * heroes // skus else "bulk",
         "category": SYNTHETIC_CATEGORIES[i % len(SYNTHETIC_CATEGORIES)], "brand": "synthetic", "aspect": "16:9"}
        for i in range(skus)
    ]
