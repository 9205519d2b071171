# ruff: noqa: F811 - the fixtures imported from api_fixtures come back as test arguments
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import jwt
import numpy as np
import pytest
from sqlalchemy import select, update

from devkit.emulators import (
    DroppedConnection,
    FalEmulator,
    RateLimited,
    ServerError,
    SlowAnswer,
    TaskScript,
    start_emulators,
)
from resources.api_client.errors import (
    ContentRefused,
    ProviderError,
    ProviderHTTPError,
    ProviderJobFailed,
    ProviderTimeout,
    ProviderUnavailable,
    RequestInfo,
    SubmissionUncertain,
    UnusableOutput,
    redact_url,
    retry_after_seconds,
)
from resources.api_client.outputs import clip_from_provider_video
from resources.api_client.prices import api_list_price
from resources.api_client.tasks import idempotency_key
from resources.ledger import (
    BudgetExceeded,
    JobSpec,
    JobStatus,
    LedgerResource,
    api_jobs,
    day_scope,
    ledger_engine,
)
from resources.pricing import PricesResource
from resources.providers.api.fal import FalClips
from resources.providers.api.kling import KlingClips, KlingToken
from resources.providers.api.runway import RunwayClips
from resources.providers.base import ClipProvider
from resources.storage import StorageResource
from tests.resources.providers.api.api_fixtures import (
    EMULATED_OUTPUT_SHORT_SIDE,
    FAST,
    ProviderCase,
    case,  # noqa: F401 - fixtures
    files_containing,
    keyframe_layers,
    log,
    make_request,
    runway_case,
)
from videokit.media.encode import EncodeSettings, encode_mp4
from videokit.media.probe import probe_mp4

LIST_PRICES = {"runway": (0.25, 25.0), "kling": (0.28, 0.0), "pika": (0.20, 0.0)}
SLOW = SlowAnswer(delay_s=FAST["read_timeout_s"] + 0.4)


def assert_paid_once(case, price: float | None = None) -> None:
    ledger = case.ledger()
    price = price if price is not None else LIST_PRICES[case.name][0]
    assert case.emulator.submissions == 1
    assert [round(charge.usd, 6) for charge in ledger.charges()] == [price]
    budget = ledger.budget(day_scope())
    assert (budget.reserved_usd, round(budget.spent_usd, 6)) == (0.0, price)


def test_renders_a_checked_loop_at_the_requested_size_with_its_list_price(case):
    provider = case.provider()
    assert isinstance(provider, ClipProvider) and provider.availability().available and provider.pool == "api"
    result = provider.render_clip(make_request(), log)

    clip = result.clip
    assert (clip.width, clip.height, clip.fps, clip.n_frames) == (128, 72, 12, 36)
    report = probe_mp4(clip.mp4)
    assert (report.codec, report.pix_fmt, report.width, report.height, report.faststart) == (
        "h264",
        "yuv420p",
        128,
        72,
        True,
    )
    assert report.duration_s == pytest.approx(3.0, abs=0.01)
    assert clip.poster[:2] == b"\xff\xd8"

    usd, credits = LIST_PRICES[case.name]
    cost = result.cost
    assert (cost.provider, cost.api_usd, cost.list_usd, cost.list_credits) == (case.name, usd, usd, credits)
    assert cost.cost_usd >= usd and cost.charged_in_this_run and cost.provider_job_id in case.emulator.tasks
    assert_paid_once(case)


@pytest.mark.parametrize("aspect", ["9:16", "1:1"])
def test_other_aspects(case, aspect):
    result = case.provider().render_clip(make_request(aspect=aspect), log)
    assert (result.clip.width, result.clip.height) == make_request(aspect=aspect).size
    if case.name == "runway":
        task = next(iter(case.emulator.tasks.values()))
        assert task.params["ratio"] == {"9:16": "720:1280", "1:1": "960:960"}[aspect]


