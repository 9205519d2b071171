"""QA-driven escalation: skips, retakes, the next provider, costs, and what a batched run logs."""

from dataclasses import dataclass

from assets.sku_video.escalation import escalate
from assets.sku_video.per_sku import log_once
from resources.ledger import BudgetExceeded
from resources.providers.base import Availability
from videokit.sku_video.qa import CheckOutcome


@dataclass
class FakeProvider:
    availability_reason: str = ""

    def availability(self) -> Availability:
        return Availability(False, self.availability_reason) if self.availability_reason else Availability.ok()


@dataclass(frozen=True)
class Cost:
    cost_usd: float


@dataclass(frozen=True)
class Take:
    """What escalation reads of a clip record: its cost; the rest is for `judge`."""

    cost: Cost
    passes: bool
    check: str


class Renders:
    """Scripted renders: `plan[(provider, seed)]` is a QA verdict, an exception to raise, or "reused"."""

    def __init__(self, plan: dict):
        self.plan, self.calls = plan, []

    def __call__(self, name, provider, seed, attempt):
        self.calls.append((name, seed, attempt))
        verdict = self.plan[(name, seed)]
        if isinstance(verdict, Exception):
            raise verdict
        # "fail" is a content failure; "fail clip_format" names the check that fails.
        failed_check = verdict.split()[-1] if verdict.startswith(("fail ", "reused fail ")) else "clip_content"
        cost = self.cost_usd[name] if isinstance(self.cost_usd, dict) else self.cost_usd
        passes = verdict in ("pass", "reused")
        record = Take(Cost(cost), passes, failed_check)
        return record, verdict.startswith("reused")

    cost_usd: float | dict = 0.02


def judge(record: dict) -> list[CheckOutcome]:
    summary = "ok" if record.passes else ("blank frames" if record.check == "clip_content" else "wrong")
    return [CheckOutcome(record.check, record.passes, summary, {})]


def run(chain, providers, renders, retakes=1, log=None, log_unavailable=None, **limits):
    lines = []
    result = escalate(chain, providers, retakes=retakes, base_seed=10, render=renders, judge=judge,
                      log=log or lines.append, log_unavailable=log_unavailable, **limits)
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


def test_a_failure_a_new_seed_cannot_fix_escalates_without_a_paid_retake():
    providers = {"runway": FakeProvider(), "kling": FakeProvider(), "motion": FakeProvider()}
    renders = Renders({("runway", 10): "fail clip_format", ("kling", 10): "fail clip_product_fidelity",
                       ("motion", 10): "pass"})
    result, lines = run(("runway", "kling", "motion"), providers, renders, retakes=3)

    assert result.passed and renders.calls == [("runway", 10, 1), ("kling", 10, 2), ("motion", 10, 3)]
    assert "runway: no retake, a new seed cannot fix clip_format" in lines
    assert "kling: no retake, a new seed cannot fix clip_product_fidelity" in lines


def test_seam_and_background_failures_are_retaken():
    renders = Renders({("runway", 10): "fail clip_loop_seam", ("runway", 11): "fail clip_brand_background",
                       ("runway", 12): "pass"})
    result, _ = run(("runway",), {"runway": FakeProvider()}, renders, retakes=2)

    assert result.passed and [seed for _, seed, _ in renders.calls] == [10, 11, 12]


def test_spend_cap_stops_an_attempt_before_it_is_made_and_says_why():
    providers = {"runway": FakeProvider(), "kling": FakeProvider(), "motion": FakeProvider()}
    renders = Renders({("runway", 10): "fail", ("runway", 11): "fail", ("kling", 10): "pass", ("motion", 10): "pass"})
    prices = {"runway": 0.25, "kling": 0.49, "motion": 0.0}
    renders.cost_usd = prices
    result, lines = run(("runway", "kling", "motion"), providers, renders, retakes=1, max_usd=0.75,
                        price_usd=prices.__getitem__)

    assert renders.calls == [("runway", 10, 1), ("runway", 11, 2), ("motion", 10, 3)]
    assert result.passed and result.spent_usd == 0.5
    assert any(name == "kling" and "max_usd_per_sku $0.75" in why for name, why in result.skipped)
    assert "kling skipped (spend cap: $0.50 spent" in result.reason("hero")


def test_spend_cap_counts_attempts_paid_in_earlier_runs():
    renders = Renders({("runway", 10): "reused fail clip_loop_seam", ("runway", 11): "pass"})
    renders.cost_usd = 0.25
    result, lines = run(("runway",), {"runway": FakeProvider()}, renders, retakes=1, max_usd=0.4,
                        price_usd=lambda name: 0.25)

    assert renders.calls == [("runway", 10, 1)] and not result.passed
    assert result.attempts[0].reused and result.spent_usd == 0.0
    assert "runway seed 11: not rendered, spend cap: $0.25 spent on this SKU + $0.25 would pass" in lines[-1]


def test_a_smooth_seamless_runway_clip_passes_the_default_hero_bar_on_its_first_take(tmp_path, monkeypatch):
    """Through the graph with the emulated Runway API: one submission, one attempt, published."""
    import dagster as dg

    from assets.catalog.sku_catalog import sku_catalog
    from devkit.emulators import start_emulators
    from pipelines.resources import build_resources
    from resources.storage import StorageResource
    from tests.pipelines.conftest import catalog_dir as make_catalog
    from tests.pipelines.test_graph import SKU_ASSETS, catalog_config, metadata

    folder = make_catalog.__wrapped__(tmp_path)
    with start_emulators() as emulators:
        settings = emulators.provider_settings()["runway"]
        monkeypatch.setenv("RUNWAYML_API_SECRET", settings["api_key"])
        monkeypatch.setenv("SKUVID_RUNWAY_BASE_URL", settings["base_url"])
        resources = {**build_resources(), "storage": StorageResource(root=str(tmp_path / "data"))}
        with dg.instance_for_test() as instance:
            dg.materialize([sku_catalog], instance=instance, resources=resources, run_config=catalog_config(folder))
            result = dg.materialize(SKU_ASSETS, partition_key="HERO-1", instance=instance, resources=resources)
            clip = metadata(result, "clip")

    assert (clip["provider"], clip["attempts"], clip["status"]) == ("runway", 1, "ok"), clip["why"]
    assert emulators.runway.submissions == 1
    assert metadata(result, "published_video")["status"] == "published"
