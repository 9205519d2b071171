"""QA-driven escalation: walk a SKU's provider chain, re-take with new seeds, stop at the first clip that passes.

An unavailable provider (no key, no GPU, no weights) or one whose budget is spent is skipped with its
reason. A render that fails its blocking checks is re-taken with a new seed `retakes` times, then the
next provider is tried, but only when every failed check is one a new seed can fix: a wrong format or size
comes from the provider's pipeline and an unfaithful product from the input, so those move on at once, as
does a provider error (a refused or failed job). Every attempt's cost is kept, and an attempt already on
record is reused, never paid for again. With a per-SKU spend cap, an attempt whose price would take the SKU's
spend past it is not made.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resources.infrastructure import is_infrastructure_error
from resources.ledger import BudgetExceeded
from videokit.sku_video.qa import CheckOutcome


@dataclass
class Attempt:
    provider: str
    seed: int
    outcome: str  # passed | failed QA: ... | error: ...
    cost_usd: float  # spent in this run; 0 for an attempt reused from an earlier run
    original_cost_usd: float
    reused: bool


@dataclass
class Escalation:
    record: Any  # the passing attempt's record, else the last one rendered (None when nothing was)
    passed: bool
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def spent_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    def reason(self, rule: str) -> str:
        skipped = "; ".join(f"{name} skipped ({why})" for name, why in self.skipped)
        tried = "; ".join(f"{a.provider} seed {a.seed}: {a.outcome}" for a in self.attempts)
        return f"rule {rule!r}. " + ". ".join(part for part in (skipped, tried) if part)


RenderAttempt = Callable[[str, object, int, int], tuple[Any, bool]]
# Failures that vary from one generation to the next (what the model drew, how it moved, where the loop
# lands, what it painted around the product). Anything else fails again whatever the seed.
FIXED_BY_NEW_SEED = frozenset({"clip_content", "clip_loop_seam", "clip_brand_background"})


def worth_a_retake(failed: list[CheckOutcome]) -> bool:
    return all(outcome.name in FIXED_BY_NEW_SEED for outcome in failed)


def escalate(
    chain: tuple[str, ...],
    providers: Mapping[str, object],
    *,
    retakes: int,
    base_seed: int,
    render: RenderAttempt,
    judge: Callable[[Any], list[CheckOutcome]],
    log: Callable[[str], None],
    log_unavailable: Callable[[str], None] | None = None,
    max_usd: float | None = None,
    price_usd: Callable[[str], float] | None = None,
    spent_before: float = 0.0,
) -> Escalation:
    """`render(name, provider, seed, attempt_number)` returns (record, reused); `judge(record)` the blocking checks.

    `log_unavailable` says why a provider is skipped (default `log`): a batched run says it once, not per SKU.
    `max_usd` caps the SKU's spend on this content: what its attempts cost (those reused from earlier runs at
    what they cost then) plus `price_usd(name)` of the next attempt must stay within it; `spent_before` is what
    the SKU's other aspects of this content cost, so the cap covers the SKU, however many aspects it has.
    Records only need `record.cost.cost_usd`.
    """
    log_unavailable = log_unavailable or log
    result = Escalation(record=None, passed=False)
    number = 0
    spent = spent_before
    for name in chain:
        provider = providers[name]
        availability = provider.availability()
        if not availability.available:
            log_unavailable(f"{name}: skipped, {availability.reason}")
            result.skipped.append((name, availability.reason))
            continue
        for take in range(retakes + 1):
            seed = base_seed + take
            if max_usd is not None:
                price = price_usd(name) if price_usd is not None else 0.0
                if spent + price > max_usd + 1e-9:
                    why = f"spend cap: ${spent:.2f} spent on this SKU + ${price:.2f} would pass max_usd_per_sku ${max_usd:.2f}"
                    log(f"{name} seed {seed}: not rendered, {why}")
                    result.skipped.append((name, why))
                    break
            number += 1
            try:
                record, reused = render(name, provider, seed, number)
            except BudgetExceeded as error:
                log(f"{name}: skipped, budget spent: {error}")
                result.skipped.append((name, f"budget spent: {error}"))
                break
            except Exception as error:  # a failed or refused job: the next provider may still make the clip
                if is_infrastructure_error(error):
                    raise  # the store or the ledger is down, not the provider: retried, never escalated
                log(f"{name} seed {seed}: {type(error).__name__}: {error}")
                result.attempts.append(Attempt(name, seed, f"error: {error}", 0.0, 0.0, False))
                break
            cost = float(record.cost.cost_usd)
            spent += cost
            failed = [o for o in judge(record) if not o.passed]
            outcome = "passed" if not failed else "failed QA: " + "; ".join(o.summary for o in failed)
            result.attempts.append(Attempt(name, seed, outcome, 0.0 if reused else cost, cost, reused))
            result.record = record
            if not failed:
                result.passed = True
                return result
            log(f"{name} seed {seed}: {outcome}")
            if not worth_a_retake(failed):
                unfixable = ", ".join(o.name for o in failed if o.name not in FIXED_BY_NEW_SEED)
                log(f"{name}: no retake, a new seed cannot fix {unfixable}")
                break
    return result