def test_a_rerun_after_success_downloads_again_without_paying(case):
    first = case.provider().render_clip(make_request(), log)
    again = case.provider().render_clip(make_request(), log)
    assert not again.cost.charged_in_this_run
    assert again.cost.provider_job_id == first.cost.provider_job_id
    assert again.clip.n_frames == first.clip.n_frames
    assert_paid_once(case)


def test_a_new_attempt_or_seed_is_a_new_paid_job(case):
    case.provider().render_clip(make_request(), log)
    case.provider().render_clip(make_request(attempt=2), log)
    case.provider().render_clip(make_request(seed=7), log)
    assert case.emulator.submissions == 3
    assert len(case.ledger().charges()) == 3


TRANSIENT_FAULTS = {
    "429 burst on submit": ("submit", [RateLimited("0"), RateLimited("0"), RateLimited(None)]),
    "5xx on poll": ("status", [ServerError(502), ServerError(500)]),
    "429 on poll": ("status", [RateLimited("0")]),
    "slow poll answer": ("status", [SLOW]),
    "dropped poll connections": ("status", [DroppedConnection(), DroppedConnection()]),
    "slow download": ("download", [SLOW]),
    "dropped download connection": ("download", [DroppedConnection()]),
    "5xx on download": ("download", [ServerError(503)]),
}


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
def test_transient_faults_are_retried_and_paid_once(case, fault):
    route, faults = TRANSIENT_FAULTS[fault]
    case.emulator.inject(route, *faults)
    result = case.provider().render_clip(make_request(), log)
    assert result.clip.n_frames == 36
    assert case.emulator.requests[route] >= len(faults) + 1
    assert_paid_once(case)


def test_fal_result_faults_are_retried(tmp_path):
    with FalEmulator(
        output_short_side=EMULATED_OUTPUT_SHORT_SIDE, script=TaskScript(running_s=0.1)
    ) as emulator:
        pika = ProviderCase("pika", emulator, tmp_path / "data", f"sqlite:///{tmp_path}/data/ledger.sqlite")
        emulator.inject("result", ServerError(500), DroppedConnection(), SLOW)
        pika.provider().render_clip(make_request(), log)
        assert emulator.requests["result"] == 4
        assert_paid_once(pika)


def test_throttled_queue_is_waited_out(case):
    case.emulator.script = TaskScript(queued_s=0.3, running_s=0.1)
    messages = []
    case.provider().render_clip(make_request(), messages.append)
    waiting = {"runway": "THROTTLED", "kling": "submitted", "pika": "IN_QUEUE (position 1)"}[case.name]
    assert any(message.endswith(waiting) for message in messages), messages
    assert_paid_once(case)


def test_expired_output_urls_are_refreshed_from_the_task(case):
    case.emulator.script = TaskScript(running_s=0.1, expired_downloads=2)
    messages = []
    case.provider().render_clip(make_request(), messages.append)
    assert sum("asking task" in message for message in messages) == 2
    assert case.emulator.requests["download"] == 3
    assert_paid_once(case)
    job = case.ledger().job(next(iter(case.ledger().charges())).job_key)
    assert job.output_url.endswith(".mp4")


def test_a_failed_task_reports_the_providers_reason_and_charges_nothing(case):
    case.emulator.script = TaskScript(running_s=0.05, outcome="fail")
    with pytest.raises(ProviderJobFailed) as failed:
        case.provider().render_clip(make_request(), log)
    assert type(failed.value) is ProviderJobFailed
    assert failed.value.request.method == "GET" and failed.value.request.url.startswith(
        case.emulator.base_url
    )
    expected = {
        "runway": "An unexpected error occurred.",
        "kling": "Video generation failed",
        "pika": "did not generate any media",
    }[case.name]
    assert expected in failed.value.reason and expected in str(failed.value)
    ledger = case.ledger()
    assert ledger.charges() == [] and ledger.budget(day_scope()).reserved_usd == 0

    case.emulator.script = TaskScript(running_s=0.05)
    case.provider().render_clip(make_request(), log)
    assert case.emulator.submissions == 2, "a failed job is submitted again on re-run"
    assert len(ledger.charges()) == 1


