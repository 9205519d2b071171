"""Pool slots as leases in the ledger's database: limits across processes, a SIGKILLed holder's slot freed by
its lease, a fresh database that needs no set-up, and waits that end with the pool and its holders named."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from resources.ledger import LedgerResource
from resources.pool_slots import (
    PoolSettings,
    PoolSlotError,
    PoolSlots,
    PoolSlotTimeout,
    pool_slot,
    slots_engine,
)
from tests.resources.providers.api.api_fixtures import postgres_ledger_url  # noqa: F401 - fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """The ledger's database on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("postgres_ledger_url")


def quiet(_message: str) -> None:
    pass


def hold_and_record(
    ledger_url: str, limits: dict[str, int], worker: int, log_dir: str, times: int, start
) -> None:
    """Child process: take a `gpu` slot `times` times, writing when each hold started and ended."""
    settings = PoolSettings(limits=limits, lease_s=5.0, wait_timeout_s=120.0, poll_s=0.01)
    ledger = LedgerResource(url=ledger_url)
    spans = []
    start.wait(240)  # every worker imported and ready: they contend from the first claim
    for index in range(times):
        with pool_slot(ledger, "gpu", f"run-{worker}", f"clip[{worker}-{index}]", quiet, settings):
            started = time.time()
            time.sleep(0.1)
            spans.append((started, time.time()))
    Path(log_dir, f"{worker}.json").write_text(json.dumps(spans))


def hold_forever(ledger_url: str, lease_s: float, flag: str) -> None:
    """Child process: take the one `api` slot, say so, and never let go (until killed)."""
    settings = PoolSettings(limits={"api": 1}, lease_s=lease_s, wait_timeout_s=10.0, poll_s=0.02)
    with pool_slot(LedgerResource(url=ledger_url), "api", "run-doomed", "clip[doomed]", quiet, settings):
        Path(flag).write_text("holding")
        while True:
            time.sleep(1)


def test_processes_never_hold_more_slots_than_the_limit(tmp_path, database_url):
    url = database_url
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(5)
    workers = [
        spawn.Process(target=hold_and_record, args=(url, {"gpu": 2}, worker, str(tmp_path), 6, start))
        for worker in range(5)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(300)
        assert process.exitcode == 0
    events = []
    for worker in range(5):
        for started, ended in json.loads((tmp_path / f"{worker}.json").read_text()):
            events += [(started, 1), (ended, -1)]
    active = peak = 0
    for _, change in sorted(events, key=lambda event: (event[0], event[1])):
        active += change
        peak = max(peak, active)
    assert peak == 2  # the limit was used, and never passed
    assert PoolSlots(slots_engine(url), PoolSettings()).holders("gpu") == []


def test_a_sigkilled_holders_slot_goes_to_the_next_claimant_within_its_lease(tmp_path, database_url):
    url = database_url
    flag, lease_s = tmp_path / "holding", 3.0
    child = multiprocessing.get_context("spawn").Process(target=hold_forever, args=(url, lease_s, str(flag)))
    child.start()
    try:
        deadline = time.monotonic() + 240  # a spawned interpreter on a busy machine
        while not flag.exists():
            assert time.monotonic() < deadline and child.is_alive(), "the child never took the slot"
            time.sleep(0.05)
        # Alive, it keeps renewing: a claimant waiting longer than the lease still times out, naming it.
        settings = PoolSettings(limits={"api": 1}, lease_s=lease_s, wait_timeout_s=2 * lease_s, poll_s=0.02)
        held = r"pool 'api' \(limit 1\).*clip\[doomed\] \(run run-doomed"
        with (
            pytest.raises(PoolSlotTimeout, match=held),
            pool_slot(LedgerResource(url=url), "api", "run-next", "clip[next]", quiet, settings),
        ):
            pass
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert child.exitcode == -signal.SIGKILL
    killed_at = time.monotonic()
    settings = PoolSettings(limits={"api": 1}, lease_s=lease_s, wait_timeout_s=30.0, poll_s=0.02)
    with pool_slot(LedgerResource(url=url), "api", "run-next", "clip[next]", quiet, settings):
        waited = time.monotonic() - killed_at
    assert waited <= lease_s + 2.0


def test_a_fresh_database_needs_no_set_up_and_uses_the_configured_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("SKUVID_POOL_LIMITS", "api=3")
    monkeypatch.setenv("SKUVID_POOL_WAIT_S", "0.3")
    ledger = LedgerResource(url=f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    settings = PoolSettings.from_env()
    assert settings.limit("api") == 3 and settings.limit("gpu") == 1 and settings.wait_timeout_s == 0.3
    held = r"pool 'api' \(limit 3\) came free in 0.3s; held by clip\[a\] \(run run-1.*clip\[c\] \(run run-2"
    with (
        pool_slot(ledger, "api", "run-1", "clip[a]", quiet),
        pool_slot(ledger, "api", "run-1", "clip[b]", quiet),
        pool_slot(ledger, "api", "run-2", "clip[c]", quiet),
        pytest.raises(PoolSlotTimeout, match=held),
        pool_slot(ledger, "api", "run-3", "clip[d]", quiet),
    ):
        pass
    # All freed on the way out; the CPU tier (no pool) never waits.
    with pool_slot(ledger, "api", "run-3", "clip[d]", quiet), pool_slot(ledger, None, "run-3", "clip[cpu]", quiet):
        pass


def test_bad_pool_settings_are_refused_with_the_variable_named():
    with pytest.raises(PoolSlotError, match="SKUVID_POOL_LIMITS: 'api=0'"):
        PoolSettings.from_env({"SKUVID_POOL_LIMITS": "api=0"})
    with pytest.raises(PoolSlotError, match="SKUVID_POOL_LEASE_S: 'soon'"):
        PoolSettings.from_env({"SKUVID_POOL_LEASE_S": "soon"})


def test_a_holder_that_outlives_its_lease_keeps_the_slot_by_renewing_it(tmp_path):
    ledger = LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    settings = PoolSettings(limits={"gpu": 1}, lease_s=1.5, wait_timeout_s=0.2, poll_s=0.02)
    with pool_slot(ledger, "gpu", "run-1", "clip[long]", quiet, settings):
        time.sleep(4.0)  # over two leases: only the heartbeat keeps it
        with (
            pytest.raises(PoolSlotTimeout, match=r"held by clip\[long\] \(run run-1"),
            pool_slot(ledger, "gpu", "run-2", "clip[other]", quiet, settings),
        ):
            pass
