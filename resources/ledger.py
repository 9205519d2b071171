"""The money ledger: paid API jobs, their charges and the budgets they draw on, in one SQL database.

SQLite (a file, the default) or PostgreSQL, through SQLAlchemy Core. The rules that keep the promise "a clip
is never paid for twice and a budget is never exceeded, whatever crashes":

- A job row, keyed by an idempotency key, is written in the same transaction that reserves its list price on
  every budget scope it draws on. A reservation is one conditional UPDATE per scope, so concurrent runs in
  any number of processes can never reserve past a limit.
- The provider's task id is written before the first poll, so a re-run resumes the task instead of paying
  for a new one. `submitting` marks the window in which a create request is on its way; a job whose
  request may have made a task that nobody knows the id of is `unconfirmed` and keeps its reservation.
- A charge is written once per job (unique job key) when the provider reports success, moving the amount
  from reserved to spent. Failed and refused jobs release their reservation.

Money is stored as integer micro-dollars so that limits compare exactly on both databases.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import tenacity
from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError

from resources.redaction import scrub_secrets

DEFAULT_LEDGER_URL = "sqlite:///.data/ledger.sqlite"
LEDGER_URL_ENV = "SKUVID_LEDGER_URL"
MICROS_PER_USD = 1_000_000
# Any constant works; it only has to be the same in every process that creates the tables.
_SCHEMA_LOCK_ID = 0x736B7576


def to_micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def to_usd(micros: int | None) -> float | None:
    return None if micros is None else micros / MICROS_PER_USD


def day_scope(moment: datetime | None = None) -> str:
    """The daily budget scope of a moment (UTC), e.g. `day:2026-11-25`."""
    return f"day:{(moment or datetime.now(UTC)).date().isoformat()}"


class JobStatus(StrEnum):
    RESERVED = "reserved"  # budget reserved; nothing sent to the provider yet
    SUBMITTING = "submitting"  # a run is sending the create request
    UNCONFIRMED = "unconfirmed"  # the create request may have made a task, and no one knows its id
    SUBMITTED = "submitted"  # the provider's task id is recorded
    SUCCEEDED = "succeeded"  # output ready; the charge is recorded
    FAILED = "failed"  # the provider failed the task or rejected the request; nothing charged
    REFUSED = "refused"  # content moderation refused it; nothing charged


OPEN_STATUSES = (JobStatus.RESERVED, JobStatus.SUBMITTING, JobStatus.UNCONFIRMED, JobStatus.SUBMITTED)

metadata = MetaData()

api_jobs = Table(
    "api_jobs",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("model", String(64), nullable=False),
    Column("sku_id", String(64), nullable=False),
    Column("content_hash", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    # 1, and one more each time a failed job is re-armed: a new round is a new provider task.
    Column("submission_round", Integer, nullable=False),
    Column("params", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_task_id", String(256)),
    Column("task_info", JSON),
    Column("failure_reason", Text),
    Column("output_url", Text),
    Column("price_micro_usd", BigInteger, nullable=False),
    Column("charged_micro_usd", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

charges = Table(
    "charges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_key", String(64), nullable=False, unique=True),
    Column("provider", String(32), nullable=False),
    Column("sku_id", String(64)),
    Column("micro_usd", BigInteger, nullable=False),
    Column("day", String(10), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

budgets = Table(
    "budgets",
    metadata,
    Column("scope", String(128), primary_key=True),
    # NULL: no limit; spending is tracked all the same.
    Column("limit_micro_usd", BigInteger),
    Column("reserved_micro_usd", BigInteger, nullable=False),
    Column("spent_micro_usd", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What a job billed by the second (a presenter clip) delivered, written once when it is settled at that amount.
job_usage = Table(
    "job_usage",
    metadata,
    Column("job_key", String(64), primary_key=True),
    Column("delivered_s", Float, nullable=False),
    # The list price of what was delivered, uncapped: above charged_micro_usd only when the clip ran past the
    # worst case its job reserved (an overrun, to take up with the provider).
    Column("billed_micro_usd", BigInteger, nullable=False),
    Column("charged_micro_usd", BigInteger, nullable=False),
    Column("reserved_micro_usd", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class LedgerError(RuntimeError):
    pass


class BudgetExceeded(LedgerError):
    """A reservation would take a budget scope past its limit; nothing was reserved and nothing was sent."""

    def __init__(
        self,
        *,
        scope: str,
        limit_usd: float,
        spent_usd: float,
        reserved_usd: float,
        asked_usd: float,
        job: str,
    ):
        self.scope, self.limit_usd, self.spent_usd = scope, limit_usd, spent_usd
        self.reserved_usd, self.asked_usd = reserved_usd, asked_usd
        left = max(0.0, limit_usd - spent_usd - reserved_usd)
        super().__init__(
            f"budget {scope} refuses ${asked_usd:.4f} for {job}: limit ${limit_usd:.4f}, "
            f"spent ${spent_usd:.4f}, reserved ${reserved_usd:.4f} (${left:.4f} left)"
        )


@dataclass(frozen=True)
class JobSpec:
    """What identifies one paid render, and what it may cost."""

    key: str
    provider: str
    model: str
    sku_id: str
    content_hash: str
    attempt: int
    params: Mapping[str, Any]
    price_usd: float
    scopes: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.provider} job {self.key[:12]} ({self.sku_id}, attempt {self.attempt})"


@dataclass(frozen=True)
class ApiJob:
    key: str
    provider: str
    model: str
    sku_id: str
    attempt: int
    submission_round: int
    params: Mapping[str, Any]
    status: JobStatus
    scopes: tuple[str, ...]
    price_usd: float
    charged_usd: float
    updated_at: datetime
    provider_task_id: str | None = None
    task_info: Mapping[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None
    output_url: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ApiJob:
        updated_at = row["updated_at"]
        return cls(
            key=row["idempotency_key"],
            provider=row["provider"],
            model=row["model"],
            sku_id=row["sku_id"],
            attempt=row["attempt"],
            submission_round=row["submission_round"],
            params=row["params"],
            status=JobStatus(row["status"]),
            scopes=tuple(row["scopes"]),
            price_usd=to_usd(row["price_micro_usd"]),
            charged_usd=to_usd(row["charged_micro_usd"]),
            # SQLite hands back naive datetimes; everything is written in UTC.
            updated_at=updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=UTC),
            provider_task_id=row["provider_task_id"],
            task_info=row["task_info"] or {},
            failure_reason=row["failure_reason"],
            output_url=row["output_url"],
        )

    def describe(self) -> str:
        return f"{self.provider} job {self.key[:12]} ({self.sku_id}, attempt {self.attempt})"


@dataclass(frozen=True)
class Budget:
    scope: str
    limit_usd: float | None
    reserved_usd: float
    spent_usd: float


@dataclass(frozen=True)
class Charge:
    job_key: str
    provider: str
    usd: float
    day: str
    scopes: tuple[str, ...]
    sku_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Settlement:
    """A job charged what its provider delivered: `charged_usd` = min(`billed_usd`, `reserved_usd`)."""

    job_key: str
    delivered_s: float
    billed_usd: float
    charged_usd: float
    reserved_usd: float

    @property
    def overrun_usd(self) -> float:
        """What the provider's bill exceeds the reservation by (0 unless the clip outran its worst case)."""
        return max(0.0, self.billed_usd - self.charged_usd)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Settlement:
        return cls(
            job_key=row["job_key"],
            delivered_s=row["delivered_s"],
            billed_usd=to_usd(row["billed_micro_usd"]),
            charged_usd=to_usd(row["charged_micro_usd"]),
            reserved_usd=to_usd(row["reserved_micro_usd"]),
        )


