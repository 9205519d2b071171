"""Whether work was done by a local emulator of a provider's API rather than the paid service.

An API endpoint on this machine's loopback is an emulator (the demo's, or a test's), never the provider:
its output is a stand-in and its list price is not money spent. Emulated charges carry the ledger scope
`emulated`, so reports keep them out of real totals.
"""

import ipaddress
from urllib.parse import urlsplit

EMULATED_SCOPE = "emulated"


def is_emulated(provider) -> bool:
    base_url = getattr(provider, "base_url", None)
    if getattr(provider, "pool", None) != "api" or not base_url:
        return False
    host = urlsplit(str(base_url)).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def emulated_scopes(provider) -> tuple[str, ...]:
    return (EMULATED_SCOPE,) if is_emulated(provider) else ()
