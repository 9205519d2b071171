"""The paid job's life: reserve, submit once, record the task, poll, charge on success, download, loop.

Subclasses (one per provider) say how to talk to their API; see the package docstring for the rules.
"""

from __future__ import annotations

import base64
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from dagster import ConfigurableResource
from pydantic import Field

from resources.api_client.errors import (
    AnswerLost,
    ContentRefused,
    OutputGone,
    ProviderError,
    ProviderHTTPError,
    ProviderJobFailed,
    ProviderTimeout,
    ProviderUnavailable,
    RequestInfo,
    SubmissionUncertain,
)
from resources.api_client.http import ApiHttp, HttpPolicy, is_loopback_host
from resources.api_client.outputs import clip_from_provider_video, encoded_image
from resources.api_client.prices import ApiCostRecord, api_list_price
from resources.api_client.tasks import (
    TaskPhase,
    TaskRef,
    TaskState,
    idempotency_key,
    keyframe_digest,
    provider_seconds,
)
from resources.ledger import ApiJob, JobSpec, JobStatus, LedgerResource
from resources.pricing import PricesResource
from resources.providers.base import Availability, ClipRequest, ClipResult, Log, measure_usage
from resources.storage import StorageResource
from videokit.media.encode import EncodeSettings

DEFAULT_PROMPT = (
    "Slow, smooth camera push-in on the product. The product stays exactly as it is: same shape, colours "
    "and label. Soft studio light, static background, no text, no people."
)