def test_a_moderation_refusal_is_reported_as_such_and_never_retried(case):
    case.emulator.script = TaskScript(running_s=0.05, outcome="refuse")
    with pytest.raises(ContentRefused) as refused:
        case.provider().render_clip(make_request(), log)
    code = {"runway": "SAFETY.INPUT.IMAGE", "kling": "", "pika": "content_policy_violation"}[case.name]
    assert refused.value.code == code and refused.value.reason
    with pytest.raises(ContentRefused, match="refused before"):
        case.provider().render_clip(make_request(), log)
    assert case.emulator.submissions == 1
    ledger = case.ledger()
    assert ledger.charges() == [] and ledger.budget(day_scope()).reserved_usd == 0


def test_a_task_that_never_finishes_times_out_and_a_rerun_resumes_it(case):
    case.emulator.script = TaskScript(outcome="never")
    with pytest.raises(ProviderTimeout, match="re-run resumes") as timed_out:
        case.provider(poll_deadline_s=0.3).render_clip(make_request(), log)
    assert timed_out.value.request.method == "GET"
    ledger = case.ledger()
    [task_id] = case.emulator.tasks
    job_key = idempotency_key_of(case)
    job = ledger.job(job_key)
    assert (job.status, job.provider_task_id) == (JobStatus.SUBMITTED, task_id)
    assert ledger.budget(day_scope()).reserved_usd == LIST_PRICES[case.name][0]

    case.emulator.finish_stuck_tasks()
    result = case.provider().render_clip(make_request(), log)
    assert result.cost.provider_job_id == task_id and result.cost.charged_in_this_run
    assert_paid_once(case)


def idempotency_key_of(case) -> str:
    with ledger_engine(case.ledger_url).connect() as connection:
        return connection.execute(select(api_jobs.c.idempotency_key)).scalar_one()


def make_submission_stale(case, **values) -> None:
    """Age the job's last update past any submission window, as if its run had died long ago."""
    with ledger_engine(case.ledger_url).begin() as connection:
        connection.execute(
            update(api_jobs).values(updated_at=datetime.now(UTC) - timedelta(hours=1), **values)
        )


@pytest.mark.parametrize(
    "fault", [SLOW, DroppedConnection(), ServerError(503)], ids=["slow", "dropped", "5xx"]
)
def test_a_lost_create_answer_is_never_paid_twice(case, fault):
    case.emulator.inject("submit", fault)
    if case.name == "kling":
        # Kling finds the task by our external_task_id, so the render goes on with that task.
        case.provider().render_clip(make_request(), log)
        assert_paid_once(case)
        return
    with pytest.raises(SubmissionUncertain, match="skuvid jobs resolve [0-9a-f]{12} --not-paid") as uncertain:
        case.provider().render_clip(make_request(), log)
    assert uncertain.value.request.method == "POST"
    # The emulator's 5xx answers before creating; the client cannot tell, so it never sends again.
    assert case.emulator.submissions == (0 if isinstance(fault, ServerError) else 1)
    assert case.emulator.requests["submit"] == 1
    job = case.ledger().job(idempotency_key_of(case))
    assert job.status == JobStatus.UNCONFIRMED
    assert case.ledger().budget(day_scope()).reserved_usd == LIST_PRICES[case.name][0]

    # A re-run refuses to guess...
    with pytest.raises(SubmissionUncertain, match="no answer|answered 503"):
        case.provider().render_clip(make_request(), log)
    assert case.emulator.requests["submit"] == 1
    # ...until told to accept the risk: the provider may then bill twice, the ledger still charges once.
    created_before = case.emulator.submissions
    case.provider(resubmit_unconfirmed=True).render_clip(make_request(), log)
    assert case.emulator.submissions == created_before + 1
    assert len(case.ledger().charges()) == 1