_engines: dict[tuple[str, int], Engine] = {}
_engines_lock = threading.Lock()


def ledger_engine(url: str, busy_timeout_s: float = 30.0) -> Engine:
    """One engine per URL and process (engines must not cross a fork), with the tables created."""
    cache_key = (url, os.getpid())
    with _engines_lock:
        if cache_key not in _engines:
            _engines[cache_key] = _create_ledger_engine(url, busy_timeout_s)
        return _engines[cache_key]


def _create_ledger_engine(url: str, busy_timeout_s: float) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, busy_timeout_s)
    elif parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, pool_pre_ping=True)
    else:
        raise LedgerError(
            f"ledger URL must be sqlite:/// or postgresql+psycopg2://, got {parsed.drivername}://"
        )
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Concurrent CREATE TABLE of the same name fails in PostgreSQL; serialize first use.
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
        metadata.create_all(connection)
    return engine


def _sqlite_engine(url: str, busy_timeout_s: float) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Hand transaction control to the "begin" hook below instead of the driver's deferred BEGIN.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        use_write_ahead_log(dbapi_connection, busy_timeout_s)

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Take the write lock up front: concurrent processes then queue on the busy timeout instead of
        # failing with "database is locked" when a read transaction tries to upgrade to a write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def use_write_ahead_log(dbapi_connection, busy_timeout_s: float) -> None:
    """Switch the file to WAL once; the mode is stored in the file, so later connections only read it.

    Switching takes a lock that SQLite does not wait for with busy_timeout: processes opening a fresh
    ledger together get "database is locked" at once, so the switch is retried for the busy timeout.
    """
    for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e)),
            stop=tenacity.stop_after_delay(busy_timeout_s), wait=tenacity.wait_random(0.01, 0.2), reraise=True):
        with attempt:
            if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                dbapi_connection.execute("PRAGMA journal_mode = WAL")


