"""The one source policy: what a catalog, brand kit, campaign or training script may make skuvid read.

Every file those inputs name (packshots, logos, templates, recipients, images, clips, drop files) is read through
`read_source`, which allows:

- local paths under the folder of the file that names them, or under a configured root (symlinks are resolved
  before the check; `file://` is a local path like any other); a file named by the operator (config or
  environment, `base=None`) is trusted wherever it lives;
- `s3://` under the folder of the file that names them, the drop zone or a configured prefix;
- `http(s)://` to public addresses only, checked after DNS resolution and on every redirect, the connection
  made to the address that was checked; optionally only listed hosts, only https, plus opened networks.

Every fetch has a byte cap (streamed, stopped at the cap) and an overall deadline. A refusal and a failed read
give the same reason to the submitter, so the rejects report next to a drop tells nothing about which files
exist or which ports answer; the detail goes to the operator's debug log.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import httpx
import obstore

from resources.storage import StorageError, bucket_store

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SHOWN_URI_CHARS = 200
IDLE_READ_TIMEOUT_S = 5.0
BUDGET_WAIT_S = 600.0  # a read waits this long for memory that other reads hold
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 prefixes that carry an IPv4 address the packet really goes to.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
CREDENTIALS = re.compile(r"(?<=://)[^/?#@]*@")


class SourceError(StorageError):
    """A source that could not be had under the policy; the message names the URI as it was written."""


class SourceRefused(SourceError):
    """A source the policy does not allow, or one that could not be read: the submitter sees the same reason."""


class SourceTooLarge(SourceError):
    """An allowed source bigger than the policy's byte cap."""


class SourceTimedOut(SourceError):
    """An allowed source that did not arrive whole before the policy's deadline."""


def shown(uri: str) -> str:
    """The URI as a report or log may show it: credentials in it masked, its length bounded."""
    uri = CREDENTIALS.sub("***@", uri)
    return uri if len(uri) <= SHOWN_URI_CHARS else uri[:SHOWN_URI_CHARS] + "..."


def refused(uri: str, detail: str) -> SourceRefused:
    log.debug("source %r refused: %s", shown(uri), detail)
    return SourceRefused(f"not allowed by the source policy: {shown(uri)}")


@dataclass(frozen=True)
class SourcePolicy:
    """What a deployment opens. Built from the environment by `current_policy()`; tests build their own."""

    roots: tuple[str, ...] = ()  # local folders any input may name
    s3_prefixes: tuple[str, ...] = ()  # "bucket/prefix/" any input may name
    hosts: tuple[str, ...] = ()  # if set, the only http(s) hosts allowed
    open_networks: tuple[str, ...] = ()  # CIDRs allowed although not public (e.g. 127.0.0.0/8 for emulators)
    https_only: bool = False
    max_redirects: int = 3
    max_bytes: int = 64 * MiB
    deadline_s: float = 20.0
    max_parallel_fetches: int = 4
    max_bytes_in_flight: int = 256 * MiB  # bytes of all sources being read or held by `held_source` at once
    _networks: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_networks", tuple(ipaddress.ip_network(n, strict=False) for n in self.open_networks))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SourcePolicy:
        env = dict(os.environ) if env is None else env

        def words(name: str, sep: str = ",") -> tuple[str, ...]:
            return tuple(w.strip() for w in env.get(name, "").split(sep) if w.strip())

        def number(name: str, default: float) -> float:
            try:
                value = float(env.get(name, default))
            except ValueError:
                raise ValueError(f"{name}={env[name]!r}: expected a number") from None
            if value <= 0 and name != "SKUVID_SOURCE_MAX_REDIRECTS" or value < 0:
                raise ValueError(f"{name}={env[name]!r}: expected a positive number")
            return value

        # The drop zone is opened because its files name their packshots; the storage root is not: it holds other
        # campaigns' personalized clips, and our own published files are read from storage by key, not by URI.
        prefixes = [s3_prefix(value) for value in words("SKUVID_SOURCE_S3")]
        if env.get("SKUVID_DROP_ZONE", "").startswith("s3://"):
            prefixes.append(s3_prefix(env["SKUVID_DROP_ZONE"]))
        networks = words("SKUVID_SOURCE_OPEN_NETWORKS")
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"SKUVID_SOURCE_OPEN_NETWORKS: {network!r} is not a network (CIDR)") from None
        return cls(
            roots=words("SKUVID_SOURCE_ROOTS", os.pathsep),
            s3_prefixes=tuple(prefixes),
            hosts=tuple(h.lower() for h in words("SKUVID_SOURCE_HOSTS")),
            open_networks=networks,
            https_only=env.get("SKUVID_SOURCE_HTTPS_ONLY", "").lower() in ("1", "true", "yes"),
            max_redirects=int(number("SKUVID_SOURCE_MAX_REDIRECTS", 3)),
            max_bytes=int(number("SKUVID_SOURCE_MAX_MB", 64) * MiB),
            deadline_s=number("SKUVID_SOURCE_DEADLINE_S", 20),
            max_parallel_fetches=int(number("SKUVID_SOURCE_PARALLEL_FETCHES", 4)),
            max_bytes_in_flight=int(number("SKUVID_SOURCE_MEMORY_MB", 256) * MiB),
        )

    def address_allowed(self, address: Address) -> bool:
        if any(address in network for network in self._networks):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
            if embedded is None and address in NAT64:
                embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            if embedded is not None:
                return self.address_allowed(embedded)
        return address.is_global and not (address.is_multicast or address.is_reserved or address.is_private
                                           or address.is_loopback or address.is_link_local or address.is_unspecified)


