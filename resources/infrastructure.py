"""Failures of the machinery (object store, the ledger's database, the network) as opposed to the content.

A machinery failure says nothing about the SKU: the same work succeeds once the store answers again, and the
ledger and the artifact records make a retry safe (nothing finished is redone, nothing paid is paid again). A
content failure (QA, a bad packshot, a refused prompt) fails again whatever the retry, so it is never retried.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy.exc

from resources.storage import StorageUnavailable

# DBAPIError subclasses raised when the server cannot be reached or dropped the connection.
_DATABASE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError)
_NETWORK_ERRORS = (ConnectionError, TimeoutError)


def is_infrastructure_error(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, is the store, the database or the network failing."""
    if isinstance(error, _NETWORK_ERRORS):
        return True
    # Only our store and the database are looked for down the chain: an API provider's own connection errors
    # belong to its job rules (escalation, unconfirmed jobs), not to a blind retry.
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (StorageUnavailable, *_DATABASE_ERRORS)):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def describe_error(error: BaseException) -> str:
    """One line for logs and metadata; a database outage names the database (its URL without the password)."""
    if isinstance(error, dg.Failure):
        return error.description or "failed"
    if isinstance(error, _DATABASE_ERRORS):
        # psycopg2 names the server ("connection to server at "db", port 5432 failed: ..."); the URL has the password.
        text = str(getattr(error, "orig", None) or error).strip()
        return f"ledger database unreachable: {text.splitlines()[0] if text else type(error).__name__}"
    return f"{type(error).__name__}: {error}"