def _insert_ignoring_conflict(connection: Connection, table: Table, values: Mapping[str, Any]) -> int:
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    return connection.execute(dialect_insert(table).values(**values).on_conflict_do_nothing()).rowcount


class LedgerResource(ConfigurableResource):
    """API jobs, charges and budgets in SQLite (default) or PostgreSQL."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite:///path or postgresql+psycopg2://...); "
        f"default: ${LEDGER_URL_ENV}, else {DEFAULT_LEDGER_URL}.",
    )
    daily_budget_usd: float | None = Field(
        default=None, description="Limit on API spending per UTC day; none: unlimited (still tracked)."
    )
    busy_timeout_s: float = Field(default=30.0, description="How long a SQLite writer waits for the lock.")

    @property
    def resolved_url(self) -> str:
        return self.url or os.environ.get(LEDGER_URL_ENV) or DEFAULT_LEDGER_URL

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with ledger_engine(self.resolved_url, self.busy_timeout_s).begin() as connection:
            yield connection

    # ------------------------------------------------------------------ budgets

    def set_budget(self, scope: str, limit_usd: float | None) -> None:
        """Set (or lift, with None) the limit of a scope such as `backfill:<id>` or `campaign:<id>`."""
        limit = None if limit_usd is None else to_micros(limit_usd)
        with self._transaction() as connection:
            self._ensure_scope(connection, scope)
            connection.execute(
                update(budgets)
                .where(budgets.c.scope == scope)
                .values(limit_micro_usd=limit, updated_at=_now())
            )

    def budget(self, scope: str) -> Budget | None:
        with self._transaction() as connection:
            row = connection.execute(select(budgets).where(budgets.c.scope == scope)).mappings().first()
        return None if row is None else _budget_from_row(row)

    def charges(self, provider: str | None = None) -> list[Charge]:
        query = select(charges).order_by(charges.c.id)
        if provider is not None:
            query = query.where(charges.c.provider == provider)
        with self._transaction() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            Charge(r["job_key"], r["provider"], to_usd(r["micro_usd"]), r["day"], tuple(r["scopes"]), r["sku_id"],
                   r["created_at"])
            for r in rows
        ]

    def record_render_charge(self, key: str, provider: str, usd: float, sku_id: str) -> bool:
        """Record what a CPU or GPU render cost, once per key, so reports see every render, not only API jobs.

        Not reserved against budgets: budgets bound money sent to API providers.
        """
        with self._transaction() as connection:
            return bool(_insert_ignoring_conflict(
                connection,
                charges,
                {"job_key": key, "provider": provider, "sku_id": sku_id, "micro_usd": to_micros(usd),
                 "day": day_scope().removeprefix("day:"), "scopes": [], "created_at": _now()},
            ))

    def _ensure_scope(self, connection: Connection, scope: str) -> None:
        _insert_ignoring_conflict(
            connection,
            budgets,
            {
                "scope": scope,
                "limit_micro_usd": None,
                "reserved_micro_usd": 0,
                "spent_micro_usd": 0,
                "updated_at": _now(),
            },
        )

    def _reserve(self, connection: Connection, scopes: Sequence[str], amount: int, job: str) -> None:
        """Reserve `amount` on every scope, or raise BudgetExceeded and let the transaction roll back."""
        # A fixed order keeps two transactions from locking the same scopes in opposite orders.
        for scope in sorted(scopes):
            self._ensure_scope(connection, scope)
            if scope.startswith("day:"):
                # The resource config is the source of truth for the daily limit.
                limit = None if self.daily_budget_usd is None else to_micros(self.daily_budget_usd)
                connection.execute(
                    update(budgets).where(budgets.c.scope == scope).values(limit_micro_usd=limit)
                )
            fits = or_(
                budgets.c.limit_micro_usd.is_(None),
                budgets.c.spent_micro_usd + budgets.c.reserved_micro_usd + amount
                <= budgets.c.limit_micro_usd,
            )
            reserved = connection.execute(
                update(budgets)
                .where(budgets.c.scope == scope, fits)
                .values(reserved_micro_usd=budgets.c.reserved_micro_usd + amount, updated_at=_now())
            )
            if reserved.rowcount != 1:
                row = connection.execute(select(budgets).where(budgets.c.scope == scope)).mappings().one()
                state = _budget_from_row(row)
                raise BudgetExceeded(
                    scope=scope,
                    limit_usd=state.limit_usd,
                    spent_usd=state.spent_usd,
                    reserved_usd=state.reserved_usd,
                    asked_usd=to_usd(amount),
                    job=job,
                )

    def _move(self, connection: Connection, scopes: Sequence[str], amount: int, *, spend: bool) -> None:
        """Take `amount` out of the reservations of `scopes`, adding it to spent when `spend`."""
        for scope in sorted(scopes):
            values = {"reserved_micro_usd": budgets.c.reserved_micro_usd - amount, "updated_at": _now()}
            if spend:
                values["spent_micro_usd"] = budgets.c.spent_micro_usd + amount
            connection.execute(update(budgets).where(budgets.c.scope == scope).values(**values))

    # ------------------------------------------------------------------ jobs

    def job(self, key: str) -> ApiJob | None:
        with self._transaction() as connection:
            return self._job(connection, key)

    def open_job(self, spec: JobSpec) -> ApiJob:
        """The job for `spec.key`: created with its budget reserved, or as it stands from an earlier run.

        A failed job is re-armed (reserved again) so that a re-run submits a new task; a refused one is
        returned as is, since the same content would be refused again. Raises BudgetExceeded.
        """
        for _ in range(2):
            try:
                with self._transaction() as connection:
                    existing = self._job(connection, spec.key, for_update=True)
                    if existing is not None and existing.status != JobStatus.FAILED:
                        return existing
                    scopes = tuple(dict.fromkeys((day_scope(), *spec.scopes)))
                    self._reserve(connection, scopes, to_micros(spec.price_usd), spec.describe())
                    if existing is None:
                        connection.execute(api_jobs.insert().values(**_new_job_row(spec, scopes)))
                    else:
                        connection.execute(
                            update(api_jobs)
                            .where(api_jobs.c.idempotency_key == spec.key)
                            .values(
                                status=JobStatus.RESERVED,
                                submission_round=existing.submission_round + 1,
                                scopes=list(scopes),
                                provider_task_id=None,
                                task_info=None,
                                failure_reason=None,
                                output_url=None,
                                price_micro_usd=to_micros(spec.price_usd),
                                updated_at=_now(),
                            )
                        )
                    return self._job(connection, spec.key)
            except IntegrityError:
                # Another run inserted the same key between our read and our insert: read its row instead.
                continue
        raise LedgerError(f"{spec.describe()}: could not create or read the job row")

    def claim_submission(self, key: str) -> bool:
        """reserved -> submitting; False when another run got there first (or the job has moved on)."""
        with self._transaction() as connection:
            claimed = connection.execute(
                update(api_jobs)
                .where(api_jobs.c.idempotency_key == key, api_jobs.c.status == JobStatus.RESERVED)
                .values(status=JobStatus.SUBMITTING, updated_at=_now())
            )
        return claimed.rowcount == 1

    def mark_unconfirmed(self, key: str, reason: str) -> None:
        """submitting -> unconfirmed: the run that sent the create request stops not knowing its outcome."""
        with self._transaction() as connection:
            connection.execute(
                update(api_jobs)
                .where(api_jobs.c.idempotency_key == key, api_jobs.c.status == JobStatus.SUBMITTING)
                .values(status=JobStatus.UNCONFIRMED, failure_reason=_reason(reason), updated_at=_now())
            )

    def claim_unconfirmed(self, key: str, stale_after: timedelta) -> bool:
        """Take over an unconfirmed job, or one left in `submitting` for longer than `stale_after` (its run
        died mid-request), to find out whether a task exists. Only one caller wins."""
        now = _now()
        with self._transaction() as connection:
            taken = connection.execute(
                update(api_jobs)
                .where(
                    api_jobs.c.idempotency_key == key,
                    or_(
                        api_jobs.c.status == JobStatus.UNCONFIRMED,
                        (api_jobs.c.status == JobStatus.SUBMITTING)
                        & (api_jobs.c.updated_at < now - stale_after),
                    ),
                )
                .values(status=JobStatus.SUBMITTING, updated_at=now)
            )
        return taken.rowcount == 1

    def record_submitted(self, key: str, task_id: str, task_info: Mapping[str, Any] | None = None) -> ApiJob:
        with self._transaction() as connection:
            connection.execute(
                update(api_jobs)
                .where(api_jobs.c.idempotency_key == key, api_jobs.c.status.in_(OPEN_STATUSES))
                .values(
                    status=JobStatus.SUBMITTED,
                    provider_task_id=task_id,
                    task_info=dict(task_info or {}),
                    updated_at=_now(),
                )
            )
            return self._job(connection, key)

    def settle_success(self, key: str, output_url: str) -> bool:
        """Record the charge of a job whose task succeeded; True when this call charged it (once per job)."""
        with self._transaction() as connection:
            job = self._job(connection, key, for_update=True)
            if job is None:
                raise LedgerError(f"no API job {key[:12]} to settle")
            if job.status == JobStatus.SUCCEEDED:
                self._set_output_url(connection, key, output_url)
                return False
            if job.status not in OPEN_STATUSES:
                raise LedgerError(f"{job.describe()} is {job.status}; a {job.status} job cannot be charged")
            amount = to_micros(job.price_usd)
            _book_job_charge(connection, job, amount)
            self._move(connection, job.scopes, amount, spend=True)
            connection.execute(
                update(api_jobs)
                .where(api_jobs.c.idempotency_key == key)
                .values(
                    status=JobStatus.SUCCEEDED,
                    output_url=output_url,
                    charged_micro_usd=amount,
                    updated_at=_now(),
                )
            )
            return True

    def settle_actual(self, key: str, delivered_s: float, billed_usd: float) -> Settlement:
        """Charge a succeeded job what its provider billed for `delivered_s` of output instead of the worst case
        it reserved (and `settle_success` charged): the charge becomes min(billed, charged at success) and the
        difference goes back to every budget scope the job was spent on, in one transaction.

        So no budget ever shows more than its reservations allowed. A bill above the charge (the clip outran its
        worst case) is kept in `job_usage` as an overrun, never added to a budget. Once per job: a later call
        returns the first settlement.
        """
        with self._transaction() as connection:
            job = self._job(connection, key, for_update=True)
            if job is None:
                raise LedgerError(f"no API job {key[:12]} to settle")
            done = connection.execute(select(job_usage).where(job_usage.c.job_key == key)).mappings().first()
            if done is not None:
                return Settlement.from_row(done)
            if job.status != JobStatus.SUCCEEDED:
                raise LedgerError(f"{job.describe()} is {job.status}; only a charged (succeeded) job is settled")
            charged_before = to_micros(job.charged_usd)
            charge = min(to_micros(billed_usd), charged_before)
            refund = charged_before - charge
            for scope in sorted(job.scopes):
                connection.execute(
                    update(budgets)
                    .where(budgets.c.scope == scope)
                    .values(spent_micro_usd=budgets.c.spent_micro_usd - refund, updated_at=_now())
                )
            connection.execute(update(charges).where(charges.c.job_key == key).values(micro_usd=charge))
            connection.execute(
                update(api_jobs)
                .where(api_jobs.c.idempotency_key == key)
                .values(charged_micro_usd=charge, updated_at=_now())
            )
            row = {
                "job_key": key,
                "delivered_s": float(delivered_s),
                "billed_micro_usd": to_micros(billed_usd),
                "charged_micro_usd": charge,
                "reserved_micro_usd": to_micros(job.price_usd),
                "created_at": _now(),
            }
            connection.execute(job_usage.insert().values(**row))
            return Settlement.from_row(row)

    def settlement(self, key: str) -> Settlement | None:
        with self._transaction() as connection:
            row = connection.execute(select(job_usage).where(job_usage.c.job_key == key)).mappings().first()
        return None if row is None else Settlement.from_row(row)

    def update_output_url(self, key: str, output_url: str) -> None:
        with self._transaction() as connection:
            self._set_output_url(connection, key, output_url)

    def close_unpaid(self, key: str, status: JobStatus, reason: str) -> None:
        """End an open job without a charge (failed or refused) and release its reservation."""
        if status not in (JobStatus.FAILED, JobStatus.REFUSED):
            raise LedgerError(f"close_unpaid takes failed or refused, not {status}")
        with self._transaction() as connection:
            job = self._job(connection, key, for_update=True)
            if job is None or job.status not in OPEN_STATUSES:
                return
            self._move(connection, job.scopes, to_micros(job.price_usd), spend=False)
            connection.execute(
                update(api_jobs)
                .where(api_jobs.c.idempotency_key == key)
                .values(status=status, failure_reason=_reason(reason), updated_at=_now())
            )

    def jobs_needing_attention(self) -> list[ApiJob]:
        """Open jobs (reserved, submitting, submitted) and uncertain ones, oldest first."""
        query = select(api_jobs).where(api_jobs.c.status.in_(OPEN_STATUSES)).order_by(api_jobs.c.updated_at)
        with self._transaction() as connection:
            return [ApiJob.from_row(row) for row in connection.execute(query).mappings().all()]

    def find_job(self, key_prefix: str) -> ApiJob:
        """The one job whose key starts with `key_prefix` (at least 8 characters)."""
        if len(key_prefix) < 8 or not key_prefix.isalnum():
            raise LedgerError(f"job id {key_prefix!r}: give at least 8 letters or digits of the key")
        query = select(api_jobs).where(api_jobs.c.idempotency_key.like(f"{key_prefix.lower()}%")).limit(2)
        with self._transaction() as connection:
            rows = connection.execute(query).mappings().all()
        if len(rows) != 1:
            raise LedgerError(
                f"job id {key_prefix!r} matches {'no job' if not rows else 'more than one job'}"
            )
        return ApiJob.from_row(rows[0])

    def resolve_uncertain(
        self, key: str, *, paid: bool, usd: float | None = None, note: str = ""
    ) -> ApiJob:
        """An operator's answer for an unconfirmed job (or one stuck in `submitting`): `paid` books `usd` (what
        the provider's dashboard shows; default and at most the job's reservation, so no budget passes its
        limit) as its charge; not paid releases the reservation and lets a later run submit a new round.
        Jobs in any other state are refused: their outcome is known to the ledger already."""
        reason = _reason(f"resolved by operator as {'paid' if paid else 'not paid'}" + (f": {note}" if note else ""))
        with self._transaction() as connection:
            job = self._job(connection, key, for_update=True)
            if job is None:
                raise LedgerError(f"no API job {key[:12]}")
            if job.status not in (JobStatus.UNCONFIRMED, JobStatus.SUBMITTING):
                raise LedgerError(f"{job.describe()} is {job.status}, not unconfirmed; nothing to resolve")
            reserved = to_micros(job.price_usd)
            amount = reserved if usd is None else min(reserved, to_micros(usd))
            if amount < 0:
                raise LedgerError(f"{job.describe()}: a charge cannot be negative")
            if paid:
                _book_job_charge(connection, job, amount)
                self._move(connection, job.scopes, amount, spend=True)
                self._move(connection, job.scopes, reserved - amount, spend=False)
            else:
                self._move(connection, job.scopes, reserved, spend=False)
            connection.execute(
                update(api_jobs)
                .where(api_jobs.c.idempotency_key == key)
                .values(
                    status=JobStatus.SUCCEEDED if paid else JobStatus.FAILED,
                    charged_micro_usd=amount if paid else 0,
                    failure_reason=reason,
                    updated_at=_now(),
                )
            )
            return self._job(connection, key)

    def _job(self, connection: Connection, key: str, *, for_update: bool = False) -> ApiJob | None:
        query = select(api_jobs).where(api_jobs.c.idempotency_key == key)
        if for_update:
            query = query.with_for_update()
        row = connection.execute(query).mappings().first()
        return None if row is None else ApiJob.from_row(row)

    def _set_output_url(self, connection: Connection, key: str, output_url: str) -> None:
        connection.execute(
            update(api_jobs)
            .where(api_jobs.c.idempotency_key == key)
            .values(output_url=output_url, updated_at=_now())
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _reason(text: str) -> str:
    """A failure reason as stored: no credential of any kind, bounded."""
    return scrub_secrets(text)[:2000]


def _book_job_charge(connection: Connection, job: ApiJob, amount: int) -> None:
    """The job's one charge row (the unique job key makes a second insert a no-op)."""
    _insert_ignoring_conflict(
        connection,
        charges,
        {
            "job_key": job.key,
            "provider": job.provider,
            "sku_id": job.sku_id,
            "micro_usd": amount,
            "day": _day_of(job.scopes),
            "scopes": list(job.scopes),
            "created_at": _now(),
        },
    )


def _day_of(scopes: Sequence[str]) -> str:
    return next(scope for scope in scopes if scope.startswith("day:")).removeprefix("day:")


def _budget_from_row(row: Mapping[str, Any]) -> Budget:
    return Budget(
        scope=row["scope"],
        limit_usd=to_usd(row["limit_micro_usd"]),
        reserved_usd=to_usd(row["reserved_micro_usd"]),
        spent_usd=to_usd(row["spent_micro_usd"]),
    )


def _new_job_row(spec: JobSpec, scopes: tuple[str, ...]) -> dict[str, Any]:
    now = _now()
    return {
        "idempotency_key": spec.key,
        "provider": spec.provider,
        "model": spec.model,
        "sku_id": spec.sku_id,
        "content_hash": spec.content_hash,
        "attempt": spec.attempt,
        "submission_round": 1,
        "params": dict(spec.params),
        "scopes": list(scopes),
        "status": JobStatus.RESERVED,
        "price_micro_usd": to_micros(spec.price_usd),
        "charged_micro_usd": 0,
        "created_at": now,
        "updated_at": now,
    }