class ApiClipProvider(ConfigurableResource):
    """A clip provider behind a paid HTTP API. Subclasses implement the provider's side of the protocol."""

    name: ClassVar[str]
    # Renders hold a slot of the Dagster `api` pool, which bounds calls across all providers and runs.
    pool: ClassVar[str | None] = "api"
    # True when the provider can find a task by an id we chose, so a lost create answer can be checked.
    can_look_up_submissions: ClassVar[bool] = False
    # Inline images go as data URIs, or as bare base64 where the provider wants no prefix.
    inline_as_data_uri: ClassVar[bool] = True

    storage: StorageResource
    ledger: LedgerResource
    prices: PricesResource
    prompt: str = Field(default=DEFAULT_PROMPT, description="Prompt for SKUs that have none of their own.")
    poll_interval_s: float = Field(default=5.0, description="Seconds between task status reads.")
    poll_deadline_s: float = Field(
        default=900.0,
        description="Stop polling after this long (ProviderTimeout); a re-run resumes the task.",
    )
    connect_timeout_s: float = Field(default=10.0, description="HTTP connect timeout.")
    read_timeout_s: float = Field(default=60.0, description="HTTP read timeout.")
    max_attempts: int = Field(
        default=6, description="Tries per request on 429, 5xx, timeouts and dropped connections."
    )
    retry_budget_s: float = Field(default=300.0, description="Most seconds one request may spend on retries.")
    backoff_initial_s: float = Field(
        default=1.0, description="First backoff (doubles each try, with jitter)."
    )
    backoff_max_s: float = Field(default=30.0, description="Longest backoff between tries.")
    resubmit_unconfirmed: bool = Field(
        default=False,
        description="Off by default, and deliberately risky: when a create request's answer was lost (5xx, "
        "read timeout, dropped connection) and the provider cannot look tasks up by our id, send it again. "
        "The provider may then make and bill two tasks while the ledger books one. Prefer "
        "`skuvid jobs resolve`.",
    )
    max_output_bytes: int = Field(default=500_000_000, description="Largest output video downloaded.")
    download_deadline_s: float = Field(
        default=600.0,
        description="Most seconds one output download may take, redirects and retries included.",
    )
    max_redirects: int = Field(default=3, description="Most redirects an output URL may take.")
    allow_loopback_http: bool = Field(
        default=False,
        description="Accept plain-http output URLs on 127.0.0.1/localhost (also on when base_url itself is "
        "http on loopback, as with the local emulators); any other output URL must be https.",
    )
    max_inline_image_bytes: int = Field(
        default=5_000_000,
        description="Largest inline (base64) keyframe the provider accepts; a larger one goes as a "
        "presigned URL.",
    )
    crf: int = Field(default=21, description="x264 constant rate factor of the final clip.")
    preset: str = Field(default="veryfast", description="x264 preset of the final clip.")

    # ---------------------------------------------------------------- the provider's side

    @abstractmethod
    def credentials(self) -> dict[str, str | None]:
        """Each credential's environment variable name and its value (None when unset)."""

    @abstractmethod
    def model_id(self) -> str:
        """The model as the cost record and the ledger name it."""

    @abstractmethod
    def price_key(self) -> str:
        """The row of the price table's `api` section this model is billed by."""

    @abstractmethod
    def task_params(self, request: ClipRequest, seconds: int) -> dict[str, Any]:
        """The provider parameters of the task (without the image): they and the keyframe define the job."""

    @abstractmethod
    def auth_headers(self) -> Callable[[], Mapping[str, str]]:
        """Headers for API requests, computed per request (tokens may need refreshing)."""

    @abstractmethod
    def create_task(self, http: ApiHttp, params: Mapping[str, Any], image: str, job: ApiJob) -> TaskRef:
        """Send the create request (with `safe_to_repeat=False`) and return the new task."""

    @abstractmethod
    def read_task(self, http: ApiHttp, task: TaskRef) -> TaskState:
        """Read the task's state; a succeeded state carries a fresh output URL."""

    def look_up_submission(self, http: ApiHttp, job: ApiJob) -> TaskRef | None:
        """The task created for `job`, if any; only for providers with `can_look_up_submissions`."""
        raise NotImplementedError(f"{self.name} cannot look tasks up by our id")

    def seconds_to_buy(self, request: ClipRequest) -> int:
        """The length of provider video bought for the request's loop (5 s or 10 s unless the model says)."""
        return provider_seconds(request)

    def refusal_reason(self, error: ProviderHTTPError) -> str | None:
        """The moderation reason when a rejected create request was a content refusal."""
        return None

    # ---------------------------------------------------------------- the protocol

    def availability(self) -> Availability:
        missing = [name for name, value in self.credentials().items() if not value]
        if missing:
            return Availability(False, f"{' and '.join(missing)} not set")
        return Availability.ok()

    def job_params(self, request: ClipRequest) -> dict:
        """What identifies the job. The seed and the keyframe define the take even where the provider's request
        has no field for them; the endpoint too: a job on staging (or an emulator) is not the production job."""
        return {
            "endpoint": self.base_url,
            "task": self.task_params(request, self.seconds_to_buy(request)),
            "seed": request.seed,
            "keyframe_sha256": keyframe_digest(request),
        }

    def render_clip(self, request: ClipRequest, log: Log) -> ClipResult:
        available = self.availability()
        if not available.available:
            raise ProviderError(self.name, available.reason)
        seconds = self.seconds_to_buy(request)
        price = api_list_price(self.prices.table, self.price_key(), seconds)
        params = self.job_params(request)
        with measure_usage() as usage:
            job = self.ledger.open_job(
                JobSpec(
                    key=idempotency_key(request, self.name, params),
                    provider=self.name,
                    model=self.model_id(),
                    sku_id=request.sku_id,
                    content_hash=request.content_hash,
                    attempt=request.attempt,
                    params=params,
                    price_usd=price.usd,
                    scopes=request.budget_scopes,
                )
            )
            log(f"{self.name}: {request.sku_id} {job.describe()} is {job.status}")
            with self._http(log) as http:
                job, mp4, charged = self._run_job(http, job, request, log)
                settings = EncodeSettings(crf=self.crf, preset=self.preset)
                clip = clip_from_provider_video(mp4, request, settings, self.name, http.last_request)
        log(
            f"{self.name}: {request.sku_id} task {job.provider_task_id} gave {clip.n_frames} frames "
            f"in {usage.wall_s:.1f}s"
        )
        cost = self.prices.table.cost(
            provider=self.name,
            model=self.model_id(),
            api_usd=price.usd,
            cpu_s=usage.cpu_s,
            wall_s=usage.wall_s,
            provider_job_id=job.provider_task_id or "",
            attempt=request.attempt,
        )
        record = ApiCostRecord(
            **cost.to_dict(), list_usd=price.usd, list_credits=price.credits, charged_in_this_run=charged
        )
        return ClipResult(clip=clip, cost=record)

    def keyframe_upload(self, request: ClipRequest) -> str:
        """The keyframe inline (PNG, else JPEG) when small enough, else a presigned URL of keyframe.png."""
        frame = request.keyframe.flatten()
        for image_format, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
            encoded = base64.b64encode(encoded_image(frame, image_format)).decode("ascii")
            inline = f"data:{mime};base64,{encoded}" if self.inline_as_data_uri else encoded
            if len(inline) <= self.max_inline_image_bytes:
                return inline
        if not request.keyframe_key:
            raise ProviderError(
                self.name,
                f"{request.sku_id}: keyframe too large to send inline and no keyframe_key "
                "to send a URL instead",
            )
        url = self.storage.presigned_url(request.keyframe_key)
        if not url.startswith(("https://", "http://")):
            raise ProviderError(
                self.name,
                f"{request.sku_id}: keyframe too large to send inline, and storage at "
                f"{self.storage.root} has no URL the provider can fetch (use an s3:// root)",
            )
        return url

    # ---------------------------------------------------------------- the job's life

    def _http(self, log: Log) -> ApiHttp:
        policy = HttpPolicy(
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_attempts=self.max_attempts,
            retry_budget_s=self.retry_budget_s,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            max_output_bytes=self.max_output_bytes,
            download_deadline_s=self.download_deadline_s,
            max_redirects=self.max_redirects,
            allow_loopback_http=self.allow_loopback_http or self._api_on_loopback_http(),
        )
        secrets = [value for value in self.credentials().values() if value]
        return ApiHttp(self.name, policy, self.auth_headers(), secrets, log)

    def _api_on_loopback_http(self) -> bool:
        """An API configured at http://127.0.0.1 (an emulator) serves its outputs there too."""
        parts = urlsplit(getattr(self, "base_url", "") or "")
        return parts.scheme == "http" and is_loopback_host(parts.hostname)

    def _submission_window(self) -> timedelta:
        """The longest a live run can spend on one create request: a `submitting` job older than this
        belongs to a run that died mid-request."""
        return timedelta(seconds=self.retry_budget_s + self.connect_timeout_s + self.read_timeout_s)

    def _run_job(
        self, http: ApiHttp, job: ApiJob, request: ClipRequest, log: Log
    ) -> tuple[ApiJob, bytes, bool]:
        """Drive the job to a downloaded output: (job, provider video, whether this call charged it)."""
        told_waiting = False
        while True:
            if job.status == JobStatus.REFUSED:
                raise ContentRefused(
                    self.name,
                    f"{job.describe()} was refused before: {job.failure_reason}",
                    reason=job.failure_reason or "",
                )
            if job.status == JobStatus.FAILED:
                raise ProviderJobFailed(
                    self.name,
                    f"{job.describe()} failed: {job.failure_reason}",
                    reason=job.failure_reason or "",
                )
            if job.status == JobStatus.SUCCEEDED and not (job.output_url or job.provider_task_id):
                raise ProviderJobFailed(
                    self.name,
                    f"{job.describe()} was resolved as paid by an operator and has no known task or output; "
                    "nothing is submitted again",
                    reason="resolved as paid without output",
                )
            if job.status == JobStatus.SUCCEEDED:
                log(f"{self.name}: {job.describe()} was paid for already; downloading its output again")
                return job, self._download_output(http, job, job.output_url, log), False
            if job.status == JobStatus.SUBMITTED:
                state = self._wait_for_task(http, job, log)
                charged = self.ledger.settle_success(job.key, state.output_url)
                return job, self._download_output(http, job, state.output_url, log), charged
            if job.status == JobStatus.RESERVED:
                # Encoded before claiming, so a crash while `submitting` can only hide the request itself.
                image = self.keyframe_upload(request)
                if self.ledger.claim_submission(job.key):
                    job = self._submit(http, job, image, log)
                    continue
            elif (
                job.status == JobStatus.UNCONFIRMED
                or datetime.now(UTC) - job.updated_at > self._submission_window()
            ):
                cause = job.failure_reason or "an earlier run stopped while its create request was in flight"
                if not (self.can_look_up_submissions or self.resubmit_unconfirmed):
                    raise self._uncertain(job, cause)
                if self.ledger.claim_unconfirmed(job.key, self._submission_window()):
                    job = self._recover_submission(http, job, request, cause, log)
                    continue
            else:
                if not told_waiting:
                    log(f"{self.name}: {job.describe()} is being submitted by another run; waiting for it")
                    told_waiting = True
                time.sleep(self.poll_interval_s)
            job = self.ledger.job(job.key)

    def _submit(self, http: ApiHttp, job: ApiJob, image: str, log: Log) -> ApiJob:
        """Send the create request of a job this run claimed; record the task, or leave the job unconfirmed
        when it cannot tell whether a task was made."""
        try:
            for _ in range(self.max_attempts):
                try:
                    task = self._create(http, job, image)
                except AnswerLost as lost:
                    task = self._find_lost_task(http, job, str(lost), lost.request, log)
                    if task is None:
                        continue
                log(f"{self.name}: {job.describe()} submitted as task {task.task_id}")
                return self.ledger.record_submitted(job.key, task.task_id, task.info)
            raise self._uncertain(job, f"{self.max_attempts} create requests in a row lost their answers")
        except BaseException as stopped:
            # Definite rejections have closed the job already; anything else may have left a task behind.
            self.ledger.mark_unconfirmed(job.key, str(stopped) or type(stopped).__name__)
            raise

    def _create(self, http: ApiHttp, job: ApiJob, image: str) -> TaskRef:
        """The create request; a definite rejection closes the job unpaid (a refusal as refused)."""
        try:
            return self.create_task(http, job.params["task"], image, job)
        except ProviderHTTPError as rejected:
            refusal = self.refusal_reason(rejected)
            if refusal is None:
                self.ledger.close_unpaid(job.key, JobStatus.FAILED, str(rejected))
                raise
            self.ledger.close_unpaid(job.key, JobStatus.REFUSED, refusal)
            raise ContentRefused(
                self.name, f"{job.describe()} refused: {refusal}", rejected.request, reason=refusal
            ) from None
        except ProviderUnavailable as unavailable:
            # Only failures that surely created nothing (no connection, 429, 5xx) are retried to exhaustion.
            self.ledger.close_unpaid(job.key, JobStatus.FAILED, str(unavailable))
            raise

    def _find_lost_task(
        self, http: ApiHttp, job: ApiJob, cause: str, request: RequestInfo | None, log: Log
    ) -> TaskRef | None:
        """The task a create request with a lost answer may have made: found, None (surely absent, or absence
        assumed under `resubmit_unconfirmed`), or SubmissionUncertain."""
        if self.can_look_up_submissions:
            task = self.look_up_submission(http, job)
            log(f"{self.name}: {cause}; " + (f"found task {task.task_id}" if task else "no task was created"))
            return task
        if self.resubmit_unconfirmed:
            log(
                f"{self.name}: {cause}; sending it again as resubmit_unconfirmed allows "
                "(the provider may charge twice)"
            )
            return None
        raise self._uncertain(job, cause, request)

    def _uncertain(self, job: ApiJob, cause: str, request: RequestInfo | None = None) -> SubmissionUncertain:
        return SubmissionUncertain(
            self.name,
            f"{job.describe()}: {cause}. {self.name} cannot look tasks up by our id, so the job stays "
            f"unconfirmed with its ${job.price_usd:.2f} reserved and is never sent again; routing moves on. "
            f"Check the {self.name} dashboard for a task made at {job.updated_at:%Y-%m-%d %H:%M} UTC, then run "
            f"`skuvid jobs resolve {job.key[:12]} --paid` (it was billed; add --usd AMOUNT when it billed "
            "less than the reservation) or "
            f"`skuvid jobs resolve {job.key[:12]} --not-paid` (no task; a later run submits anew)",
            request,
        )

    def _recover_submission(
        self, http: ApiHttp, job: ApiJob, request: ClipRequest, cause: str, log: Log
    ) -> ApiJob:
        """Settle an unconfirmed job this run claimed: adopt the task it made, or submit it (again)."""
        try:
            task = self._find_lost_task(http, job, cause, None, log)
        except BaseException as stopped:
            self.ledger.mark_unconfirmed(job.key, str(stopped) or type(stopped).__name__)
            raise
        if task is not None:
            return self.ledger.record_submitted(job.key, task.task_id, task.info)
        return self._submit(http, job, self.keyframe_upload(request), log)

    def _wait_for_task(self, http: ApiHttp, job: ApiJob, log: Log) -> TaskState:
        task = TaskRef.of(job)
        deadline = time.monotonic() + self.poll_deadline_s
        last_detail = None
        while True:
            state = self.read_task(http, task)
            if state.detail != last_detail:
                log(f"{self.name}: task {task.task_id} {state.detail}")
                last_detail = state.detail
            if state.phase == TaskPhase.SUCCEEDED:
                return state
            if state.phase in (TaskPhase.FAILED, TaskPhase.REFUSED):
                refused = state.phase == TaskPhase.REFUSED
                self.ledger.close_unpaid(
                    job.key, JobStatus.REFUSED if refused else JobStatus.FAILED, state.reason
                )
                error = ContentRefused if refused else ProviderJobFailed
                verb = "was refused by moderation" if refused else "failed"
                raise error(
                    self.name,
                    f"task {task.task_id} {verb}: {state.reason} ({state.code or 'no code'})",
                    http.last_request,
                    reason=state.reason,
                    code=state.code,
                )
            if time.monotonic() >= deadline:
                raise ProviderTimeout(
                    self.name,
                    f"task {task.task_id} still {state.detail} after {self.poll_deadline_s:g}s; "
                    "the job stays submitted and a re-run resumes polling it",
                    http.last_request,
                )
            time.sleep(self.poll_interval_s)

    def _download_output(self, http: ApiHttp, job: ApiJob, url: str | None, log: Log) -> bytes:
        task = TaskRef.of(job)
        for _ in range(self.max_attempts):
            if url is not None:
                try:
                    return http.download(url)
                except OutputGone as gone:
                    log(f"{self.name}: {gone}; asking task {task.task_id} for a fresh URL")
            state = self.read_task(http, task)
            if state.phase != TaskPhase.SUCCEEDED:
                raise ProviderError(
                    self.name,
                    f"task {task.task_id} no longer offers its output ({state.detail})",
                    http.last_request,
                )
            url = state.output_url
            self.ledger.update_output_url(job.key, url)
        raise ProviderError(
            self.name, f"output of task {task.task_id} kept answering as expired", http.last_request
        )