def test_a_crash_between_reservation_and_create_request_submits_once(case):
    provider = case.provider()
    request = make_request()
    # What a run that died right after opening its job leaves behind: a reserved job.
    params = provider.job_params(request)
    key = idempotency_key(request, provider.name, params)
    price = api_list_price(provider.prices.table, provider.price_key(), 5).usd
    case.ledger().open_job(
        JobSpec(
            key=key,
            provider=provider.name,
            model=provider.model_id(),
            sku_id=request.sku_id,
            content_hash=request.content_hash,
            attempt=1,
            params=params,
            price_usd=price,
        )
    )
    provider.render_clip(request, log)
    assert_paid_once(case)


def test_a_crash_after_claiming_but_before_sending(case):
    """A job left in `submitting` by a dead run: Kling checks by external id; the others refuse to guess."""
    provider = case.provider()
    request = make_request()
    case.emulator.script = TaskScript(outcome="never")
    with pytest.raises(ProviderTimeout):
        case.provider(poll_deadline_s=0.05).render_clip(request, log)
    # Rewind the job to `submitting` without a task id, as a run killed mid-request leaves it.
    key = idempotency_key_of(case)
    make_submission_stale(case, status=JobStatus.SUBMITTING, provider_task_id=None)
    case.emulator.finish_stuck_tasks()
    case.emulator.script = TaskScript()
    if case.name == "kling":
        result = provider.render_clip(request, log)
        assert result.cost.provider_job_id in case.emulator.tasks
        assert_paid_once(case)
    else:
        with pytest.raises(SubmissionUncertain, match="earlier run stopped"):
            provider.render_clip(request, log)
        assert case.emulator.submissions == 1
        assert case.ledger().job(key).status == JobStatus.SUBMITTING
        case.provider(resubmit_unconfirmed=True).render_clip(request, log)
        assert case.emulator.submissions == 2 and len(case.ledger().charges()) == 1


def test_a_wrong_key_is_not_retried_and_not_shown(case):
    wrong = {name: f"wrong-{value}" for name, value in case.credentials.items()}
    with pytest.raises(ProviderHTTPError) as rejected:
        case.provider(credentials=wrong).render_clip(make_request(), log)
    assert rejected.value.status == 401 and rejected.value.request.method == "POST"
    assert case.emulator.requests["submit"] == 1 and case.emulator.submissions == 0
    for secret in [*wrong.values(), *case.secrets]:
        assert secret not in str(rejected.value)
    assert case.ledger().budget(day_scope()).reserved_usd == 0


def test_a_rate_limit_longer_than_the_retry_budget_gives_up_at_once(case):
    case.emulator.inject("submit", RateLimited("3600"))
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="asks to wait 3600s"):
        case.provider().render_clip(make_request(), log)
    assert time.monotonic() - started < 5
    assert case.emulator.submissions == 0
    assert case.ledger().budget(day_scope()).reserved_usd == 0


def test_budget_refusal_sends_nothing(case):
    with pytest.raises(BudgetExceeded) as refused:
        case.provider(daily_budget_usd=0.1).render_clip(make_request(), log)
    price = LIST_PRICES[case.name][0]
    for part in (day_scope(), "limit $0.1000", "spent $0.0000", "reserved $0.0000", f"refuses ${price:.4f}"):
        assert part in str(refused.value)
    assert case.emulator.requests.total() == 0


