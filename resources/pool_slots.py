"""Slots of the `gpu` and `api` pools, held around one provider call, as leases in the ledger's database.

An asset declares its Dagster pool when it is defined, but a clip's provider (our GPU, a paid API, the CPU) is
chosen per SKU, so the render claims a slot of the provider's pool itself. A slot is a row of `pool_slots`; a
claim is one conditional UPDATE that takes a free or lapsed row, so any number of processes, on SQLite or
PostgreSQL, never hold more slots than the pool's limit. A holder renews its lease every `lease_s / 3` from a
background thread while it works; a holder that dies (SIGKILL, a lost machine) stops renewing, and its slot is
free for the next claimant `lease_s` after its last renewal. No Dagster internals are involved, and nothing has
to be set up: pools get their limits from `SKUVID_POOL_LIMITS` (default `gpu=1,api=4`; other pools get
`default_limit`) the first time they are used. A claim waits at most `wait_timeout_s`, then fails with
PoolSlotTimeout naming the pool and the runs that hold it.

Leases are compared with each host's clock: hosts that share a ledger need clocks in step (NTP) to well
within `lease_s`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from resources.ledger import LedgerResource, ledger_engine

POOL_LIMITS_ENV = "SKUVID_POOL_LIMITS"
POOL_LEASE_ENV = "SKUVID_POOL_LEASE_S"
POOL_WAIT_ENV = "SKUVID_POOL_WAIT_S"
# gpu: one model on one GPU at a time; api: the providers' per-organisation concurrency (Runway tier 1: 1-2).
DEFAULT_POOL_LIMITS = {"gpu": 1, "api": 4}
_SCHEMA_LOCK_ID = 0x736B7670

metadata = MetaData()

pool_slots = Table(
    "pool_slots",
    metadata,
    Column("pool", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    # NULL when free. A token per claim, so a holder whose lease lapsed and was taken can never free the new one.
    Column("token", String(32)),
    Column("run_id", String(64)),
    Column("holder", String(200)),
    Column("lease_until", Float),  # epoch seconds
    Column("claimed_at", Float),
)


class PoolSlotError(RuntimeError):
    pass


class PoolSlotTimeout(PoolSlotError):
    """No slot of the pool came free within the wait timeout."""


@dataclass(frozen=True)
class PoolSettings:
    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_POOL_LIMITS))
    default_limit: int = 1
    lease_s: float = 60.0
    wait_timeout_s: float = 1800.0
    poll_s: float = 0.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PoolSettings:
        """Limits from SKUVID_POOL_LIMITS (`gpu=1,api=4`, merged over the defaults), lease and wait from
        SKUVID_POOL_LEASE_S and SKUVID_POOL_WAIT_S."""
        environ = os.environ if environ is None else environ
        limits = dict(DEFAULT_POOL_LIMITS)
        for item in filter(None, (part.strip() for part in environ.get(POOL_LIMITS_ENV, "").split(","))):
            name, _, value = item.partition("=")
            if not name.strip() or not value.strip().isdigit() or int(value) < 1:
                raise PoolSlotError(
                    f"{POOL_LIMITS_ENV}: {item!r} is not pool=limit with a limit of 1 or more (e.g. gpu=1,api=4)"
                )
            limits[name.strip()] = int(value)
        settings = {"limits": limits}
        for name, key in ((POOL_LEASE_ENV, "lease_s"), (POOL_WAIT_ENV, "wait_timeout_s")):
            if environ.get(name):
                try:
                    settings[key] = float(environ[name])
                except ValueError:
                    raise PoolSlotError(f"{name}: {environ[name]!r} is not a number of seconds") from None
                if settings[key] <= 0:
                    raise PoolSlotError(f"{name}: must be more than 0 seconds")
        return cls(**settings)

    def limit(self, pool: str) -> int:
        return self.limits.get(pool, self.default_limit)


@dataclass(frozen=True)
class Lease:
    pool: str
    slot: int
    token: str


_created: set[tuple[str, int]] = set()
_created_lock = threading.Lock()


def slots_engine(url: str, busy_timeout_s: float = 30.0) -> Engine:
    """The ledger's engine, with the pool_slots table created once per process."""
    engine = ledger_engine(url, busy_timeout_s)
    with _created_lock:
        if (url, os.getpid()) not in _created:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
                metadata.create_all(connection)
            _created.add((url, os.getpid()))
    return engine


