"""Where artifacts live: a local folder (default) or an S3 prefix, behind one small interface.

Writes are atomic: local files go to a temp name in the same folder and are renamed; S3 objects are put
whole. Keys are relative POSIX paths such as `skus/SKU-1/ab12.../clip.mp4`.

The S3 client retries what an outage looks like (connection refused or reset, timeouts, 5xx, 429) with
exponential backoff for up to `retry_s` seconds (`SKUVID_STORAGE_RETRY_S`, default 60); after that the error is
a `StorageUnavailable` that names the endpoint and bucket and says the store was unreachable.

Shared files that several processes read, change and write back (the catalog, the brand kits) go through
`StorageResource.update`: a compare-and-swap on the object's version (S3 `If-Match`/`If-None-Match`; a file
lock and a content hash locally), retried on conflict, so two writers never lose each other's rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property, lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlparse

import boto3
import obstore
from dagster import ConfigurableResource
from filelock import FileLock
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.exceptions import AlreadyExistsError, PreconditionError
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store as S3ObjectStore
from pydantic import Field
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

T = TypeVar("T")
UPDATE_ATTEMPTS = 20


def _umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any writer thread exists.
    current = os.umask(0o022)
    os.umask(current)
    return current


# mkstemp makes 0600 files; a published file must be readable by a web server's account as the umask allows.
FILE_MODE = 0o666 & ~_umask()
LOCK_TIMEOUT_S = 60
DEFAULT_RETRY_S = 60.0


class StorageError(RuntimeError):
    """A key or URI could not be read or written; the message names it."""


class StorageUnavailable(StorageError):
    """The store did not answer (refused, reset, timed out, 5xx) for the whole retry window: the machinery failed,
    not the content, so the work is worth retrying later."""


class VersionConflict(StorageError):
    """Another writer changed the object between our read and our write."""


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the version they were read at; both None when the object does not exist."""

    data: bytes | None
    version: str | None


def check_key(key: str) -> str:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise StorageError(f"invalid storage key {key!r}: must be a relative path without '..'")
    return key


class LocalStore:
    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{self.url(key)} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_versioned(self, key: str) -> Versioned:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return Versioned(None, None)
        return Versioned(data, hashlib.sha256(data).hexdigest())

    def write_if_version(self, key: str, data: bytes, version: str | None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Readers never lock: the rename keeps every read whole. Writers of the same key serialize here.
        with FileLock(path.parent / f".{path.name}.lock", timeout=LOCK_TIMEOUT_S):
            if self.read_versioned(key).version != version:
                raise VersionConflict(f"{self.url(key)} changed since it was read")
            self.write_bytes(key, data)

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        files = (p for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))
        return sorted(p.relative_to(self.root).as_posix() for p in files)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def presigned_url(self, key: str, expires_s: int) -> str:
        return self.url(key)


class S3Store:
    def __init__(self, root: str, retry_s: float = DEFAULT_RETRY_S):
        parsed = urlparse(root)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.store = bucket_store(self.bucket, retry_s)

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._object_key(key)
        with s3_errors(self.url(key)):
            obstore.put(self.store, path, data)

    def read_bytes(self, key: str) -> bytes:
        with s3_errors(self.url(key)):
            return obstore.get(self.store, self._object_key(key)).bytes().to_bytes()

    def exists(self, key: str) -> bool:
        with s3_errors(self.url(key)):
            try:
                obstore.head(self.store, self._object_key(key))
            except FileNotFoundError:
                return False
        return True

    def read_versioned(self, key: str) -> Versioned:
        with s3_errors(self.url(key)):
            try:
                result = obstore.get(self.store, self._object_key(key))
            except FileNotFoundError:
                return Versioned(None, None)
            return Versioned(result.bytes().to_bytes(), result.meta["e_tag"])

    def write_if_version(self, key: str, data: bytes, version: str | None) -> None:
        mode = "create" if version is None else {"e_tag": version}
        with s3_errors(self.url(key)):
            try:
                obstore.put(self.store, self._object_key(key), data, mode=mode, use_multipart=False)
            except (AlreadyExistsError, PreconditionError):
                raise VersionConflict(f"{self.url(key)} changed since it was read") from None

    def list_keys(self, prefix: str) -> list[str]:
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        # object_store lists whole path segments; S3 prefixes are plain string prefixes.
        parent = full_prefix.rsplit("/", 1)[0] if "/" in full_prefix else None
        with s3_errors(f"s3://{self.bucket}/{full_prefix}"):
            paths = [m["path"] for batch in obstore.list(self.store, parent) for m in batch]
        return sorted(p[strip:] for p in paths if p.startswith(full_prefix))

    def delete(self, key: str) -> None:
        with s3_errors(self.url(key)):
            obstore.delete(self.store, self._object_key(key))

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def presigned_url(self, key: str, expires_s: int) -> str:
        return obstore.sign(self.store, "GET", self._object_key(key), timedelta(seconds=expires_s))


def s3_endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def retry_config(retry_s: float) -> dict:
    """object_store's own retries: backoff from 0.2 s doubling to 8 s, for at most `retry_s` seconds in all."""
    return {
        "max_retries": 1000,  # the time limit ends the retries first
        "retry_timeout": timedelta(seconds=retry_s),
        "backoff": {"init_backoff": timedelta(seconds=0.2), "max_backoff": timedelta(seconds=8), "base": 2.0},
    }


