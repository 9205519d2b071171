"""The money fault matrix: every paid clip provider x every fault x with and without a SIGKILL in that phase,
each cell followed by a re-run and, where the job is left uncertain, the operator's answer.

A cell passes when the emulator made at most one task for the job, the ledger charged exactly what the
emulator billed, and no budget went past its limit. Used by tests/resources/providers/api/test_fault_matrix.py and by
bench/faults.py (on SQLite and PostgreSQL ledgers).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devkit.emulators import (
    DroppedConnection,
    EmulatorServer,
    RateLimited,
    ServerError,
    ServerErrorAfterWork,
    SlowAnswer,
    SlowDrip,
    TaskScript,
)
from devkit.emulators.did import DidEmulator
from devkit.emulators.heygen import HeyGenEmulator
from resources.api_client.errors import ProviderError, SubmissionUncertain
from resources.api_client.paid_jobs import ApiClipProvider
from resources.api_client.prices import api_list_price
from resources.ledger import BudgetExceeded, JobStatus, LedgerResource, day_scope
from resources.presenters.base import ApiPresenterProvider, PresenterRequest, clip_duration_s
from resources.presenters.did import DidPresenter
from resources.presenters.heygen import HeyGenPresenter
from resources.pricing import PricesResource
from resources.storage import StorageResource
from tests.resources.providers.api.api_fixtures import (
    EMULATED_OUTPUT_SHORT_SIDE,
    EMULATORS,
    FAST,
    build_provider,
    emulator_credentials,
    forked_processes,
    log,
    make_request,
)

PROVIDERS = ("runway", "kling", "pika", "heygen", "did")
PRESENTERS: dict[str, tuple[type[EmulatorServer], type[ApiPresenterProvider]]] = {
    "heygen": (HeyGenEmulator, HeyGenPresenter),
    "did": (DidEmulator, DidPresenter),
}
NARRATION = "Brush off dry mud first, then rinse in cool water and let it dry away from the heater."
# Short windows, so that a run killed mid-request is recognised as dead within a second or two.
MATRIX_TIMINGS = {"retry_budget_s": 0.5, "connect_timeout_s": 0.5, "read_timeout_s": 0.4, "poll_interval_s": 0.02}
HOLD_S = 1.0  # how long a fault keeps the request open when a kill is to land during it


@dataclass(frozen=True)
class Fault:
    """One fault: the phase it hits, how to provoke it, and the provider settings it needs."""

    name: str
    phase: str  # before_send | create | poll | download
    inject: Callable[[EmulatorServer, bool], None]  # (emulator, killed) -> None
    script: TaskScript = TaskScript(running_s=0.05)  # noqa: RUF009 - frozen, safe to share
    provider_overrides: tuple[tuple[str, Any], ...] = ()


def _on(route: str, *faults: Any) -> Callable[[EmulatorServer, bool], None]:
    return lambda emulator, _killed: emulator.inject(route, *faults)


def _create_fault(make: Callable[[float], Any]) -> Callable[[EmulatorServer, bool], None]:
    # With a kill, the answer is held open long enough for the kill to land while it is outstanding.
    return lambda emulator, killed: emulator.inject("submit", make(HOLD_S if killed else 0.0))


FAULTS = (
    Fault("before send: 429 past the retry budget", "before_send", _on("submit", RateLimited("3600"))),
    Fault("after create: 5xx", "create", _create_fault(lambda hold: ServerErrorAfterWork(504, hold))),
    Fault("after create: read timeout", "create", _create_fault(lambda hold: SlowAnswer(max(hold, 0.8)))),
    Fault("after create: dropped connection", "create", _create_fault(lambda hold: DroppedConnection(hold))),
    Fault("mid-poll: 5xx", "poll", _on("status", ServerError(502), ServerError(500)),
          TaskScript(running_s=0.6)),
    Fault("mid-poll: 429", "poll", _on("status", RateLimited("0"), RateLimited(None)), TaskScript(running_s=0.6)),
    Fault("mid-poll: THROTTLED", "poll", _on("status"), TaskScript(queued_s=0.6, running_s=0.05)),
    Fault("download: expired", "download", _on("download"), TaskScript(running_s=0.05, expired_downloads=2)),
    Fault("download: oversized", "download", _on("download"), provider_overrides=(("max_output_bytes", 2000),)),
    Fault("download: slow drip", "download", _on("download", SlowDrip(64, 0.05, 4.0)),
          provider_overrides=(("download_deadline_s", 1.0),)),
)


@dataclass
class CellResult:
    provider: str
    fault: str
    killed: bool
    tasks: int
    ledger_usd: float
    billed_usd: float
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    outcome: str

    @property
    def overspend_usd(self) -> float:
        return max(0.0, self.spent_usd + self.reserved_usd - self.limit_usd)

    @property
    def ok(self) -> bool:
        # Money is kept in micro-dollars: a presenter's per-second charge rounds to the nearest one.
        return self.tasks <= 1 and abs(self.ledger_usd - self.billed_usd) <= 2e-6 and self.overspend_usd == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "overspend_usd": self.overspend_usd, "ok": self.ok}


def _kill_here(*_args: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _build(settings: dict[str, Any]) -> ApiClipProvider:
    if settings["name"] not in PRESENTERS:
        return build_provider(**settings)
    options = dict(settings)
    name, storage_root = options.pop("name"), options.pop("storage_root")
    ledger = LedgerResource(url=options.pop("ledger_url"), daily_budget_usd=options.pop("daily_budget_usd", None))
    credentials = options.pop("credentials")
    fast = {key: value for key, value in FAST.items() if key != "preset"}
    return PRESENTERS[name][1](
        **credentials, storage=StorageResource(root=storage_root), ledger=ledger, prices=PricesResource(),
        **{**fast, **options},
    )


def _presenter_request() -> PresenterRequest:
    return PresenterRequest(module="care", scene="Clean gently", text=NARRATION, size=(96, 96), background="#F5F2EB")


def _render_once(provider: ApiClipProvider) -> None:
    if isinstance(provider, ApiPresenterProvider):
        provider.render_presenter(_presenter_request(), log)
    else:
        provider.render_clip(make_request(), log)


def _render_in_child(settings: dict[str, Any], kill_before_send: bool) -> None:
    """Child process body: render until the parent kills it (or, before sending, kill itself)."""
    provider = _build(settings)
    if kill_before_send:
        # Called after the job is reserved and before the create request is claimed and sent.
        type(provider).keyframe_upload = _kill_here
    try:
        _render_once(provider)
    except Exception as error:  # noqa: BLE001 - the parent judges the cell by the ledger and the emulator
        log(f"child render stopped: {error}")


def _phase_reached(emulator: EmulatorServer, phase: str) -> bool:
    if phase == "create":
        return emulator.submissions >= 1
    if phase == "poll":
        return emulator.requests["status"] >= 1
    if phase == "download":
        return emulator.requests["download"] >= 1
    return False


def _render(provider: ApiClipProvider) -> str:
    try:
        _render_once(provider)
    except SubmissionUncertain:
        return "uncertain"
    except BudgetExceeded:
        return "budget"
    except ProviderError as error:
        return type(error).__name__
    return "rendered"


def _wait_for_tasks_to_settle(emulator: EmulatorServer, deadline_s: float = 10.0) -> None:
    until = time.monotonic() + deadline_s
    while time.monotonic() < until and any(p in ("queued", "running") for p in emulator.phases().values()):
        time.sleep(0.02)


def run_cell(name: str, fault: Fault, killed: bool, ledger_url: str, work_dir: Path) -> CellResult:
    """Run one cell on a fresh emulator and the given (fresh) ledger, and measure what it cost."""
    emulator_class = PRESENTERS[name][0] if name in PRESENTERS else EMULATORS[name]
    emulator = emulator_class(output_short_side=EMULATED_OUTPUT_SHORT_SIDE, script=fault.script)
    with emulator:
        overrides = {**MATRIX_TIMINGS, **dict(fault.provider_overrides)}
        settings = {
            "name": name,
            "base_url": emulator.base_url,
            "credentials": emulator_credentials(name, emulator),
            "storage_root": str(work_dir / "data"),
            "ledger_url": ledger_url,
            **overrides,
        }
        probe = _build(settings)
        if isinstance(probe, ApiPresenterProvider):
            rate = probe.list_price_per_s()[0]
            price = probe.worst_case_usd(_presenter_request())
        else:
            rate = api_list_price(probe.prices.table, probe.price_key(), 1).usd
            price = rate * 5
        # The daily limit is one clip: a second charge for the same job would overspend it.
        settings["daily_budget_usd"] = price
        if killed and fault.phase == "download":
            # Held open so that the kill lands during the download, whatever the fault does after.
            emulator.inject("download", SlowAnswer(HOLD_S))
        if not (killed and fault.phase == "before_send"):
            # Before sending, the kill itself is the fault: the create request never leaves the process.
            fault.inject(emulator, killed)
        outcomes = []
        if killed:
            child = forked_processes().Process(
                target=_render_in_child, args=(settings, fault.phase == "before_send")
            )
            child.start()
            until = time.monotonic() + 20.0
            while child.is_alive() and time.monotonic() < until:
                if _phase_reached(emulator, fault.phase):
                    os.kill(child.pid, signal.SIGKILL)
                    break
                time.sleep(0.005)
            child.join(20.0)
            outcomes.append("killed" if child.exitcode == -signal.SIGKILL else f"exit {child.exitcode}")
        else:
            outcomes.append(_render(_build(settings)))
        # The re-run, once the provider behaves again: a fresh process sees the same ledger and provider.
        emulator.clear_faults()
        rerun = {key: value for key, value in settings.items() if key not in dict(fault.provider_overrides)}
        outcomes.append(_render(_build(rerun)))
        ledger = LedgerResource(url=ledger_url, daily_budget_usd=price)
        _wait_for_tasks_to_settle(emulator)
        if outcomes[-1] == "uncertain":
            # The operator checks the provider's dashboard (here: the emulator) and answers.
            job = next(j for j in ledger.jobs_needing_attention() if j.status in (
                JobStatus.UNCONFIRMED, JobStatus.SUBMITTING))
            paid = emulator.submissions > 0
            # The dashboard shows what the task billed (a presenter clip bills its delivered length).
            shown = sum(
                rate * (clip_duration_s(task.video.result())[0] if name in PRESENTERS else task.seconds)
                for task in emulator.tasks.values()
            )
            ledger.resolve_uncertain(job.key, paid=paid, usd=shown if paid else None, note="checked the dashboard")
            outcomes.append("resolved paid" if paid else "resolved not paid")
            if not paid:
                outcomes.append(_render(_build(rerun)))
                _wait_for_tasks_to_settle(emulator)
        # What the provider bills: the seconds it delivered (a clip API sells the length asked for).
        billed = sum(
            rate * (clip_duration_s(task.video.result())[0] if name in PRESENTERS else task.seconds)
            for task in emulator.tasks.values()
            if task.phase() == "succeeded"
        )
        budget = ledger.budget(day_scope())
        return CellResult(
            provider=name,
            fault=fault.name,
            killed=killed,
            tasks=emulator.submissions,
            ledger_usd=round(sum(charge.usd for charge in ledger.charges()), 6),
            billed_usd=round(billed, 6),
            limit_usd=price,
            spent_usd=budget.spent_usd if budget else 0.0,
            reserved_usd=budget.reserved_usd if budget else 0.0,
            outcome=" -> ".join(outcomes),
        )


def cells() -> list[tuple[str, Fault, bool]]:
    return [(name, fault, killed) for name in PROVIDERS for fault in FAULTS for killed in (False, True)]


def cell_id(name: str, fault: Fault, killed: bool) -> str:
    return f"{name}-{fault.name}-{'sigkill' if killed else 'no kill'}"
