"""Talking-head presenters behind one contract: a scene's text in, the provider's clip (picture and voice) out.

Providers (HeyGen, D-ID; one module each under resources/providers/) are paid HTTP APIs and run on the same
machinery as the clip APIs (resources/api_client/): retries with backoff, the job recorded in
the ledger before the first poll, resumed by a re-run, charged once. A presenter clip is keyed by what it
says and how (text, avatar, voice, size, provider settings), not by module or scene, so the same words in
another module or after a slide-only edit are never paid for again.

List prices are read from the price table's `api` rows (`heygen_*`, `did_*`, `usd_per_s`). Neither HeyGen's
video generate nor D-ID's talks take a maximum length: the clip is as long as the voice takes to say the text.
So a job reserves the price of the longest the text can take to say (`worst_case_s`: `speech_units` of the text
at `slowest_units_per_s`, divided by the voice's speed, plus a margin), and a job whose worst case does not fit
a budget is refused before anything is sent. When the clip arrives, its length is read from the file and the
job is settled at that length times the list price, never above what was reserved (`LedgerResource.settle_actual`).
A clip longer than its worst case is recorded in the ledger with its real length and logged as an overrun.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import av
from pydantic import Field

from resources.api_client.errors import ProviderError, UnusableOutput
from resources.api_client.paid_jobs import ApiClipProvider
from resources.api_client.prices import ApiCostRecord
from resources.ledger import JobSpec
from resources.pricing import PriceTable
from resources.providers.base import ClipRequest, ClipResult, Log, measure_usage

# Added to the worst-case speaking time: breaths, the avatar's lead-in and the tail of a clip.
ESTIMATE_MARGIN_S = 2.0
# Speech units a second of the slowest voice budgeted for, at speed 1. One unit is about one letter of an ordinary
# word; espeak-ng at 160 words a minute says prose at about 15 units a second, and no text of the adversarial
# set in tests/resources/presenters/test_presenters.py (hyphen chains, digits, spelled-out letters, symbols, emoji, URLs,
# non-Latin scripts) takes it longer than 0.75 of its bound: the bound holds for voices down to about 120 words
# a minute. Slower voices are budgeted with a smaller `slowest_units_per_s`.
SLOWEST_UNITS_PER_S = 10.0

# How long each kind of character can take to say, in units. Letters of a pronounceable word cost 1 (x, said
# "eks", 3); letters a voice may spell out (all capitals, mixed case, no vowels, single letters) 5; each digit 12
# (numbers are read out in words: "7777777777" takes 7.5 s at 160 words a minute); ideographs and other uncased
# scripts 12 (an English voice reads them by name); pausing punctuation 5, a line break 10; symbols and emoji,
# read by their names, 12. Generous for ordinary text (prose is reserved at about twice what it costs), so that
# no text can cost more than it reserved.
_TOKENS = re.compile(r"\s+|[^\W\d_]+|\d|.", re.DOTALL)
_VOWELS = frozenset("aeiouy")
_UNITS = {
    "letter": 1.0,
    "x": 3.0,
    "spelled": 5.0,
    "uncased": 12.0,
    "digit": 12.0,
    "space": 1.0,
    "line_break": 10.0,
    "joiner": 1.0,
    "pause": 5.0,
    "symbol": 12.0,
}


def _base_letter(char: str) -> str:
    return unicodedata.normalize("NFD", char)[0].lower()


def _pronounceable(word: str) -> bool:
    """A word a voice says as a word, not letter by letter: lower or title case, a vowel at least every fourth
    letter and no run of more than four consonants."""
    if len(word) < 2 or not (word.islower() or word.istitle()):
        return False
    vowels = [_base_letter(char) in _VOWELS for char in word]
    if sum(vowels) * 4 < len(word):
        return False
    run = 0
    for vowel in vowels:
        run = 0 if vowel else run + 1
        if run > 4:
            return False
    return True


def speech_units(text: str) -> float:
    """An upper bound of how long `text` takes to say, in units of `SLOWEST_UNITS_PER_S` (characters, not words:
    `seven-eleven-thirteen` is one word and three to say)."""
    units = 0.0
    for token in _TOKENS.findall(text):
        if token.isspace():
            units += _UNITS["line_break" if "\n" in token else "space"]
        elif token.isdigit():
            units += _UNITS["digit"]
        elif token.isalpha():
            if any(unicodedata.category(char) == "Lo" for char in token):
                units += _UNITS["uncased"] * len(token)
            elif _pronounceable(token):
                units += sum(_UNITS["x" if _base_letter(char) == "x" else "letter"] for char in token)
            else:
                units += _UNITS["spelled"] * len(token)
        elif token in "-'\"()[]":
            units += _UNITS["joiner"]
        elif token in ",.;:!?":
            units += _UNITS["pause"]
        else:
            units += _UNITS["symbol"] * len(token)
    return units


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
    attempt: int = 1
    budget_scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PresenterResult:
    mp4: bytes  # the provider's clip as downloaded: talking head with its narration
    duration_s: float
    job_key: str
    cost: ApiCostRecord  # api_usd: the ledger's charge for the clip (delivered seconds x list price, capped)
    reserved_usd: float = 0.0  # the worst case its job reserved
    overrun_usd: float = 0.0  # billed past the reservation, recorded but never charged to a budget


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
    slowest_units_per_s: float = Field(
        default=SLOWEST_UNITS_PER_S,
        gt=0,
        description="Speech units (about letters, see speech_units) a second of the slowest voice this account "
        "uses at speed 1: the price reserved for a clip is for its text said at this rate.",
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

    def voice_speed(self) -> float:
        """How much faster than normal the voice is asked to speak (HeyGen's `speed`); 1 where it cannot be set."""
        return 1.0

    def worst_case_s(self, request: PresenterRequest) -> float:
        """The longest the clip of `request` can be: its text said by the slowest voice, plus a margin."""
        return speech_units(request.text) / (self.slowest_units_per_s * self.voice_speed()) + ESTIMATE_MARGIN_S

    def worst_case_usd(self, request: PresenterRequest) -> float:
        """What the job of `request` reserves on its budgets: the list price of its worst case."""
        return self.list_price_per_s()[0] * self.worst_case_s(request)

    def check_request(self, request: PresenterRequest) -> None:
        """Raise PresenterInputError when the request breaks a limit of the provider (before paying)."""
        if len(request.text) > self.max_text_chars:
            raise PresenterInputError(
                f"{self.name}: scene {request.scene!r} has {len(request.text)} characters of narration; "
                f"{self.name} takes at most {self.max_text_chars} per clip. Split the scene"
            )
        worst_s = self.worst_case_s(request)
        if worst_s > self.max_duration_s:
            raise PresenterInputError(
                f"{self.name}: scene {request.scene!r} could run up to {worst_s:.0f}s (its narration said by the "
                f"slowest voice); {self.name} makes clips of at most {self.max_duration_s:.0f}s. Split the scene"
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
        worst_s = self.worst_case_s(request)
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
                    price_usd=rate * worst_s,
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
            # Its length is unknown: the job stays charged at its reservation, the most it can have cost.
            raise UnusableOutput(self.name, f"output video is unreadable: {error}", source) from None
        # The provider bills the delivered clip, whatever it holds: settle before judging it.
        settlement = self.ledger.settle_actual(job.key, duration_s, rate * duration_s)
        if settlement.overrun_usd > 0:
            log(
                f"{self.name}: OVERRUN scene {request.scene!r} {job.describe()}: the clip runs {duration_s:.1f}s, "
                f"past its worst case of {worst_s:.1f}s; the provider bills "
                f"${settlement.billed_usd:.4f}, the budgets were charged the ${settlement.charged_usd:.4f} "
                f"reserved. The ${settlement.overrun_usd:.4f} over is recorded in the ledger (job_usage); lower "
                "slowest_units_per_s for this voice"
            )
        if not has_audio or duration_s <= 0:
            raise UnusableOutput(self.name, "output video has no narration (no audio stream)", source)
        cost = self.prices.table.cost(
            provider=self.name,
            model=self.model_id(),
            api_usd=settlement.charged_usd,
            cpu_s=usage.cpu_s,
            wall_s=usage.wall_s,
            provider_job_id=job.provider_task_id or "",
            attempt=request.attempt,
        )
        record = ApiCostRecord(**cost.to_dict(), list_usd=rate * duration_s, charged_in_this_run=charged)
        log(
            f"{self.name}: scene {request.scene!r} clip of {duration_s:.1f}s (worst case {worst_s:.1f}s) from task "
            f"{job.provider_task_id}: ${settlement.charged_usd:.4f} of ${settlement.reserved_usd:.4f} reserved"
        )
        return PresenterResult(
            mp4=mp4,
            duration_s=duration_s,
            job_key=key,
            cost=record,
            reserved_usd=settlement.reserved_usd,
            overrun_usd=settlement.overrun_usd,
        )
