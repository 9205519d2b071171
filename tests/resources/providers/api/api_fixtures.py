"""Fixtures and helpers for the API provider and ledger tests: emulators, providers wired to them with fast
timings, small clip requests, fresh ledger databases, and functions that child processes run.

Test modules import what they use from here explicitly.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from devkit.emulators import EmulatorServer, FalEmulator, KlingEmulator, RunwayEmulator, TaskScript
from devkit.sample_art import draw_packshot
from resources.api_client.paid_jobs import ApiClipProvider
from resources.ledger import BudgetExceeded, JobSpec, LedgerResource
from resources.pricing import PricesResource
from resources.providers.api.fal import FalClips
from resources.providers.api.kling import KlingClips
from resources.providers.api.runway import RunwayClips
from resources.providers.base import ClipRequest
from resources.storage import StorageResource
from videokit.media.brand import BrandKit
from videokit.sku_video.compose import KeyframeLayers, compose_keyframe

PROVIDER_NAMES = ("runway", "kling", "pika")
EMULATORS: dict[str, type[EmulatorServer]] = {
    "runway": RunwayEmulator,
    "kling": KlingEmulator,
    "pika": FalEmulator,
}
# fal models beside pika, with other argument mappings: lengths as text ("5"), no seed; an aspect argument.
FAL_MODELS = ("pika", "kling_turbo", "veo_fast")
EMULATORS.update({name: FalEmulator for name in FAL_MODELS})
PROVIDERS: dict[str, Callable[..., ApiClipProvider]] = {
    "runway": RunwayClips,
    "kling": KlingClips,
    **{name: functools.partial(FalClips, model=name) for name in FAL_MODELS},
}
# Everything a test waits on is short; reads time out fast so that slow-answer faults cost little.
FAST = {
    "poll_interval_s": 0.02,
    "poll_deadline_s": 20.0,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 0.4,
    "max_attempts": 5,
    "retry_budget_s": 10.0,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.1,
    "preset": "ultrafast",
}
EMULATED_OUTPUT_SHORT_SIDE = 90  # 160x90 provider clips keep the tests quick
KIT = BrandKit(
    name="acme",
    display_name="Acme",
    background_style="studio",
    background_colors=((232, 236, 242), (150, 168, 190)),
    accent=(196, 48, 44),
    text=(17, 17, 17),
)
KEYFRAME_SIZES = {"16:9": (320, 180), "9:16": (180, 320), "1:1": (240, 240)}
REQUEST_SIZES = {"16:9": (128, 72), "9:16": (72, 128), "1:1": (96, 96)}

log = logging.getLogger("skuvid.tests.api").info


@functools.lru_cache(maxsize=8)
def keyframe_layers(aspect: str = "16:9", size: tuple[int, int] | None = None) -> KeyframeLayers:
    packshot = draw_packshot("bottle", color=(196, 48, 44), accent=(240, 236, 228), label="ACME", size=256)
    return compose_keyframe(packshot, KIT, size or KEYFRAME_SIZES[aspect])


def make_request(
    sku_id: str = "SKU-1",
    *,
    aspect: str = "16:9",
    size: tuple[int, int] | None = None,
    duration_s: float = 3.0,
    fps: int = 12,
    attempt: int = 1,
    seed: int = 0,
    keyframe_key: str = "",
    budget_scopes: tuple[str, ...] = (),
    keyframe_size: tuple[int, int] | None = None,
) -> ClipRequest:
    return ClipRequest(
        sku_id=sku_id,
        content_hash=f"hash-{sku_id}",
        tier="hero",
        aspect=aspect,
        prompt="",
        keyframe=keyframe_layers(aspect, keyframe_size),
        size=size or REQUEST_SIZES[aspect],
        duration_s=duration_s,
        fps=fps,
        seed=seed,
        keyframe_key=keyframe_key,
        attempt=attempt,
        budget_scopes=budget_scopes,
    )


def emulator_credentials(name: str, emulator: EmulatorServer) -> dict[str, str]:
    if name == "kling":
        return {"access_key": emulator.access_key, "secret_key": emulator.secret_key}
    return {"api_key": emulator.api_key}


def build_provider(
    name: str,
    *,
    base_url: str,
    credentials: dict[str, str],
    storage_root: str,
    ledger_url: str,
    daily_budget_usd: float | None = None,
    **overrides: Any,
) -> ApiClipProvider:
    return PROVIDERS[name](
        **credentials,
        base_url=base_url,
        storage=StorageResource(root=storage_root),
        ledger=LedgerResource(url=ledger_url, daily_budget_usd=daily_budget_usd),
        prices=PricesResource(),
        **{**FAST, **overrides},
    )


@dataclass
class ProviderCase:
    """One provider and its emulator, with a ledger and a storage folder of its own."""

    name: str
    emulator: EmulatorServer
    storage_root: Path
    ledger_url: str

    @property
    def credentials(self) -> dict[str, str]:
        return emulator_credentials(self.name, self.emulator)

    @property
    def secrets(self) -> list[str]:
        return list(self.credentials.values())

    def provider_settings(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of build_provider: plain data, so a child process can build the same provider."""
        return {
            "name": self.name,
            "base_url": self.emulator.base_url,
            "credentials": self.credentials,
            "storage_root": str(self.storage_root),
            "ledger_url": self.ledger_url,
            **overrides,
        }

    def provider(self, **overrides: Any) -> ApiClipProvider:
        return build_provider(**self.provider_settings(**overrides))

    def ledger(self, **overrides: Any) -> LedgerResource:
        return LedgerResource(url=self.ledger_url, **overrides)


