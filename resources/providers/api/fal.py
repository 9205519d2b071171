"""Clip providers on fal's queue API, one per entry of the fal model catalog (`resources/fal_models.yaml`).

POST {base}/{model id} (Authorization: Key ...) answers {request_id, status_url, response_url}; GET status_url
reads IN_QUEUE | IN_PROGRESS | COMPLETED; GET response_url gives {video: {url}} or the request's error, e.g.
422 {detail: [{type: "content_policy_violation", msg, loc}]}. fal has no way to find a request by an id of
ours, so a create request with an ambiguous answer (5xx, read timeout, dropped connection) leaves the job
`unconfirmed` for an operator to resolve with `skuvid jobs resolve`. The key is sent only to the base URL's
host: status and response URLs elsewhere are refused.

Which model, its arguments, lengths and price row are configuration: `FalClips(model="kling_turbo")` is the
catalog's `kling_turbo` entry, and the provider's name (in routing, the ledger and the cost records) is the
entry's name, so `pika` stays `pika`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field

from resources.api_client.errors import ProviderError, ProviderHTTPError, RequestInfo
from resources.api_client.http import ApiHttp, same_origin
from resources.api_client.paid_jobs import ApiClipProvider
from resources.api_client.tasks import TaskPhase, TaskRef, TaskState
from resources.ledger import ApiJob
from resources.providers.api.fal_catalog import FalCatalogError, FalModel, load_catalog
from resources.providers.base import Availability, ClipRequest

API_KEY_ENV = "FAL_KEY"
PHASES = {"IN_QUEUE": TaskPhase.WAITING, "IN_PROGRESS": TaskPhase.RUNNING, "COMPLETED": TaskPhase.SUCCEEDED}
REFUSAL_TYPE = "content_policy_violation"


def error_items(body: Any) -> list[dict[str, Any]]:
    """fal's error detail: a list of {loc, msg, type} objects, or (older endpoints) one string."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        return [item for item in detail if isinstance(item, dict)]
    return [{"msg": detail, "type": ""}] if detail else []


class FalClips(ApiClipProvider):
    """Clip provider for one fal model of the catalog, keyed by FAL_KEY."""

    model: str = Field(
        default="pika", description="Entry of the fal model catalog (and the provider's name)."
    )
    catalog_path: str | None = Field(
        default=None, description="A fal model catalog YAML; default: the packaged resources/fal_models.yaml."
    )
    api_key: str | None = Field(default=None, description=f"fal API key (from {API_KEY_ENV}).")
    base_url: str = Field(default="https://queue.fal.run", description="fal queue base URL.")
    max_inline_image_bytes: int = Field(default=10_000_000, description="Largest data URI sent inline.")

    @property
    def name(self) -> str:  # the catalog entry, so every fal model routes, books and logs under its own name
        return self.model

    @property
    def spec(self) -> FalModel:
        catalog = load_catalog(self.catalog_path)
        if self.model not in catalog:
            raise FalCatalogError(
                f"fal model {self.model!r} is not in the catalog (known: {', '.join(sorted(catalog))})"
            )
        return catalog[self.model]

    def availability(self) -> Availability:
        try:
            _ = self.spec
        except FalCatalogError as error:
            return Availability(False, str(error))
        return super().availability()

    def credentials(self) -> dict[str, str | None]:
        return {API_KEY_ENV: self.api_key}

    def model_id(self) -> str:
        return self.spec.model

    def price_key(self) -> str:
        return self.spec.price

    def seconds_to_buy(self, request: ClipRequest) -> int:
        return self.spec.duration.seconds_for(request.duration_s)

    def task_params(self, request: ClipRequest, seconds: int) -> dict[str, Any]:
        return self.spec.arguments_for(
            prompt=request.prompt or self.prompt, seconds=seconds, seed=request.seed, aspect=request.aspect
        )

    def auth_headers(self) -> Callable[[], Mapping[str, str]]:
        headers = {"Authorization": f"Key {self.api_key}"}
        return lambda: headers

    def create_task(self, http: ApiHttp, params: Mapping[str, Any], image: str, job: ApiJob) -> TaskRef:
        spec = self.spec
        url = f"{self.base_url.rstrip('/')}/{spec.endpoint}"
        body = {**params, spec.image_argument: image}
        answer = http.call("POST", url, json_body=body, safe_to_repeat=False).json()
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
