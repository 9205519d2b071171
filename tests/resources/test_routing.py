import pytest

from resources.pricing import PricesResource
from resources.routing import PolicyError, RoutingResource, first_available, load_policy, parse_policy

PROVIDERS = {"keyframe": {"compose", "flux"}, "clip": {"motion", "wan", "runway", "kling"}}
PRICED = {"compose", "flux", "motion", "wan", "runway", "kling"}
GOOD = """\
retakes: 2
default:
  keyframe: [compose]
  clip: [motion]
rules:
  - name: hero
    when: {tier: hero}
    keyframe: [flux, compose]
    clip: [runway, kling, motion]
  - name: shoes
    when: {category: [footwear, sneakers], brand: northwind}
    clip: [wan, motion]
"""


def parse(text, priced=PRICED):
    return parse_policy(text, source="routing.yaml", providers=PROVIDERS, priced=priced)


def test_rules_match_catalog_fields_first_match_wins():
    policy = parse(GOOD)
    assert policy.retakes == 2
    hero = policy.route({"tier": "hero", "category": "footwear", "brand": "northwind"})
    assert (hero.rule, hero.keyframe, hero.clip) == ("hero", ("flux", "compose"), ("runway", "kling", "motion"))
    shoes = policy.route({"tier": "bulk", "category": "sneakers", "brand": "northwind"})
    assert (shoes.rule, shoes.keyframe, shoes.clip) == ("shoes", ("compose",), ("wan", "motion"))
    other = policy.route({"tier": "bulk", "category": "footwear", "brand": "volta"})
    assert (other.rule, other.clip) == ("default", ("motion",))
    assert "rule 'hero'" in hero.reason()


@pytest.mark.parametrize("text,where,what", [
    (GOOD.replace("clip: [runway, kling, motion]", "clip: [runway, klingg, motion]"),
     "line 9, rules[0].clip[1]", "unknown clip provider 'klingg'"),
    (GOOD.replace("keyframe: [flux, compose]", "keyframe: [motion]"), "line 8, rules[0].keyframe[0]",
     "unknown keyframe provider 'motion'"),
    (GOOD.replace("    when: {tier: hero}\n", ""), "line 6, rules[0]", "a rule needs `when`"),
    (GOOD.replace("clip: [wan, motion]", "clip: wan"), "line 12, rules[1].clip", "must be a non-empty list"),
    (GOOD.replace("retakes: 2", "retakes: two"), "line 1, retakes", "whole number"),
    (GOOD.replace("retakes: 2", "retakes: 1000000"), "line 1, retakes", "whole number from 0 to 3"),
    (GOOD.replace("retakes: 2", "retakes: 4"), "line 1, retakes", "whole number from 0 to 3"),
    (GOOD.replace("retakes: 2", "retakes: -1"), "line 1, retakes", "whole number from 0 to 3"),
    (GOOD.replace("retakes: 2", "retakes: [1]"), "line 1, retakes", "whole number from 0 to 3"),
    (GOOD.replace("retakes: 2", "retakes: 2\nmax_usd_per_sku: -1"), "line 2, max_usd_per_sku", "positive amount"),
    (GOOD.replace("retakes: 2", "retakes: 2\nmax_usd_per_sku: .nan"), "line 2, max_usd_per_sku", "positive amount"),
    (GOOD.replace("retakes: 2", "retakes: 2\nmax_usd_per_sku: 1e999"), "line 2, max_usd_per_sku", "positive amount"),
    (GOOD.replace("retakes: 2", "retakes: 2\nmax_usd_per_sku: lots"), "line 2, max_usd_per_sku", "positive amount"),
    (GOOD.replace("  clip: [motion]\n", "", 1), "line 2, default", "needs both keyframe and clip"),
    (GOOD + "extra: 1\n", "line 13, extra", "unknown key"),
    (GOOD.replace("    clip: [runway, kling, motion]", "    clips: [runway]"), "line 9, rules[0].clips", "unknown key"),
    ("rules: [", "routing.yaml", "not valid YAML"),
])
def test_bad_policy_names_file_line_and_key(text, where, what):
    with pytest.raises(PolicyError) as error:
        parse(text)
    assert error.value.args[0].startswith("routing.yaml")
    assert where in str(error.value) and what in str(error.value)


