"""The estimator against totals computed by hand for a small catalog."""

import pytest

from assets.costs.estimate import Capacity, estimate_backfill
from resources.pricing import PriceTable
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
