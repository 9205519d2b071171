"""Clip provider `runway`: Runway's image-to-video API (gen4_turbo by default).

POST {base}/v1/image_to_video {model, promptImage, promptText, ratio, duration, seed} answers {id}; GET
/v1/tasks/{id} reads PENDING | THROTTLED | RUNNING | SUCCEEDED (output: [url]) | FAILED (failure,
failureCode) | CANCELLED. Runway has no idempotency key and no way to find a task by an id of ours, so a
create request with an ambiguous answer (5xx, read timeout, dropped connection) leaves the job `unconfirmed`
for an operator to resolve with `skuvid jobs resolve` (see resources/api_client).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import Field

from resources.api_client.http import ApiHttp
from resources.api_client.paid_jobs import ApiClipProvider
from resources.api_client.tasks import TaskPhase, TaskRef, TaskState
from resources.ledger import ApiJob
from resources.providers.base import ClipRequest

API_KEY_ENV = "RUNWAYML_API_SECRET"
RATIOS = {"16:9": "1280:720", "9:16": "720:1280", "1:1": "960:960"}
PHASES = {
    "PENDING": TaskPhase.WAITING,
    "THROTTLED": TaskPhase.WAITING,
    "RUNNING": TaskPhase.RUNNING,
    "SUCCEEDED": TaskPhase.SUCCEEDED,
    "FAILED": TaskPhase.FAILED,
    "CANCELLED": TaskPhase.FAILED,
}
# Runway's moderation failure codes: SAFETY.INPUT.*, SAFETY.OUTPUT.*, INPUT_PREPROCESSING.SAFETY.*.
REFUSAL_CODE_PREFIXES = ("SAFETY", "INPUT_PREPROCESSING.SAFETY")
PROMPT_MAX_CHARS = 1000


class RunwayClips(ApiClipProvider):
    """Clip provider `runway`: Runway image-to-video, keyed by RUNWAYML_API_SECRET."""

    name: ClassVar[str] = "runway"

    api_key: str | None = Field(default=None, description=f"Runway API secret (from {API_KEY_ENV}).")
    base_url: str = Field(default="https://api.dev.runwayml.com", description="Runway API base URL.")
    model: str = Field(default="gen4_turbo", description="Runway image-to-video model.")
    api_version: str = Field(default="2024-11-06", description="X-Runway-Version header.")

    def credentials(self) -> dict[str, str | None]:
        return {API_KEY_ENV: self.api_key}

    def model_id(self) -> str:
        return self.model

    def price_key(self) -> str:
        return f"runway_{self.model}"

    def task_params(self, request: ClipRequest, seconds: int) -> dict[str, Any]:
        return {
            "model": self.model,
            "promptText": (request.prompt or self.prompt)[:PROMPT_MAX_CHARS],
            "ratio": RATIOS[request.aspect],
            "duration": seconds,
            "seed": request.seed,
        }

    def auth_headers(self) -> Callable[[], Mapping[str, str]]:
        headers = {"Authorization": f"Bearer {self.api_key}", "X-Runway-Version": self.api_version}
        return lambda: headers

    def create_task(self, http: ApiHttp, params: Mapping[str, Any], image: str, job: ApiJob) -> TaskRef:
        url = f"{self.base_url.rstrip('/')}/v1/image_to_video"
        answer = http.call(
            "POST", url, json_body={**params, "promptImage": image}, safe_to_repeat=False
        ).json()
        return TaskRef(str(answer["id"]))

    def read_task(self, http: ApiHttp, task: TaskRef) -> TaskState:
        task_json = http.call("GET", f"{self.base_url.rstrip('/')}/v1/tasks/{task.task_id}").json()
        status = str(task_json.get("status", ""))
        phase = PHASES.get(status)
        if phase is None:
            return TaskState(TaskPhase.RUNNING, f"in unknown status {status!r}")
        if phase == TaskPhase.SUCCEEDED:
            outputs = task_json.get("output") or []
            if not outputs:
                return TaskState(
                    TaskPhase.FAILED, "SUCCEEDED without output", reason="task succeeded with no output"
                )
            return TaskState(phase, status, output_url=str(outputs[0]))
        if phase == TaskPhase.FAILED:
            code = str(task_json.get("failureCode") or ("CANCELLED" if status == "CANCELLED" else ""))
            reason = str(task_json.get("failure") or status.lower())
            refused = code.startswith(REFUSAL_CODE_PREFIXES)
            return TaskState(TaskPhase.REFUSED if refused else phase, status, reason=reason, code=code)
        return TaskState(phase, status)
