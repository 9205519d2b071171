"""HeyGen's avatar video API, emulated: X-Api-Key checked, POST /v2/video/generate, GET
/v1/video_status.get?video_id=... moving through pending | processing | completed | failed. Output is a
real MP4 with a voice (see talking_head)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from devkit.emulators.base import Answer, Exchange, Route, json_answer
from devkit.emulators.talking_head import PresenterEmulator, hex_color

MAX_TEXT_CHARS = 5000
FAILURES = {
    "failed": {"code": 40001, "message": "Video render failed", "detail": "An unexpected error occurred."},
    "refused": {
        "code": 40102,
        "message": "Content moderation",
        "detail": "The script did not pass moderation.",
    },
}


class HeyGenEmulator(PresenterEmulator):
    provider = "heygen"

    def __init__(self, *, api_key: str | None = None, **options: Any):
        super().__init__(**options)
        self.api_key = api_key or f"emulated-heygen-{secrets.token_hex(8)}"

    def routes(self) -> list[Route]:
        return [
            Route("POST", re.compile(r"/v2/video/generate"), "submit", self._create),
            Route("GET", re.compile(r"/v1/video_status\.get"), "status", self._read),
        ]

    def authenticate(self, exchange: Exchange) -> Answer | None:
        if exchange.headers.get("X-Api-Key") != self.api_key:
            return json_answer(
                401, {"error": {"code": "authentication_failed", "message": "Unauthorized"}, "data": None}
            )
        return None

    def rate_limited_body(self) -> Any:
        return {
            "error": {"code": "rate_limit_exceeded", "message": "Concurrent video limit reached"},
            "data": None,
        }

    def _create(self, exchange: Exchange) -> Answer:
        body = exchange.json()
        issues = []
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("video_inputs"), list)
            or not body["video_inputs"]
        ):
            return json_answer(
                400,
                {"error": {"code": "invalid_parameter", "message": "video_inputs is required"}, "data": None},
            )
        scene = body["video_inputs"][0] if isinstance(body["video_inputs"][0], dict) else {}
        character, voice = scene.get("character") or {}, scene.get("voice") or {}
        if character.get("type") != "avatar" or not character.get("avatar_id"):
            issues.append("character must be {type: avatar, avatar_id}")
        text = voice.get("input_text")
        if (
            voice.get("type") != "text"
            or not isinstance(text, str)
            or not text.strip()
            or not voice.get("voice_id")
        ):
            issues.append("voice must be {type: text, input_text, voice_id}")
        elif len(text) > MAX_TEXT_CHARS:
            issues.append(f"input_text must be under {MAX_TEXT_CHARS} characters")
        dimension = body.get("dimension") or {}
        width, height = dimension.get("width"), dimension.get("height")
        if not all(
            isinstance(side, int) and 64 <= side <= 4096 and side % 2 == 0 for side in (width, height)
        ):
            issues.append("dimension must be {width, height}, even, 64..4096")
        if issues:
            return json_answer(
                400, {"error": {"code": "invalid_parameter", "message": "; ".join(issues)}, "data": None}
            )
        background = hex_color((scene.get("background") or {}).get("value"))
        task = self.new_talk(text, (width, height), background, body, external_id=body.get("callback_id"))
        return json_answer(200, {"error": None, "data": {"video_id": task.task_id}})

    def _read(self, exchange: Exchange) -> Answer:
        task = self.tasks.get(getattr(exchange, "query", {}).get("video_id", ""))
        if task is None:
            return json_answer(404, {"code": 404, "data": None, "message": "Video not found"})
        phase = task.phase()
        data: dict[str, Any] = {
            "id": task.task_id,
            "callback_id": task.external_id,
            "created_at": task.created_ms // 1000,
            "status": {"queued": "pending", "running": "processing", "succeeded": "completed"}.get(
                phase, "failed"
            ),
            "video_url": None,
            "thumbnail_url": None,
            "duration": None,
            "error": None,
        }
        if phase == "succeeded":
            data["video_url"] = self.output_url(task)
        elif phase in FAILURES:
            data["error"] = FAILURES[phase]
        return json_answer(200, {"code": 100, "data": data, "message": "Success"})
