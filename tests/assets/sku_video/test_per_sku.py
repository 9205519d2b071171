"""Batched per-SKU steps against a real S3 server (SeaweedFS) behind a loopback proxy that can be taken down."""

import threading
import time
from urllib.parse import urlparse

import dagster as dg
import pytest

from assets.partitions import sku_partitions
from assets.sku_video.per_sku import SkuOutcome, run_per_sku, sku_asset
from resources.storage import StorageResource, StorageUnavailable
from tests.outage_proxy import OutageProxy
from videokit.sku_video.qa import CheckOutcome

KEYS = ["SKU-A", "SKU-B", "SKU-C", "SKU-D"]


@pytest.fixture
def proxied_storage(s3_bucket, s3_env, monkeypatch):
    proxy = OutageProxy(urlparse(s3_env.endpoint).port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    yield proxy, (lambda retry_s: StorageResource(root=f"s3://{s3_bucket}/p", retry_s=retry_s))
    proxy.down()


def outage(proxy: OutageProxy, seconds: float) -> threading.Thread:
    proxy.down()
    thread = threading.Timer(seconds, proxy.up)
    thread.start()
    return thread


def test_a_short_outage_is_retried_and_a_long_one_names_the_store(proxied_storage):
    proxy, storage_with = proxied_storage
    storage = storage_with(30)
    storage.write_bytes("warm", b"x")
    started = time.monotonic()
    outage(proxy, 2.0).join(0)
    storage.write_bytes("skus/A/clip.mp4", b"video")  # waits the outage out
    assert time.monotonic() - started >= 1.5
    assert storage.read_bytes("skus/A/clip.mp4") == b"video"

    proxy.down()
    with pytest.raises(StorageUnavailable) as failure:
        storage_with(2).read_bytes("skus/A/clip.mp4")
    message = str(failure.value)
    assert "storage unreachable" in message and proxy.endpoint in message and "(bucket test-" in message
    assert "skus/A/clip.mp4" in message and "GenericError" not in message


def writer_asset(storage: StorageResource, proxy: OutageProxy, down_for: dict[str, float]):
    @sku_asset("keyframe", deps=[], kinds={"png"}, description="test", checks={"written": "the object is stored"})
    def keyframe(context: dg.AssetExecutionContext):
        def step(key: str) -> SkuOutcome:
            if key in down_for and context.retry_number == 0:
                outage(proxy, down_for[key])
            storage.write_bytes(f"skus/{key}/keyframe.png", key.encode())
            return SkuOutcome({"status": "ok"}, [CheckOutcome("written", True, "stored", {})])

        yield from run_per_sku(context, "keyframe", ["written"], step)

    return keyframe


def run_batch(asset, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], instance=instance, raise_on_error=False,
                          tags={"dagster/asset_partition_range_start": KEYS[0],
                                "dagster/asset_partition_range_end": KEYS[-1]})


def statuses(instance) -> dict[str, str | None]:
    found = instance.get_status_by_partition(dg.AssetKey("keyframe"), KEYS, sku_partitions)
    return {key: found[key].value if found[key] else None for key in KEYS}


def test_batch_with_an_outage_fails_exactly_the_skus_it_hit(proxied_storage, monkeypatch):
    proxy, storage_with = proxied_storage
    storage = storage_with(1)
    monkeypatch.setenv("SKUVID_SKU_ATTEMPTS", "1")
    monkeypatch.setenv("SKUVID_STEP_RETRIES", "0")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("sku", KEYS)
        # SKU-C meets a store that stays down past every retry; SKU-D is then not attempted.
        result = run_batch(writer_asset(storage, proxy, {"SKU-C": 8.0}), instance)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        description = failure.step_failure_data.user_failure_data.description
        assert "2 of 4 SKUs failed" in description and "storage unreachable" in description and proxy.endpoint in description
        assert statuses(instance) == {"SKU-A": "MATERIALIZED", "SKU-B": "MATERIALIZED", "SKU-C": "FAILED", "SKU-D": "FAILED"}
        proxy.up()
        materialized = {r.partition_key for r in instance.fetch_materializations(dg.AssetKey("keyframe"), limit=10).records}
        stored = {key.split("/")[1] for key in storage.list_keys("skus/")}
        assert materialized == stored == {"SKU-A", "SKU-B"}, "the partition counts agree with what is stored"


