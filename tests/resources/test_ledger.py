# ruff: noqa: F811 - the fixtures imported from api_fixtures come back as test arguments
import sqlite3
import threading
from datetime import timedelta

import pytest

from resources.ledger import (
    DEFAULT_LEDGER_URL,
    LEDGER_URL_ENV,
    BudgetExceeded,
    JobSpec,
    JobStatus,
    LedgerError,
    LedgerResource,
    day_scope,
    use_write_ahead_log,
)
from tests.resources.providers.api.api_fixtures import (  # noqa: F401 - fixtures
    after_barrier,
    forked_processes,
    ledger_url,
    postgres_ledger_url,
    reserve_outcome,
)

PRICE = 0.25


def spec(key: str, price: float = PRICE, scopes: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(
        key=key,
        provider="runway",
        model="gen4_turbo",
        sku_id=f"SKU-{key}",
        content_hash="h",
        attempt=1,
        params={"task": {"ratio": "1280:720"}},
        price_usd=price,
        scopes=scopes,
    )


def test_job_lifecycle_reserves_then_charges_exactly_once(ledger_url):
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=1.0)
    job = ledger.open_job(spec("a"))
    assert job.status == JobStatus.RESERVED and job.scopes == (day_scope(),)
    assert ledger.budget(day_scope()).reserved_usd == PRICE

    assert ledger.claim_submission("a")
    assert not ledger.claim_submission("a"), "a second run must not submit the same job"
    job = ledger.record_submitted("a", "task-1", {"status_url": "https://x/status"})
    assert (job.status, job.provider_task_id, job.task_info) == (
        JobStatus.SUBMITTED,
        "task-1",
        {"status_url": "https://x/status"},
    )

    assert ledger.settle_success("a", "https://x/out.mp4")
    assert not ledger.settle_success("a", "https://x/out2.mp4"), "settling twice must not charge twice"
    assert [(c.job_key, c.usd) for c in ledger.charges()] == [("a", PRICE)]
    budget = ledger.budget(day_scope())
    assert (budget.limit_usd, budget.reserved_usd, budget.spent_usd) == (1.0, 0.0, PRICE)
    assert ledger.job("a").output_url == "https://x/out2.mp4"


def test_reopening_a_job_reserves_nothing_more(ledger_url):
    ledger = LedgerResource(url=ledger_url)
    first = ledger.open_job(spec("a"))
    again = ledger.open_job(spec("a"))
    assert again.key == first.key and again.status == JobStatus.RESERVED
    assert ledger.budget(day_scope()).reserved_usd == PRICE


def test_refused_reservation_names_scope_limit_spent_reserved_and_amount(ledger_url):
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=0.6)
    ledger.open_job(spec("a"))
    ledger.claim_submission("a")
    ledger.record_submitted("a", "t")
    ledger.settle_success("a", "u")
    ledger.open_job(spec("b"))
    with pytest.raises(BudgetExceeded) as refused:
        ledger.open_job(spec("c"))
    message = str(refused.value)
    for part in (
        day_scope(),
        "limit $0.6000",
        "spent $0.2500",
        "reserved $0.2500",
        "refuses $0.2500",
        "SKU-c",
    ):
        assert part in message
    assert ledger.job("c") is None
    assert ledger.budget(day_scope()).reserved_usd == PRICE


def test_a_refusal_on_one_scope_reserves_on_none(ledger_url):
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=10.0)
    ledger.set_budget("backfill:b1", 0.3)
    ledger.open_job(spec("a", scopes=("backfill:b1",)))
    with pytest.raises(BudgetExceeded, match="backfill:b1"):
        ledger.open_job(spec("b", scopes=("backfill:b1",)))
    assert ledger.budget(day_scope()).reserved_usd == PRICE, (
        "the daily reservation of the refused job rolled back"
    )
    assert ledger.budget("backfill:b1").reserved_usd == PRICE


def test_limits_compare_exactly(ledger_url):
    # 5 x $0.28 is 1.4000000000000001 in floating point; micro-dollars make the fifth clip fit a $1.40 budget.
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=1.4)
    for key in "abcde":
        ledger.open_job(spec(key, price=0.28))
    with pytest.raises(BudgetExceeded):
        ledger.open_job(spec("f", price=0.28))


