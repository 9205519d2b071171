"""The two promises under crashes and contention: a clip is never paid for twice, a budget never exceeded."""
# ruff: noqa: F811 - the fixtures imported from api_fixtures come back as test arguments

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable

from devkit.emulators import TaskScript
from resources.ledger import JobStatus, api_jobs, day_scope, ledger_engine
from tests.resources.providers.api.api_fixtures import (  # noqa: F401 - fixtures
    after_barrier,
    case,
    forked_processes,
    ledger_url,
    log,
    make_request,
    postgres_ledger_url,
    render_forever,
    render_outcome,
    runway_case,
)

PRICE = 0.25  # runway gen4_turbo, 5 s
BUDGET = 5 * PRICE
RENDERS = 8


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.05)


def job_rows(ledger_url: str) -> list[dict]:
    with ledger_engine(ledger_url).connect() as connection:
        return [dict(row) for row in connection.execute(api_jobs.select()).mappings()]


def test_a_run_killed_mid_poll_is_resumed_by_the_rerun_and_paid_once(case):
    case.emulator.script = TaskScript(outcome="never")
    child = multiprocessing.get_context("spawn").Process(
        target=render_forever, args=(case.provider_settings(), {"sku_id": "SKU-1"})
    )
    child.start()
    try:
        # Killed while polling: the task id is in the ledger and the child has read the RUNNING task.
        wait_until(lambda: case.emulator.requests["status"] >= 3)
        [job] = job_rows(case.ledger_url)
        assert job["status"] == JobStatus.SUBMITTED and job["provider_task_id"] in case.emulator.tasks
        assert case.emulator.phases() == {job["provider_task_id"]: "running"}
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert child.exitcode == -signal.SIGKILL

    case.emulator.finish_stuck_tasks()
    result = case.provider().render_clip(make_request("SKU-1"), log)
    assert result.cost.provider_job_id == job["provider_task_id"] and result.cost.charged_in_this_run
    assert case.emulator.submissions == 1
    ledger = case.ledger()
    assert [charge.usd for charge in ledger.charges()] == [result.cost.list_usd]
    budget = ledger.budget(day_scope())
    assert (budget.reserved_usd, budget.spent_usd) == (0.0, result.cost.list_usd)


def assert_budget_held(outcomes: list[str], emulator, ledger_url: str) -> None:
    charged = [outcome for outcome in outcomes if outcome == "charged"]
    refused = [outcome for outcome in outcomes if outcome.startswith("budget: ")]
    assert (len(charged), len(refused)) == (5, RENDERS - 5), outcomes
    for message in refused:
        assert f"budget {day_scope()} refuses $0.2500" in message and "limit $1.2500" in message
    assert emulator.submissions == 5
    budget_rows = [row for row in job_rows(ledger_url) if row["status"] == JobStatus.SUCCEEDED]
    assert len(budget_rows) == 5
    from resources.ledger import LedgerResource

    ledger = LedgerResource(url=ledger_url)
    assert len(ledger.charges()) == 5
    budget = ledger.budget(day_scope())
    assert (budget.limit_usd, budget.reserved_usd, budget.spent_usd) == (BUDGET, 0.0, BUDGET)


def test_concurrent_threads_never_overspend(ledger_url, tmp_path):
    case = runway_case(tmp_path, script=TaskScript(running_s=0.3))
    try:
        settings = case.provider_settings(ledger_url=ledger_url, daily_budget_usd=BUDGET)
        barrier = threading.Barrier(RENDERS)
        outcomes: list[str] = []

        def render(index: int) -> None:
            barrier.wait()
            outcomes.append(render_outcome(settings, {"sku_id": f"SKU-{index}"}))

        threads = [threading.Thread(target=render, args=(index,)) for index in range(RENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert_budget_held(outcomes, case.emulator, ledger_url)
    finally:
        case.emulator.stop()


def test_concurrent_processes_never_overspend(ledger_url, tmp_path):
    case = runway_case(tmp_path, script=TaskScript(running_s=0.3))
    try:
        settings = case.provider_settings(ledger_url=ledger_url, daily_budget_usd=BUDGET)
        context = forked_processes()
        barrier, results = context.Barrier(RENDERS), context.Queue()
        children = [
            context.Process(
                target=after_barrier,
                args=(barrier, results, render_outcome, settings, {"sku_id": f"SKU-{index}"}),
            )
            for index in range(RENDERS)
        ]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=120) for _ in children]
        for child in children:
            child.join(30)
        assert_budget_held(outcomes, case.emulator, ledger_url)
    finally:
        case.emulator.stop()


def test_runs_racing_on_the_same_clip_submit_it_once(case):
    settings = case.provider_settings()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def render() -> None:
        barrier.wait()
        outcomes.append(render_outcome(settings, {"sku_id": "SKU-1"}))

    threads = [threading.Thread(target=render) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(outcomes) == ["charged", "reused", "reused", "reused"]
    assert case.emulator.submissions == 1
    assert len(case.ledger().charges()) == 1
