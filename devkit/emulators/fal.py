"""fal's queue API for Pika image-to-video, emulated: `Authorization: Key ...`, POST
/fal-ai/pika/{version}/image-to-video answering {request_id, status_url, response_url}, status IN_QUEUE |
IN_PROGRESS | COMPLETED, and the response {video: {url}} or the request's error (422 content_policy_violation
for a moderation refusal, 422 no_media_generated for a failed generation)."""

from __future__ import annotations

import re
import secrets
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

APP = "fal-ai/pika"
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


class FalEmulator(EmulatorServer):
    provider = "pika"

    def __init__(self, *, api_key: str | None = None, **options: Any):
        super().__init__(**options)
        self.api_key = api_key or f"emulated-fal-{secrets.token_hex(8)}:{secrets.token_hex(16)}"

    def routes(self) -> list[Route]:
        return [
            Route("POST", re.compile(rf"/{APP}/(?P<version>v[\d.]+)/image-to-video"), "submit", self._create),
            Route("GET", re.compile(rf"/{APP}/requests/(?P<request_id>\w+)/status"), "status", self._status),
            Route("GET", re.compile(rf"/{APP}/requests/(?P<request_id>\w+)"), "result", self._result),
        ]

    def authenticate(self, exchange: Exchange) -> Answer | None:
        if exchange.headers.get("Authorization") != f"Key {self.api_key}":
            return json_answer(401, {"detail": "Invalid Key authorization header"})
        return None

    def rate_limited_body(self) -> Any:
        return {"detail": "Too many concurrent requests"}

    def _create(self, exchange: Exchange, version: str) -> Answer:
        body = exchange.json()
        if not isinstance(body, dict):
            return validation_error("", "body must be a JSON object")
        if body.get("resolution", "720p") not in ("720p", "1080p"):
            return validation_error("resolution", "resolution must be 720p or 1080p")
        if body.get("duration", 5) not in (5, 10):
            return validation_error("duration", "duration must be 5 or 10")
        try:
            image = image_from_input(body.get("image_url"))
        except ImageRejected as rejected:
            return validation_error("image_url", str(rejected))
        task = self.new_task(image, self.output_size(image_aspect(image)), body.get("duration", 5), body)
        links = self._links(task)
        return json_answer(200, {"request_id": task.task_id, **links, "queue_position": 0})

    def _status(self, exchange: Exchange, request_id: str) -> Answer:
        task = self.tasks.get(request_id)
        if task is None:
            return json_answer(404, {"detail": "Request not found"})
        phase = task.phase()
        answer = {"status": STATUSES.get(phase, "COMPLETED"), **self._links(task)}
        if phase == "queued":
            answer["queue_position"] = 1
        return json_answer(200, answer)

    def _result(self, exchange: Exchange, request_id: str) -> Answer:
        task = self.tasks.get(request_id)
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
        request_url = f"{self.base_url}/{APP}/requests/{task.task_id}"
        return {
            "status_url": f"{request_url}/status",
            "response_url": request_url,
            "cancel_url": f"{request_url}/cancel",
        }
