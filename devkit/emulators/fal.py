"""fal's queue API emulated for any model of the fal catalog: `Authorization: Key ...`, POST /{model id}
answering {request_id, status_url, response_url}, status IN_QUEUE | IN_PROGRESS | COMPLETED under the model's
app (/{owner}/{app}/requests/{id}/status), and the response {video: {url}} or the request's error (422
content_policy_violation for a moderation refusal, 422 no_media_generated for a failed generation).

Each request is checked against its model's entry as fal checks it against the model's schema: the image, the
prompt, the seed, the length and the aspect under the entry's argument names and spellings, the fixed
arguments, and nothing else; a request made for another model's arguments is refused with 422.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from devkit.emulators.base import (
    Answer,
    EmulatedTask,
    EmulatorServer,
    Exchange,
    ImageRejected,
    Route,
    image_aspect,
    image_from_input,
    json_answer,
)
from resources.providers.api.fal_catalog import FalModel, packaged_catalog

STATUSES = {"queued": "IN_QUEUE", "running": "IN_PROGRESS"}
ERRORS = {
    "refused": {
        "loc": ["body", "image_url"],
        "type": "content_policy_violation",
        "msg": "The content could not be processed because it was flagged by a content checker.",
    },
    "failed": {"loc": ["body"], "type": "no_media_generated", "msg": "The model did not generate any media."},
}


def validation_error(location: str, message: str) -> Answer:
    return json_answer(422, {"detail": [{"loc": ["body", location], "msg": message, "type": "value_error"}]})


def argument_problem(spec: FalModel, body: dict[str, Any]) -> tuple[str, str] | None:
    """(argument, message) for the first argument the model would refuse, None when it accepts the body."""
    expected = {spec.image_argument, spec.prompt_argument, *spec.arguments}
    expected |= {name for name in (spec.seed_argument, spec.duration.argument, spec.aspect_argument) if name}
    for name in body:
        if name not in expected:
            return name, "extra inputs are not permitted"
    if not isinstance(body.get(spec.prompt_argument), str):
        return spec.prompt_argument, "field required (a string)"
    if spec.duration.argument is not None and spec.duration.argument in body:
        seconds = spec.duration.decode(body[spec.duration.argument])
        if seconds not in spec.duration.choices:
            allowed = ", ".join(repr(spec.duration.encode(choice)) for choice in spec.duration.choices)
            return spec.duration.argument, f"must be one of {allowed}"
    aspects = set(spec.aspects.values())
    if spec.aspect_argument in body and body[spec.aspect_argument] not in aspects:
        return spec.aspect_argument, f"must be one of {', '.join(sorted(aspects))}"
    if spec.seed_argument in body and not isinstance(body[spec.seed_argument], int):
        return spec.seed_argument, "must be an integer"
    for name, value in spec.arguments.items():
        if name in body and body[name] != value:
            return name, f"this emulator serves {name}={value!r} only"
    return None


class FalEmulator(EmulatorServer):
    provider = "fal"

    def __init__(
        self, *, api_key: str | None = None, models: Mapping[str, FalModel] | None = None, **options: Any
    ):
        super().__init__(**options)
        self.api_key = api_key or f"emulated-fal-{secrets.token_hex(8)}:{secrets.token_hex(16)}"
        catalog = packaged_catalog() if models is None else models
        self.models = {spec.endpoint: spec for spec in catalog.values()}
        self.apps = {spec.app for spec in self.models.values()}

    def routes(self) -> list[Route]:
        request = r"/(?P<app>[a-z0-9-]+/[a-z0-9.-]+)/requests/(?P<request_id>\w+)"
        return [
            Route("POST", re.compile(r"/(?P<endpoint>[a-z0-9][a-z0-9./-]*)"), "submit", self._create),
            Route("GET", re.compile(rf"{request}/status"), "status", self._status),
            Route("GET", re.compile(request), "result", self._result),
        ]

    def authenticate(self, exchange: Exchange) -> Answer | None:
        if exchange.headers.get("Authorization") != f"Key {self.api_key}":
            return json_answer(401, {"detail": "Invalid Key authorization header"})
        return None

    def rate_limited_body(self) -> Any:
        return {"detail": "Too many concurrent requests"}

    def _create(self, exchange: Exchange, endpoint: str) -> Answer:
        spec = self.models.get(endpoint)
        if spec is None:
            return json_answer(404, {"detail": f"Application {endpoint!r} not found"})
        body = exchange.json()
        if not isinstance(body, dict):
            return validation_error("", "body must be a JSON object")
        problem = argument_problem(spec, body)
        if problem is not None:
            return validation_error(*problem)
        try:
            image = image_from_input(body.get(spec.image_argument))
        except ImageRejected as rejected:
            return validation_error(spec.image_argument, str(rejected))
        seconds = spec.duration.choices[0]
        if spec.duration.argument is not None and spec.duration.argument in body:
            seconds = spec.duration.decode(body[spec.duration.argument]) or seconds
        task = self.new_task(
            image, self.output_size(image_aspect(image)), seconds, {**body, "_app": spec.app}
        )
        links = self._links(task)
        return json_answer(200, {"request_id": task.task_id, **links, "queue_position": 0})

    def _task(self, app: str, request_id: str) -> EmulatedTask | None:
        task = self.tasks.get(request_id)
        return task if task is not None and task.params.get("_app") == app else None

    def _status(self, exchange: Exchange, app: str, request_id: str) -> Answer:
        task = self._task(app, request_id)
        if task is None:
            return json_answer(404, {"detail": "Request not found"})
        phase = task.phase()
        answer = {"status": STATUSES.get(phase, "COMPLETED"), **self._links(task)}
        if phase == "queued":
            answer["queue_position"] = 1
        return json_answer(200, answer)

    def _result(self, exchange: Exchange, app: str, request_id: str) -> Answer:
        task = self._task(app, request_id)
        if task is None:
            return json_answer(404, {"detail": "Request not found"})
        phase = task.phase()
        if phase in ERRORS:
            return json_answer(422, {"detail": [ERRORS[phase]]})
        if phase != "succeeded":
            return json_answer(400, {"detail": "Request is still in progress"})
        video = {
            "url": self.output_url(task),
            "content_type": "video/mp4",
            "file_name": f"{task.task_id}.mp4",
        }
        return json_answer(200, {"video": video})

    def _links(self, task: EmulatedTask) -> dict[str, str]:
        request_url = f"{self.base_url}/{task.params['_app']}/requests/{task.task_id}"
        return {
            "status_url": f"{request_url}/status",
            "response_url": request_url,
            "cancel_url": f"{request_url}/cancel",
        }
