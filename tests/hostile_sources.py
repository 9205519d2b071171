"""A hostile-source corpus built in code, shared by the source-policy tests and bench/hostile.py.

`LoggingServer` is a real HTTP server on a loopback address that records every request it gets; a
`Sentinel` is a file outside every allowed root whose every open is recorded through a Python audit hook.
Each `Case` is a URI some untrusted file names, the folder of that file, and what the policy must answer.
"""

from __future__ import annotations

import http.server
import io
import os
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from PIL import Image

REFUSED = "refused"
TOO_LARGE = "too_large"
TIMED_OUT = "timed_out"
READ = "read"


def png_bytes(size: int = 64, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _RecordingHTTPServer

    def log_message(self, *args) -> None:  # the record below is the log
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        url = urlparse(self.path)
        if url.path == "/img.png":
            self._send(200, png_bytes())
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/drip":
            self._stream(b"x", pause_s=0.1, declared=None)
        elif url.path == "/huge":
            self._stream(b"\0" * 65536, pause_s=0.0, declared=None)
        elif url.path == "/huge-declared":
            self._stream(b"\0" * 65536, pause_s=0.0, declared=400 * 1024 * 1024)
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, chunk: bytes, *, pause_s: float, declared: int | None) -> None:
        self.send_response(200)
        if declared is not None:
            self.send_header("Content-Length", str(declared))
        self.end_headers()
        stop = time.monotonic() + 30
        try:
            while time.monotonic() < stop and not self.server.closing.is_set():
                self.wfile.write(chunk)
                self.wfile.flush()
                if pause_s:
                    time.sleep(pause_s)
        except OSError:  # the client gave up, as it should
            pass


class _RecordingHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # HTTP/1.0 responses without a length end at close, which is what /drip and /huge need.

    def __init__(self, address):
        super().__init__(address, _Handler)
        self.requests: list[tuple[str, str]] = []
        self.closing = threading.Event()


class LoggingServer:
    """An HTTP server on `host` (any 127.x address) that records (path, Host header) of every request."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self._server = _RecordingHTTPServer((host, 0))
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.host, self.port = host, self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self._server.requests

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()


_watched: set[str] = set()
_opened: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _watched and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if os.path.realpath(path) in _watched:
            _opened.append(path)


_hook_installed = False


@dataclass
class Sentinel:
    """A file outside the allowed roots; `opened` lists every open() of it (audit hook, all threads)."""

    path: Path
    opened: list[str] = field(default_factory=lambda: _opened)

    @classmethod
    def create(cls, path: Path) -> Sentinel:
        global _hook_installed
        path.write_bytes(png_bytes(colour=(0, 0, 0)))
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
        _watched.add(os.path.realpath(path))
        _opened.clear()
        return cls(path)


@dataclass(frozen=True)
class Case:
    name: str
    uri: str
    base: str | None  # folder of the file naming it; None = named by the operator
    expect: str


def local_cases(catalog_dir: Path, sentinel: Sentinel) -> list[Case]:
    """Names a catalog in `catalog_dir` might use to reach `sentinel` (which lies outside it)."""
    base = str(catalog_dir)
    outside = sentinel.path
    (catalog_dir / "escape.png").symlink_to(outside)
    (catalog_dir / "up").symlink_to(outside.parent, target_is_directory=True)
    fifo = catalog_dir / "pipe.png"
    os.mkfifo(fifo)
    relative_up = os.path.relpath(outside, catalog_dir)
    return [
        Case("dot-dot", relative_up, base, REFUSED),
        Case("dot-dot-inside-then-out", f"./sub/../{relative_up}", base, REFUSED),
        Case("absolute path", str(outside), base, REFUSED),
        Case("file uri", outside.as_uri(), base, REFUSED),
        Case("file uri with localhost", f"file://localhost{outside}", base, REFUSED),
        Case("file uri with a host", f"file://evil.example{outside}", base, REFUSED),
        Case("file uri percent-encoded dots", f"file://{catalog_dir}/%2e%2e/{outside.name}", base, REFUSED),
        Case("symlink to the file", "escape.png", base, REFUSED),
        Case("symlink to the folder", f"up/{outside.name}", base, REFUSED),
        Case("missing file", "missing.png", base, REFUSED),
        Case("a folder", ".", base, REFUSED),
        Case("fifo", "pipe.png", base, REFUSED),
        Case("device", "/dev/zero", base, REFUSED),
        Case("proc", "/proc/self/environ", base, REFUSED),
        Case("nul byte", "a\0.png", base, REFUSED),
        Case("unknown scheme", "ftp://example.com/a.png", base, REFUSED),
        Case("data uri", "data:image/png;base64,AAAA", base, REFUSED),
    ]


def http_cases(server: LoggingServer, other: LoggingServer, base: str) -> list[Case]:
    """URLs against loopback servers; the policy under test opens `server`'s address only."""
    port = other.port
    return [
        Case("loopback, not opened", other.url("/img.png"), base, REFUSED),
        Case("loopback by name", f"http://localhost:{port}/img.png", base, REFUSED),
        Case("loopback decimal", f"http://2130706434:{port}/img.png", base, REFUSED),
        Case("loopback short form", f"http://127.2:{port}/img.png", base, REFUSED),
        Case("loopback ipv4-mapped ipv6", f"http://[::ffff:127.0.0.2]:{port}/img.png", base, REFUSED),
        Case("ipv6 loopback", f"http://[::1]:{port}/img.png", base, REFUSED),
        Case("metadata address", "http://169.254.169.254/latest/meta-data/", base, REFUSED),
        Case("private address", "http://10.0.0.1/img.png", base, REFUSED),
        Case("cgnat address", "http://100.64.0.1/img.png", base, REFUSED),
        Case("unspecified address", f"http://0.0.0.0:{port}/img.png", base, REFUSED),
        Case("credentials in url", f"http://user:pw@{server.host}:{server.port}/img.png", base, REFUSED),
        Case("redirect from an allowed host to loopback",
             server.url(f"/redirect?to={other.url('/img.png')}"), base, REFUSED),
        Case("redirect to a file uri", server.url("/redirect?to=file:///etc/passwd"), base, REFUSED),
        Case("redirect loop", server.url("/loop"), base, REFUSED),
        Case("not found", server.url("/missing.png"), base, REFUSED),
        Case("slow drip", server.url("/drip"), base, TIMED_OUT),
        Case("huge body", server.url("/huge"), base, TOO_LARGE),
        Case("huge declared body", server.url("/huge-declared"), base, TOO_LARGE),
    ]


def s3_cases(bucket: str, other_bucket: str, base: str) -> list[Case]:
    """S3 names against a policy that opens `s3://{bucket}/drops/` only."""
    return [
        Case("another bucket", f"s3://{other_bucket}/secret.png", base, REFUSED),
        Case("same bucket, outside the prefix", f"s3://{bucket}/private/secret.png", base, REFUSED),
        Case("dot-dot in the key", f"s3://{bucket}/drops/../private/secret.png", base, REFUSED),
        Case("empty segment in the key", f"s3://{bucket}/drops//x.png", base, REFUSED),
        Case("missing object under the prefix", f"s3://{bucket}/drops/missing.png", base, REFUSED),
        Case("prefix look-alike", f"s3://{bucket}/drops-evil/x.png", base, REFUSED),
    ]