def test_an_outage_mid_step_is_retried_and_the_step_succeeds(proxied_storage, monkeypatch):
    proxy, storage_with = proxied_storage
    monkeypatch.setenv("SKUVID_STEP_RETRIES", "1")
    monkeypatch.setenv("SKUVID_STEP_RETRY_WAIT_S", "0")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("sku", KEYS)
        # A 2-second outage while SKU-B writes: the client's own retries ride it out inside the step.
        result = run_batch(writer_asset(storage_with(20), proxy, {"SKU-B": 2.0}), instance)
        assert result.success
        assert set(statuses(instance).values()) == {"MATERIALIZED"}


def test_api_waits_overlap_and_cpu_skus_stay_serial(monkeypatch):
    delay, api = 0.6, {"SKU-A", "SKU-B", "SKU-C"}
    running: list[int] = []
    overlap = [0]
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    @sku_asset("clip", deps=[], kinds={"mp4"}, description="test", checks={"rendered": "made"})
    def clip(context: dg.AssetExecutionContext):
        def step(key: str) -> SkuOutcome:
            with lock:
                running.append(key in api)
                overlap[0] = max(overlap[0], len(running))
            started = time.monotonic()
            time.sleep(delay)  # a provider's render: the step only waits
            with lock:
                running.pop()
                spans.append((started, time.monotonic()))
            return SkuOutcome({"status": "ok"}, [CheckOutcome("rendered", True, "made", {})])

        yield from run_per_sku(context, "clip", ["rendered"], step, waits_on_network=lambda key: key in api,
                               network_workers=4)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("sku", KEYS)
        result = dg.materialize([clip], instance=instance, tags={"dagster/asset_partition_range_start": KEYS[0],
                                                                   "dagster/asset_partition_range_end": KEYS[-1]})
        wall = max(end for _, end in spans) - min(start for start, _ in spans)
        assert result.success
        assert overlap[0] == 4, "three API waits overlap each other and the CPU SKU"
        assert wall < 2 * delay, f"{wall:.2f} s for {len(KEYS)} waits of {delay} s"


def test_a_ranged_run_of_two_stages_flows_when_all_succeed_and_stops_honestly_when_one_fails():
    failing: set[str] = set()

    def stage(name: str, deps: list):
        @sku_asset(name, deps=deps, kinds={"png"}, description="test", checks={f"{name}_made": "made"})
        def make(context: dg.AssetExecutionContext):
            def step(key: str) -> SkuOutcome:
                if name == "keyframe" and key in failing:
                    raise ValueError(f"{key}: unreadable packshot")
                return SkuOutcome({"status": "ok", "sku": key}, [CheckOutcome(f"{name}_made", True, "made", {})])

            yield from run_per_sku(context, name, [f"{name}_made"], step)

        return make

    assets = [stage("keyframe", []), stage("clip", ["keyframe"])]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("sku", KEYS)
        assert run_batch_of(assets, instance).success
        for asset in ("keyframe", "clip"):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
            assert {r.partition_key: r.asset_materialization.metadata["sku"].value for r in records} == {k: k for k in KEYS}

        failing.add("SKU-B")
        result = run_batch_of(assets, instance)
        assert not result.success
        made = [(e.asset_key.path[-1], e.partition) for e in result.all_events
                if e.event_type_value == "ASSET_MATERIALIZATION"]
        # The good SKUs' keyframes are recorded, SKU-B's is not; clip waits for the next request of these SKUs.
        assert sorted(made) == [("keyframe", "SKU-A"), ("keyframe", "SKU-C"), ("keyframe", "SKU-D")]


def run_batch_of(assets, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, instance=instance, raise_on_error=False,
                          tags={"dagster/asset_partition_range_start": KEYS[0],
                                "dagster/asset_partition_range_end": KEYS[-1]})
