"""Talking-head presenters behind one contract: a scene's text in, the provider's clip (picture and voice) out.

Providers (HeyGen, D-ID; one module each under resources/generators/) are paid HTTP APIs and run on the same
machinery as the clip APIs (resources/generators/api_common.py): retries with backoff, the job recorded in
the ledger before the first poll, resumed by a re-run, charged once. A presenter clip is keyed by what it
says and how (text, avatar, voice, size, provider settings), not by module or scene, so the same words in
another module or after a slide-only edit are never paid for again.

List prices are read from the price table's `api` rows (`heygen_*`, `did_*`, `usd_per_s`). A job reserves the price of the estimated
speaking time (words / rate); the clip's real length is reported beside it.
"""

from __future__ import annotations

import hashlib
import io
import json
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import av
from pydantic import Field

from resources.generators.api_common import (
    ApiClipProvider,
    ApiCostRecord,
    ProviderError,
    UnusableOutput,
)
from resources.generators.base import ClipRequest, ClipResult, Log, measure_usage
from resources.ledger import JobSpec
from resources.pricing import PriceTable

# Added to the speaking time estimated from the word count: breaths, the lead-in and the tail of a clip.
ESTIMATE_MARGIN_S = 1.0


class PresenterInputError(ValueError):
    """A scene's text or settings break a provider limit; raised before anything is paid."""


@dataclass(frozen=True)
class PresenterRequest:
    module: str
    scene: str  # the scene's title, for logs
    text: str
    size: tuple[int, int]  # output dimension asked of the provider
    avatar: str | None = None  # None: the provider resource's default
    voice: str | None = None
    background: str | None = None  # "#RRGGBB" behind the presenter, where the provider supports it
    words_per_minute: int = 150  # how fast the provider's voice speaks, for the price estimate
    attempt: int = 1
    budget_scopes: tuple[str, ...] = ()

    @property
    def estimated_s(self) -> float:
        return len(self.text.split()) / self.words_per_minute * 60.0 + ESTIMATE_MARGIN_S


@dataclass(frozen=True)
class PresenterResult:
    mp4: bytes  # the provider's clip as downloaded: talking head with its narration
    duration_s: float
    job_key: str
    cost: ApiCostRecord


def presenter_list_price(table: PriceTable, key: str) -> tuple[float, str]:
    """(USD per second, source) of a presenter price row of the price table."""
    row = table.api.get(key)
    if row is None:
        known = sorted(k for k in table.api if k.startswith(("heygen_", "did_")))
        raise ProviderError(key.split("_")[0], f"no list price {key!r} (known: {', '.join(known)})")
    return float(row["usd_per_s"]), str(row.get("source", ""))


def clip_duration_s(mp4: bytes) -> tuple[float, bool]:
    """(seconds, has audio) of a provider clip; the longer of its streams."""
    with av.open(io.BytesIO(mp4)) as container:
        lengths = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
        if not lengths and container.duration:
            lengths = [container.duration / av.time_base]
        return max(lengths, default=0.0), bool(container.streams.audio)


