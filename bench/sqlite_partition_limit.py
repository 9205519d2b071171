"""Where a SQLite Dagster instance stops taking new dynamic partitions, and that the catalog's guard stops there.

    python bench/sqlite_partition_limit.py [--out bench/results/sqlite_partition_limit.json]

Dagster adds dynamic partitions in one statement with one SQL variable per key plus the partition set's name;
SQLite refuses a statement with SQLITE_MAX_VARIABLE_NUMBER variables or more ("too many SQL variables").
Two SQLite builds, each on a fresh instance:
- this machine's library, with the limit the guard reads from it;
- SQLite's default build (32,766: macOS, python.org), as every connection SQLAlchemy opens lowered to that
  limit with sqlite3's setlimit, and the guard told so through SKUVID_SQLITE_VARIABLE_LIMIT. The 36,000 SKUs of
  dagster issue 16260 are tried there too.
For each: the guard accepts N = its maximum and Dagster adds N keys; the guard refuses N + 1 and Dagster fails
on N + 1 keys. Prints the figures and the time of the largest add that works.
"""

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg
import sqlalchemy.exc
from rich.console import Console
from rich.table import Table
from sqlalchemy import event
from sqlalchemy.engine import Engine

from assets.catalog.partition_capacity import (
    VARIABLE_LIMIT_SETTING,
    PartitionCapacityError,
    check_partition_capacity,
    max_new_partitions_per_add,
)
from bench.machine import machine_info

DEFAULT_BUILD_LIMIT = 32_766  # SQLITE_MAX_VARIABLE_NUMBER of SQLite's own build since 3.32.0
ISSUE_16260_SKUS = 36_000
lowered_limit: int | None = None


@event.listens_for(Engine, "connect")
def emulate_default_build(dbapi_connection, _record) -> None:
    if lowered_limit is not None and isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, lowered_limit)


def keys(count: int) -> list[str]:
    return [f"SKU-{index:07d}" for index in range(count)]


def add_on_fresh_instance(count: int) -> tuple[bool, float, str]:
    """(added, seconds, error) for one add_dynamic_partitions call of `count` new keys."""
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as instance:
        started = time.perf_counter()
        try:
            instance.add_dynamic_partitions("sku", keys(count))
        except sqlalchemy.exc.OperationalError as error:
            return False, time.perf_counter() - started, f"{type(error).__name__}: {str(error).splitlines()[0]}"
        assert len(instance.get_dynamic_partitions("sku")) == count
        return True, time.perf_counter() - started, ""


def guard_accepts(count: int) -> bool:
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as instance:
        try:
            check_partition_capacity(instance, "sku", "bench.csv", keys(count))
            return True
        except PartitionCapacityError:
            return False


def measure(build: str) -> dict:
    guard_max = max_new_partitions_per_add()
    at_max, seconds, _ = add_on_fresh_instance(guard_max)
    over, _, error = add_on_fresh_instance(guard_max + 1)
    row = {
        "build": build, "sqlite_variable_limit": guard_max + 1, "guard_max_new_partitions": guard_max,
        "guard_accepts_max": guard_accepts(guard_max), "dagster_adds_max": at_max, "add_max_s": round(seconds, 2),
        "guard_refuses_max_plus_1": not guard_accepts(guard_max + 1), "dagster_fails_max_plus_1": not over,
        "error_at_max_plus_1": error,
    }
    if guard_max < ISSUE_16260_SKUS:
        added, _, issue_error = add_on_fresh_instance(ISSUE_16260_SKUS)
        row["adds_36000_at_once"] = added
        row["error_at_36000"] = issue_error
    row["threshold_exact"] = (row["guard_accepts_max"] and row["dagster_adds_max"] and row["guard_refuses_max_plus_1"]
                              and row["dagster_fails_max_plus_1"] and "too many SQL variables" in error)
    return row


def main() -> None:
    global lowered_limit
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/sqlite_partition_limit.json")
    args = parser.parse_args()
    os.environ.pop(VARIABLE_LIMIT_SETTING, None)
    rows = [measure(f"this machine (SQLite {sqlite3.sqlite_version})")]
    lowered_limit = DEFAULT_BUILD_LIMIT
    os.environ[VARIABLE_LIMIT_SETTING] = str(DEFAULT_BUILD_LIMIT)
    rows.append(measure("SQLite default build"))

    table = Table(title="New dynamic partitions one add takes on SQLite")
    for column in ("build", "guard max", "add max (s)", "max + 1", "36,000 at once", "guard exact"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["build"], f"{row['guard_max_new_partitions']:,}", f"{row['add_max_s']:.2f}",
                      row["error_at_max_plus_1"].split(") ", 1)[-1][:40], str(row.get("adds_36000_at_once", "-")),
                      str(row["threshold_exact"]))
    Console(width=140).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                                    "machine": machine_info(), "builds": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not all(row["threshold_exact"] for row in rows):
        raise SystemExit("the guard's threshold is not where SQLite breaks")


if __name__ == "__main__":
    main()
