"""`skuvid jobs`: the operator's view of open and unconfirmed API jobs, and their answer for uncertain ones."""

import pytest

from pipelines.cli import main
from resources.ledger import JobSpec, JobStatus, LedgerResource, day_scope


def unconfirmed_job(ledger: LedgerResource, sku_id: str, key: str) -> JobSpec:
    spec = JobSpec(
        key=key, provider="runway", model="gen4_turbo", sku_id=sku_id, content_hash="h", attempt=1,
        params={}, price_usd=0.25,
    )
    ledger.open_job(spec)
    assert ledger.claim_submission(key)
    ledger.mark_unconfirmed(key, "runway: request sent but answered 504; Authorization: Bearer sk-live-123456789")
    return spec


@pytest.fixture
def ledger(tmp_path) -> LedgerResource:
    return LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}", daily_budget_usd=1.0)


def test_lists_unconfirmed_jobs_without_their_secrets(ledger, capsys):
    unconfirmed_job(ledger, "HERO-1", "a" * 64)
    assert main(["jobs", "--ledger", ledger.url]) == 0
    out = capsys.readouterr().out
    assert "aaaaaaaaaaaa" in out and "HERO-1" in out and "unconfirmed" in out
    assert "skuvid jobs resolve JOB --paid" in out
    assert "sk-live" not in out and "sk-live" not in (ledger.job("a" * 64).failure_reason or "")


def test_paid_books_the_charge_and_not_paid_releases_the_reservation(ledger, capsys):
    paid = unconfirmed_job(ledger, "HERO-1", "b" * 64)
    not_paid = unconfirmed_job(ledger, "HERO-2", "c" * 64)
    assert ledger.budget(day_scope()).reserved_usd == 0.5

    assert main(["jobs", "--ledger", ledger.url, "resolve", "bbbbbbbbbbbb", "--paid"]) == 0
    assert main(["jobs", "--ledger", ledger.url, "resolve", "cccccccccccc", "--not-paid"]) == 0
    budget = ledger.budget(day_scope())
    assert (budget.spent_usd, budget.reserved_usd) == (0.25, 0.0)
    assert [charge.job_key for charge in ledger.charges()] == [paid.key]
    assert ledger.job(paid.key).status == JobStatus.SUCCEEDED

    # A later run submits the released job as a new round; the paid one is never sent again.
    again = ledger.open_job(not_paid)
    assert (again.status, again.submission_round) == (JobStatus.RESERVED, 2)
    assert ledger.open_job(paid).status == JobStatus.SUCCEEDED
    capsys.readouterr()
    assert main(["jobs", "--ledger", ledger.url, "resolve", "bbbbbbbbbbbb", "--not-paid"]) == 1
    assert "not unconfirmed" in capsys.readouterr().out
    assert main(["jobs", "--ledger", ledger.url, "resolve", "zz", "--paid"]) == 1
