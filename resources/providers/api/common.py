"""What every commercial clip API shares: HTTP with retries, the paid job's life in the ledger, polling,
downloading, and turning the provider's video into our loop.

A provider module only says how to talk to its API (authentication, the create request, how to read a task,
how its refusals look). `ApiClipProvider.render_clip` runs the rest:

1. open the ledger job: the list price is reserved on the daily budget and the request's scopes, or an
   earlier run's job for the same idempotency key is found;
2. a succeeded job downloads its output again without paying; a submitted one resumes polling; otherwise the
   create request is sent once, and the task id is recorded before the first poll;
3. poll until the task ends or the poll deadline passes; on success record the charge, then download
   (asking the task for a fresh URL when the old one expired);
4. check that the video decodes and is long enough, fit it to the requested size, make it loop, encode it.

Create requests are repeated only when the answer proves nothing was made (no connection, 429). Ambiguous
answers (5xx, read timeout, dropped connection, a run killed mid-request) are never re-sent blindly: a
provider that can look tasks up by our own id (Kling, D-ID) is asked; otherwise the job is left `unconfirmed`
(its budget still reserved) with SubmissionUncertain, for an operator to answer with `skuvid jobs resolve`.
`resubmit_unconfirmed` (off by default) accepts the risk of a second provider charge instead. The ledger
charges a job once either way.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import ipaddress
import json
import ssl
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, ClassVar, Self
from urllib.parse import urljoin, urlsplit, urlunsplit

import av
import httpx
import numpy as np
from dagster import ConfigurableResource
from PIL import Image
from pydantic import Field
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from resources.ledger import ApiJob, JobSpec, JobStatus, LedgerResource
from resources.pricing import CostRecord, PricesResource, PriceTable, PriceTableError
from resources.providers.base import Availability, ClipRequest, ClipResult, Log, measure_usage
from resources.redaction import scrub_secrets
from resources.storage import StorageResource
from videokit.media.encode import ClipFile, EncodeSettings
from videokit.media.probe import ClipUnreadable, probe_mp4
from videokit.sku_video.loop import SourceTooShort, fit_to_size, loop_source_indices, looped_clip

# A provider clip slightly shorter than the loop needs is played this much faster at most (slow camera
# moves hide it); anything shorter is refused as unusable.
DEFAULT_PROMPT = (
    "Slow, smooth camera push-in on the product. The product stays exactly as it is: same shape, colours "
    "and label. Soft studio light, static background, no text, no people."
)
EXPIRED_OUTPUT_STATUSES = (403, 404, 410)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
ERROR_BODY_BYTES = 4096


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class RequestInfo:
    """The request an error is about, as it may be shown: no query string, no user info, no headers."""

    method: str
    url: str

    @classmethod
    def of(cls, method: str, url: str) -> RequestInfo:
        return cls(method, redact_url(url))

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


def redact_url(url: str) -> str:
    """Scheme, host, port and path only: presigned signatures and credentials in URLs stay out of messages."""
    if url.startswith("data:"):
        return "data:..."
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ProviderError(RuntimeError):
    """A clip API could not make the clip. The message names the provider and the request, never a key."""

    def __init__(self, provider: str, message: str, request: RequestInfo | None = None):
        self.provider, self.request = provider, request
        # Provider-written text (reasons, echoed bodies) may carry tokens; messages travel to run logs.
        super().__init__(scrub_secrets(f"{provider}: {message}" + (f" [{request}]" if request else "")))


class ProviderHTTPError(ProviderError):
    """The API answered with a client error (4xx other than 429); repeating the request would not help."""

    def __init__(self, provider: str, message: str, request: RequestInfo, *, status: int, body: Any):
        super().__init__(provider, message, request)
        self.status, self.body = status, body


class ProviderUnavailable(ProviderError):
    """Transient failures (429, 5xx, timeouts, dropped connections) outlasted the retry budget."""


class ProviderJobFailed(ProviderError):
    """The provider ran the task and reports it failed (or cancelled); the reason is the provider's."""

    def __init__(
        self,
        provider: str,
        message: str,
        request: RequestInfo | None = None,
        *,
        reason: str = "",
        code: str = "",
    ):
        super().__init__(provider, message, request)
        self.reason, self.code = reason, code


class ContentRefused(ProviderJobFailed):
    """Content moderation refused the input or the output. Not retried: the same input is refused again."""


class ProviderTimeout(ProviderError):
    """The task did not finish before the poll deadline. The job stays submitted; a re-run resumes polling."""


class SubmissionUncertain(ProviderError):
    """A create request may have reached the provider, and the provider cannot say whether it did."""


