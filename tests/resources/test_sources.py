"""The source policy against a hostile corpus: nothing outside it is read or fetched, every refusal reads the same."""

import ipaddress
import socket
import ssl
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest

from resources import sources
from resources.sources import (
    SourcePolicy,
    SourceRefused,
    SourceTimedOut,
    SourceTooLarge,
    current_policy,
    held_source,
    read_source,
    shown,
)
from tests.hostile_sources import (
    REFUSED,
    TIMED_OUT,
    TOO_LARGE,
    LoggingServer,
    Sentinel,
    http_cases,
    local_cases,
    png_bytes,
    s3_cases,
)

MiB = 1024 * 1024
EXCEPTIONS = {REFUSED: SourceRefused, TOO_LARGE: SourceTooLarge, TIMED_OUT: SourceTimedOut}


@pytest.fixture
def catalog_dir(tmp_path):
    folder = tmp_path / "catalog"
    (folder / "sub").mkdir(parents=True)
    (folder / "packshots").mkdir()
    (folder / "packshots" / "a.png").write_bytes(png_bytes())
    return folder


@pytest.fixture
def sentinel(tmp_path):
    return Sentinel.create(tmp_path / "outside.png")


@pytest.fixture
def servers():
    allowed, forbidden = LoggingServer("127.0.0.1"), LoggingServer("127.0.0.2")
    yield allowed, forbidden
    allowed.close()
    forbidden.close()


def assert_answers(case, policy, *, max_s: float, max_mib: float):
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(EXCEPTIONS[case.expect]) as raised:
            read_source(case.uri, base=case.base, policy=policy)
    finally:
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < max_s, f"{case.name}: {elapsed:.2f} s"
    assert peak < max_mib * MiB, f"{case.name}: peak {peak / MiB:.1f} MiB"
    if case.expect == REFUSED:
        assert str(raised.value) == f"not allowed by the source policy: {shown(case.uri)}", case.name


def test_local_names_never_leave_the_folder(catalog_dir, sentinel):
    policy = SourcePolicy()
    for case in local_cases(catalog_dir, sentinel):
        assert_answers(case, policy, max_s=1.0, max_mib=20)
    assert sentinel.opened == []
    assert read_source("packshots/a.png", base=str(catalog_dir), policy=policy) == png_bytes()
    assert read_source((catalog_dir / "packshots" / "a.png").as_uri(), base=str(catalog_dir), policy=policy)


def test_configured_roots_open_absolute_paths_and_the_operator_names_any_file(catalog_dir, sentinel):
    assert read_source(str(sentinel.path), base=str(catalog_dir), policy=SourcePolicy(roots=(str(sentinel.path.parent),)))
    assert read_source(str(sentinel.path), policy=SourcePolicy())  # base=None: named in config, not in a file


def test_a_symlink_inside_the_folder_that_stays_inside_is_read(catalog_dir):
    (catalog_dir / "alias.png").symlink_to(catalog_dir / "packshots" / "a.png")
    assert read_source("alias.png", base=str(catalog_dir), policy=SourcePolicy()) == png_bytes()


def test_files_over_the_cap_are_refused_before_they_are_read(catalog_dir):
    (catalog_dir / "big.png").write_bytes(b"\0" * (2 * MiB))
    with pytest.raises(SourceTooLarge, match="limit of 1 MiB"):
        read_source("big.png", base=str(catalog_dir), policy=SourcePolicy(max_bytes=MiB))


def test_http_loopback_is_refused_unless_opened_and_nothing_is_fetched(servers):
    allowed, forbidden = servers
    closed = SourcePolicy()
    for url in (allowed.url("/img.png"), f"http://localhost:{allowed.port}/img.png"):
        with pytest.raises(SourceRefused):
            read_source(url, policy=closed)
    assert allowed.requests == []
    opened = SourcePolicy(open_networks=("127.0.0.1/32",), deadline_s=1.0, max_bytes=MiB)
    assert read_source(allowed.url("/img.png"), policy=opened) == png_bytes()
    for case in http_cases(allowed, forbidden, base="https://cdn.example/catalog/"):
        assert_answers(case, opened, max_s=2.0, max_mib=30)
    assert forbidden.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(servers, monkeypatch):
    allowed, _ = servers
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "images.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    policy = SourcePolicy(open_networks=("127.0.0.1/32",))
    assert read_source(f"http://images.example:{allowed.port}/img.png", policy=policy) == png_bytes()
    assert allowed.requests == [("/img.png", f"images.example:{allowed.port}")]


def test_host_allow_list_and_https_only(servers):
    allowed, _ = servers
    url = allowed.url("/img.png")
    with pytest.raises(SourceRefused):
        read_source(url, policy=SourcePolicy(open_networks=("127.0.0.1/32",), hosts=("cdn.example",)))
    with pytest.raises(SourceRefused):
        read_source(url, policy=SourcePolicy(open_networks=("127.0.0.1/32",), https_only=True))
    assert allowed.requests == []
    assert read_source(url, policy=SourcePolicy(open_networks=("127.0.0.1/32",), hosts=("127.0.0.1",)))


def test_redirect_limit(servers):
    allowed, _ = servers
    policy = SourcePolicy(open_networks=("127.0.0.1/32",), max_redirects=1)
    hop = allowed.url(f"/redirect?to={allowed.url('/img.png')}")
    assert read_source(hop, policy=policy) == png_bytes()
    with pytest.raises(SourceRefused):
        read_source(allowed.url(f"/redirect?to={hop}"), policy=policy)


