"""The contract every keyframe and clip provider meets, whatever runs it (CPU, our GPU, a paid API).

A provider takes a request and returns the artifact plus its CostRecord. It says whether it can run
here (`availability`), so routing can fall back instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from resources.pricing import CostRecord
from videokit.media.brand import BrandKit
from videokit.media.encode import ClipFile
from videokit.sku_video.compose import KeyframeLayers

Log = Callable[[str], None]


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""

    @classmethod
    def ok(cls) -> Availability:
        return cls(True, "available")


@dataclass(frozen=True)
class KeyframeRequest:
    sku_id: str
    content_hash: str
    title: str
    category: str
    prompt: str
    packshot: bytes
    brand: BrandKit
    logo: bytes | None
    size: tuple[int, int]
    seed: int = 0


@dataclass(frozen=True)
class KeyframeResult:
    layers: KeyframeLayers
    cost: CostRecord


@dataclass(frozen=True)
class ClipRequest:
    sku_id: str
    content_hash: str
    tier: str
    aspect: str
    prompt: str
    keyframe: KeyframeLayers
    size: tuple[int, int]
    duration_s: float
    fps: int
    seed: int = 0
    # Storage key of keyframe.png, for providers that fetch the image by (presigned) URL.
    keyframe_key: str = ""
    # 1 for the first render of this SKU and content; escalation and re-takes count up.
    attempt: int = 1
    # Budgets this render is charged against besides the daily one, e.g. ("backfill:2026-11-25",).
    budget_scopes: tuple[str, ...] = ()
    # The catalog category: providers with styles (the CPU loop) choose by it when the prompt does not.
    category: str = ""


@dataclass(frozen=True)
class ClipResult:
    clip: ClipFile
    cost: CostRecord


@runtime_checkable
class KeyframeProvider(Protocol):
    name: str
    pool: str | None

    def availability(self) -> Availability: ...

    def render_keyframe(self, request: KeyframeRequest, log: Log) -> KeyframeResult: ...


@runtime_checkable
class ClipProvider(Protocol):
    name: str
    pool: str | None  # the Dagster pool a render holds a slot of: "gpu", "api", or None for the CPU tier

    def availability(self) -> Availability: ...

    def render_clip(self, request: ClipRequest, log: Log) -> ClipResult: ...


@dataclass
class Usage:
    wall_s: float = 0.0
    cpu_s: float = 0.0


@contextmanager
def measure_usage() -> Iterator[Usage]:
    """Wall and process CPU seconds (all threads, so encoder threads count) spent inside the block."""
    usage = Usage()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        yield usage
    finally:
        usage.wall_s = time.perf_counter() - wall0
        usage.cpu_s = time.process_time() - cpu0
