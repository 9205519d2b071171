"""`skuvid code-server`: the long-lived code server, refusing a port that is already taken.

`dagster code-server start` on a busy port does not fail: gRPC binds with SO_REUSEPORT, so a second server starts
silently beside the first and the daemon and webserver talk to either. This command checks first and refuses:
a lock file per host and port (held for the server's life, so two of these never race) and a plain bind of the
port (no reuse flags), which fails if any process listens there. Then it becomes the Dagster command.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from pipelines.settings import ledger_url

DEFAULT_PORT = 4266


class PortInUse(RuntimeError):
    pass


def add_code_server_parser(commands) -> None:
    parser = commands.add_parser("code-server", help="Start the long-lived code server (dagster code-server start) "
                                 "after checking that nothing else serves its port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)


def lock_path(host: str, port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"skuvid-code-server-{host.replace(':', '_')}-{port}.lock"


def claim_port(host: str, port: int) -> int:
    """Hold the port's lock (an open file descriptor that the server inherits) once nothing listens there."""
    fd = os.open(lock_path(host, port), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PortInUse(f"{host}:{port} is taken by another `skuvid code-server` (lock {lock_path(host, port)})") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            os.close(fd)
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(f"{host}:{port} is already in use: another code server (or another program) "
                                "listens there; stop it or pick another --port and point the workspace at it") from None
            raise
    os.set_inheritable(fd, True)
    return fd


def run_code_server(args: argparse.Namespace, console: Console) -> int:
    try:
        ledger_url()  # refuse before the server starts, not at its first run
        claim_port(args.host, args.port)
    except Exception as error:  # noqa: BLE001 - every refusal is told the same way
        console.print(f"[red]refused:[/red] {error}")
        return 1
    dagster = shutil.which("dagster", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if dagster is None:
        console.print("[red]refused:[/red] the `dagster` command is not installed beside this Python")
        return 1
    command = [dagster, "code-server", "start", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)]
    console.print(" ".join(command))
    sys.stdout.flush()
    os.execv(dagster, command)  # keeps the lock's descriptor open for the server's whole life
    return 0  # not reached
