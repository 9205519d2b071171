"""Clip provider `pika`: Pika image-to-video as sold through fal's queue API.

POST {base}/fal-ai/pika/v2.2/image-to-video (Authorization: Key ...) answers {request_id, status_url,
response_url}; GET status_url reads IN_QUEUE | IN_PROGRESS | COMPLETED; GET response_url gives {video: {url}}
or the request's error, e.g. 422 {detail: [{type: "content_policy_violation", msg, loc}]}. fal has no way to
find a request by an id of ours, so a create request with an ambiguous answer (5xx, read timeout, dropped
connection) leaves the job `unconfirmed` for an operator to resolve with `skuvid jobs resolve`.
The key is sent only to the base URL's host: status and response URLs elsewhere are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import Field

from resources.api_client.errors import ProviderError, ProviderHTTPError, RequestInfo
from resources.api_client.http import ApiHttp, same_origin
from resources.api_client.paid_jobs import ApiClipProvider
from resources.api_client.tasks import TaskPhase, TaskRef, TaskState
from resources.ledger import ApiJob
from resources.providers.base import ClipRequest

API_KEY_ENV = "FAL_KEY"
PHASES = {"IN_QUEUE": TaskPhase.WAITING, "IN_PROGRESS": TaskPhase.RUNNING, "COMPLETED": TaskPhase.SUCCEEDED}
REFUSAL_TYPE = "content_policy_violation"


def error_items(body: Any) -> list[dict[str, Any]]:
    """fal's error detail: a list of {loc, msg, type} objects, or (older endpoints) one string."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        return [item for item in detail if isinstance(item, dict)]
    return [{"msg": detail, "type": ""}] if detail else []


class PikaClips(ApiClipProvider):
    """Clip provider `pika`: Pika image-to-video on fal's queue, keyed by FAL_KEY."""

    name: ClassVar[str] = "pika"

    api_key: str | None = Field(default=None, description=f"fal API key (from {API_KEY_ENV}).")
    base_url: str = Field(default="https://queue.fal.run", description="fal queue base URL.")
    model_version: str = Field(default="v2.2", description="Pika version in the fal endpoint path.")
    resolution: str = Field(default="720p", description="Output resolution: 720p or 1080p.")
    max_inline_image_bytes: int = Field(default=10_000_000, description="Largest data URI sent inline.")

    def credentials(self) -> dict[str, str | None]:
        return {API_KEY_ENV: self.api_key}

    def model_id(self) -> str:
        return f"pika-{self.model_version}-{self.resolution}"

    def price_key(self) -> str:
        return f"pika_{self.model_version.replace('.', '_')}_{self.resolution}"

    def task_params(self, request: ClipRequest, seconds: int) -> dict[str, Any]:
        return {
            "prompt": request.prompt or self.prompt,
            "resolution": self.resolution,
            "duration": seconds,
            "seed": request.seed,
        }

    def auth_headers(self) -> Callable[[], Mapping[str, str]]:
        headers = {"Authorization": f"Key {self.api_key}"}
        return lambda: headers

    def create_task(self, http: ApiHttp, params: Mapping[str, Any], image: str, job: ApiJob) -> TaskRef:
        url = f"{self.base_url.rstrip('/')}/fal-ai/pika/{self.model_version}/image-to-video"
        answer = http.call("POST", url, json_body={**params, "image_url": image}, safe_to_repeat=False).json()
        links = {name: str(answer[name]) for name in ("status_url", "response_url")}
        for link in links.values():
            if not same_origin(link, self.base_url):
                raise ProviderError(
                    self.name,
                    f"request {answer['request_id']} points at {RequestInfo.of('GET', link).url}, "
                    f"outside {self.base_url}; not sending the key there",
                    RequestInfo.of("POST", url),
                )
        return TaskRef(str(answer["request_id"]), links)

    def read_task(self, http: ApiHttp, task: TaskRef) -> TaskState:
        status_json = http.call("GET", task.info["status_url"]).json()
        status = str(status_json.get("status", ""))
        phase = PHASES.get(status, TaskPhase.RUNNING)
        if phase == TaskPhase.WAITING and status_json.get("queue_position") is not None:
            return TaskState(phase, f"{status} (position {status_json['queue_position']})")
        if phase != TaskPhase.SUCCEEDED:
            return TaskState(phase, status)
        try:
            result = http.call("GET", task.info["response_url"]).json()
        except ProviderHTTPError as error:
            # 422 is the request's own failure; anything else (401, 404...) says nothing about the task.
            if error.status != 422:
                raise
            refusal = self.refusal_reason(error)
            if refusal is not None:
                return TaskState(TaskPhase.REFUSED, status, reason=refusal, code=REFUSAL_TYPE)
            items = error_items(error.body)
            reason = "; ".join(str(item.get("msg")) for item in items) or str(error)
            return TaskState(
                TaskPhase.FAILED, status, reason=reason, code=str(items[0].get("type", "")) if items else ""
            )
        video_url = (result.get("video") or {}).get("url")
        if not video_url:
            return TaskState(
                TaskPhase.FAILED, "COMPLETED without video", reason="request completed with no video"
            )
        return TaskState(phase, status, output_url=str(video_url))

    def refusal_reason(self, error: ProviderHTTPError) -> str | None:
        if error.status != 422:
            return None
        refusals = [item for item in error_items(error.body) if item.get("type") == REFUSAL_TYPE]
        return "; ".join(str(item.get("msg") or REFUSAL_TYPE) for item in refusals) or None
