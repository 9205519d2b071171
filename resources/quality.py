"""The quality bar per tier: QA thresholds (hero stricter than bulk), overridable from run or resource config."""

from __future__ import annotations

from dataclasses import fields, replace

from dagster import ConfigurableResource
from pydantic import Field

from videokit.sku_video.qa import QAThresholds

THRESHOLD_NAMES = frozenset(f.name for f in fields(QAThresholds))


class QualityBarResource(ConfigurableResource):
    """QA thresholds by tier. Each mapping overrides fields of the built-in `hero` or `bulk` preset."""

    hero: dict[str, float] = Field(default_factory=dict, description="Overrides for hero SKUs, e.g. {max_loop_seam_ratio: 2}.")
    bulk: dict[str, float] = Field(default_factory=dict, description="Overrides for bulk SKUs.")

    def thresholds(self, tier: str) -> QAThresholds:
        if tier not in ("hero", "bulk"):
            raise ValueError(f"unknown tier {tier!r}: expected hero or bulk")
        overrides = self.hero if tier == "hero" else self.bulk
        unknown = sorted(set(overrides) - THRESHOLD_NAMES)
        if unknown:
            raise ValueError(
                f"quality bar for {tier}: unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(THRESHOLD_NAMES))}"
            )
        base = QAThresholds.hero() if tier == "hero" else QAThresholds.bulk()
        return replace(base, **overrides)
