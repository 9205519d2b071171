"""Settings read from the environment, in one place."""

import os
from pathlib import Path
from urllib.parse import urlparse

import yaml

from assets.catalog.rows import DEFAULT_MAX_PIXELS


def catalog_source() -> str:
    return os.environ.get("SKUVID_CATALOG", "samples/catalog.csv")


def brand_kits() -> str:
    return os.environ.get("SKUVID_BRANDS", "samples/brands.yaml")


def max_pixels() -> int:
    return int(os.environ.get("SKUVID_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def drop_zone() -> tuple[str, str] | None:
    """(bucket, prefix) of the S3 drop zone from SKUVID_DROP_ZONE=s3://bucket/prefix/, or None when unset."""
    value = os.environ.get("SKUVID_DROP_ZONE")
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"SKUVID_DROP_ZONE={value!r}: expected s3://bucket/prefix/")
    return parsed.netloc, parsed.path.lstrip("/")


def nightly_cron() -> str:
    return os.environ.get("SKUVID_NIGHTLY_CRON", "0 2 * * *")


def storage_retry_s() -> float:
    value = os.environ.get("SKUVID_STORAGE_RETRY_S", "60")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"SKUVID_STORAGE_RETRY_S={value!r}: expected seconds, e.g. 60") from None
    if not 0 < seconds <= 3600:
        raise ValueError(f"SKUVID_STORAGE_RETRY_S={value!r}: expected more than 0 and at most 3600 seconds")
    return seconds


class LedgerNotConfigured(RuntimeError):
    """The instance is shared (PostgreSQL) but the ledger would be a file on one machine."""


def instance_uses_postgres(dagster_home: str | None) -> bool:
    """Whether $DAGSTER_HOME/dagster.yaml keeps runs in PostgreSQL (`storage: postgres` or dagster_postgres modules)."""
    if not dagster_home:
        return False
    path = Path(dagster_home) / "dagster.yaml"
    if not path.is_file():
        return False
    config = yaml.safe_load(path.read_text()) or {}
    storage = config.get("storage") or {}
    if isinstance(storage, dict) and "postgres" in storage:
        return True
    return any(isinstance(config.get(key), dict) and "postgres" in str(config[key].get("module", ""))
               for key in ("run_storage", "event_log_storage", "schedule_storage"))


def ledger_url() -> str | None:
    """SKUVID_LEDGER_URL; unset, the local SQLite default, unless the instance is PostgreSQL: then every run
    worker and the code server would each book into a file of their own, so the code location refuses to load."""
    url = os.environ.get("SKUVID_LEDGER_URL")
    if url:
        return url
    home = os.environ.get("DAGSTER_HOME")
    if instance_uses_postgres(home):
        raise LedgerNotConfigured(
            f"the Dagster instance in {home} keeps runs in PostgreSQL but SKUVID_LEDGER_URL is unset, so the ledger "
            "(paid jobs, budgets, render slots) would be a SQLite file in each process's working folder. Set "
            "SKUVID_LEDGER_URL=postgresql+psycopg2://user@host:5432/db (the instance's database works: the "
            "ledger's tables are its own), or a sqlite:/// URL to keep a single-machine ledger on purpose."
        )
    return None
