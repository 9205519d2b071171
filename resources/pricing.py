"""The dated price table and the cost record every provider returns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from importlib import resources as package_files
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from videokit.yaml_input import YamlInputError, load_yaml


@dataclass(frozen=True)
class CostRecord:
    """What one render cost. Every field is numeric or a short string, so it plots in the Dagster UI."""

    provider: str
    model: str
    cpu_s: float
    gpu_s: float
    api_usd: float
    cost_usd: float
    wall_s: float
    provider_job_id: str = ""
    attempt: int = 1
    # GPU renders: how the model ran (steps, guidance, LoRA, cache, attention, FP8, compile), fallbacks included.
    runner: dict | None = None

    def to_dict(self) -> dict:
        record = asdict(self)
        if record["runner"] is None:  # only GPU renders say how they ran; other records keep their old shape
            del record["runner"]
        return record


class PriceTableError(ValueError):
    pass


# The GPU a render is priced on when nothing says otherwise (budgets, routing checks, estimates).
DEFAULT_GPU_TYPE = "h100"


@dataclass(frozen=True)
class ProviderCost:
    """What one render by a provider costs: measured or estimated seconds, or an API list price."""

    name: str
    stage: str  # keyframe | clip
    kind: str  # cpu | gpu | api
    cpu_s: float = 0.0
    gpu_s: float = 0.0
    api_usd: float = 0.0
    latency_s: float = 0.0
    estimate: bool = False
    source: str = ""


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    vcpu_hour_usd: float
    gpu_hour_usd: dict[str, float]
    api: dict[str, dict]
    providers: dict[str, ProviderCost]

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "prices.yaml") -> PriceTable:
        try:
            data = load_yaml(text, source=source).data
        except YamlInputError as error:
            raise PriceTableError(str(error)) from None
        try:
            return cls(
                as_of=str(data["as_of"]),
                vcpu_hour_usd=float(data["cpu"]["vcpu_hour_usd"]),
                gpu_hour_usd={name: float(row["usd"]) for name, row in data.get("gpu_hour_usd", {}).items()},
                api=dict(data.get("api", {})),
                providers={name: provider_cost(name, row, data.get("api", {}))
                           for name, row in data.get("providers", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PriceTableError(f"{source}: malformed price table ({error!r})") from None

    def gpu_rate(self, gpu_type: str) -> float:
        try:
            return self.gpu_hour_usd[gpu_type]
        except KeyError:
            raise PriceTableError(f"no GPU price for {gpu_type!r}; known: {', '.join(sorted(self.gpu_hour_usd))}") from None

    def cost(
        self,
        *,
        provider: str,
        model: str,
        cpu_s: float = 0.0,
        gpu_s: float = 0.0,
        gpu_type: str = "h100",
        api_usd: float = 0.0,
        wall_s: float = 0.0,
        provider_job_id: str = "",
        attempt: int = 1,
    ) -> CostRecord:
        gpu_usd = gpu_s / 3600 * self.gpu_rate(gpu_type) if gpu_s else 0.0
        cost_usd = cpu_s / 3600 * self.vcpu_hour_usd + gpu_usd + api_usd
        return CostRecord(
            provider=provider,
            model=model,
            cpu_s=round(cpu_s, 4),
            gpu_s=round(gpu_s, 4),
            api_usd=round(api_usd, 6),
            cost_usd=round(cost_usd, 8),
            wall_s=round(wall_s, 4),
            provider_job_id=provider_job_id,
            attempt=attempt,
        )


def render_cost(cost: ProviderCost, prices: PriceTable, gpu_type: str = DEFAULT_GPU_TYPE) -> float:
    """What one render by a provider costs at the table's rates: CPU and GPU seconds plus the API list price."""
    return cost.cpu_s / 3600 * prices.vcpu_hour_usd + cost.gpu_s / 3600 * prices.gpu_rate(gpu_type) + cost.api_usd