def test_the_deadline_holds_for_a_server_that_drips(servers):
    allowed, _ = servers
    started = time.monotonic()
    with pytest.raises(SourceTimedOut, match="deadline of 0.5 s"):
        read_source(allowed.url("/drip"), policy=SourcePolicy(open_networks=("127.0.0.1/32",), deadline_s=0.5))
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "2001:db8::1"],
)
def test_non_public_addresses_are_refused(address):
    assert not SourcePolicy().address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert SourcePolicy().address_allowed(ipaddress.ip_address(address))


def test_s3_only_configured_prefixes(s3_env, s3_bucket):
    client = s3_env.client()
    other = f"{s3_bucket}-other"
    client.create_bucket(Bucket=other)
    client.put_object(Bucket=other, Key="secret.png", Body=b"secret")
    client.put_object(Bucket=s3_bucket, Key="private/secret.png", Body=b"secret")
    client.put_object(Bucket=s3_bucket, Key="drops/img.png", Body=png_bytes())
    policy = SourcePolicy(s3_prefixes=(f"{s3_bucket}/drops/",), max_bytes=MiB)
    for case in s3_cases(s3_bucket, other, base=f"s3://{s3_bucket}/drops"):
        assert_answers(case, policy, max_s=2.0, max_mib=20)
    assert read_source(f"s3://{s3_bucket}/drops/img.png", policy=policy) == png_bytes()
    # A relative name in a dropped file stays in the drop's folder, even with no prefix configured.
    assert read_source("img.png", base=f"s3://{s3_bucket}/drops", policy=SourcePolicy()) == png_bytes()
    with pytest.raises(SourceRefused):
        read_source("../private/secret.png", base=f"s3://{s3_bucket}/drops", policy=SourcePolicy())
    client.put_object(Bucket=s3_bucket, Key="drops/big.bin", Body=b"\0" * (2 * MiB))
    with pytest.raises(SourceTooLarge):
        read_source(f"s3://{s3_bucket}/drops/big.bin", policy=policy)


def test_policy_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SKUVID_SOURCE_ROOTS", f"{tmp_path}/a:{tmp_path}/b")
    monkeypatch.setenv("SKUVID_SOURCE_S3", "s3://assets/brand/,shared")
    monkeypatch.setenv("SKUVID_DROP_ZONE", "s3://drops/incoming/")
    monkeypatch.setenv("SKUVID_SOURCE_HOSTS", "CDN.example, images.example")
    monkeypatch.setenv("SKUVID_SOURCE_OPEN_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("SKUVID_SOURCE_HTTPS_ONLY", "true")
    monkeypatch.setenv("SKUVID_SOURCE_MAX_MB", "8")
    monkeypatch.setenv("SKUVID_SOURCE_DEADLINE_S", "5")
    policy = current_policy()
    assert policy.roots == (f"{tmp_path}/a", f"{tmp_path}/b")
    assert policy.s3_prefixes == ("assets/brand/", "shared/", "drops/incoming/")
    assert policy.hosts == ("cdn.example", "images.example")
    assert policy.https_only and policy.max_bytes == 8 * MiB and policy.deadline_s == 5
    assert policy.address_allowed(ipaddress.ip_address("127.0.0.9"))
    monkeypatch.setenv("SKUVID_STORAGE_ROOT", "s3://artifacts/skuvid")
    assert "artifacts/skuvid/" not in current_policy().s3_prefixes  # other campaigns' clips stay closed
    monkeypatch.setenv("SKUVID_SOURCE_MAX_MB", "lots")
    with pytest.raises(ValueError, match="SKUVID_SOURCE_MAX_MB='lots': expected a number"):
        current_policy()
    monkeypatch.setenv("SKUVID_SOURCE_MAX_MB", "8")
    monkeypatch.setenv("SKUVID_SOURCE_OPEN_NETWORKS", "intranet")
    with pytest.raises(ValueError, match="'intranet' is not a network"):
        current_policy()


def test_the_memory_budget_bounds_what_concurrent_readers_hold(catalog_dir):
    for index in range(8):
        (catalog_dir / f"{index}.bin").write_bytes(bytes([index]) * MiB)
    policy = SourcePolicy(max_bytes_in_flight=3 * MiB)
    holding, most = [0], [0]
    lock = threading.Lock()

    def read(index: int) -> bytes:
        with held_source(f"{index}.bin", base=str(catalog_dir), policy=policy) as data:
            with lock:
                holding[0] += 1
                most[0] = max(most[0], holding[0])
            time.sleep(0.05)
            with lock:
                holding[0] -= 1
            return data[:1]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(read, range(8))) == [bytes([i]) for i in range(8)]
    assert most[0] == 3


def test_reasons_mask_credentials_and_stay_short():
    assert shown("https://user:secret@cdn.example/a.png") == "https://***@cdn.example/a.png"
    assert shown("s3://b/" + "k" * 1000) == "s3://b/" + "k" * 193 + "..."
    with pytest.raises(SourceRefused) as raised:
        read_source("http://user:secret@127.0.0.1/a.png", policy=SourcePolicy())
    assert "secret" not in str(raised.value)


def test_https_is_pinned_to_the_checked_address_and_verifies_the_name(monkeypatch):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("images.example")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    server = LoggingServer("127.0.0.1", tls=server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    monkeypatch.setattr(sources, "tls_context", lambda: client_context)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(
        "127.0.0.1" if host in ("images.example", "other.example") else host, *a, **k))
    policy = SourcePolicy(open_networks=("127.0.0.1/32",), https_only=True)
    try:
        assert read_source(f"https://images.example:{server.port}/img.png", policy=policy) == png_bytes()
        with pytest.raises(SourceRefused):  # same address, a name the certificate does not carry
            read_source(f"https://other.example:{server.port}/img.png", policy=policy)
    finally:
        server.close()
    assert server.requests == [("/img.png", f"images.example:{server.port}")]