def s3_prefix(uri_or_prefix: str) -> str:
    """"bucket/prefix/" from `s3://bucket/prefix`, `bucket/prefix/` or `bucket`."""
    value = uri_or_prefix.removeprefix("s3://").strip("/")
    return value + "/"


@lru_cache(maxsize=8)
def _policy_for(env_items: tuple[tuple[str, str], ...]) -> SourcePolicy:
    return SourcePolicy.from_env(dict(env_items))


def current_policy() -> SourcePolicy:
    """The deployment's policy, from the SKUVID_SOURCE_* variables and the drop zone."""
    return _policy_for(tuple(sorted((k, v) for k, v in os.environ.items()
                                    if k.startswith("SKUVID_SOURCE_") or k == "SKUVID_DROP_ZONE")))


class ByteBudget:
    """Bytes of sources in memory at once, across threads: a reader reserves a body's size before reading it."""

    def __init__(self, total: int):
        self.total, self.used = total, 0
        self._changed = threading.Condition()

    def reserve(self, size: int, uri: str, policy: SourcePolicy) -> int:
        size = min(size, self.total)
        wait_until = time.monotonic() + BUDGET_WAIT_S
        with self._changed:
            while self.used + size > self.total:
                if not self._changed.wait(wait_until - time.monotonic()):
                    raise timed_out(policy, uri)
            self.used += size
        return size

    def release(self, size: int) -> None:
        with self._changed:
            self.used -= size
            self._changed.notify_all()


@lru_cache(maxsize=8)
def budget_for(total: int) -> ByteBudget:
    return ByteBudget(total)


class Hold:
    """What one read has reserved from the budget; released when its bytes are let go."""

    def __init__(self, uri: str, policy: SourcePolicy):
        self.uri, self.policy, self.size, self.closed = uri, policy, 0, False
        self.budget = budget_for(policy.max_bytes_in_flight)
        self._lock = threading.Lock()

    def __call__(self, size: int) -> None:
        reserved = self.budget.reserve(size, self.uri, self.policy)
        with self._lock:
            if not self.closed:
                self.size += reserved
                return
        # The reader gave up (deadline) while a fetch thread was still going: give the memory straight back.
        self.budget.release(reserved)
        raise timed_out(self.policy, self.uri)

    def release(self) -> None:
        with self._lock:
            self.closed, size, self.size = True, self.size, 0
        self.budget.release(size)


@contextmanager
def held_source(uri: str, *, base: str | None = None, policy: SourcePolicy | None = None) -> Iterator[bytes]:
    """`read_source`, keeping the bytes counted against the policy's memory budget until the block ends.

    Bulk readers (packshot intake) use it so that many threads never hold more than the budget between them.
    """
    policy = policy or current_policy()
    hold = Hold(uri, policy)
    try:
        yield _read(policy, uri, base, hold)
    finally:
        hold.release()


