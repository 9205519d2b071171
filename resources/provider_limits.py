"""What an API account may run at once and per day, by usage tier: `resources/provider_limits.yaml`.

Only estimates read these: the providers themselves enforce their limits (429s, THROTTLED), which the job loop
waits out. A tier's figures may be ranges (they differ by model); an account takes the low end unless it says
`use: high`, or sets its own `concurrency` / `daily_generations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from resources.providers.api.fal_catalog import packaged_catalog
from videokit.yaml_input import YamlInputError, load_yaml

AccountName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Count = Annotated[int, Field(ge=1, le=10_000_000)]


class LimitsError(ValueError):
    pass


class TierRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: tuple[Count, Count]
    daily_generations: tuple[Count, Count] | None = None
    source: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _ranges_ascend(self) -> TierRow:
        for name in ("concurrency", "daily_generations"):
            low_high = getattr(self, name)
            if low_high is not None and low_high[0] > low_high[1]:
                raise ValueError(f"{name} range {list(low_high)} runs backwards")
        return self


class AccountSetting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: Annotated[int, Field(ge=1, le=99)] | None = None
    use: Literal["low", "high"] = "low"
    concurrency: Count | None = None
    daily_generations: Count | None = None


class LimitsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: dict[AccountName, dict[Annotated[int, Field(ge=1, le=99)], TierRow]] = Field(default_factory=dict)
    accounts: dict[AccountName, AccountSetting] = Field(default_factory=dict)


@dataclass(frozen=True)
class AccountLimit:
    """What one account may run: tasks at a time, and generations a day (None: no daily cap)."""

    account: str
    concurrency: int
    daily_generations: int | None
    basis: str

    def describe(self) -> str:
        per_day = f", {self.daily_generations:,}/day" if self.daily_generations else ""
        return f"{self.basis}: {self.concurrency} at a time{per_day}"


def account_of(provider: str) -> str:
    """The account a provider's generations count against: every fal model shares the fal account."""
    return "fal" if provider in packaged_catalog() else provider


@dataclass(frozen=True)
class ProviderLimits:
    tiers: Mapping[str, Mapping[int, TierRow]]
    accounts: Mapping[str, AccountSetting]
    source: str

    def with_tiers(self, chosen: Mapping[str, int]) -> ProviderLimits:
        """These limits with the given accounts moved to the given tiers (`skuvid estimate --tier runway=5`)."""
        accounts = dict(self.accounts)
        for account, tier in chosen.items():
            if tier not in self.tiers.get(account, {}):
                known = ", ".join(str(t) for t in sorted(self.tiers.get(account, {}))) or "none"
                raise LimitsError(f"{self.source}: {account} has no tier {tier} (known: {known})")
            accounts[account] = AccountSetting(tier=tier, use=accounts.get(account, AccountSetting()).use)
        return ProviderLimits(self.tiers, accounts, self.source)

    def for_account(self, account: str) -> AccountLimit | None:
        setting = self.accounts.get(account)
        if setting is None:
            return None
        row = self.tiers.get(account, {}).get(setting.tier) if setting.tier is not None else None
        if setting.tier is not None and row is None:
            raise LimitsError(
                f"{self.source}: accounts.{account} names tier {setting.tier}, which tiers.{account} lacks"
            )
        pick = 1 if setting.use == "high" else 0
        concurrency = setting.concurrency or (row.concurrency[pick] if row else None)
        if concurrency is None:
            raise LimitsError(f"{self.source}: accounts.{account} needs a tier or a concurrency")
        daily = setting.daily_generations or (
            row.daily_generations[pick] if row and row.daily_generations else None
        )
        basis = f"{account} tier {setting.tier}" if row else f"{account} account"
        return AccountLimit(account, concurrency, daily, basis)


def parse_limits(text: str | bytes, *, source: str) -> ProviderLimits:
    try:
        document = load_yaml(text, source=source, max_bytes=64 * 1024, max_depth=8, max_nodes=5000)
    except YamlInputError as error:
        raise LimitsError(str(error)) from None
    try:
        parsed = LimitsFile.model_validate(document.data or {})
    except ValidationError as error:
        first = error.errors()[0]
        path = tuple(first["loc"])
        if path not in document.lines:  # mapping keys written as numbers are kept as text by the line index
            path = tuple(str(part) for part in path)
        key = ".".join(str(part) for part in path) or "top level"
        raise LimitsError(f"{source} line {document.line_of(path)}, {key}: {first['msg']}") from None
    limits = ProviderLimits(parsed.tiers, parsed.accounts, source)
    for account in parsed.accounts:
        limits.for_account(account)  # a tier that does not exist fails here, at load time
    return limits


def load_limits(path: str | None = None) -> ProviderLimits:
    """The packaged limits, or the file at `path`."""
    if path is None:
        text = package_files.files("resources").joinpath("provider_limits.yaml").read_text()
        return parse_limits(text, source="resources/provider_limits.yaml")
    return parse_limits(Path(path).read_bytes(), source=path)