def test_keys_appear_nowhere(case, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    provider = case.provider()
    case.emulator.inject("status", ServerError(500), DroppedConnection())
    result = provider.render_clip(make_request(), logging.getLogger("skuvid.tests.api").info)
    case.emulator.script = TaskScript(outcome="never")
    with pytest.raises(ProviderTimeout) as timed_out:
        case.provider(poll_deadline_s=0.1).render_clip(make_request(attempt=2), log)
    with pytest.raises(ProviderHTTPError) as rejected:
        case.provider(credentials={k: f"{v}x" for k, v in case.credentials.items()}).render_clip(
            make_request(attempt=3), log
        )
    storage = StorageResource(root=str(case.storage_root))
    storage.write_bytes("skus/SKU-1/h/clip.mp4", result.clip.mp4)
    storage.write_json("skus/SKU-1/h/record.json", {"cost": result.cost.to_dict()})

    assert "skuvid.tests.api" in {record.name for record in caplog.records}
    for secret in case.secrets:
        assert secret not in caplog.text
        assert secret not in str(timed_out.value) and secret not in str(rejected.value)
        assert secret not in repr(result.cost.to_dict())
    assert files_containing(case.storage_root, case.secrets) == []
    assert case.storage_root.joinpath("ledger.sqlite").is_file()


def test_a_keyframe_too_large_to_inline_goes_as_a_presigned_url(s3_bucket, tmp_path):
    case = runway_case(tmp_path)
    try:
        storage = StorageResource(root=f"s3://{s3_bucket}/skuvid")
        key = "skus/SKU-1/hash-SKU-1/keyframe/keyframe.png"
        storage.write_bytes(key, keyframe_layers().to_files()["keyframe.png"])
        provider = case.provider(max_inline_image_bytes=1000).model_copy(update={"storage": storage})
        provider.render_clip(make_request(keyframe_key=key), log)
        task = next(iter(case.emulator.tasks.values()))
        assert task.params["promptImage"].startswith("http") and "Signature" in task.params["promptImage"]
        assert_paid_once(case)
    finally:
        case.emulator.stop()


def test_a_keyframe_too_large_with_local_storage_is_a_clear_error(tmp_path):
    case = runway_case(tmp_path)
    try:
        with pytest.raises(ProviderError, match="use an s3:// root"):
            case.provider(max_inline_image_bytes=1000).render_clip(
                make_request(keyframe_key="k/keyframe.png"), log
            )
        assert case.emulator.submissions == 0
    finally:
        case.emulator.stop()


def test_a_real_size_clip(tmp_path):
    case = runway_case(tmp_path, output_short_side=720)
    try:
        request = make_request(size=(1280, 720), keyframe_size=(1280, 720), duration_s=4.0, fps=24)
        result = case.provider(preset="veryfast", read_timeout_s=10.0).render_clip(request, log)
        report = probe_mp4(result.clip.mp4)
        assert (report.width, report.height, report.fps, report.n_frames) == (1280, 720, 24, 96)
        assert report.duration_s == pytest.approx(4.0, abs=0.01)
    finally:
        case.emulator.stop()


def test_retry_after_is_honoured(tmp_path):
    case = runway_case(tmp_path)
    try:
        case.emulator.inject("submit", RateLimited("1"))
        started = time.monotonic()
        case.provider().render_clip(make_request(), log)
        assert time.monotonic() - started >= 1.0
        assert_paid_once(case)
    finally:
        case.emulator.stop()


def test_unusable_output_is_named_with_its_request():
    source = RequestInfo.of("GET", "https://cdn.test/out.mp4?sig=1")
    short = encode_mp4((np.zeros((72, 128, 3), np.uint8) for _ in range(24)), (128, 72), 24)
    with pytest.raises(
        UnusableOutput, match=r"too short: 24 frames at 24 fps last 1.00s; a 3s loop needs at least 1.20s \[GET https://cdn.test/out.mp4\]"
    ):
        clip_from_provider_video(short, make_request(), EncodeSettings(), "runway", source)
    with pytest.raises(UnusableOutput, match="unreadable"):
        clip_from_provider_video(b"<html>expired</html>", make_request(), EncodeSettings(), "runway", source)


def test_retry_after_parsing():
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_request_info_hides_query_strings_and_user_info():
    assert (
        redact_url("https://user:pw@cdn.example.com:8443/a/b.mp4?X-Amz-Signature=abc#f")
        == "https://cdn.example.com:8443/a/b.mp4"
    )
    assert str(RequestInfo.of("GET", "https://x.test/v1/tasks/1?token=t")) == "GET https://x.test/v1/tasks/1"


@pytest.mark.parametrize(
    ("provider_class", "unset", "reason"),
    [
        (RunwayClips, {}, "RUNWAYML_API_SECRET not set"),
        (FalClips, {}, "FAL_KEY not set"),
        (KlingClips, {}, "KLING_ACCESS_KEY and KLING_SECRET_KEY not set"),
        (KlingClips, {"access_key": "ak"}, "KLING_SECRET_KEY not set"),
    ],
)
def test_an_unset_key_makes_the_provider_unavailable(provider_class, unset, reason, tmp_path):
    provider = provider_class(
        **unset,
        storage=StorageResource(root=str(tmp_path)),
        ledger=LedgerResource(url=f"sqlite:///{tmp_path}/l.sqlite"),
        prices=PricesResource(),
    )
    assert provider.availability().available is False and provider.availability().reason == reason
    with pytest.raises(ProviderError, match=reason):
        provider.render_clip(make_request(), log)


def test_kling_tokens_are_renewed_before_they_expire():
    now = [1_000_000.0]
    secret = "kling-secret-key-of-at-least-32-bytes"
    token = KlingToken("ak", secret, ttl_s=100, clock=lambda: now[0])
    first = token.headers()
    now[0] += 50
    assert token.headers() == first
    now[0] += 45
    renewed = token.headers()
    assert renewed != first

    claims = jwt.decode(
        renewed["Authorization"].removeprefix("Bearer "),
        secret,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert claims == {"iss": "ak", "exp": 1_000_195, "nbf": 1_000_090}


def test_submit_time_refusals_are_recognised():
    request = RequestInfo("POST", "https://api.test/v1")
    kling = KlingClips.model_construct()
    pika = FalClips.model_construct()
    kling_refusal = ProviderHTTPError(
        "kling",
        "400",
        request,
        status=400,
        body={"code": 1301, "message": "Trigger the content security policy"},
    )
    fal_refusal = ProviderHTTPError(
        "pika",
        "422",
        request,
        status=422,
        body={
            "detail": [
                {
                    "loc": ["body", "prompt"],
                    "msg": "flagged by a content checker",
                    "type": "content_policy_violation",
                }
            ]
        },
    )
    fal_invalid = ProviderHTTPError(
        "pika",
        "422",
        request,
        status=422,
        body={"detail": [{"loc": ["body", "duration"], "msg": "bad", "type": "value_error"}]},
    )
    assert kling.refusal_reason(kling_refusal) == "Trigger the content security policy"
    assert pika.refusal_reason(fal_refusal) == "flagged by a content checker"
    assert pika.refusal_reason(fal_invalid) is None
    assert RunwayClips.model_construct().refusal_reason(kling_refusal) is None


def test_start_emulators_points_every_provider_at_a_local_server(tmp_path):
    with start_emulators(output_short_side=EMULATED_OUTPUT_SHORT_SIDE, script=TaskScript()) as emulators:
        settings = emulators.provider_settings()
        assert len({s["base_url"] for s in settings.values()}) == 3
        for key, provider_class, name in (
            ("runway", RunwayClips, "runway"),
            ("kling", KlingClips, "kling"),
            ("fal", FalClips, "pika"),
        ):
            provider = provider_class(
                **settings[key],
                storage=StorageResource(root=str(tmp_path)),
                ledger=LedgerResource(url=f"sqlite:///{tmp_path}/ledger.sqlite"),
                prices=PricesResource(),
                **FAST,
            )
            assert provider.availability().available
            assert provider.render_clip(make_request(), log).cost.provider == name
        assert [e.submissions for e in (emulators.runway, emulators.kling, emulators.fal)] == [1, 1, 1]
