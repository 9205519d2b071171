"""D-ID's talks API, emulated: `Authorization: Basic <key>` checked, POST /talks, GET /talks/{id} moving through
created | started | done | error | rejected, GET /talks listing recent talks (with their user_data) page by
page. Output is a real MP4 with a voice (see talking_head), square like D-ID's portraits."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from devkit.emulators.base import Answer, Exchange, Route, json_answer
from devkit.emulators.talking_head import PresenterEmulator

MAX_TEXT_CHARS = 40000
PAGE_SIZE_LIMIT = 100
FAILURES = {
    "failed": {"kind": "FaceError", "description": "Failed to detect a face in the source image"},
    "refused": {"kind": "ModerationError", "description": "The script did not pass content moderation"},
}


class DidEmulator(PresenterEmulator):
    provider = "did"

    def __init__(self, *, api_key: str | None = None, **options: Any):
        super().__init__(**options)
        self.api_key = api_key or f"ZW11bGF0ZWQ:{secrets.token_hex(8)}"

    def routes(self) -> list[Route]:
        return [
            Route("POST", re.compile(r"/talks"), "submit", self._create),
            Route("GET", re.compile(r"/talks"), "list", self._list),
            Route("GET", re.compile(r"/talks/(?P<talk_id>[\w-]+)"), "status", self._read),
        ]

    def authenticate(self, exchange: Exchange) -> Answer | None:
        if exchange.headers.get("Authorization") != f"Basic {self.api_key}":
            return json_answer(401, {"kind": "AuthorizationError", "description": "user unauthenticated"})
        return None

    def rate_limited_body(self) -> Any:
        return {"kind": "TooManyRequestsError", "description": "Too many requests"}

    def _create(self, exchange: Exchange) -> Answer:
        body = exchange.json()
        if not isinstance(body, dict):
            return json_answer(400, {"kind": "BadRequestError", "description": "Body must be a JSON object"})
        issues = []
        source = body.get("source_url")
        if not isinstance(source, str) or not re.match(r"^https?://.+\.(jpe?g|png)$", source, re.IGNORECASE):
            issues.append("source_url must be an http(s) URL of a .jpg or .png image")
        script = body.get("script") or {}
        text = script.get("input")
        if script.get("type") != "text" or not isinstance(text, str) or not 3 <= len(text) <= MAX_TEXT_CHARS:
            issues.append(f"script must be {{type: text, input}} with 3..{MAX_TEXT_CHARS} characters")
        user_data = body.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data) > 1000):
            issues.append("user_data must be a string of at most 1000 characters")
        if issues:
            return json_answer(400, {"kind": "BadRequestError", "description": "; ".join(issues)})
        side = self.output_short_side
        task = self.new_talk(text, (side, side), None, body, external_id=user_data)
        return json_answer(
            201,
            {
                "id": f"tlk_{task.task_id}",
                "object": "talk",
                "status": "created",
                "created_at": _iso(task.created_ms),
                "created_by": "emulated|user",
            },
        )

    def _talk(self, task) -> dict[str, Any]:
        phase = task.phase()
        talk: dict[str, Any] = {
            "id": f"tlk_{task.task_id}",
            "object": "talk",
            "user_data": task.external_id,
            "created_at": _iso(task.created_ms),
            "source_url": task.params.get("source_url"),
            "status": {
                "queued": "created",
                "running": "started",
                "succeeded": "done",
                "failed": "error",
                "refused": "rejected",
            }[phase],
        }
        if phase == "succeeded":
            talk["result_url"] = self.output_url(task)
        elif phase in FAILURES:
            talk["error"] = FAILURES[phase]
        return talk

    def _read(self, exchange: Exchange, talk_id: str) -> Answer:
        task = self.tasks.get(talk_id.removeprefix("tlk_"))
        if task is None:
            return json_answer(404, {"kind": "NotFoundError", "description": "not found"})
        return json_answer(200, self._talk(task))

    def _list(self, exchange: Exchange) -> Answer:
        query = getattr(exchange, "query", {})
        limit = min(PAGE_SIZE_LIMIT, int(query.get("limit", PAGE_SIZE_LIMIT)))
        start = int(query.get("token") or 0)
        newest_first = sorted(self.tasks.values(), key=lambda task: task.created, reverse=True)
        page = newest_first[start : start + limit]
        answer: dict[str, Any] = {"talks": [self._talk(task) for task in page]}
        if start + limit < len(newest_first):
            answer["token"] = str(start + limit)
        return json_answer(200, answer)


def _iso(created_ms: int) -> str:
    return datetime.fromtimestamp(created_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