def read_source(uri: str, *, base: str | None = None, policy: SourcePolicy | None = None) -> bytes:
    """The bytes of `uri` if the policy allows it. `base` is the folder of the file that names it (`parent_of`);
    None means the operator named it (config or environment). Relative names resolve against `base`.

    Raises SourceRefused (the one reason for refusals and failed reads), SourceTooLarge or SourceTimedOut.
    """
    with held_source(uri, base=base, policy=policy) as data:
        return data


def _read(policy: SourcePolicy, uri: str, base: str | None, hold: Hold) -> bytes:
    started = time.monotonic()
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""
    if scheme in ("http", "https"):
        return _http(policy, uri, base, hold)
    if scheme == "s3":
        return _s3(policy, uri, base, started, hold)
    if scheme in ("", "file"):
        return _local(policy, uri, base, hold)
    raise refused(uri, f"scheme {scheme!r}")


def folder_of(base: str) -> str:
    """A naming file's folder as given by parent_of: a resolved local folder, or a URI ending in a slash."""
    parsed = urlparse(base)
    if len(parsed.scheme) > 1 and parsed.scheme.lower() != "file":
        return base.rstrip("/") + "/"
    return str(Path(unquote(parsed.path) if parsed.scheme.lower() == "file" else base).resolve())


# --- local files -------------------------------------------------------------------------------------------

def _local(policy: SourcePolicy, uri: str, base: str | None, hold: Hold) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme.lower() == "file":
        if parsed.netloc not in ("", "localhost"):
            raise refused(uri, "file:// with a host")
        text = unquote(parsed.path)
    else:
        text = uri
    if "\x00" in text:
        raise refused(uri, "NUL in path")
    path = Path(text)
    if base is not None:
        folder = folder_of(base)
        if "://" in folder:  # a relative name inside a remote file: resolve it there, under the same rules
            if path.is_absolute() or parsed.scheme:
                raise refused(uri, "local path named in a remote file")
            web = folder.lower().startswith(("http://", "https://"))
            return _read(policy, urljoin(folder, text) if web else folder + text, base, hold)
        path = path if path.is_absolute() else Path(folder) / path
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as error:
        raise refused(uri, f"resolve: {error}") from None
    if base is not None:
        allowed = [Path(folder_of(base))] + [Path(root).resolve() for root in policy.roots]
        if not any(real.is_relative_to(folder) for folder in allowed):
            raise refused(uri, f"{real} is outside {[str(a) for a in allowed]}")
    try:
        # O_NONBLOCK: a FIFO planted in the folder must not hang the reader; only regular files are read.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise refused(uri, f"open: {error}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise refused(uri, "not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > policy.max_bytes:
            raise too_large(policy, uri)
        hold(info.st_size)
        chunks, total = [], 0
        # In chunks: read(n) would set aside n bytes up front, and the file may grow after fstat.
        while chunk := handle.read(MiB):
            total += len(chunk)
            if total > policy.max_bytes:
                raise too_large(policy, uri)
            chunks.append(chunk)
    return b"".join(chunks)


def too_large(policy: SourcePolicy, uri: str) -> SourceTooLarge:
    return SourceTooLarge(f"larger than the source policy's limit of {policy.max_bytes // MiB} MiB: {shown(uri)}")


def timed_out(policy: SourcePolicy, uri: str) -> SourceTimedOut:
    return SourceTimedOut(f"not read within the source policy's deadline of {policy.deadline_s:g} s: {shown(uri)}")


# --- S3 ----------------------------------------------------------------------------------------------------

def _s3(policy: SourcePolicy, uri: str, base: str | None, started: float, hold: Hold) -> bytes:
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, unquote(parsed.path).lstrip("/")
    segments = key.split("/")
    if not bucket or not key or any(s in ("", ".", "..") for s in segments) or parsed.query or parsed.fragment:
        raise refused(uri, "malformed s3 key")
    allowed = list(policy.s3_prefixes)
    if base is not None and base.lower().startswith("s3://"):
        allowed.append(s3_prefix(base))
    elif base is None:
        allowed.append(f"{bucket}/{key}/")  # the operator named this object
    full = f"{bucket}/{key}"
    if not any(full.startswith(prefix) or f"{full}/" == prefix for prefix in allowed):
        raise refused(uri, f"outside {allowed}")
    try:
        result = obstore.get(bucket_store(bucket), key)
        if result.meta["size"] > policy.max_bytes:
            raise too_large(policy, uri)
        hold(result.meta["size"])
        chunks, total = [], 0
        for chunk in result.stream(min_chunk_size=MiB):
            total += len(chunk)
            if total > policy.max_bytes:
                raise too_large(policy, uri)
            if time.monotonic() - started > policy.deadline_s:
                raise timed_out(policy, uri)
            chunks.append(bytes(chunk))
    except (SourceTooLarge, SourceTimedOut):
        raise
    except Exception as error:  # noqa: BLE001 - missing key, denied, unreachable: one reason for the submitter
        raise refused(uri, f"s3: {error}") from None
    return b"".join(chunks)


