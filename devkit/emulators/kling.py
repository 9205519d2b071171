"""Kling's image-to-video API, emulated: JWT (HS256) verified with the secret key and the access key as
issuer, POST /v1/videos/image2video with a unique external_task_id, GET /v1/videos/image2video/{task_id or
external_task_id}, task_status submitted | processing | succeed | failed, all in Kling's {code, message,
data} envelope. Output is 30 fps, so clients have to convert the frame rate."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

import jwt

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

MODELS = {"kling-v1", "kling-v1-5", "kling-v1-6", "kling-v2-master", "kling-v2-1"}
STATUSES = {
    "queued": "submitted",
    "running": "processing",
    "succeeded": "succeed",
    "failed": "failed",
    "refused": "failed",
}
FAILURE_MESSAGES = {
    "failed": "Video generation failed, please try again later",
    "refused": "Failure to pass the risk control system",
}


def envelope(status: int, code: int, message: str, data: Any = None) -> Answer:
    return json_answer(
        status, {"code": code, "message": message, "request_id": str(uuid.uuid4()), "data": data}
    )


class KlingEmulator(EmulatorServer):
    provider = "kling"
    output_fps = 30

    def __init__(self, *, access_key: str | None = None, secret_key: str | None = None, **options: Any):
        super().__init__(**options)
        self.access_key = access_key or f"emulated-kling-ak-{secrets.token_hex(8)}"
        self.secret_key = secret_key or f"emulated-kling-sk-{secrets.token_hex(16)}"

    def routes(self) -> list[Route]:
        return [
            Route("POST", re.compile(r"/v1/videos/image2video"), "submit", self._create),
            Route("GET", re.compile(r"/v1/videos/image2video/(?P<task_id>[\w-]+)"), "status", self._read),
        ]

    def authenticate(self, exchange: Exchange) -> Answer | None:
        scheme, _, token = (exchange.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or not token:
            return envelope(401, 1001, "Authorization is empty")
        try:
            claims = jwt.decode(
                token, self.secret_key, algorithms=["HS256"], options={"require": ["iss", "exp", "nbf"]}
            )
        except jwt.ExpiredSignatureError:
            return envelope(401, 1004, "Authorization is expired")
        except jwt.InvalidTokenError:
            return envelope(401, 1002, "Authorization is invalid")
        if claims["iss"] != self.access_key:
            return envelope(401, 1002, "Authorization is invalid")
        return None

    def rate_limited_body(self) -> Any:
        return {"code": 1302, "message": "The API request is too fast, please slow down", "data": None}

    def _create(self, exchange: Exchange) -> Answer:
        body = exchange.json()
        if not isinstance(body, dict):
            return envelope(400, 1200, "Invalid request parameters")
        if body.get("model_name") not in MODELS or body.get("mode") not in ("std", "pro"):
            return envelope(400, 1201, "Invalid model_name or mode")
        if body.get("duration") not in ("5", "10"):
            return envelope(400, 1201, 'duration must be "5" or "10"')
        external_id = body.get("external_task_id") or None
        if external_id is not None and self._find(external_id) is not None:
            return envelope(400, 1201, "external_task_id already exists")
        try:
            image = image_from_input(body.get("image"))
        except ImageRejected as rejected:
            return envelope(400, 1201, f"image: {rejected}")
        task = self.new_task(
            image, self.output_size(image_aspect(image)), int(body["duration"]), body, external_id
        )
        return envelope(200, 0, "SUCCEED", self._task_json(task, with_result=False))

    def _read(self, exchange: Exchange, task_id: str) -> Answer:
        task = self._find(task_id)
        if task is None:
            return envelope(404, 1203, "Task not found")
        return envelope(200, 0, "SUCCEED", self._task_json(task, with_result=True))

    def _find(self, task_or_external_id: str) -> EmulatedTask | None:
        if task_or_external_id in self.tasks:
            return self.tasks[task_or_external_id]
        return next((t for t in list(self.tasks.values()) if t.external_id == task_or_external_id), None)

    def _task_json(self, task: EmulatedTask, *, with_result: bool) -> dict[str, Any]:
        phase = task.phase() if with_result else "queued"
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "task_status": STATUSES[phase],
            "task_status_msg": FAILURE_MESSAGES.get(phase, ""),
            "task_info": {"external_task_id": task.external_id or ""},
            "created_at": task.created_ms,
            "updated_at": task.created_ms,
        }
        if phase == "succeeded":
            video = {"id": str(uuid.uuid4()), "url": self.output_url(task), "duration": str(task.seconds)}
            data["task_result"] = {"videos": [video]}
        return data
