"""A provider task as the job loop sees it, and what identifies a paid job."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from resources.ledger import ApiJob
from resources.providers.base import ClipRequest


class TaskPhase(StrEnum):
    WAITING = "waiting"  # queued or throttled by the provider
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True)
class TaskRef:
    """A provider task: its id and whatever else reading it needs (fal's status and response URLs)."""

    task_id: str
    info: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, job: ApiJob) -> TaskRef:
        return cls(job.provider_task_id or "", dict(job.task_info))


@dataclass(frozen=True)
class TaskState:
    phase: TaskPhase
    detail: str  # the provider's own status words, for the log
    output_url: str | None = None
    reason: str = ""
    code: str = ""


def provider_seconds(request: ClipRequest) -> int:
    """The clip length to buy: every provider here sells 5 s and 10 s."""
    return 5 if request.duration_s <= 5 else 10


def keyframe_digest(request: ClipRequest) -> str:
    return hashlib.sha256(np.ascontiguousarray(request.keyframe.flatten()).tobytes()).hexdigest()


def idempotency_key(request: ClipRequest, provider: str, params: Mapping[str, Any]) -> str:
    """Hash of SKU, content, provider, the provider parameters and the attempt: one paid task per value."""
    identity = {
        "sku_id": request.sku_id,
        "content_hash": request.content_hash,
        "provider": provider,
        "params": params,
        "attempt": request.attempt,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
