"""Presenter `heygen`: HeyGen's avatar video API (v2 video generate), keyed by HEYGEN_API_KEY.

POST {base}/v2/video/generate with `X-Api-Key` and {video_inputs: [{character: {type: avatar, avatar_id,
avatar_style}, voice: {type: text, input_text, voice_id, speed}, background: {type: color, value}}],
dimension: {width, height}, title, callback_id} answers {error: null, data: {video_id}}. GET
/v1/video_status.get?video_id=... answers {code: 100, data: {id, status: waiting | pending | processing |
completed | failed, video_url (signed, 7 days), duration, error: {code, message, detail}, callback_id}}.

HeyGen has no way to find a video by an id of ours (`callback_id` only comes back on a video already known),
so a create request whose answer was lost leaves the job unconfirmed rather than risk a second charge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from resources.api_client.errors import ProviderError, RequestInfo
from resources.api_client.http import ApiHttp
from resources.api_client.tasks import TaskPhase, TaskRef, TaskState
from resources.ledger import ApiJob
from resources.presenters.base import ApiPresenterProvider, PresenterRequest

API_KEY_ENV = "HEYGEN_API_KEY"
PHASES = {
    "waiting": TaskPhase.WAITING,
    "pending": TaskPhase.WAITING,
    "processing": TaskPhase.RUNNING,
    "completed": TaskPhase.SUCCEEDED,
    "failed": TaskPhase.FAILED,
}
# Public avatar and voice from HeyGen's own API examples; set your own in the script or the resource.
DEFAULT_AVATAR = "Daisy-inskirt-20220818"
DEFAULT_VOICE = "2d5b0e6cf36f460aa7fc47e3eee4ba54"


class HeyGenPresenter(ApiPresenterProvider):
    """Presenter `heygen`: a HeyGen avatar says the scene's narration."""

    name: ClassVar[str] = "heygen"
    max_text_chars: ClassVar[int] = 2000  # HeyGen's documented limit on text input per avatar clip
    max_duration_s: ClassVar[float] = 300.0  # the Pro API tier's longest video
    label_fields: ClassVar[tuple[str, ...]] = ("title",)

    api_key: str | None = Field(default=None, description=f"HeyGen API key (from {API_KEY_ENV}).")
    base_url: str = Field(default="https://api.heygen.com", description="HeyGen API base URL.")
    avatar: str = Field(default=DEFAULT_AVATAR, description="Default avatar_id.")
    voice: str = Field(default=DEFAULT_VOICE, description="Default voice_id.")
    avatar_style: str = Field(default="normal", description="normal | circle | closeUp.")
    speed: float = Field(default=1.0, ge=0.5, le=1.5, description="Speaking speed of the voice.")
    pricing: str = Field(
        default="avatar_iv_studio", description="Price row heygen_<pricing> of this account."
    )

    def credentials(self) -> dict[str, str | None]:
        return {API_KEY_ENV: self.api_key}

    def model_id(self) -> str:
        return "video-generate-v2"

    def voice_speed(self) -> float:
        # Sent as voice.speed: at 0.5 the clip takes twice as long, and so does its worst case.
        return self.speed

    def auth_headers(self) -> Callable[[], Mapping[str, str]]:
        headers = {"X-Api-Key": self.api_key or "", "Accept": "application/json"}
        return lambda: headers

    def presenter_params(self, request: PresenterRequest) -> dict[str, Any]:
        scene: dict[str, Any] = {
            "character": {
                "type": "avatar",
                "avatar_id": request.avatar or self.avatar,
                "avatar_style": self.avatar_style,
            },
            "voice": {
                "type": "text",
                "input_text": request.text,
                "voice_id": request.voice or self.voice,
                "speed": self.speed,
            },
        }
        if request.background:
            scene["background"] = {"type": "color", "value": request.background}
        return {
            "video_inputs": [scene],
            "dimension": {"width": request.size[0], "height": request.size[1]},
            "title": f"{request.module}: {request.scene}"[:200],
        }

    def create_task(self, http: ApiHttp, params: Mapping[str, Any], image: str, job: ApiJob) -> TaskRef:
        url = f"{self.base_url.rstrip('/')}/v2/video/generate"
        answer = http.call(
            "POST", url, json_body={**params, "callback_id": job.key}, safe_to_repeat=False
        ).json()
        return TaskRef(str(self._data(answer, RequestInfo.of("POST", url))["video_id"]))

    def read_task(self, http: ApiHttp, task: TaskRef) -> TaskState:
        url = f"{self.base_url.rstrip('/')}/v1/video_status.get?video_id={quote(task.task_id)}"
        data = self._data(http.call("GET", url).json(), RequestInfo.of("GET", url))
        status = str(data.get("status", ""))
        phase = PHASES.get(status)
        if phase is None:
            return TaskState(TaskPhase.RUNNING, f"in unknown status {status!r}")
        if phase == TaskPhase.SUCCEEDED:
            if not data.get("video_url"):
                return TaskState(TaskPhase.FAILED, "completed without video_url", reason="no video_url")
            return TaskState(phase, status, output_url=str(data["video_url"]))
        if phase == TaskPhase.FAILED:
            error = data.get("error") or {}
            reason = (
                str(error.get("detail") or error.get("message") or "failed")
                if isinstance(error, dict)
                else str(error)
            )
            code = str(error.get("code", "")) if isinstance(error, dict) else ""
            return TaskState(phase, status, reason=reason, code=code)
        return TaskState(phase, status)

    def _data(self, answer: Any, request: RequestInfo) -> dict[str, Any]:
        """HeyGen wraps answers in {error, data} (create) or {code, data, message} (status)."""
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise ProviderError(self.name, f"unexpected answer: {error or str(answer)[:200]}", request)
        return answer["data"]