def test_failed_job_releases_its_reservation_and_is_rearmed_on_reopen(ledger_url):
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=1.0)
    ledger.open_job(spec("a"))
    ledger.claim_submission("a")
    ledger.record_submitted("a", "t1")
    ledger.close_unpaid("a", JobStatus.FAILED, "INTERNAL: bad output")
    assert ledger.budget(day_scope()).reserved_usd == 0
    assert ledger.job("a").failure_reason == "INTERNAL: bad output"

    rearmed = ledger.open_job(spec("a"))
    assert (rearmed.status, rearmed.provider_task_id) == (JobStatus.RESERVED, None)
    assert ledger.budget(day_scope()).reserved_usd == PRICE
    assert ledger.charges() == []


def test_refused_job_stays_refused(ledger_url):
    ledger = LedgerResource(url=ledger_url)
    ledger.open_job(spec("a"))
    ledger.close_unpaid("a", JobStatus.REFUSED, "SAFETY.INPUT.IMAGE")
    assert ledger.open_job(spec("a")).status == JobStatus.REFUSED
    assert ledger.budget(day_scope()).reserved_usd == 0
    with pytest.raises(LedgerError, match="refused"):
        ledger.settle_success("a", "u")


def test_an_unconfirmed_or_stale_submission_can_be_taken_over_by_one_run(ledger_url):
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=1.0)
    ledger.open_job(spec("a"))
    ledger.claim_submission("a")
    assert not ledger.claim_unconfirmed("a", timedelta(minutes=5)), (
        "its run may still be waiting for the answer"
    )
    assert ledger.claim_unconfirmed("a", timedelta(0))

    ledger.mark_unconfirmed("a", "read timeout")
    job = ledger.job("a")
    assert (job.status, job.failure_reason) == (JobStatus.UNCONFIRMED, "read timeout")
    assert ledger.budget(day_scope()).reserved_usd == PRICE, "an unconfirmed job may have cost money"
    assert ledger.claim_unconfirmed("a", timedelta(minutes=5))
    assert not ledger.claim_unconfirmed("a", timedelta(minutes=5)), "only one run takes it over"


def test_threads_never_reserve_past_the_limit(ledger_url):
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=5 * PRICE)
    ledger.budget("warm-up")  # create the tables before the race
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def reserve(key: str) -> None:
        barrier.wait()
        outcomes.append(reserve_outcome(ledger_url, 5 * PRICE, key, PRICE))

    threads = [threading.Thread(target=reserve, args=(f"job-{index}",)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.split(":")[0] for o in outcomes) == ["budget"] * 7 + ["reserved"] * 5
    assert ledger.budget(day_scope()).reserved_usd == 5 * PRICE


def test_processes_never_reserve_past_the_limit(ledger_url):
    LedgerResource(url=ledger_url).budget("warm-up")
    context = forked_processes()
    barrier, results = context.Barrier(8), context.Queue()
    children = [
        context.Process(
            target=after_barrier,
            args=(barrier, results, reserve_outcome, ledger_url, 5 * PRICE, f"job-{index}", PRICE),
        )
        for index in range(8)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(10)
    assert sorted(o.split(":")[0] for o in outcomes) == ["budget"] * 3 + ["reserved"] * 5, outcomes
    assert LedgerResource(url=ledger_url).budget(day_scope()).reserved_usd == 5 * PRICE


def test_connections_switching_a_ledger_to_wal_together_all_succeed(tmp_path):
    # A file in the default rollback-journal mode (a ledger made by hand or by an older release): switching
    # it to WAL takes a lock that SQLite, to avoid a deadlock between switchers, does not wait for.
    failures = []

    def switch(path, barrier) -> None:
        connection = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout = 5000")
        barrier.wait()
        try:
            use_write_ahead_log(connection, busy_timeout_s=5)
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            failures.append(f"{path.name}: {error}")
        finally:
            connection.close()

    for index in range(40):
        path = tmp_path / f"ledger-{index}.sqlite"
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE older_release (id INTEGER)")
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=switch, args=(path, barrier)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_default_url_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    assert LedgerResource().resolved_url == DEFAULT_LEDGER_URL
    monkeypatch.setenv(LEDGER_URL_ENV, f"sqlite:///{tmp_path}/from-env.sqlite")
    ledger = LedgerResource()
    ledger.set_budget("campaign:c1", 2.0)
    assert (tmp_path / "from-env.sqlite").is_file()
    assert ledger.budget("campaign:c1").limit_usd == 2.0


def test_other_databases_are_refused(tmp_path):
    with pytest.raises(LedgerError, match="sqlite"):
        LedgerResource(url="mysql+pymysql://u@localhost/db").budget("x")
