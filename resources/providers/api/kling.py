"""Clip provider `kling`: Kling's image-to-video API (kling-v1-6, std or pro).

Requests carry a JWT (HS256, signed with the secret key; payload {iss: access key, exp, nbf}) renewed before
it expires. POST /v1/videos/image2video {model_name, mode, duration, image, prompt, external_task_id} and
GET /v1/videos/image2video/{task_id} answer {code, message, data: {task_id, task_status: submitted |
processing | succeed | failed, task_status_msg, task_result: {videos: [{url, duration}]}}}.

Every task carries `external_task_id` derived from our idempotency key. Kling keeps it unique per account
and finds tasks by it, so a create request whose answer was lost is checked instead of guessed at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import jwt
from pydantic import Field

from resources.api_client.errors import ProviderError, ProviderHTTPError, RequestInfo
from resources.api_client.http import ApiHttp
from resources.api_client.paid_jobs import ApiClipProvider
from resources.api_client.tasks import TaskPhase, TaskRef, TaskState
from resources.ledger import ApiJob
from resources.providers.base import ClipRequest

ACCESS_KEY_ENV = "KLING_ACCESS_KEY"
SECRET_KEY_ENV = "KLING_SECRET_KEY"
PHASES = {
    "submitted": TaskPhase.WAITING,
    "processing": TaskPhase.RUNNING,
    "succeed": TaskPhase.SUCCEEDED,
    "failed": TaskPhase.FAILED,
}
# 1301: "Trigger the content security policy of the platform".
REFUSAL_CODES = {1301}
# Failed tasks say why only in words, e.g. "Failure to pass the risk control system".
REFUSAL_WORDS = re.compile(r"risk control|moderation|content (security|policy)|sensitive", re.IGNORECASE)
PROMPT_MAX_CHARS = 2500
# nbf a little in the past tolerates clock skew between us and Kling.
CLOCK_SKEW_S = 5


class KlingToken:
    """The bearer JWT for Kling's API, signed anew when less than a tenth of its lifetime is left."""

    def __init__(
        self, access_key: str, secret_key: str, ttl_s: float, clock: Callable[[], float] = time.time
    ):
        self._access_key, self._secret_key, self._ttl_s, self._clock = access_key, secret_key, ttl_s, clock
        self._token, self._renew_at = "", 0.0

    def headers(self) -> dict[str, str]:
        now = self._clock()
        if now >= self._renew_at:
            payload = {"iss": self._access_key, "exp": int(now + self._ttl_s), "nbf": int(now) - CLOCK_SKEW_S}
            self._token = jwt.encode(payload, self._secret_key, algorithm="HS256", headers={"typ": "JWT"})
            self._renew_at = now + 0.9 * self._ttl_s
        return {"Authorization": f"Bearer {self._token}"}


def external_task_id(job: ApiJob) -> str:
    # Kling keeps external ids unique per account, so a failed job submitted again needs a new one.
    return f"skuvid-{job.key[:32]}-{job.submission_round}"


class KlingClips(ApiClipProvider):
    """Clip provider `kling`: Kling image-to-video, keyed by KLING_ACCESS_KEY and KLING_SECRET_KEY."""

    name: ClassVar[str] = "kling"
    can_look_up_submissions: ClassVar[bool] = True
    # Kling takes bare base64, without a data: prefix.
    inline_as_data_uri: ClassVar[bool] = False

    access_key: str | None = Field(default=None, description=f"Kling access key (from {ACCESS_KEY_ENV}).")
    secret_key: str | None = Field(default=None, description=f"Kling secret key (from {SECRET_KEY_ENV}).")
    base_url: str = Field(default="https://api-singapore.klingai.com", description="Kling API base URL.")
    model_name: str = Field(default="kling-v1-6", description="Kling model.")
    mode: Literal["std", "pro"] = Field(default="std", description="std (faster, cheaper) or pro.")
    token_ttl_s: float = Field(default=1800.0, description="Lifetime of each signed JWT.")
    max_inline_image_bytes: int = Field(default=10_000_000, description="Kling accepts images up to 10 MB.")

    def credentials(self) -> dict[str, str | None]:
        return {ACCESS_KEY_ENV: self.access_key, SECRET_KEY_ENV: self.secret_key}

    def model_id(self) -> str:
        return f"{self.model_name}-{self.mode}"

    def price_key(self) -> str:
        return f"kling_{self.model_name.removeprefix('kling-').replace('-', '_')}_{self.mode}"

    def task_params(self, request: ClipRequest, seconds: int) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "mode": self.mode,
            "duration": str(seconds),
            "prompt": (request.prompt or self.prompt)[:PROMPT_MAX_CHARS],
        }

    def auth_headers(self) -> Callable[[], Mapping[str, str]]:
        return KlingToken(self.access_key or "", self.secret_key or "", self.token_ttl_s).headers

    def create_task(self, http: ApiHttp, params: Mapping[str, Any], image: str, job: ApiJob) -> TaskRef:
        url = self._tasks_url()
        body = {**params, "image": image, "external_task_id": external_task_id(job)}
        try:
            answer = http.call("POST", url, json_body=body, safe_to_repeat=False)
        except ProviderHTTPError as rejected:
            # A 400 can mean our external id is taken, by this job's earlier request whose answer was lost.
            existing = self.look_up_submission(http, job) if rejected.status == 400 else None
            if existing is None:
                raise
            return existing
        return TaskRef(str(self._data(answer.json(), RequestInfo.of("POST", url))["task_id"]))

    def look_up_submission(self, http: ApiHttp, job: ApiJob) -> TaskRef | None:
        url = f"{self._tasks_url()}/{external_task_id(job)}"
        try:
            answer = http.call("GET", url)
        except ProviderHTTPError as error:
            if error.status == 404:
                return None
            raise
        return TaskRef(str(self._data(answer.json(), RequestInfo.of("GET", url))["task_id"]))

    def read_task(self, http: ApiHttp, task: TaskRef) -> TaskState:
        url = f"{self._tasks_url()}/{task.task_id}"
        data = self._data(http.call("GET", url).json(), RequestInfo.of("GET", url))
        status = str(data.get("task_status", ""))
        phase = PHASES.get(status, TaskPhase.RUNNING)
        if phase == TaskPhase.SUCCEEDED:
            videos = (data.get("task_result") or {}).get("videos") or []
            if not videos:
                return TaskState(
                    TaskPhase.FAILED, "succeed without videos", reason="task succeeded with no video"
                )
            return TaskState(phase, status, output_url=str(videos[0]["url"]))
        if phase == TaskPhase.FAILED:
            reason = str(data.get("task_status_msg") or "failed")
            refused = REFUSAL_WORDS.search(reason) is not None
            return TaskState(TaskPhase.REFUSED if refused else phase, status, reason=reason)
        return TaskState(phase, status)

    def refusal_reason(self, error: ProviderHTTPError) -> str | None:
        body = error.body if isinstance(error.body, dict) else {}
        return (
            str(body.get("message") or "content security policy")
            if body.get("code") in REFUSAL_CODES
            else None
        )

    def _tasks_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/v1/videos/image2video"

    def _data(self, answer: Any, request: RequestInfo) -> dict[str, Any]:
        """The `data` of Kling's envelope; an envelope whose code is not 0 is an error even under HTTP 200."""
        if (
            not isinstance(answer, dict)
            or answer.get("code") != 0
            or not isinstance(answer.get("data"), dict)
        ):
            code, message = (
                (answer.get("code"), answer.get("message")) if isinstance(answer, dict) else (None, None)
            )
            raise ProviderError(self.name, f"answered code {code}: {message}", request)
        return answer["data"]
