"""What the render sensor requests, as a pure function of the catalog, the manifest and the runs on record."""

import dagster as dg

from pipelines.render_requests import RANGE_END_TAG, RANGE_START_TAG, Attempts, RenderPolicy, decide

SKUS = [f"S-{i:03d}" for i in range(250)]
CATALOG = [(sku, f"h{sku}", "") for sku in SKUS]


def evaluate(published=(), in_flight=(), attempts=None, window="", now=1_000_000.0, policy=RenderPolicy(), skus=SKUS):
    return decide(catalog=[row for row in CATALOG if row[0] in set(skus)], published={s: f"h{s}" for s in published},
                  partitions=SKUS, in_flight=set(in_flight), attempts=attempts or {}, window=window, now=now,
                  policy=policy)


def partitions_of(request: dg.RunRequest) -> list[str]:
    if request.partition_key:
        return [request.partition_key]
    start, end = SKUS.index(request.tags[RANGE_START_TAG]), SKUS.index(request.tags[RANGE_END_TAG])
    return SKUS[start : end + 1]


def test_few_unpublished_skus_get_one_run_each_keyed_by_content():
    decision = evaluate(skus=SKUS[:5], published=["S-001"], in_flight=["S-002"])
    assert {r.partition_key: r.run_key for r in decision.run_requests} == {
        "S-000": "S-000:hS-000", "S-003": "S-003:hS-003", "S-004": "S-004:hS-004"}
    assert decision.in_flight == 1
    assert evaluate(skus=SKUS[:5], published=["S-001"], in_flight=["S-002"]) == decision  # same state, same keys


def test_many_skus_go_in_batches_over_partition_ranges():
    decision = evaluate(published=["S-010", "S-011"], in_flight=["S-150"])
    covered = [sku for request in decision.run_requests for sku in partitions_of(request)]
    assert all(len(partitions_of(r)) <= 100 for r in decision.run_requests)
    assert "S-150" not in covered, "a range never passes over a SKU that is rendering"
    assert set(covered) - {"S-010", "S-011"} == set(SKUS) - {"S-010", "S-011", "S-150"}
    assert len(covered) == len(set(covered)) and len(decision.run_requests) == 3  # 0-99, 100-149, 151-249
    assert decision.to_render == 247


def test_runs_per_tick_are_capped_and_the_rest_follows():
    decision = evaluate(policy=RenderPolicy(batch_size=10, max_runs_per_tick=3))
    assert len(decision.run_requests) == 3 and decision.deferred == 220


def test_failed_skus_back_off_then_stop_until_the_next_window():
    policy = RenderPolicy(max_attempts=3, backoff_s=600)
    now = 1_000_000.0
    just_failed = evaluate(skus=["S-000"], attempts={"S-000": Attempts(1, now - 60)}, now=now, policy=policy)
    assert just_failed.run_requests == [] and just_failed.backing_off == 1
    later = evaluate(skus=["S-000"], attempts={"S-000": Attempts(1, now - 601)}, now=now, policy=policy)
    assert [r.run_key for r in later.run_requests] == ["S-000:hS-000:retry-1"]
    second = evaluate(skus=["S-000"], attempts={"S-000": Attempts(2, now - 1_000)}, now=now, policy=policy)
    assert second.run_requests == [] and second.backing_off == 1  # the second backoff is 1,200 s
    capped = evaluate(skus=["S-000"], attempts={"S-000": Attempts(3, now - 86_400)}, now=now, policy=policy)
    assert capped.run_requests == [] and capped.gave_up == ["S-000"]
    next_night = evaluate(skus=["S-000"], window="2026-11-21", now=now, policy=policy)
    assert [r.run_key for r in next_night.run_requests] == ["S-000:hS-000:2026-11-21"]


def test_a_sku_without_a_partition_is_not_requested():
    decision = decide(catalog=[("NEW-1", "h", "")], published={}, partitions=[], in_flight=set(), attempts={},
                      window="", now=0.0, policy=RenderPolicy())
    assert decision.run_requests == []


def test_on_celery_workers_each_sku_runs_as_its_queues_job_and_batches_never_mix_queues():
    queue_of = {sku: ("api" if int(sku[2:]) % 50 < 10 else "cpu") for sku in SKUS}.__getitem__
    few = decide(catalog=CATALOG[:12], published={}, partitions=SKUS, in_flight=set(), attempts={}, window="",
                 now=0.0, policy=RenderPolicy(), queue_of=queue_of)
    assert {r.partition_key: r.job_name for r in few.run_requests} == {
        sku: f"sku_video_{queue_of(sku)}_job" for sku in SKUS[:12]}
    many = decide(catalog=CATALOG, published={}, partitions=SKUS, in_flight=set(), attempts={}, window="",
                  now=0.0, policy=RenderPolicy(), queue_of=queue_of)
    covered = []
    for request in many.run_requests:
        skus = partitions_of(request)
        assert {f"sku_video_{queue_of(sku)}_job" for sku in skus} == {request.job_name}, "one queue per run"
        covered += skus
    assert sorted(covered) == SKUS
    assert all(r.job_name is None for r in evaluate(skus=SKUS[:3]).run_requests), "in-process: the sensor's job"
