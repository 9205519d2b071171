"""Runway's image-to-video API, emulated: Bearer key and X-Runway-Version checked, POST /v1/image_to_video,
GET /v1/tasks/{id} moving through THROTTLED (when queued) | RUNNING | SUCCEEDED | FAILED."""

from __future__ import annotations

import re
import secrets
from typing import Any

from devkit.emulators.base import (
    Answer,
    EmulatorServer,
    Exchange,
    ImageRejected,
    Route,
    image_from_input,
    json_answer,
)

API_VERSION = "2024-11-06"
MODELS = {"gen4_turbo", "gen4.5"}
RATIOS = {"1280:720", "720:1280", "960:960", "1104:832", "832:1104", "1584:672"}
FAILURES = {
    "failed": ("An unexpected error occurred.", "INTERNAL.BAD_OUTPUT.CODE01"),
    "refused": ("The input image did not pass content moderation.", "SAFETY.INPUT.IMAGE"),
}


class RunwayEmulator(EmulatorServer):
    provider = "runway"

    def __init__(self, *, api_key: str | None = None, **options: Any):
        super().__init__(**options)
        self.api_key = api_key or f"emulated-runway-{secrets.token_hex(8)}"

    def routes(self) -> list[Route]:
        return [
            Route("POST", re.compile(r"/v1/image_to_video"), "submit", self._create),
            Route("GET", re.compile(r"/v1/tasks/(?P<task_id>[\w-]+)"), "status", self._read),
        ]

    def authenticate(self, exchange: Exchange) -> Answer | None:
        if exchange.headers.get("Authorization") != f"Bearer {self.api_key}":
            return json_answer(401, {"error": "Invalid API key"})
        if exchange.headers.get("X-Runway-Version") != API_VERSION:
            return json_answer(400, {"error": f"X-Runway-Version must be {API_VERSION}"})
        return None

    def _create(self, exchange: Exchange) -> Answer:
        body = exchange.json()
        if not isinstance(body, dict):
            return json_answer(400, {"error": "Body must be a JSON object"})
        issues = []
        if body.get("model") not in MODELS:
            issues.append(f"model must be one of {sorted(MODELS)}")
        if body.get("ratio") not in RATIOS:
            issues.append(f"ratio must be one of {sorted(RATIOS)}")
        if body.get("duration") not in (5, 10):
            issues.append("duration must be 5 or 10")
        try:
            image = image_from_input(body.get("promptImage"))
        except ImageRejected as rejected:
            issues.append(f"promptImage: {rejected}")
        if issues:
            return json_answer(400, {"error": "Validation of body failed", "issues": issues})
        width, height = (int(side) for side in body["ratio"].split(":"))
        task = self.new_task(image, self.output_size((width, height)), body["duration"], body)
        return json_answer(200, {"id": task.task_id})

    def _read(self, exchange: Exchange, task_id: str) -> Answer:
        task = self.tasks.get(task_id)
        if task is None:
            return json_answer(404, {"error": "Task not found"})
        phase = task.phase()
        answer: dict[str, Any] = {"id": task.task_id, "createdAt": task.created_ms}
        if phase == "queued":
            answer["status"] = "THROTTLED"
        elif phase == "running":
            answer |= {"status": "RUNNING", "progress": 0.5}
        elif phase == "succeeded":
            answer |= {"status": "SUCCEEDED", "output": [self.output_url(task)]}
        else:
            failure, code = FAILURES[phase]
            answer |= {"status": "FAILED", "failure": failure, "failureCode": code}
        return json_answer(200, answer)
