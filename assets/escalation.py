"""QA-driven escalation: walk a SKU's provider chain, re-take with new seeds, stop at the first clip that passes.

An unavailable provider (no key, no GPU, no weights) or one whose budget is spent is skipped with its
reason. A render that fails its blocking checks is re-taken with a new seed `retakes` times, then the
next provider is tried. A provider error (a refused or failed job) moves on to the next provider at once.
Every attempt's cost is kept, and an attempt already on record is reused, never paid for again.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from resources.ledger import BudgetExceeded
from videokit.qa import CheckOutcome


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
    record: dict | None  # the passing attempt's record, else the last one rendered
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


RenderAttempt = Callable[[str, object, int, int], tuple[dict, bool]]


def escalate(
    chain: tuple[str, ...],
    providers: Mapping[str, object],
    *,
    retakes: int,
    base_seed: int,
    render: RenderAttempt,
    judge: Callable[[dict], list[CheckOutcome]],
    log: Callable[[str], None],
    log_unavailable: Callable[[str], None] | None = None,
) -> Escalation:
    """`render(name, provider, seed, attempt_number)` returns (record, reused); `judge(record)` the blocking checks.

    `log_unavailable` says why a provider is skipped (default `log`): a batched run says it once, not per SKU.
    """
    log_unavailable = log_unavailable or log
    result = Escalation(record=None, passed=False)
    number = 0
    for name in chain:
        provider = providers[name]
        availability = provider.availability()
        if not availability.available:
            log_unavailable(f"{name}: skipped, {availability.reason}")
            result.skipped.append((name, availability.reason))
            continue
        for take in range(retakes + 1):
            seed, number = base_seed + take, number + 1
            try:
                record, reused = render(name, provider, seed, number)
            except BudgetExceeded as error:
                log(f"{name}: skipped, budget spent: {error}")
                result.skipped.append((name, f"budget spent: {error}"))
                break
            except Exception as error:  # a failed or refused job: the next provider may still make the clip
                log(f"{name} seed {seed}: {type(error).__name__}: {error}")
                result.attempts.append(Attempt(name, seed, f"error: {error}", 0.0, 0.0, False))
                break
            cost = float(record["cost"]["cost_usd"])
            failed = [o for o in judge(record) if not o.passed]
            outcome = "passed" if not failed else "failed QA: " + "; ".join(o.summary for o in failed)
            result.attempts.append(Attempt(name, seed, outcome, 0.0 if reused else cost, cost, reused))
            result.record = record
            if not failed:
                result.passed = True
                return result
            log(f"{name} seed {seed}: {outcome}")
    return result
