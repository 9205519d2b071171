"""QA-driven escalation: skips, retakes, the next provider, costs, and what a batched run logs."""

from dataclasses import dataclass

from assets.escalation import escalate
from assets.per_sku import log_once
from resources.generators.base import Availability
from resources.ledger import BudgetExceeded
from videokit.qa import CheckOutcome


@dataclass
class FakeProvider:
    availability_reason: str = ""

    def availability(self) -> Availability:
        return Availability(False, self.availability_reason) if self.availability_reason else Availability.ok()


class Renders:
    """Scripted renders: `plan[(provider, seed)]` is a QA verdict, an exception to raise, or "reused"."""

    def __init__(self, plan: dict):
        self.plan, self.calls = plan, []

    def __call__(self, name, provider, seed, attempt):
        self.calls.append((name, seed, attempt))
        verdict = self.plan[(name, seed)]
        if isinstance(verdict, Exception):
            raise verdict
        record = {"cost": {"cost_usd": 0.02}, "passes": verdict in ("pass", "reused")}
        return record, verdict == "reused"


def judge(record: dict) -> list[CheckOutcome]:
    return [CheckOutcome("clip_content", record["passes"], "ok" if record["passes"] else "blank frames", {})]


def run(chain, providers, renders, retakes=1, log=None, log_unavailable=None):
    lines = []
    result = escalate(chain, providers, retakes=retakes, base_seed=10, render=renders, judge=judge,
                      log=log or lines.append, log_unavailable=log_unavailable)
    return result, lines


def test_retakes_with_new_seeds_then_the_next_provider():
    providers = {"wan": FakeProvider(), "motion": FakeProvider()}
    renders = Renders({("wan", 10): "fail", ("wan", 11): "fail", ("motion", 10): "pass"})
    result, lines = run(("wan", "motion"), providers, renders)
    assert result.passed and renders.calls == [("wan", 10, 1), ("wan", 11, 2), ("motion", 10, 3)]
    assert [a.outcome for a in result.attempts] == ["failed QA: blank frames", "failed QA: blank frames", "passed"]
    assert result.spent_usd == 0.06
    assert lines == ["wan seed 10: failed QA: blank frames", "wan seed 11: failed QA: blank frames"]


def test_unavailable_error_and_spent_budget_move_on_with_their_reasons():
    providers = {"runway": FakeProvider("RUNWAYML_API_SECRET not set"), "kling": FakeProvider(),
                 "pika": FakeProvider(), "motion": FakeProvider()}
    over = BudgetExceeded(scope="day:2026-12-06", limit_usd=1, spent_usd=1, reserved_usd=0, asked_usd=0.2, job="pika")
    renders = Renders({("kling", 10): RuntimeError("task failed: content policy"), ("pika", 10): over,
                       ("motion", 10): "pass"})
    result, _ = run(("runway", "kling", "pika", "motion"), providers, renders)
    assert result.passed and [a.provider for a in result.attempts] == ["kling", "motion"]
    assert result.attempts[0].cost_usd == 0.0 and "content policy" in result.attempts[0].outcome
    assert [name for name, _ in result.skipped] == ["runway", "pika"]
    why = result.reason("hero")
    assert "runway skipped (RUNWAYML_API_SECRET not set)" in why and "pika skipped (budget spent" in why


def test_an_attempt_on_record_is_reused_and_costs_nothing_now():
    renders = Renders({("motion", 10): "reused"})
    result, _ = run(("motion",), {"motion": FakeProvider()}, renders)
    attempt = result.attempts[0]
    assert result.passed and attempt.reused and attempt.cost_usd == 0.0 and attempt.original_cost_usd == 0.02


def test_nothing_passes_keeps_the_last_render():
    renders = Renders({("motion", 10): "fail"})
    result, _ = run(("motion",), {"motion": FakeProvider()}, renders, retakes=0)
    assert not result.passed and result.record is not None


def test_a_batch_says_a_provider_is_unavailable_once_and_each_sku_keeps_the_reason():
    providers = {"wan": FakeProvider("weights not found"), "motion": FakeProvider()}
    step_lines = []
    once = log_once(step_lines.append)
    results = [run(("wan", "motion"), providers, Renders({("motion", 10): "pass"}), log=step_lines.append,
                   log_unavailable=once)[0] for _ in range(3)]
    assert step_lines == ["wan: skipped, weights not found"]
    assert all(r.skipped == [("wan", "weights not found")] for r in results)
