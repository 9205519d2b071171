"""The presenter emulators (HeyGen, D-ID) together, for tests and for a demo without API keys.

with start_presenter_emulators(output_short_side=360) as emulators:
    heygen = HeyGenPresenter(**emulators.provider_settings()["heygen"], storage=..., ledger=..., prices=...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from devkit.emulators.did import DidEmulator
from devkit.emulators.heygen import HeyGenEmulator


@dataclass
class PresenterEmulators:
    heygen: HeyGenEmulator
    did: DidEmulator

    def provider_settings(self) -> dict[str, dict[str, str]]:
        """Per presenter name, the resource fields (base URL and fake key) that point it here."""
        return {
            "heygen": {"base_url": self.heygen.base_url, "api_key": self.heygen.api_key},
            "did": {"base_url": self.did.base_url, "api_key": self.did.api_key},
        }

    def stop(self) -> None:
        self.heygen.stop()
        self.did.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def start_presenter_emulators(**options: Any) -> PresenterEmulators:
    """Start both emulators on 127.0.0.1; `options` (output_short_side, script) go to each."""
    heygen = HeyGenEmulator(**options).start()
    try:
        did = DidEmulator(**options).start()
    except BaseException:
        heygen.stop()
        raise
    return PresenterEmulators(heygen=heygen, did=did)
