"""Catalog files dropped into the S3 drop zone: named by bucket and exact key, read within the size limit, and
answered with a rejects report beside them."""

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from assets.catalog.rows import CatalogFileError, Reject
from resources.csv_report import csv_report
from resources.sources import SourcePolicy

REJECTS_SUFFIX = ".rejects.csv"
MAX_S3_KEY_BYTES = 1024


@dataclass(frozen=True)
class Drop:
    """A dropped object, carried as its bucket and exact key: a key may hold `#`, `?`, `%`, `//` or `..`, so it
    is never rebuilt from or parsed as a URL."""

    bucket: str
    key: str
    prefix: str  # the drop zone's prefix, for reports whose natural key would be too long

    @property
    def uri(self) -> str:
        """An s3:// URI whose path is the percent-encoded key: names the drop in logs and reports, and is the
        folder that relative image names in the file resolve against."""
        return f"s3://{self.bucket}/{quote(self.key, safe='/')}"

    @property
    def report_key(self) -> str:
        key = self.key + REJECTS_SUFFIX
        if len(key.encode("utf-8", "surrogatepass")) <= MAX_S3_KEY_BYTES:
            return key
        digest = hashlib.sha256(self.key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.prefix}rejects/{digest}{REJECTS_SUFFIX}"

    @property
    def report_uri(self) -> str:
        return f"s3://{self.bucket}/{quote(self.report_key, safe='/')}"


def rejects_csv(rejects: list[Reject]) -> bytes:
    return csv_report(list(Reject.__dataclass_fields__), ([getattr(r, f) for f in Reject.__dataclass_fields__]
                                                           for r in rejects))


def read_drop(drop: Drop) -> bytes:
    """The object's bytes by bucket and key, within the source size limit; CatalogFileError otherwise."""
    limit = SourcePolicy.from_env().max_bytes
    try:
        response = boto3.client("s3").get_object(Bucket=drop.bucket, Key=drop.key)
        if response.get("ContentLength", 0) > limit:
            raise CatalogFileError(f"{drop.uri}: larger than the {limit}-byte limit for an input file")
        data = response["Body"].read(limit + 1)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise CatalogFileError(f"{drop.uri}: cannot be read ({code})") from None
    except BotoCoreError as error:
        raise CatalogFileError(f"{drop.uri}: S3 unreachable ({type(error).__name__})") from None
    if len(data) > limit:
        raise CatalogFileError(f"{drop.uri}: larger than the {limit}-byte limit for an input file")
    return data


def write_drop_report(drop: Drop, rejects: list[Reject], log) -> None:
    """The rejects report beside the drop; a failure to write it is logged, never fatal to the ingest."""
    try:
        boto3.client("s3").put_object(Bucket=drop.bucket, Key=drop.report_key, Body=rejects_csv(rejects))
    except (ClientError, BotoCoreError) as error:
        log.error(f"{drop.uri}: cannot write its rejects report: {type(error).__name__}")
