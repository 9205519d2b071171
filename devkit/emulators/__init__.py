"""Local stand-ins for the commercial clip APIs (Runway, Kling, every model of the fal catalog), for tests and for `make demo`
when no API key is set. Each is a real HTTP server on 127.0.0.1 with its own fake credentials.

    with start_emulators() as emulators:
        runway = RunwayClips(**emulators.provider_settings()["runway"], storage=..., ledger=..., prices=...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from devkit.emulators.base import (
    DroppedConnection,
    EchoHeaders,
    EmulatorServer,
    RateLimited,
    ServerError,
    ServerErrorAfterWork,
    SlowAnswer,
    SlowDrip,
    TaskScript,
)
from devkit.emulators.fal import FalEmulator
from devkit.emulators.kling import KlingEmulator
from devkit.emulators.runway import RunwayEmulator

__all__ = [
    "DroppedConnection",
    "EchoHeaders",
    "EmulatorServer",
    "Emulators",
    "FalEmulator",
    "KlingEmulator",
    "RateLimited",
    "RunwayEmulator",
    "ServerError",
    "ServerErrorAfterWork",
    "SlowAnswer",
    "SlowDrip",
    "TaskScript",
    "start_emulators",
]


@dataclass
class Emulators:
    runway: RunwayEmulator
    kling: KlingEmulator
    fal: FalEmulator  # serves every model of the fal catalog (pika, kling_turbo, veo_fast, ...)

    def provider_settings(self) -> dict[str, dict[str, str]]:
        """Per provider name, the resource fields (base URL and fake credentials) that point it here."""
        return {
            "runway": {"base_url": self.runway.base_url, "api_key": self.runway.api_key},
            "kling": {
                "base_url": self.kling.base_url,
                "access_key": self.kling.access_key,
                "secret_key": self.kling.secret_key,
            },
            "fal": {"base_url": self.fal.base_url, "api_key": self.fal.api_key},
        }

    def stop(self) -> None:
        for emulator in (self.runway, self.kling, self.fal):
            emulator.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def start_emulators(**options: Any) -> Emulators:
    """Start all three emulators; `options` (output_short_side, script) go to each."""
    started: list[EmulatorServer] = []
    try:
        for emulator_class in (RunwayEmulator, KlingEmulator, FalEmulator):
            started.append(emulator_class(**options).start())
    except BaseException:
        for emulator in started:
            emulator.stop()
        raise
    runway, kling, fal = started
    return Emulators(runway=runway, kling=kling, fal=fal)