class PoolSlots:
    """Claims, renews and frees slot leases in one database."""

    def __init__(self, engine: Engine, settings: PoolSettings):
        self.engine, self.settings = engine, settings

    def try_claim(self, pool: str, run_id: str, holder: str) -> Lease | None:
        """A free or lapsed slot of `pool`, or None when all `limit` slots are held."""
        limit = self.settings.limit(pool)
        token, now = uuid.uuid4().hex, time.time()
        with self.engine.begin() as connection:
            dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            connection.execute(
                dialect_insert(pool_slots)
                .values([{"pool": pool, "slot": index} for index in range(limit)])
                .on_conflict_do_nothing()
            )
            available = and_(
                pool_slots.c.pool == pool,
                pool_slots.c.slot < limit,
                or_(pool_slots.c.token.is_(None), pool_slots.c.lease_until < now),
            )
            candidates = connection.execute(
                select(pool_slots.c.slot).where(available).order_by(pool_slots.c.slot)
            ).scalars().all()
            for slot in candidates:
                # The same condition again: under PostgreSQL another claimant may have taken it since the SELECT.
                claimed = connection.execute(
                    update(pool_slots)
                    .where(available, pool_slots.c.slot == slot)
                    .values(
                        token=token,
                        run_id=run_id[:64],
                        holder=holder[:200],
                        lease_until=now + self.settings.lease_s,
                        claimed_at=now,
                    )
                )
                if claimed.rowcount == 1:
                    return Lease(pool, slot, token)
        return None

    def renew(self, lease: Lease) -> bool:
        """Extend the lease; False when it lapsed and someone else holds the slot now."""
        with self.engine.begin() as connection:
            renewed = connection.execute(
                update(pool_slots)
                .where(pool_slots.c.pool == lease.pool, pool_slots.c.slot == lease.slot,
                       pool_slots.c.token == lease.token)
                .values(lease_until=time.time() + self.settings.lease_s)
            )
        return renewed.rowcount == 1

    def free(self, lease: Lease) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(pool_slots)
                .where(pool_slots.c.pool == lease.pool, pool_slots.c.slot == lease.slot,
                       pool_slots.c.token == lease.token)
                .values(token=None, run_id=None, holder=None, lease_until=None, claimed_at=None)
            )

    def holders(self, pool: str) -> list[str]:
        """Who holds the live slots of `pool`, for messages: `holder (run R, lease ends in Ns)`."""
        now = time.time()
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(pool_slots)
                .where(pool_slots.c.pool == pool, pool_slots.c.token.is_not(None), pool_slots.c.lease_until >= now)
                .order_by(pool_slots.c.slot)
            ).mappings().all()
        return [f"{row['holder']} (run {row['run_id']}, lease ends in {row['lease_until'] - now:.0f}s)" for row in rows]

    def claim(self, pool: str, run_id: str, holder: str, log: Callable[[str], None]) -> Lease:
        """Wait for a slot, at most `wait_timeout_s`; PoolSlotTimeout names the pool and its holders."""
        deadline = time.monotonic() + self.settings.wait_timeout_s
        told = False
        while (lease := self.try_claim(pool, run_id, holder)) is None:
            if time.monotonic() >= deadline:
                held_by = "; ".join(self.holders(pool)) or "no live holder (leases lapsing)"
                raise PoolSlotTimeout(
                    f"{holder}: no slot of pool {pool!r} (limit {self.settings.limit(pool)}) came free in "
                    f"{self.settings.wait_timeout_s:g}s; held by {held_by}. Raise the limit with "
                    f"{POOL_LIMITS_ENV}, or wait for those runs (a dead run's slot frees itself "
                    f"{self.settings.lease_s:g}s after its last renewal)"
                )
            if not told:
                log(f"{holder}: waiting for a slot in pool {pool!r}, held by {'; '.join(self.holders(pool))}")
                told = True
            time.sleep(self.settings.poll_s)
        return lease


@contextmanager
def _renewing(slots: PoolSlots, lease: Lease, holder: str, log: Callable[[str], None]) -> Iterator[None]:
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(slots.settings.lease_s / 3):
            try:
                if not slots.renew(lease):
                    log(f"{holder}: LOST its {lease.pool!r} slot (the lease lapsed and was taken); the pool may "
                        "briefly run one over its limit")
                    return
            except Exception as error:  # noqa: BLE001 - a database hiccup must not kill the render; retry next beat
                log(f"{holder}: could not renew its {lease.pool!r} slot lease: {type(error).__name__}")

    thread = threading.Thread(target=heartbeat, name=f"lease-{lease.pool}-{lease.slot}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def pool_slot(
    ledger: LedgerResource,
    pool: str | None,
    run_id: str,
    holder: str,
    log: Callable[[str], None],
    settings: PoolSettings | None = None,
) -> Iterator[None]:
    """Hold a slot of `pool` (None: no pool, e.g. the CPU tier) in the ledger's database while the block runs."""
    if pool is None:
        yield
        return
    slots = PoolSlots(slots_engine(ledger.resolved_url, ledger.busy_timeout_s), settings or PoolSettings.from_env())
    lease = slots.claim(pool, run_id, holder, log)
    try:
        with _renewing(slots, lease, holder, log):
            yield
    finally:
        slots.free(lease)
