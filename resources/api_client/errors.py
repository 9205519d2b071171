"""What can go wrong talking to a paid API, as exceptions that name the provider and the request, never a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from resources.redaction import scrub_secrets


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
