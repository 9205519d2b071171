"""Output downloads: https only (plain http on loopback only when allowed), bounded redirects each checked,
a byte cap enforced while streaming, and one deadline for the whole fetch."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resources.api_client.errors import OutputRefused
from resources.api_client.http import ApiHttp, HttpPolicy
from tests.resources.providers.api.api_fixtures import log

BODY = bytes(range(256)) * 40  # 10,240 bytes


class _Outputs(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self._redirect(f"/hop/{left - 1}" if left > 1 else "/video.mp4")
        elif self.path == "/elsewhere":
            self._redirect("http://outputs.example.com/video.mp4")
        elif self.path == "/video.mp4":
            self._answer(BODY, length=True)
        elif self.path == "/chunked.mp4":
            self._answer(BODY, length=False)
        elif self.path == "/drip.mp4":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            for start in range(0, len(BODY), 64):
                self.wfile.write(BODY[start : start + 64])
                self.wfile.flush()
                time.sleep(0.05)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, body: bytes, *, length: bool) -> None:
        self.send_response(200)
        if length:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 1024):
            chunk = body[start : start + 1024]
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture(scope="module")
def outputs() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Outputs)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def http(**limits) -> ApiHttp:
    policy = HttpPolicy(
        connect_timeout_s=1.0,
        read_timeout_s=1.0,
        max_attempts=3,
        retry_budget_s=5.0,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        **{"allow_loopback_http": True, **limits},
    )
    return ApiHttp("runway", policy, dict, [], log)


def test_a_plain_download_within_the_limits(outputs):
    with http(max_output_bytes=len(BODY)) as client:
        assert client.download(f"{outputs}/video.mp4") == BODY
        assert client.download(f"{outputs}/chunked.mp4") == BODY


def test_plain_http_is_refused_unless_loopback_is_allowed(outputs):
    with http(allow_loopback_http=False) as client, pytest.raises(OutputRefused, match="not https"):
        client.download(f"{outputs}/video.mp4")


def test_redirects_are_bounded_and_each_target_is_checked(outputs):
    with http(max_redirects=3) as client:
        assert client.download(f"{outputs}/hop/3") == BODY
        with pytest.raises(OutputRefused, match="redirected more than 3 times"):
            client.download(f"{outputs}/hop/4")
        with pytest.raises(OutputRefused, match="outputs.example.com/video.mp4 is not https"):
            client.download(f"{outputs}/elsewhere")


@pytest.mark.parametrize("path", ["video.mp4", "chunked.mp4"], ids=["declared length", "chunked"])
def test_an_output_over_the_cap_is_refused(outputs, path):
    with http(max_output_bytes=4000) as client, pytest.raises(OutputRefused, match="4000-byte cap"):
        client.download(f"{outputs}/{path}")


def test_a_slow_drip_stops_at_the_overall_deadline(outputs):
    started = time.monotonic()
    with http(download_deadline_s=0.6) as client, pytest.raises(OutputRefused, match="more than 0.6s"):
        client.download(f"{outputs}/drip.mp4")
    # Every read arrives in time; only an overall deadline stops it (the drip takes 8 s).
    assert time.monotonic() - started < 2.0
