"""Whether this Dagster instance can register a catalog's new SKUs as `sku` partitions, checked before any
packshot is fetched or the catalog is written.

Dagster adds dynamic partitions in one statement that lists every new key as an SQL variable. SQLite refuses a
statement with as many variables as its SQLITE_MAX_VARIABLE_NUMBER ("too many SQL variables"): 32,766 in
SQLite's default build (macOS, python.org), 250,000 in Debian's, 999 before SQLite 3.32. Read from the SQLite
library Python links, so the threshold is this machine's; `bench/sqlite_partition_limit.py` proves it exact.
PostgreSQL has no such limit.
"""

import os
import sqlite3
from collections.abc import Iterable
from contextlib import closing

import dagster as dg
from dagster_postgres import PostgresEventLogStorage

from assets.catalog.rows import CatalogFileError

VARIABLE_LIMIT_SETTING = "SKUVID_SQLITE_VARIABLE_LIMIT"
MOVE_TO_POSTGRES = (
    "Move the instance to PostgreSQL: copy dagster.postgres.yaml to $DAGSTER_HOME/dagster.yaml and set "
    "DAGSTER_PG_URL (README, \"Production instance (PostgreSQL)\")"
)


class PartitionCapacityError(CatalogFileError):
    """More new partitions than the instance's storage can add in one statement."""


def sqlite_variable_limit() -> int:
    """SQLITE_MAX_VARIABLE_NUMBER of the SQLite library Python links, or SKUVID_SQLITE_VARIABLE_LIMIT."""
    value = os.environ.get(VARIABLE_LIMIT_SETTING, "").strip()
    if value:
        if not value.isdigit() or not 2 <= int(value) <= 10_000_000:
            raise PartitionCapacityError(f"{VARIABLE_LIMIT_SETTING}={value[:40]!r}: expected a whole number "
                                         "from 2 to 10,000,000")
        return int(value)
    with closing(sqlite3.connect(":memory:")) as connection:
        return connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def max_new_partitions_per_add() -> int:
    """The most keys one `add_dynamic_partitions` call takes on SQLite: the keys plus the partition set's name."""
    return sqlite_variable_limit() - 1


def stores_partitions_in_sqlite(instance: dg.DagsterInstance) -> bool:
    """Anything but PostgreSQL is taken as SQLite: the default instance, `dagster dev`'s temporary one, and
    the in-memory instance of tests all keep their events in SQLite."""
    return not isinstance(instance.event_log_storage, PostgresEventLogStorage)


def check_partition_capacity(instance: dg.DagsterInstance, partitions_def_name: str, source: str,
                             candidate_keys: Iterable[str]) -> int:
    """Raise PartitionCapacityError naming the file when its keys that are not yet partitions are more than one
    SQLite statement takes; returns how many are new. Counts every distinct key of the file, valid or not, so a
    file is refused before its rows are checked one by one; without case, as the catalog compares SKU ids."""
    keys = {str(key).lower() for key in candidate_keys}
    if not stores_partitions_in_sqlite(instance):
        return len(keys)
    new = len(keys - {key.lower() for key in instance.get_dynamic_partitions(partitions_def_name)})
    limit = max_new_partitions_per_add()
    if new > limit:
        raise PartitionCapacityError(
            f"{source}: {new:,} new `{partitions_def_name}` partitions, but this Dagster instance keeps them in "
            f"SQLite, which adds at most {limit:,} at once (more fail with \"too many SQL variables\"). Nothing was "
            f"written. {MOVE_TO_POSTGRES}; or split the file so that each part adds at most {limit:,} new SKUs."
        )
    return new
