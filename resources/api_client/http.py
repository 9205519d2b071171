"""httpx with explicit timeouts, bounded retries and bounded, credential-free output downloads."""

from __future__ import annotations

import functools
import ipaddress
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from resources.api_client.errors import (
    AnswerLost,
    OutputGone,
    OutputRefused,
    ProviderError,
    ProviderHTTPError,
    ProviderUnavailable,
    RequestInfo,
    TransientFailure,
    redact_url,
    retry_after_seconds,
)
from resources.providers.base import Log
from resources.redaction import scrub_secrets

EXPIRED_OUTPUT_STATUSES = (403, 404, 410)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
ERROR_BODY_BYTES = 4096


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
            timeout = httpx.Timeout(
                min(self.policy.read_timeout_s, left), connect=min(self.policy.connect_timeout_s, left)
            )
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
                    response.status_code,
                    headers=response.headers,
                    content=bytes(body[:limit]),
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


def same_origin(url: str, base_url: str) -> bool:
    one, other = urlsplit(url), urlsplit(base_url)
    return (one.scheme, one.hostname, one.port) == (other.scheme, other.hostname, other.port)