@pytest.fixture(params=PROVIDER_NAMES)
def case(request, tmp_path) -> Iterator[ProviderCase]:
    emulator = EMULATORS[request.param](
        output_short_side=EMULATED_OUTPUT_SHORT_SIDE, script=TaskScript(running_s=0.02)
    )
    with emulator:
        yield ProviderCase(
            request.param, emulator, tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}"
        )


def runway_case(tmp_path: Path, **emulator_options: Any) -> ProviderCase:
    """A started Runway case for tests about shared machinery; the caller stops `case.emulator`."""
    options = {
        "output_short_side": EMULATED_OUTPUT_SHORT_SIDE,
        "script": TaskScript(running_s=0.02),
        **emulator_options,
    }
    emulator = RunwayEmulator(**options).start()
    return ProviderCase(
        "runway", emulator, tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}"
    )


@pytest.fixture
def postgres_ledger_url(postgres_server) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger' / 'ledger.sqlite'}"
    return request.getfixturevalue("postgres_ledger_url")


def files_containing(root: Path, needles: list[str]) -> list[str]:
    """Files under `root` whose bytes contain any of `needles`."""
    encoded = [needle.encode() for needle in needles]
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and any(n in path.read_bytes() for n in encoded)
    ]


# --------------------------------------------------------------------------- run in child processes


def render_outcome(provider_settings: dict[str, Any], request_settings: dict[str, Any]) -> str:
    """Render in this process and say how it went: `charged`, `reused` or `budget: <message>`.

    Child processes return text, since exceptions with keyword-only constructors do not unpickle.
    """
    provider = build_provider(**provider_settings)
    try:
        result = provider.render_clip(make_request(**request_settings), log)
    except BudgetExceeded as refused:
        return f"budget: {refused}"
    return "charged" if result.cost.charged_in_this_run else "reused"


def render_forever(provider_settings: dict[str, Any], request_settings: dict[str, Any]) -> None:
    """Target of a child that is killed mid-poll: renders with a poll deadline it never reaches."""
    render_outcome({**provider_settings, "poll_deadline_s": 3600.0}, request_settings)


def reserve_outcome(ledger_url: str, daily_budget_usd: float, key: str, price_usd: float) -> str:
    """Open one ledger job (the reservation step of a render): `reserved` or `budget: <message>`."""
    ledger = LedgerResource(url=ledger_url, daily_budget_usd=daily_budget_usd)
    spec = JobSpec(
        key=key,
        provider="runway",
        model="gen4_turbo",
        sku_id="SKU",
        content_hash="h",
        attempt=1,
        params={},
        price_usd=price_usd,
    )
    try:
        ledger.open_job(spec)
    except BudgetExceeded as refused:
        return f"budget: {refused}"
    return "reserved"


def forked_processes() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that imported this module once: eight children start in well under a
    second instead of importing Dagster, PyAV and OpenCV eight times over."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def after_barrier(barrier, results, work: Callable[..., str], *args: Any) -> None:
    """Child process body: wait for every sibling, so that they contend, then report `work(*args)`."""
    barrier.wait()
    try:
        results.put(work(*args))
    except Exception as error:  # noqa: BLE001 - reported as text for the parent to assert on
        results.put(f"error: {type(error).__name__}: {error}")
