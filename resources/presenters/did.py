"""Presenter `did`: D-ID's talks API, keyed by DID_API_KEY (the `username:password` key from D-ID Studio).

POST {base}/talks with `Authorization: Basic <key>` and {source_url, script: {type: text, input, provider:
{type: microsoft, voice_id}}, config: {result_format: mp4, stitch}, name, user_data} answers 201 {id,
status: created}. GET /talks/{id} answers {id, status: created | started | done | error | rejected,
result_url, duration, error: {kind, description}, user_data}. GET /talks?limit=&token= lists talks.

Every talk carries our idempotency key as `user_data`, so a create request whose answer was lost is looked up
in the recent talks instead of being sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from resources.api_client.errors import ProviderHTTPError
from resources.api_client.http import ApiHttp
from resources.api_client.tasks import TaskPhase, TaskRef, TaskState
from resources.ledger import ApiJob
from resources.presenters.base import ApiPresenterProvider, PresenterRequest

API_KEY_ENV = "DID_API_KEY"
PHASES = {
    "created": TaskPhase.WAITING,
    "started": TaskPhase.RUNNING,
    "done": TaskPhase.SUCCEEDED,
    "error": TaskPhase.FAILED,
    "rejected": TaskPhase.REFUSED,
}
# D-ID's own demo presenter image and a Microsoft neural voice from its examples.
DEFAULT_SOURCE = "https://d-id-public-bucket.s3.amazonaws.com/alice.jpg"
DEFAULT_VOICE = "en-US-JennyNeural"
LOOKUP_PAGES = 5  # pages of 100 recent talks searched for a lost submission


class DidPresenter(ApiPresenterProvider):
    """Presenter `did`: D-ID animates a portrait saying the scene's narration."""

    name: ClassVar[str] = "did"
    can_look_up_submissions: ClassVar[bool] = True
    max_text_chars: ClassVar[int] = 40000
    max_duration_s: ClassVar[float] = 300.0  # D-ID's longest video
    label_fields: ClassVar[tuple[str, ...]] = ("name",)

    api_key: str | None = Field(
        default=None, description=f"D-ID API key, username:password (from {API_KEY_ENV})."
    )
    base_url: str = Field(default="https://api.d-id.com", description="D-ID API base URL.")
    avatar: str = Field(default=DEFAULT_SOURCE, description="Default source_url: the portrait to animate.")
    voice: str = Field(default=DEFAULT_VOICE, description="Default voice_id of the TTS provider.")
    voice_provider: str = Field(
        default="microsoft", description="TTS provider: microsoft | elevenlabs | amazon."
    )
    stitch: bool = Field(default=True, description="Animate the face inside the whole portrait, not a crop.")
    pricing: str = Field(default="talks_pro", description="Price row did_<pricing> of this account.")

    def credentials(self) -> dict[str, str | None]:
        return {API_KEY_ENV: self.api_key}

    def model_id(self) -> str:
        return "talks"

    def auth_headers(self) -> Callable[[], Mapping[str, str]]:
        headers = {"Authorization": f"Basic {self.api_key or ''}", "Accept": "application/json"}
        return lambda: headers

    def presenter_params(self, request: PresenterRequest) -> dict[str, Any]:
        # D-ID's output size follows the portrait; request.size is what we fit it to afterwards.
        return {
            "source_url": request.avatar or self.avatar,
            "script": {
                "type": "text",
                "input": request.text,
                "provider": {"type": self.voice_provider, "voice_id": request.voice or self.voice},
            },
            "config": {"result_format": "mp4", "stitch": self.stitch},
            "name": f"{request.module}: {request.scene}"[:200],
        }

    def create_task(self, http: ApiHttp, params: Mapping[str, Any], image: str, job: ApiJob) -> TaskRef:
        url = f"{self._base()}/talks"
        answer = http.call(
            "POST", url, json_body={**params, "user_data": job.key}, safe_to_repeat=False
        ).json()
        return TaskRef(str(answer["id"]))

    def look_up_submission(self, http: ApiHttp, job: ApiJob) -> TaskRef | None:
        token = None
        for _ in range(LOOKUP_PAGES):
            url = f"{self._base()}/talks?limit=100" + (f"&token={quote(token)}" if token else "")
            page = http.call("GET", url).json()
            for talk in page.get("talks") or []:
                if talk.get("user_data") == job.key:
                    return TaskRef(str(talk["id"]))
            token = page.get("token")
            if not token:
                return None
        return None

    def read_task(self, http: ApiHttp, task: TaskRef) -> TaskState:
        talk = http.call("GET", f"{self._base()}/talks/{quote(task.task_id)}").json()
        status = str(talk.get("status", ""))
        phase = PHASES.get(status)
        if phase is None:
            return TaskState(TaskPhase.RUNNING, f"in unknown status {status!r}")
        if phase == TaskPhase.SUCCEEDED:
            if not talk.get("result_url"):
                return TaskState(TaskPhase.FAILED, "done without result_url", reason="no result_url")
            return TaskState(phase, status, output_url=str(talk["result_url"]))
        if phase in (TaskPhase.FAILED, TaskPhase.REFUSED):
            error = talk.get("error") or {}
            reason = str(error.get("description") or status) if isinstance(error, dict) else str(error)
            code = str(error.get("kind", "")) if isinstance(error, dict) else ""
            return TaskState(phase, status, reason=reason, code=code)
        return TaskState(phase, status)

    def refusal_reason(self, error: ProviderHTTPError) -> str | None:
        # 451: the script or the portrait failed D-ID's content moderation.
        if error.status == 451:
            body = error.body if isinstance(error.body, dict) else {}
            return str(body.get("description") or "content moderation")
        return None

    def _base(self) -> str:
        return self.base_url.rstrip("/")
