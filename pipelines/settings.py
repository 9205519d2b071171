"""Settings read from the environment, in one place."""

import os
from urllib.parse import urlparse

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
