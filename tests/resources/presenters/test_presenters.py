"""Presenters (HeyGen, D-ID) against their emulators: the request contracts, retries, failed and stuck jobs,
lost answers and crashes, and the promise that a presenter clip is never paid for twice."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devkit.emulators.base import DroppedConnection, RateLimited, ServerError, TaskScript
from devkit.emulators.did import DidEmulator
from devkit.emulators.heygen import HeyGenEmulator
from resources.api_client.errors import ProviderError, ProviderJobFailed, ProviderTimeout, SubmissionUncertain
from resources.ledger import BudgetExceeded, JobStatus, LedgerResource, api_jobs, ledger_engine
from resources.presenters.base import (
    ApiPresenterProvider,
    PresenterInputError,
    PresenterRequest,
    clip_duration_s,
    speech_units,
)
from resources.presenters.did import DidPresenter
from resources.presenters.heygen import HeyGenPresenter
from resources.pricing import PricesResource
from resources.storage import StorageResource
from videokit.training.narration import EspeakSpeech

FAST = {
    "poll_interval_s": 0.02,
    "poll_deadline_s": 20.0,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 2.0,
    "max_attempts": 4,
    "retry_budget_s": 10.0,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.05,
}
TEXT = "Brush off dry mud first, then rinse in cool water."
EMULATORS = {"heygen": HeyGenEmulator, "did": DidEmulator}
PROVIDERS: dict[str, type[ApiPresenterProvider]] = {"heygen": HeyGenPresenter, "did": DidPresenter}


def log(message: str) -> None:
    print(message)


def request(module: str = "care", text: str = TEXT, **fields: Any) -> PresenterRequest:
    return PresenterRequest(
        module=module, scene="Clean gently", text=text, size=(96, 96), background="#F5F2EB", **fields
    )


def build(
    name: str, base_url: str, api_key: str, root: str, ledger_url: str, **overrides: Any
) -> ApiPresenterProvider:
    return PROVIDERS[name](
        base_url=base_url,
        api_key=api_key,
        storage=StorageResource(root=root),
        ledger=LedgerResource(url=ledger_url),
        prices=PricesResource(),
        **{**FAST, **overrides},
    )


class Case:
    def __init__(self, name: str, tmp_path: Path):
        self.name = name
        self.emulator = EMULATORS[name](output_short_side=96).start()
        self.settings = {
            "name": name,
            "base_url": self.emulator.base_url,
            "api_key": self.emulator.api_key,
            "root": str(tmp_path / "data"),
            "ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        }

    def provider(self, **overrides: Any) -> ApiPresenterProvider:
        return build(**self.settings, **overrides)

    def jobs(self) -> list[dict]:
        with ledger_engine(self.settings["ledger_url"]).connect() as connection:
            return [dict(row) for row in connection.execute(api_jobs.select()).mappings()]

    def charges(self) -> list[float]:
        return [charge.usd for charge in LedgerResource(url=self.settings["ledger_url"]).charges()]


@pytest.fixture(params=["heygen", "did"])
def case(request, tmp_path):
    made = Case(request.param, tmp_path)
    yield made
    made.emulator.stop()


@pytest.fixture
def heygen(tmp_path):
    made = Case("heygen", tmp_path)
    yield made
    made.emulator.stop()


def test_a_clip_survives_429_and_500_and_is_charged_once_whoever_asks_again(case):
    # A 5xx answer to a create request may hide a task, so only 429s are retried there; status reads retry both.
    case.emulator.inject("submit", RateLimited("0"), RateLimited("0"))
    case.emulator.inject("status", ServerError(502), RateLimited(None))
    result = case.provider().render_presenter(request(), log)
    assert result.duration_s > 2.0 and result.cost.charged_in_this_run
    assert case.emulator.requests["submit"] == 3 and case.emulator.submissions == 1
    rate = PricesResource().table.api[case.provider().price_key()]["usd_per_s"]
    assert result.cost.list_usd == pytest.approx(rate * result.duration_s)
    assert case.charges() == [pytest.approx(rate * result.duration_s, abs=1e-6)]
    # The same words for another module (or the same scene again) are the same clip: downloaded, not bought.
    again = case.provider().render_presenter(request(module="other-module"), log)
    assert not again.cost.charged_in_this_run and again.job_key == result.job_key
    assert case.emulator.submissions == 1 and len(case.charges()) == 1


def test_the_requests_follow_each_providers_contract(case):
    provider = case.provider()
    result = provider.render_presenter(request(avatar=None, voice="voice-7"), log)
    [task] = case.emulator.tasks.values()
    if case.name == "heygen":
        [scene] = task.params["video_inputs"]
        assert scene["voice"] == {"type": "text", "input_text": TEXT, "voice_id": "voice-7", "speed": 1.0}
        assert (
            scene["character"]["avatar_id"] == provider.avatar and scene["background"]["value"] == "#F5F2EB"
        )
        assert task.params["dimension"] == {"width": 96, "height": 96}
        assert task.params["callback_id"] == result.job_key
    else:
        assert task.params["script"] == {
            "type": "text",
            "input": TEXT,
            "provider": {"type": "microsoft", "voice_id": "voice-7"},
        }
        assert task.params["source_url"] == provider.avatar and task.params["config"]["stitch"] is True
        assert task.params["user_data"] == result.job_key


def test_a_failed_job_costs_nothing_and_a_rerun_buys_a_new_one(case):
    case.emulator.script = TaskScript(outcome="fail")
    with pytest.raises(ProviderJobFailed, match="failed"):
        case.provider().render_presenter(request(), log)
    [job] = case.jobs()
    assert job["status"] == JobStatus.FAILED and case.charges() == []
    case.emulator.script = TaskScript()
    result = case.provider().render_presenter(request(), log)
    assert result.cost.charged_in_this_run and case.emulator.submissions == 2 and len(case.charges()) == 1


def test_a_job_that_never_finishes_stays_resumable(case):
    case.emulator.script = TaskScript(outcome="never")
    with pytest.raises(ProviderTimeout, match="a re-run resumes polling"):
        case.provider(poll_deadline_s=0.3).render_presenter(request(), log)
    [job] = case.jobs()
    assert job["status"] == JobStatus.SUBMITTED and job["provider_task_id"]
    case.emulator.finish_stuck_tasks()
    result = case.provider().render_presenter(request(), log)
    assert result.cost.provider_job_id == job["provider_task_id"] and result.cost.charged_in_this_run
    assert case.emulator.submissions == 1 and len(case.charges()) == 1


def test_a_lost_create_answer_is_never_sent_twice(case):
    case.emulator.inject("submit", DroppedConnection())
    provider = case.provider()
    if case.name == "did":
        # D-ID talks carry our key as user_data: the talk the lost request made is found and adopted.
        result = provider.render_presenter(request(), log)
        assert case.emulator.requests["list"] == 1 and result.cost.charged_in_this_run
    else:
        # HeyGen cannot find a video by an id of ours: the job stays unconfirmed rather than risk paying twice.
        with pytest.raises(SubmissionUncertain, match="stays unconfirmed"):
            provider.render_presenter(request(), log)
        assert case.jobs()[0]["status"] == JobStatus.UNCONFIRMED and case.charges() == []
    assert case.emulator.submissions == 1


def test_limits_and_keys_are_checked_before_anything_is_sent(heygen, tmp_path):
    with pytest.raises(PresenterInputError, match="at most 2000 per clip. Split the scene"):
        heygen.provider().render_presenter(request(text="word " * 500), log)
    with pytest.raises(PresenterInputError, match="at most 300s"):
        heygen.provider().render_presenter(request(text="w " * 900), log)
    keyless = HeyGenPresenter(
        storage=StorageResource(root=str(tmp_path)), ledger=LedgerResource(), prices=PricesResource()
    )
    assert keyless.availability().reason == "HEYGEN_API_KEY not set"
    with pytest.raises(ProviderError, match="HEYGEN_API_KEY not set"):
        keyless.render_presenter(request(), log)
    assert sum(heygen.emulator.requests.values()) == 0 and heygen.jobs() == []
    with pytest.raises(ProviderError, match="not product clips"):
        keyless.render_clip(None, log)


def test_list_prices_come_from_the_price_table(tmp_path):
    table = (Path(__file__).resolve().parents[3] / "resources" / "prices.yaml").read_text()
    row = next(line for line in table.splitlines() if line.strip().startswith("heygen_avatar_iv_studio:"))
    (tmp_path / "prices.yaml").write_text(table.replace(row, "  heygen_avatar_iv_studio: {usd_per_s: 0.1, source: test}"))
    shared = {"storage": StorageResource(root=str(tmp_path)), "ledger": LedgerResource()}
    changed = HeyGenPresenter(prices=PricesResource(path=str(tmp_path / "prices.yaml")), **shared)
    assert changed.list_price_per_s() == (0.1, "test")
    packaged = DidPresenter(prices=PricesResource(), **shared)
    assert packaged.list_price_per_s()[0] == pytest.approx(48 / 1800, rel=1e-3)
    with pytest.raises(ProviderError, match="no list price 'heygen_nope'"):
        HeyGenPresenter(pricing="nope", prices=PricesResource(), **shared).list_price_per_s()


# --------------------------------------------------------------------------- a run killed mid-poll


def render_in_child(settings: dict[str, Any]) -> None:
    """Target of a child process killed while it polls: renders with a poll deadline it never reaches."""
    build(**settings, poll_deadline_s=3600.0).render_presenter(request(), log)


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.05)


def test_a_run_killed_mid_poll_is_resumed_by_the_rerun_and_paid_once(heygen):
    heygen.emulator.script = TaskScript(outcome="never")
    child = multiprocessing.get_context("spawn").Process(target=render_in_child, args=(heygen.settings,))
    child.start()
    try:
        wait_until(lambda: heygen.emulator.requests["status"] >= 2)
        [job] = heygen.jobs()
        assert job["status"] == JobStatus.SUBMITTED and job["provider_task_id"] in heygen.emulator.tasks
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert child.exitcode == -signal.SIGKILL
    heygen.emulator.finish_stuck_tasks()
    result = heygen.provider().render_presenter(request(), log)
    assert result.cost.provider_job_id == job["provider_task_id"] and result.cost.charged_in_this_run
    assert heygen.emulator.submissions == 1 and len(heygen.charges()) == 1


# --------------------------------------------------------------------------- budgets: worst case reserved, actual charged

NUMBER_WORDS = ["seven", "eleven", "thirteen", "seventeen", "nineteen", "twenty", "three"]
HYPHENATED = "-".join(NUMBER_WORDS[i % len(NUMBER_WORDS)] for i in range(400))[:1990]
# Texts that take a voice longer to say than their letters suggest; the worst case must bound each of them.
ADVERSARIAL = {
    "hyphen chain": HYPHENATED[:600],
    "prose": "Brush off dry mud first, then rinse in cool water. Let the boots dry away from heat. " * 4,
    "long numbers": "7777777777 " * 12,
    "digits": "7 " * 80,
    "prices": "$1 " * 60,
    "emoji": "\U0001F600 " * 40,
    "ideographs": "\u4e2d\u6587" * 40,
    "capitals": "ABCDEFGHIJ " * 20,
    "acronyms": "IBM NASA HTML XYZ " * 12,
    "single letters": "a b c d e f g h " * 12,
    "no vowels": "bcdfg hjklm " * 16,
    "mixed case": "hElLoWoRlD " * 20,
    "x syllables": "xaxaxaxaxaxa " * 16,
    "urls": "www.example.com/abc " * 10,
    "commas": "a, " * 100,
    "paragraphs": "Hello.\n\n" * 40,
    "dates": "12/31/1999 " * 12,
    "cyrillic": "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 " * 12,
    "uuids": "3f2a9c1e-7b4d-4e8a-9f01-a2b3c4d5e6f7 " * 5,
}


def test_the_worst_case_bounds_what_a_voice_takes_to_say_hostile_text():
    # espeak-ng at 160 words a minute is the emulators' voice; the bound keeps a quarter in hand for slower ones.
    speech = EspeakSpeech()
    for name, text in ADVERSARIAL.items():
        said_s = speech.synthesize(text, "en-us", 160).duration_s
        bound_s = speech_units(text) / 10.0
        assert said_s <= 0.75 * bound_s, f"{name}: said in {said_s:.1f}s, bound {bound_s:.1f}s"
    # Words are no measure: the 1,990-character hyphen chain is one word, and about 200 s at the slowest voice.
    assert len(HYPHENATED.split()) == 1 and speech_units(HYPHENATED) >= len(HYPHENATED)


def test_a_long_hyphenated_narration_is_refused_before_submission(heygen):
    provider = heygen.provider()
    LedgerResource(url=heygen.settings["ledger_url"]).set_budget("training:care", 0.50)
    long_one = request(text=HYPHENATED, budget_scopes=("training:care",))
    assert provider.worst_case_s(long_one) > 190 and provider.worst_case_usd(long_one) > 10
    with pytest.raises(BudgetExceeded, match=r"budget training:care refuses \$1[0-9]\.\d+ .* limit \$0\.5000"):
        provider.render_presenter(long_one, log)
    assert heygen.emulator.submissions == 0 and heygen.emulator.requests["submit"] == 0
    assert heygen.jobs() == [] and heygen.charges() == []
    budget = LedgerResource(url=heygen.settings["ledger_url"]).budget("training:care")
    assert (budget.spent_usd, budget.reserved_usd) == (0.0, 0.0)
    # HeyGen's slower speeds make longer clips, and reserve for them.
    slow = heygen.provider(speed=0.5)
    assert slow.worst_case_s(request()) - 2.0 == pytest.approx(2 * (provider.worst_case_s(request()) - 2.0))


def test_a_clip_is_charged_its_delivered_length_at_the_list_price(case):
    ledger = LedgerResource(url=case.settings["ledger_url"])
    ledger.set_budget("training:care", 5.0)
    provider = case.provider()
    rate = provider.list_price_per_s()[0]
    the_request = request(budget_scopes=("training:care",))
    result = provider.render_presenter(the_request, log)
    delivered_s, _ = clip_duration_s(result.mp4)
    assert case.charges() == [pytest.approx(delivered_s * rate, abs=1e-6)]
    assert result.cost.api_usd == pytest.approx(delivered_s * rate, abs=1e-6) and result.overrun_usd == 0
    assert result.reserved_usd == pytest.approx(provider.worst_case_usd(the_request), abs=1e-6)
    assert result.reserved_usd > result.cost.api_usd
    for scope in ("training:care", next(s for s in case.jobs()[0]["scopes"] if s.startswith("day:"))):
        budget = ledger.budget(scope)
        assert budget.spent_usd == pytest.approx(delivered_s * rate, abs=1e-6) and budget.reserved_usd == 0
    [job] = case.jobs()
    assert job["charged_micro_usd"] == round(delivered_s * rate * 1e6)
    settled = ledger.settlement(job["idempotency_key"])
    assert settled.delivered_s == pytest.approx(delivered_s) and settled.overrun_usd == 0
    # Asking again (another module, a re-run) neither pays nor settles twice.
    provider.render_presenter(request(module="other"), log)
    assert case.charges() == [pytest.approx(delivered_s * rate, abs=1e-6)]
    assert ledger.budget("training:care").spent_usd == pytest.approx(delivered_s * rate, abs=1e-6)


def test_a_clip_longer_than_its_worst_case_is_recorded_but_never_charged_past_the_reservation(heygen):
    ledger = LedgerResource(url=heygen.settings["ledger_url"])
    # A voice budgeted far too fast: the reservation covers about a second and a half of a longer clip.
    provider = heygen.provider(slowest_units_per_s=1000.0)
    the_request = request(budget_scopes=("training:care",))
    reserved = provider.worst_case_usd(the_request)
    ledger.set_budget("training:care", reserved)
    messages: list[str] = []
    result = provider.render_presenter(the_request, messages.append)
    rate = provider.list_price_per_s()[0]
    assert result.duration_s * rate > reserved
    assert heygen.charges() == [pytest.approx(reserved, abs=1e-6)]
    assert result.overrun_usd == pytest.approx(result.duration_s * rate - reserved, abs=1e-5)
    budget = ledger.budget("training:care")
    assert budget.spent_usd <= budget.limit_usd and budget.reserved_usd == 0
    [job] = heygen.jobs()
    settled = ledger.settlement(job["idempotency_key"])
    assert settled.delivered_s == pytest.approx(result.duration_s) and settled.billed_usd > settled.charged_usd
    assert any("OVERRUN" in message and "job_usage" in message for message in messages)


def test_the_emulated_presenter_is_labelled_a_placeholder_in_every_frame():
    import av
    import numpy as np

    from devkit.emulators.talking_head import BANNER_RGB, banner_height, talking_head_clip

    clip = talking_head_clip("Hello there.", (320, 240))
    with av.open(io.BytesIO(clip)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert frames
    strip = banner_height(240)
    for picture in frames:
        banner = picture[2 : strip - 2].astype(int)
        dark = np.all(np.abs(banner - BANNER_RGB) < 30, axis=-1).mean()
        lettering = np.all(banner > 200, axis=-1).mean()
        assert dark > 0.6, "the banner is there"
        assert lettering > 0.03, "and it carries the label"
        assert not np.all(np.abs(picture[strip:].astype(int) - BANNER_RGB) < 30), "the figure is below it"