class ApiPresenterProvider(ApiClipProvider):
    """A talking-head API. Subclasses say how to talk to it; `render_presenter` runs the paid job."""

    pool: ClassVar[str | None] = "api"
    max_text_chars: ClassVar[int] = 5000
    max_duration_s: ClassVar[float] = 300.0
    # Request fields that only label the clip (its title): they do not make a different clip.
    label_fields: ClassVar[tuple[str, ...]] = ()

    avatar: str = Field(default="", description="Default avatar (HeyGen avatar_id, D-ID source image URL).")
    voice: str = Field(default="", description="Default voice id of the provider's text-to-speech.")
    pricing: str = Field(default="", description="Row of the price table this account is billed by.")
    words_per_minute: int = Field(
        default=150, description="How fast the voice speaks: the price reserved is for words / this rate."
    )
    poll_interval_s: float = Field(default=10.0, description="Seconds between status reads.")
    poll_deadline_s: float = Field(
        default=1800.0, description="Stop polling after this long (the job stays resumable)."
    )

    # ---------------------------------------------------------------- the provider's side

    @abstractmethod
    def presenter_params(self, request: PresenterRequest) -> dict[str, Any]:
        """The provider's create request body (without our idempotency marker): it defines the paid job."""

    def price_key(self) -> str:
        return f"{self.name}_{self.pricing}"

    # ---------------------------------------------------------------- the clip contract does not apply

    def task_params(self, request: ClipRequest, seconds: int) -> dict[str, Any]:
        raise ProviderError(
            self.name, "a presenter renders talking heads for training modules, not product clips"
        )

    def render_clip(self, request: ClipRequest, log: Log) -> ClipResult:
        raise ProviderError(
            self.name, "a presenter renders talking heads for training modules, not product clips"
        )

    def keyframe_upload(self, request: Any) -> str:
        # The job loop asks for an image to send before it claims a submission; a presenter sends none (its
        # avatar or source image travels in the task parameters).
        return ""

    # ---------------------------------------------------------------- the protocol

    def list_price_per_s(self) -> tuple[float, str]:
        return presenter_list_price(self.prices.table, self.price_key())

    def estimate_usd(self, seconds: float) -> float:
        return self.list_price_per_s()[0] * seconds

    def check_request(self, request: PresenterRequest) -> None:
        """Raise PresenterInputError when the request breaks a limit of the provider (before paying)."""
        if len(request.text) > self.max_text_chars:
            raise PresenterInputError(
                f"{self.name}: scene {request.scene!r} has {len(request.text)} characters of narration; "
                f"{self.name} takes at most {self.max_text_chars} per clip. Split the scene"
            )
        if request.estimated_s > self.max_duration_s:
            raise PresenterInputError(
                f"{self.name}: scene {request.scene!r} would run about {request.estimated_s:.0f}s; "
                f"{self.name} makes clips of at most {self.max_duration_s:.0f}s. Split the scene"
            )
        if len(request.text.strip()) < 3:
            raise PresenterInputError(f"{self.name}: scene {request.scene!r} has no text to say")

    def job_key(self, request: PresenterRequest) -> str:
        """One paid clip per value: provider, model, the create request's parameters (less its labels) and the
        attempt; the same words in another module or scene are the same clip."""
        params = {k: v for k, v in self.presenter_params(request).items() if k not in self.label_fields}
        identity = {
            "provider": self.name,
            "model": self.model_id(),
            "params": params,
            "attempt": request.attempt,
        }
        return hashlib.sha256(
            json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()

    def render_presenter(self, request: PresenterRequest, log: Log) -> PresenterResult:
        available = self.availability()
        if not available.available:
            raise ProviderError(self.name, available.reason)
        self.check_request(request)
        rate, _ = self.list_price_per_s()
        price_usd = rate * request.estimated_s
        params = {"task": self.presenter_params(request)}
        key = self.job_key(request)
        with measure_usage() as usage:
            job = self.ledger.open_job(
                JobSpec(
                    key=key,
                    provider=self.name,
                    model=self.model_id(),
                    sku_id=f"module:{request.module}"[:64],
                    content_hash=hashlib.sha256(request.text.encode()).hexdigest()[:32],
                    attempt=request.attempt,
                    params=params,
                    price_usd=price_usd,
                    scopes=request.budget_scopes,
                )
            )
            log(f"{self.name}: scene {request.scene!r} {job.describe()} is {job.status}")
            with self._http(log) as http:
                job, mp4, charged = self._run_job(http, job, request, log)
                source = http.last_request
        try:
            duration_s, has_audio = clip_duration_s(mp4)
        except av.FFmpegError as error:
            raise UnusableOutput(self.name, f"output video is unreadable: {error}", source) from None
        if not has_audio or duration_s <= 0:
            raise UnusableOutput(self.name, "output video has no narration (no audio stream)", source)
        cost = self.prices.table.cost(
            provider=self.name,
            model=self.model_id(),
            api_usd=price_usd,
            cpu_s=usage.cpu_s,
            wall_s=usage.wall_s,
            provider_job_id=job.provider_task_id or "",
            attempt=request.attempt,
        )
        record = ApiCostRecord(**cost.to_dict(), list_usd=rate * duration_s, charged_in_this_run=charged)
        log(
            f"{self.name}: scene {request.scene!r} clip of {duration_s:.1f}s from task {job.provider_task_id}"
        )
        return PresenterResult(mp4=mp4, duration_s=duration_s, job_key=key, cost=record)
