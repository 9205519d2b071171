"""The estimator against totals computed by hand for a small catalog."""

import pytest

from assets.costs.estimate import Capacity, estimate_backfill
from resources.pricing import PriceTable
from resources.provider_limits import LimitsError, load_limits, parse_limits
from resources.routing import parse_policy

PRICES = PriceTable.from_yaml("""
as_of: "2026-11-01"
cpu: {vcpu_hour_usd: 3.6}          # 1 CPU second = $0.001
gpu_hour_usd: {h100: {usd: 36.0}}  # 1 GPU second = $0.01
api:
  runway_gen4_turbo: {usd_per_s: 0.05}
  kling_v1_6_std: {usd_per_s: 0.06}
providers:
  compose: {stage: keyframe, kind: cpu, cpu_s: 1}
  motion: {stage: clip, kind: cpu, cpu_s: 2}
  wan: {stage: clip, kind: gpu, gpu_s: 10, estimate: true}
  runway: {stage: clip, kind: api, api: runway_gen4_turbo, seconds: 5, latency_s: 60}
  kling: {stage: clip, kind: api, api: kling_v1_6_std, seconds: 5, latency_s: 120}
""")
POLICY = """
default: {keyframe: [compose], clip: [motion]}
rules:
  - {name: hero, when: {tier: hero}, clip: [runway, kling, motion]}
  - {name: bulk, when: {tier: bulk}, clip: [wan, motion]}
"""
CATALOG = [{"sku_id": f"H{i}", "tier": "hero"} for i in range(2)] + [{"sku_id": f"B{i}", "tier": "bulk"} for i in range(3)]


def policy():
    return parse_policy(POLICY, source="policy.yaml", providers={"keyframe": {"compose"},
                        "clip": {"motion", "wan", "runway", "kling"}}, priced=PRICES.providers)


def test_hybrid_totals_wall_clock_and_baselines_by_hand():
    estimate = estimate_backfill(CATALOG, policy(), PRICES, Capacity(gpus=1, api_concurrency=4, cpu_workers=2))
    lines = {line.provider: line for line in estimate.lines}
    assert lines["compose"].renders == 5 and lines["compose"].total_usd == pytest.approx(0.005)
    assert lines["runway"].renders == 2 and lines["runway"].api_usd == pytest.approx(0.50)
    assert lines["wan"].renders == 3 and lines["wan"].gpu_hours == pytest.approx(30 / 3600)
    assert lines["wan"].total_usd == pytest.approx(0.30)
    assert estimate.total_usd == pytest.approx(0.805)
    assert estimate.usd_per_clip == pytest.approx(0.161)
    # GPU: 30 s on one GPU; CPU: 5 s over 2 workers; Runway: 2 x 60 s latency over 4 concurrent jobs.
    assert lines["runway"].wall_s == pytest.approx(30.0) and estimate.wall_s == pytest.approx(30.0)
    runway = estimate.baselines["all runway"]
    assert runway["total_usd"] == pytest.approx(0.005 + 5 * 0.25)
    assert runway["hybrid_saving_pct"] == pytest.approx(100 * (1 - 0.805 / 1.255))
    assert runway["wall_s"] == pytest.approx(5 * 60 / 4)
    assert estimate.baselines["all kling"]["total_usd"] == pytest.approx(0.005 + 5 * 0.30)


def test_unavailable_providers_fall_back_and_more_gpus_shorten_the_wall():
    no_keys = estimate_backfill(CATALOG, policy(), PRICES, Capacity(gpus=3), available=lambda p: p not in {"runway", "kling"})
    lines = {line.provider: line for line in no_keys.lines}
    assert "runway" not in lines and lines["motion"].renders == 2
    assert no_keys.total_usd == pytest.approx(0.005 + 0.30 + 2 * 0.002)
    assert lines["wan"].wall_s == pytest.approx(10.0)


def test_retakes_add_expected_renders():
    estimate = estimate_backfill(CATALOG, policy(), PRICES, Capacity(retake_rate=0.5))
    assert {line.provider: line.renders for line in estimate.lines}["wan"] == pytest.approx(4.5)


HEROES = [{"sku_id": f"H{i}", "tier": "hero"} for i in range(1000)]