def test_spend_cap_per_sku_is_read_and_optional():
    assert parse(GOOD).max_usd_per_sku is None
    assert parse(GOOD.replace("retakes: 2", "retakes: 2\nmax_usd_per_sku: 0.75")).max_usd_per_sku == 0.75


def test_provider_without_price_is_refused_before_anything_runs():
    with pytest.raises(PolicyError, match=r"line 9, rules\[0\]\.clip\[0\]: provider 'runway' has no price"):
        parse(GOOD, priced=PRICED - {"runway"})


def test_packaged_policy_is_valid_against_the_packaged_prices():
    prices = PricesResource().table
    clip = {n for n, p in prices.providers.items() if p.stage == "clip"}
    keyframe = {n for n, p in prices.providers.items() if p.stage == "keyframe"}
    policy = RoutingResource().load({"keyframe": keyframe, "clip": clip}, priced=prices.providers)
    assert policy.route({"tier": "hero"}).clip[0] == "runway"
    assert policy.route({"tier": "bulk"}).clip[-1] == "motion"
    assert 0 <= policy.retakes <= 3 and policy.max_usd_per_sku > 0


def test_measured_benchmark_seconds_replace_estimates(tmp_path):
    import json

    from resources.pricing import PricesResource

    (tmp_path / "cpu_tier.json").write_text(json.dumps({"timestamp": "2026-11-25T00:00:00", "figures": {
        "compose_keyframe_cpu_s": {"median": 0.2}, "motion_clip_cpu_s": {"median": 0.9}}}))
    (tmp_path / "gpu_clip-nvidia-h100.json").write_text(json.dumps({"timestamp": "t", "gpu": "NVIDIA H100", "dry_run": False,
        "rows": [{"model": "wan2.1-vace-1.3b", "runner": "ours", "seconds_per_call": 10.0, "steps": 10,
                  "default_steps": 30, "seconds_per_step": 0.9}]}))
    (tmp_path / "gpu_clip-dry-run.json").write_text(json.dumps({"dry_run": True, "rows": []}))
    table = PricesResource(measured_results=str(tmp_path)).table
    assert (table.providers["motion"].cpu_s, table.providers["motion"].estimate) == (0.9, False)
    assert table.providers["wan"].gpu_s == 28.0 and "gpu_clip-nvidia-h100.json" in table.providers["wan"].source
    assert table.providers["cogvideox"].estimate  # no measurement: still the marked estimate
    assert PricesResource(measured_results=None).table.providers["motion"].cpu_s == 1.2


def test_fal_catalog_models_route_by_name_against_the_packaged_price_table(tmp_path):
    (tmp_path / "routing.yaml").write_text(
        "default: {keyframe: [compose], clip: [motion]}\n"
        "rules:\n  - {name: hero, when: {tier: hero}, clip: [veo_fast, kling_turbo, pika, runway, motion]}\n"
    )
    prices = PricesResource(measured_results=None).table
    policy = load_policy(prices, str(tmp_path / "routing.yaml"))
    chain = policy.route({"tier": "hero"}).clip
    assert chain == ("veo_fast", "kling_turbo", "pika", "runway", "motion")
    assert first_available(chain, lambda name: name in {"pika", "motion"}) == "pika"
    with pytest.raises(ValueError, match="no provider of chain veo_fast -> kling_turbo .* is available"):
        first_available(chain, lambda name: False)
    (tmp_path / "routing.yaml").write_text("default: {keyframe: [compose], clip: [veo_ultra]}\n")
    with pytest.raises(PolicyError, match=r"line 1, default.clip\[0\]: unknown clip provider 'veo_ultra'"):
        load_policy(prices, str(tmp_path / "routing.yaml"))