@lru_cache(maxsize=64)
def bucket_store(bucket: str, retry_s: float | None = None) -> S3ObjectStore:
    """One client per bucket and process, configured like boto3: AWS_* variables, then boto3's credential chain.

    `retry_s` rides out outages for that long (artifact storage); None keeps object_store's own short retries,
    for readers that have their own deadline (sources).

    Object I/O goes through object_store (Rust) rather than boto3: about 0.2 ms of Python per request instead
    of about 1.7 ms, which is what lets one sensor tick copy a 10,000-image drop.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    session = boto3.session.Session()
    return S3ObjectStore(
        bucket,
        endpoint=endpoint,
        region=session.region_name or "us-east-1",
        # A server that accepts the connection and then says nothing counts as down after these.
        client_options={"allow_http": bool(endpoint and endpoint.startswith("http://")),
                        "connect_timeout": "5s", "timeout": "120s"},
        credential_provider=Boto3CredentialProvider(session),
        **({"retry_config": retry_config(retry_s)} if retry_s is not None else {}),
    )


@contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Turn object_store's errors into a StorageError that names the object and S3's error code."""
    try:
        yield
    except FileNotFoundError as error:
        raise StorageError(f"{uri}: {s3_error_code(error) or 'NoSuchKey'} (it does not exist)") from None
    except ObstoreError as error:
        unreachable = unreachable_reason(error)
        if unreachable:
            raise StorageUnavailable(f"storage unreachable: the S3 store at {s3_endpoint()} (bucket "
                                     f"{urlparse(uri).netloc}) did not answer for {uri}: {unreachable}") from None
        raise StorageError(f"{uri}: {s3_error_code(error) or type(error).__name__}") from None


_RETRIED = re.compile(r"in ([0-9.]+)(ms|s), after (\d+) retries")


def unreachable_reason(error: Exception) -> str | None:
    """What object_store gave up on after its retries (connection, timeout, 5xx), or None for other errors."""
    text = str(error)
    retried = _RETRIED.search(text)
    if retried is None:
        return None
    status = re.search(r"status code: (\d{3}[^,\n]*)", text)
    cause = f"HTTP {status.group(1).strip()}" if status else (
        "timed out" if "kind: Timeout" in text else "connection refused or dropped")
    seconds = float(retried.group(1)) / (1000 if retried.group(2) == "ms" else 1)
    return f"{cause}, {retried.group(3)} retries over {seconds:.0f} s"


def s3_error_code(error: Exception) -> str | None:
    match = re.search(r"<Code>([A-Za-z]+)</Code>", str(error))
    return match.group(1) if match else None


def write_uri(uri: str, data: bytes) -> None:
    """Write a whole object to a file path or s3:// URI (reports that belong next to their input file)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        with s3_errors(uri):
            obstore.put(bucket_store(parsed.netloc), parsed.path.lstrip("/"), data)
        return
    if parsed.scheme not in ("", "file"):
        raise StorageError(f"{uri}: cannot write to a {parsed.scheme}:// URI")
    path = Path(parsed.path if parsed.scheme == "file" else uri)
    LocalStore(str(path.parent)).write_bytes(path.name, data)


def parent_of(uri: str) -> str:
    """The folder a URI lives in, for resolving paths written relative to a catalog file."""
    if "://" in uri and not uri.startswith("file://"):
        return uri.rsplit("/", 1)[0]
    return str(Path(urlparse(uri).path if uri.startswith("file://") else uri).resolve().parent)


def resolve_relative(uri: str, base: str) -> str:
    if "://" in uri or Path(uri).is_absolute():
        return uri
    if "://" in base:
        return f"{base.rstrip('/')}/{uri}"
    return str(Path(base) / uri)


class StorageResource(ConfigurableResource):
    """Artifact storage. `root` is a folder (default `.data`) or `s3://bucket/prefix`."""

    root: str = Field(default=".data", description="Local folder or s3://bucket/prefix for all artifacts.")
    retry_s: float = Field(default=DEFAULT_RETRY_S, gt=0, le=3600,
                           description="How long S3 requests are retried through an outage before failing.")

    @cached_property
    def _store(self) -> LocalStore | S3Store:
        return S3Store(self.root, self.retry_s) if self.root.startswith("s3://") else LocalStore(self.root)

    def write_bytes(self, key: str, data: bytes) -> None:
        self._store.write_bytes(key, data)

    def read_bytes(self, key: str) -> bytes:
        return self._store.read_bytes(key)

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def exists(self, key: str) -> bool:
        return self._store.exists(key)

    def update(self, key: str, change: Callable[[bytes | None], tuple[bytes, T]]) -> T:
        """Read-modify-write `key` without losing a concurrent writer's change.

        `change` gets the current bytes (None if absent) and returns the new bytes and a result for the
        caller. On a conflict it runs again on the newer bytes, so it must be cheap and free of side effects.
        """
        for attempt in Retrying(retry=retry_if_exception_type(VersionConflict), stop=stop_after_attempt(UPDATE_ATTEMPTS),
                                wait=wait_random_exponential(multiplier=0.05, max=2), reraise=True):
            with attempt:
                current = self._store.read_versioned(key)
                data, result = change(current.data)
                self._store.write_if_version(key, data, current.version)
        return result

    def list_keys(self, prefix: str) -> list[str]:
        return self._store.list_keys(prefix)

    def delete(self, key: str) -> None:
        self._store.delete(key)

    def url(self, key: str) -> str:
        return self._store.url(key)

    def key_of(self, url: str) -> str | None:
        """The key of one of our own objects from its `url(key)` (a manifest's video_url), else None."""
        base = self._store.url("x")[:-1]
        if not url.startswith(base):
            return None
        try:
            return check_key(url[len(base):])
        except StorageError:
            return None

    def presigned_url(self, key: str, expires_s: int = 3600) -> str:
        return self._store.presigned_url(key, expires_s)