def test_a_daily_cap_makes_a_thousand_heroes_take_days_at_tier_one_and_minutes_at_tier_five():
    limits = load_limits()
    tier1 = estimate_backfill(HEROES, policy(), PRICES, Capacity(limits=limits))
    runway = {line.provider: line for line in tier1.lines}["runway"]
    # 50 a day, one at a time: 19 full days of 50, then the last 50 at 60 s each.
    assert runway.wall_s == pytest.approx(19 * 86_400 + 50 * 60)
    assert runway.limit == "runway tier 1: 1 at a time, 50/day" and tier1.wall_s == runway.wall_s
    tier5 = estimate_backfill(HEROES, policy(), PRICES, Capacity(limits=limits.with_tiers({"runway": 5})))
    assert {line.provider: line for line in tier5.lines}["runway"].wall_s == pytest.approx(1000 * 60 / 20)
    assert tier5.total_usd == pytest.approx(tier1.total_usd)  # limits change time, never price
    # Accounts without limits keep the plain concurrency: the all-kling baseline is 1000 x 120 s over 4.
    assert tier1.baselines["all kling"]["wall_s"] == pytest.approx(1000 * 120 / 4)
    assert tier1.baselines["all runway"]["wall_s"] == pytest.approx(19 * 86_400 + 50 * 60)


def test_fal_models_share_one_account_and_an_account_can_set_its_own_numbers():
    prices = PriceTable.from_yaml("""
as_of: "2026-12-06"
cpu: {vcpu_hour_usd: 3.6}
gpu_hour_usd: {h100: {usd: 36.0}}
api:
  pika_v2_2_720p: {usd_per_s: 0.04}
  wan_2_2_turbo_720p: {usd_per_clip: {5: 0.10}}
providers:
  compose: {stage: keyframe, kind: cpu, cpu_s: 1}
  pika: {stage: clip, kind: api, api: pika_v2_2_720p, seconds: 5, latency_s: 100}
  wan_turbo: {stage: clip, kind: api, api: wan_2_2_turbo_720p, seconds: 5, latency_s: 50}
""")
    two_models = parse_policy("""
default: {keyframe: [compose], clip: [wan_turbo]}
rules: [{name: hero, when: {tier: hero}, clip: [pika]}]
""", source="p.yaml", providers={"keyframe": {"compose"}, "clip": {"pika", "wan_turbo"}}, priced=prices.providers)
    limits = parse_limits("accounts:\n  fal: {concurrency: 2, daily_generations: 100}\n", source="limits.yaml")
    rows = HEROES[:60] + [{"sku_id": f"B{i}", "tier": "bulk"} for i in range(60)]
    estimate = estimate_backfill(rows, two_models, prices, Capacity(limits=limits))
    lines = {line.provider: line for line in estimate.lines}
    assert lines["wan_turbo"].api_usd == pytest.approx(6.0) and lines["pika"].api_usd == pytest.approx(12.0)
    # 120 generations on one account capped at 100 a day: a full day, then the last 20 (a sixth of the work).
    busy = 60 * 100 + 60 * 50
    assert lines["pika"].wall_s == lines["wan_turbo"].wall_s == pytest.approx(86_400 + busy / 6 / 2)
    assert lines["pika"].limit == "fal account: 2 at a time, 100/day"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accounts:\n  runway: {tier: 3}\n", "accounts.runway names tier 3, which tiers.runway lacks"),
        ("accounts:\n  kling: {use: high}\n", "accounts.kling needs a tier or a concurrency"),
        ("tiers:\n  runway:\n    1: {concurrency: [2, 1]}\n", "line 3, tiers.runway.1: .*range \\[2, 1\\] runs backwards"),
        ("accounts:\n  runway: {tier: 1, speed: 3}\n", "line 2, accounts.runway.speed: Extra inputs"),
    ],
)
def test_bad_limits_name_the_file_and_key(text, message):
    with pytest.raises(LimitsError, match=f"limits.yaml.*{message}"):
        parse_limits(text, source="limits.yaml")
    with pytest.raises(LimitsError, match="runway has no tier 4 \\(known: 1, 5\\)"):
        load_limits().with_tiers({"runway": 4})