class UnusableOutput(ProviderError):
    """The provider's video does not decode or is too short for the loop."""


class AnswerLost(ProviderError):
    """A request was sent but its answer never arrived (read timeout, dropped connection)."""


class OutputGone(ProviderError):
    """An output URL answered 403, 404 or 410: it expired, and the task can hand out a fresh one."""


class OutputRefused(ProviderError):
    """An output download broke a limit: not https, too many redirects, too large, or past its deadline."""


@dataclass
class TransientFailure(Exception):
    """One try that may succeed when repeated (429, 5xx, no connection, a lost answer to a safe request)."""

    request: RequestInfo
    description: str
    retry_after_s: float | None = None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


# --------------------------------------------------------------------------- HTTP


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context (httpx's default) for every client: loading the CA bundle costs more than
    a small request."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int
    retry_budget_s: float
    backoff_initial_s: float
    backoff_max_s: float
    max_output_bytes: int = 500_000_000
    download_deadline_s: float = 600.0
    max_redirects: int = 3
    allow_loopback_http: bool = False


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ApiHttp:
    """httpx with explicit timeouts, bounded retries with jittered backoff (Retry-After honoured) and errors
    that name the request; every message is scrubbed of the provider's secrets."""

    def __init__(
        self,
        provider: str,
        policy: HttpPolicy,
        auth_headers: Callable[[], Mapping[str, str]],
        secrets: Sequence[str],
        log: Log,
    ):
        self.provider, self.policy, self.log = provider, policy, log
        self._auth_headers = auth_headers
        self._secrets = [secret for secret in secrets if secret]
        self._client = httpx.Client(
            timeout=httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s),
            follow_redirects=False,
            verify=tls_context(),
        )
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff_initial_s, max=policy.backoff_max_s, jitter=policy.backoff_initial_s
        )
        self.last_request: RequestInfo | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self._client.close()

    def call(
        self, method: str, url: str, *, json_body: Any = None, safe_to_repeat: bool = True
    ) -> httpx.Response:
        """An authenticated API request; returns the 2xx response.

        `safe_to_repeat=False` marks a create request: it is repeated only when it surely created nothing
        (no connection, 429); an ambiguous answer (5xx, read timeout, dropped connection) raises AnswerLost.
        """
        return self._send(
            method, url, json_body=json_body, headers=self._auth_headers(), safe_to_repeat=safe_to_repeat
        )

    def download(self, url: str) -> bytes:
        """An output file, fetched without our credentials (they are for the API host only): https only
        (plain http to loopback when allowed), redirects bounded and each target checked alike, the body
        streamed and cut off past `max_output_bytes`, the whole fetch (retries included) within
        `download_deadline_s`."""
        deadline = time.monotonic() + self.policy.download_deadline_s
        return self._send(
            "GET", url, json_body=None, headers={}, safe_to_repeat=True, output=True, deadline=deadline
        ).content

    def scrub(self, text: str) -> str:
        return scrub_secrets(text, self._secrets)

    def _check_output_url(self, url: str, request: RequestInfo) -> None:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and self.policy.allow_loopback_http and is_loopback_host(parts.hostname):
            return
        raise OutputRefused(
            self.provider, f"output URL {redact_url(url)} is not https; refusing to fetch it", request
        )

    def _fetch_output(self, url: str, request: RequestInfo, deadline: float) -> httpx.Response:
        """GET an output URL within the limits of `download`; a non-2xx answer is returned unread beyond
        ERROR_BODY_BYTES, for _raise_for_status."""
        current = url
        for _ in range(self.policy.max_redirects + 1):
            self._check_output_url(current, request)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            timeout = httpx.Timeout(min(self.policy.read_timeout_s, left), connect=min(self.policy.connect_timeout_s, left))
            with self._client.stream("GET", current, follow_redirects=False, timeout=timeout) as response:
                if response.status_code in REDIRECT_STATUSES and "Location" in response.headers:
                    current = urljoin(current, response.headers["Location"])
                    continue
                limit = self.policy.max_output_bytes if response.is_success else ERROR_BODY_BYTES
                declared = response.headers.get("Content-Length", "")
                if response.is_success and declared.isdigit() and int(declared) > limit:
                    raise OutputRefused(
                        self.provider, f"output is {int(declared)} bytes, over the {limit}-byte cap", request
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        if not response.is_success:
                            break
                        raise OutputRefused(
                            self.provider, f"output is over the {limit}-byte cap; stopped reading", request
                        )
                    if time.monotonic() > deadline:
                        raise OutputRefused(
                            self.provider,
                            f"output download took more than {self.policy.download_deadline_s:g}s; stopped",
                            request,
                        )
                return httpx.Response(
                    response.status_code, headers=response.headers, content=bytes(body[:limit]),
                    request=response.request,
                )
        if time.monotonic() >= deadline:
            raise OutputRefused(
                self.provider, f"output download took more than {self.policy.download_deadline_s:g}s", request
            )
        raise OutputRefused(
            self.provider, f"output URL redirected more than {self.policy.max_redirects} times", request
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any,
        headers: Mapping[str, str],
        safe_to_repeat: bool,
        output: bool = False,
        deadline: float | None = None,
    ) -> httpx.Response:
        request = self.last_request = RequestInfo.of(method, url)

        def attempt() -> httpx.Response:
            try:
                if output:
                    # Output hosts may redirect (no credentials go there), within the download's limits.
                    response = self._fetch_output(url, request, deadline or time.monotonic() + 600.0)
                else:
                    response = self._client.request(
                        method, url, json=json_body, headers=dict(headers), follow_redirects=False
                    )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                raise TransientFailure(request, f"could not connect ({self._describe(error)})") from None
            except (
                httpx.ReadTimeout,
                httpx.WriteTimeout,
                httpx.ReadError,
                httpx.WriteError,
                httpx.RemoteProtocolError,
            ) as error:
                lost = f"no answer ({self._describe(error)})"
                if safe_to_repeat:
                    raise TransientFailure(request, lost) from None
                raise AnswerLost(self.provider, f"request sent but {lost}", request) from None
            except httpx.HTTPError as error:
                raise ProviderError(
                    self.provider, f"request failed: {self._describe(error)}", request
                ) from None
            self._raise_for_status(response, request, output=output, safe_to_repeat=safe_to_repeat)
            return response

        budget_s = self.policy.retry_budget_s
        if deadline is not None:
            budget_s = min(budget_s, max(0.0, deadline - time.monotonic()))
        retrying = Retrying(
            retry=retry_if_exception_type(TransientFailure),
            stop=stop_after_attempt(self.policy.max_attempts) | stop_before_delay(budget_s),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        started = time.monotonic()
        try:
            return retrying(attempt)
        except TransientFailure as last:
            tries = retrying.statistics.get("attempt_number", 1)
            waited = time.monotonic() - started
            hint = f"; it asks to wait {last.retry_after_s:g}s" if last.retry_after_s else ""
            raise ProviderUnavailable(
                self.provider,
                f"gave up after {tries} tries in {waited:.1f}s: {last.description}{hint}",
                request,
            ) from None

    def _raise_for_status(
        self, response: httpx.Response, request: RequestInfo, *, output: bool, safe_to_repeat: bool = True
    ) -> None:
        status = response.status_code
        if response.is_success:
            return
        # Scrubbed before it is cut, so that a cut cannot leave half a token unrecognised.
        excerpt = self.scrub(response.text[:ERROR_BODY_BYTES]).strip()[:300]
        if status >= 500 and not safe_to_repeat:
            # A create request the server failed may still have made (and will bill) its task.
            raise AnswerLost(
                self.provider, f"request sent but answered {status} ({excerpt}); a task may exist", request
            )
        if status == 429 or status >= 500:
            raise TransientFailure(
                request,
                f"answered {status}: {excerpt}",
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        if output and status in EXPIRED_OUTPUT_STATUSES:
            raise OutputGone(self.provider, f"output URL answered {status}", request)
        try:
            body = response.json()
        except ValueError:
            body = None
        raise ProviderHTTPError(
            self.provider, f"answered {status}: {excerpt}", request, status=status, body=body
        )

    def _wait(self, retry_state: RetryCallState) -> float:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(failure, TransientFailure) and failure.retry_after_s is not None:
            # A wait past the retry budget makes stop_before_delay give up rather than sleep through it.
            return failure.retry_after_s
        return self._backoff(retry_state)

    def _log_retry(self, retry_state: RetryCallState) -> None:
        failure = retry_state.outcome.exception()
        self.log(
            f"{self.provider}: {failure.request} {failure.description}; "
            f"try {retry_state.attempt_number + 1} in {retry_state.upcoming_sleep:.2f}s"
        )

    def _describe(self, error: Exception) -> str:
        detail = str(error)
        return self.scrub(f"{type(error).__name__}: {detail}" if detail else type(error).__name__)


# --------------------------------------------------------------------------- tasks, prices, costs


class TaskPhase(StrEnum):
    WAITING = "waiting"  # queued or throttled by the provider
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True)
class TaskRef:
    """A provider task: its id and whatever else reading it needs (fal's status and response URLs)."""

    task_id: str
    info: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, job: ApiJob) -> TaskRef:
        return cls(job.provider_task_id or "", dict(job.task_info))


@dataclass(frozen=True)
class TaskState:
    phase: TaskPhase
    detail: str  # the provider's own status words, for the log
    output_url: str | None = None
    reason: str = ""
    code: str = ""


@dataclass(frozen=True)
class ListPrice:
    usd: float
    credits: float  # 0 where the provider does not sell credits


def api_list_price(table: PriceTable, key: str, seconds: float) -> ListPrice:
    """List price of `seconds` of output, from the price table's `api` rows (usd_per_s, credits_per_s)."""
    try:
        row = table.api[key]
        return ListPrice(
            usd=float(row["usd_per_s"]) * seconds, credits=float(row.get("credits_per_s", 0)) * seconds
        )
    except KeyError:
        known = ", ".join(sorted(table.api)) or "none"
        raise PriceTableError(
            f"price table {table.as_of} has no api price {key!r} (known: {known})"
        ) from None


@dataclass(frozen=True)
class ApiCostRecord(CostRecord):
    """CostRecord plus the API list price it includes and whether this run recorded the ledger charge."""

    list_usd: float = 0.0
    list_credits: float = 0.0
    charged_in_this_run: bool = False


def provider_seconds(request: ClipRequest) -> int:
    """The clip length to buy: every provider here sells 5 s and 10 s."""
    return 5 if request.duration_s <= 5 else 10


def keyframe_digest(request: ClipRequest) -> str:
    return hashlib.sha256(np.ascontiguousarray(request.keyframe.flatten()).tobytes()).hexdigest()


def idempotency_key(request: ClipRequest, provider: str, params: Mapping[str, Any]) -> str:
    """Hash of SKU, content, provider, the provider parameters and the attempt: one paid task per value."""
    identity = {
        "sku_id": request.sku_id,
        "content_hash": request.content_hash,
        "provider": provider,
        "params": params,
        "attempt": request.attempt,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def same_origin(url: str, base_url: str) -> bool:
    one, other = urlsplit(url), urlsplit(base_url)
    return (one.scheme, one.hostname, one.port) == (other.scheme, other.hostname, other.port)


# --------------------------------------------------------------------------- media


def encoded_image(frame: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    options = {"compress_level": 6} if image_format == "PNG" else {"quality": 95}
    Image.fromarray(frame).save(buffer, image_format, **options)
    return buffer.getvalue()


def clip_from_provider_video(
    mp4: bytes,
    request: ClipRequest,
    settings: EncodeSettings,
    provider: str,
    source: RequestInfo | None = None,
) -> ClipFile:
    """The provider's video (downloaded by `source`), checked, fitted to `request.size`, resampled to
    `request.fps`, looped and encoded."""

    def unusable(problem: str) -> UnusableOutput:
        return UnusableOutput(provider, f"output video {problem}", source)

    try:
        report = probe_mp4(mp4)
    except ClipUnreadable as error:
        raise unusable(f"is unreadable: {error}") from None
    length = round(request.duration_s * request.fps)
    if report.fps <= 0 or report.n_frames <= 0:
        raise unusable(f"has no frames ({report.n_frames} at {report.fps} fps)")
    try:
        indices = loop_source_indices(report.n_frames, report.fps, length, request.fps)
    except SourceTooShort as error:
        raise unusable(f"is too short: {error}") from None
    try:
        frames = list(_frames_at(mp4, indices, request.size))
    except av.FFmpegError as error:
        raise unusable(f"stops decoding: {error}") from None
    if len(frames) < len(indices):
        raise unusable(f"decoded to {len(frames)} of the {len(indices)} frames it claims")
    return looped_clip(frames, request.size, request.fps, length, settings)


def _frames_at(mp4: bytes, indices: list[int], size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Source frames at `indices` (ascending, repeats allowed), each converted to RGB and fitted once; the
    frames in between are decoded but never converted."""
    wanted = Counter(indices)
    last = max(indices)
    with av.open(io.BytesIO(mp4), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                fitted = fit_to_size(frame.to_ndarray(format="rgb24"), size)
                for _ in range(wanted[index]):
                    yield fitted
            if index >= last:
                return


# --------------------------------------------------------------------------- the provider base


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
        default=600.0, description="Most seconds one output download may take, redirects and retries included."
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
            "task": self.task_params(request, provider_seconds(request)),
            "seed": request.seed,
            "keyframe_sha256": keyframe_digest(request),
        }

    def render_clip(self, request: ClipRequest, log: Log) -> ClipResult:
        available = self.availability()
        if not available.available:
            raise ProviderError(self.name, available.reason)
        seconds = provider_seconds(request)
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