def api_row_usd(row: Mapping, seconds: float) -> float:
    """List price of `seconds` of output by an `api` row: `usd_per_s` x seconds, or, for a model sold by the clip,
    its `usd_per_clip` entry for that length."""
    if "usd_per_clip" in row:
        per_clip = row["usd_per_clip"]
        if round(seconds) not in per_clip:
            sold = ", ".join(f"{length} s" for length in sorted(per_clip))
            raise PriceTableError(f"no list price for a {seconds:g} s clip (sold: {sold})")
        return float(per_clip[round(seconds)])
    return float(row["usd_per_s"]) * seconds


def provider_cost(name: str, row: dict, api: dict) -> ProviderCost:
    kind = row["kind"]
    if kind == "api":
        list_price = api[row["api"]]
        return ProviderCost(name, row["stage"], kind, api_usd=api_row_usd(list_price, float(row["seconds"])),
                            latency_s=float(row.get("latency_s", 0)), source=str(row.get("source", "")))
    return ProviderCost(name, row["stage"], kind, cpu_s=float(row.get("cpu_s", 0)), gpu_s=float(row.get("gpu_s", 0)),
                        estimate=bool(row.get("estimate", False)), source=str(row.get("source", "")))


# Benchmark model names -> the provider whose per-render seconds they measure.
BENCHMARKED_MODELS = {"wan2.1-vace-1.3b": "wan", "cogvideox-5b-i2v": "cogvideox", "flux.1-schnell": "flux"}


def measured_seconds(results: Path) -> dict[str, tuple[str, float, str]]:
    """provider -> (field, seconds per render, source) from the benchmark results in `results`."""
    measured = {}
    cpu_tier = results / "cpu_tier.json"
    if cpu_tier.exists():
        report = json.loads(cpu_tier.read_text())
        for provider, figure in (("compose", "compose_keyframe_cpu_s"), ("motion", "motion_clip_cpu_s")):
            if figure in report["figures"]:
                measured[provider] = ("cpu_s", float(report["figures"][figure]["median"]),
                                      f"measured: {cpu_tier.name}, {report['timestamp']}")
    for gpu_report in sorted(results.glob("gpu_clip-*.json")):
        report = json.loads(gpu_report.read_text())
        if report.get("dry_run"):
            continue
        for row in report["rows"]:
            provider = BENCHMARKED_MODELS.get(row["model"])
            if provider and row["runner"] == "ours":
                seconds = row["seconds_per_call"] + (row["default_steps"] - row["steps"]) * row["seconds_per_step"]
                measured[provider] = ("gpu_s", seconds, f"measured: {gpu_report.name} ({report['gpu']}), "
                                                        f"{report['timestamp']}")
    return measured


def with_measured(table: PriceTable, results: Path) -> PriceTable:
    """The table with each provider's seconds per render replaced by a benchmark's figure where there is one."""
    providers = dict(table.providers)
    for name, (field, seconds, source) in measured_seconds(results).items():
        if name in providers:
            providers[name] = replace(providers[name], **{field: seconds}, estimate=False, source=source)
    return replace(table, providers=providers)


def default_prices_text() -> str:
    return package_files.files("resources").joinpath("prices.yaml").read_text()


class PricesResource(ConfigurableResource):
    """The price table: the one in the package by default, or a YAML file given by path."""

    path: str | None = Field(default=None, description="Path to a price table YAML; default: the packaged one.")
    measured_results: str | None = Field(
        default="bench/results", description="Benchmark results whose measured seconds per render replace estimates."
    )

    @cached_property
    def table(self) -> PriceTable:
        if self.path is None:
            table = PriceTable.from_yaml(default_prices_text(), source="resources/prices.yaml")
        else:
            table = PriceTable.from_yaml(Path(self.path).read_text(), source=self.path)
        if self.measured_results and Path(self.measured_results).is_dir():
            table = with_measured(table, Path(self.measured_results))
        return table
