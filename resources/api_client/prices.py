"""List prices of API output from the price table, and the cost record of an API clip."""

from __future__ import annotations

from dataclasses import dataclass

from resources.pricing import CostRecord, PriceTable, PriceTableError, api_row_usd


@dataclass(frozen=True)
class ListPrice:
    usd: float
    credits: float  # 0 where the provider does not sell credits


def api_list_price(table: PriceTable, key: str, seconds: float) -> ListPrice:
    """List price of `seconds` of output, from the price table's `api` rows (usd_per_s or usd_per_clip, and
    credits_per_s where the provider sells credits)."""
    row = table.api.get(key)
    if row is None:
        known = ", ".join(sorted(table.api)) or "none"
        raise PriceTableError(f"price table {table.as_of} has no api price {key!r} (known: {known})")
    try:
        usd = api_row_usd(row, seconds)
    except (KeyError, PriceTableError) as error:
        raise PriceTableError(f"price table {table.as_of}, api price {key!r}: {error}") from None
    return ListPrice(usd=usd, credits=float(row.get("credits_per_s", 0)) * seconds)


@dataclass(frozen=True)
class ApiCostRecord(CostRecord):
    """CostRecord plus the API list price it includes and whether this run recorded the ledger charge."""

    list_usd: float = 0.0
    list_credits: float = 0.0
    charged_in_this_run: bool = False