# --- HTTP(S) -----------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One verifying context for all fetches: building one loads the CA bundle, about 20 ms each time."""
    return httpx.create_ssl_context()


@lru_cache(maxsize=8)
def _fetch_pool(size: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(size, thread_name_prefix="source-fetch")


def _http(policy: SourcePolicy, uri: str, base: str | None, hold: Hold) -> bytes:
    """Run the fetch on the bounded pool and give up at the deadline, however slowly the server drips."""
    deadline = time.monotonic() + policy.deadline_s
    cancelled = threading.Event()
    future = _fetch_pool(policy.max_parallel_fetches).submit(_fetch_http, policy, uri, deadline, cancelled, hold)
    try:
        return future.result(timeout=policy.deadline_s)
    except FutureTimeout:
        cancelled.set()
        future.cancel()
        raise timed_out(policy, uri) from None


def _fetch_http(policy: SourcePolicy, uri: str, deadline: float, cancelled: threading.Event, hold: Hold) -> bytes:
    url = uri
    with httpx.Client(follow_redirects=False, trust_env=False, verify=tls_context()) as client:
        for _hop in range(policy.max_redirects + 1):
            target, headers, extensions = _pinned_request(policy, uri, url)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or cancelled.is_set():
                raise timed_out(policy, uri)
            timeout = httpx.Timeout(min(remaining, IDLE_READ_TIMEOUT_S), connect=min(remaining, IDLE_READ_TIMEOUT_S))
            try:
                with client.stream("GET", target, headers=headers, extensions=extensions, timeout=timeout) as response:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        url = urljoin(url, location)
                        continue
                    if response.status_code != 200:
                        raise refused(uri, f"HTTP {response.status_code} from {url}")
                    length = response.headers.get("content-length", "")
                    if length.isdigit() and int(length) > policy.max_bytes:
                        raise too_large(policy, uri)
                    hold(int(length) if length.isdigit() else policy.max_bytes)
                    chunks, total = [], 0
                    for chunk in response.iter_bytes(64 * 1024):
                        total += len(chunk)
                        if total > policy.max_bytes:
                            raise too_large(policy, uri)
                        if time.monotonic() > deadline or cancelled.is_set():
                            raise timed_out(policy, uri)
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException:
                raise timed_out(policy, uri) from None
            except httpx.HTTPError as error:
                raise refused(uri, f"{type(error).__name__}: {error}") from None
    raise refused(uri, f"more than {policy.max_redirects} redirects")


def _pinned_request(policy: SourcePolicy, uri: str, url: str) -> tuple[httpx.URL, dict[str, str], dict]:
    """The request for `url` sent to an address the policy allows, with the name kept for Host and TLS."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:
        raise refused(uri, f"bad URL {url!r}: {error}") from None
    scheme, host = parsed.scheme, (parsed.host or "").lower().rstrip(".")
    if scheme not in ("http", "https") or (policy.https_only and scheme != "https"):
        raise refused(uri, f"scheme of {url}")
    if not host or parsed.userinfo:
        raise refused(uri, f"host of {url}")
    if policy.hosts and host not in policy.hosts:
        raise refused(uri, f"{host} is not in the host allow-list")
    port = parsed.port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise refused(uri, f"resolve {host}: {error}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    # Every address must be allowed: a name with one public and one private record picks either at connect time.
    if not addresses or not all(policy.address_allowed(a) for a in addresses):
        raise refused(uri, f"{host} resolves to {[str(a) for a in addresses]}")
    host_header = host if parsed.port is None else f"{host}:{parsed.port}"
    headers = {"Host": host_header, "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    return parsed.copy_with(host=str(addresses[0])), headers, extensions
