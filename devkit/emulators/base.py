"""What every API emulator shares: a real HTTP server on 127.0.0.1, tasks that move through their states over
time, real MP4 output (a slow zoom on the uploaded image), output URLs, and faults injected on demand.

Faults are queued per route ("submit", "status", "result", "download") and each answers one request:
RateLimited (429 with Retry-After) and ServerError (5xx) answer before anything is created; SlowAnswer and
DroppedConnection answer after the request was processed, which is the worst case for a client: a create
request that timed out or lost its connection did create its task. How tasks behave is set by TaskScript.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
from PIL import Image, UnidentifiedImageError

from videokit.media.encode import EncodeSettings, encode_mp4
from videokit.sku_video.loop import fit_to_size

ZOOM = 0.15  # a push-in of about the amplitude real image-to-video output moves


@dataclass(frozen=True)
class RateLimited:
    retry_after: str | None = "1"


@dataclass(frozen=True)
class ServerError:
    status: int = 500


@dataclass(frozen=True)
class SlowAnswer:
    delay_s: float = 1.0


@dataclass(frozen=True)
class DroppedConnection:
    delay_s: float = 0.0  # held open this long after the work is done, then hung up on


@dataclass(frozen=True)
class ServerErrorAfterWork:
    """The request is processed (a create request makes its task), then the server answers 5xx."""

    status: int = 504
    delay_s: float = 0.0  # after the work, before the answer


@dataclass(frozen=True)
class SlowDrip:
    """The answer's body trickles out `chunk_bytes` every `interval_s`, for at most `for_s` seconds."""

    chunk_bytes: int = 512
    interval_s: float = 0.05
    for_s: float = 5.0


@dataclass(frozen=True)
class EchoHeaders:
    """A careless server: answers 5xx with the request's headers (credentials included) in the body."""

    status: int = 500


Fault = (
    RateLimited | ServerError | SlowAnswer | DroppedConnection | ServerErrorAfterWork | SlowDrip | EchoHeaders
)


@dataclass(frozen=True)
class TaskScript:
    """How tasks created from now on behave."""

    queued_s: float = 0.0  # throttled or queued (Runway THROTTLED, Kling submitted, fal IN_QUEUE)
    running_s: float = 0.2
    outcome: Literal["succeed", "fail", "refuse", "never"] = "succeed"
    expired_downloads: int = 0  # downloads of the output that answer 403/410 before one works


Phase = Literal["queued", "running", "succeeded", "failed", "refused"]


@dataclass
class EmulatedTask:
    task_id: str
    seconds: float
    params: dict[str, Any]
    script: TaskScript
    external_id: str | None = None
    created: float = field(default_factory=time.monotonic)
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    downloads: int = 0
    # Rendered in the background from creation on, as a real provider does while the task runs.
    video: Future[bytes] | None = None

    def phase(self) -> Phase:
        elapsed = time.monotonic() - self.created
        if elapsed < self.script.queued_s:
            return "queued"
        if self.script.outcome == "never" or elapsed < self.script.queued_s + self.script.running_s:
            return "running"
        if self.script.outcome == "succeed" and self.video is not None and not self.video.done():
            return "running"
        return {"succeed": "succeeded", "fail": "failed", "refuse": "refused"}[self.script.outcome]


@dataclass
class Exchange:
    method: str
    path: str
    headers: Message
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, value: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(value).encode(), headers=headers or {})


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    serve: Callable[..., Answer]
    authenticated: bool = True


class ImageRejected(ValueError):
    pass


def image_from_input(value: Any) -> bytes:
    """The image a client sent: a data URI, bare base64, or an http(s) URL the emulator fetches itself."""
    if not isinstance(value, str) or not value:
        raise ImageRejected("no image given")
    if value.startswith(("http://", "https://")):
        try:
            response = httpx.get(value, timeout=10.0)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise ImageRejected(f"could not fetch the image URL: {type(error).__name__}") from None
        data = response.content
    else:
        encoded = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ImageRejected("image is neither a URL nor valid base64") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError):
        raise ImageRejected("image data is not a PNG, JPEG or WebP image") from None
    return data


def image_aspect(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


@functools.lru_cache(maxsize=32)
def zoom_clip(image: bytes, size: tuple[int, int], seconds: float, fps: int) -> bytes:
    """An MP4 of a slow push-in on `image`, at `size`, `seconds` long."""
    with Image.open(io.BytesIO(image)) as opened:
        still = fit_to_size(np.asarray(opened.convert("RGB")), size)
    width, height = size
    count = round(seconds * fps)

    def frames():
        for index in range(count):
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0, 1 + ZOOM * index / max(1, count - 1))
            yield cv2.warpAffine(still, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    return encode_mp4(frames(), size, fps, EncodeSettings(crf=26, preset="ultrafast"))


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:
        # Clients that time out hang up mid-answer; that is the point of the slow-answer fault.
        pass


class EmulatorServer:
    """A provider's API on 127.0.0.1 at a random port. Subclasses list their routes and authentication."""

    provider: ClassVar[str]
    output_fps: ClassVar[int] = 24

    def __init__(self, *, output_short_side: int = 720, script: TaskScript | None = None):
        self.output_short_side = output_short_side
        self.script = script or TaskScript()
        self.requests: Counter[str] = Counter()
        self.tasks: dict[str, EmulatedTask] = {}
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._outputs: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        self._renderer = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"{self.provider}-render")

    # ---------------------------------------------------------------- control

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.provider}-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._renderer.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.provider} emulator is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def submissions(self) -> int:
        """Tasks created: what a real provider would have charged for."""
        return len(self.tasks)

    def billed_seconds(self) -> float:
        """Seconds of output the provider bills: every task that succeeded, downloaded or not."""
        with self._lock:
            tasks = list(self.tasks.values())
        return sum(task.seconds for task in tasks if task.phase() == "succeeded")

    def tasks_per_job(self) -> Counter[str]:
        """Tasks created per client-side identity (the seed and prompt the client sent, or its external id)."""
        with self._lock:
            tasks = list(self.tasks.values())
        return Counter(
            task.external_id or json.dumps(task.params, sort_keys=True, default=str) for task in tasks
        )

    def inject(self, route: str, *faults: Fault) -> None:
        """Answer the next requests to `route` with `faults`, one each, in order."""
        with self._lock:
            self._faults[route].extend(faults)

    def clear_faults(self) -> None:
        """Forget faults injected but not yet served."""
        with self._lock:
            self._faults.clear()

    def finish_stuck_tasks(self) -> None:
        """Let tasks scripted to never finish succeed now."""
        with self._lock:
            for task in self.tasks.values():
                if task.script.outcome == "never":
                    task.script = replace(task.script, outcome="succeed", queued_s=0.0, running_s=0.0)

    def phases(self) -> dict[str, Phase]:
        return {task_id: task.phase() for task_id, task in self.tasks.items()}

    # ---------------------------------------------------------------- for subclasses

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def authenticate(self, exchange: Exchange) -> Answer | None:
        """None when the request carries valid credentials, else the provider's refusal."""
        raise NotImplementedError

    def rate_limited_body(self) -> Any:
        return {"error": "Too many requests"}

    def new_task(
        self,
        image: bytes,
        size: tuple[int, int],
        seconds: float,
        params: dict[str, Any],
        external_id: str | None = None,
    ) -> EmulatedTask:
        task = EmulatedTask(
            task_id=secrets.token_hex(12),
            seconds=seconds,
            params=params,
            script=self.script,
            external_id=external_id,
        )
        task.video = self._renderer.submit(zoom_clip, image, size, seconds, self.output_fps)
        with self._lock:
            self.tasks[task.task_id] = task
        return task

    def output_size(self, aspect: tuple[int, int]) -> tuple[int, int]:
        """Even-sided output at `aspect` (w, h) whose short side is `output_short_side`."""
        aspect_w, aspect_h = aspect
        short = self.output_short_side
        long = 2 * round(short * max(aspect_w, aspect_h) / min(aspect_w, aspect_h) / 2)
        return (long, short) if aspect_w >= aspect_h else (short, long)

    def output_url(self, task: EmulatedTask) -> str:
        """A fresh signed-looking URL of the task's video (each read of a task hands out a new one)."""
        token = secrets.token_hex(8)
        with self._lock:
            self._outputs[token] = task.task_id
        return f"{self.base_url}/outputs/{task.task_id}/{token}.mp4"

    # ---------------------------------------------------------------- serving

    def _serve_download(self, exchange: Exchange, task_id: str, token: str) -> Answer:
        task = self.tasks.get(task_id)
        if task is None or self._outputs.get(token) != task_id:
            return json_answer(404, {"error": "no such object"})
        with self._lock:
            expired = task.downloads < task.script.expired_downloads
            task.downloads += 1
        if expired:
            return json_answer((403, 410)[task.downloads % 2], {"error": "Request has expired"})
        return Answer(200, task.video.result(), content_type="video/mp4")

    def _all_routes(self) -> list[Route]:
        download = Route(
            "GET",
            re.compile(r"/outputs/(?P<task_id>\w+)/(?P<token>\w+)\.mp4"),
            "download",
            self._serve_download,
            authenticated=False,
        )
        return [*self.routes(), download]

    def serve(self, handler: _Handler, exchange: Exchange) -> None:
        for route in self._all_routes():
            match = route.pattern.fullmatch(exchange.path)
            if route.method == exchange.method and match:
                break
        else:
            _send(handler, json_answer(404, {"error": f"no route {exchange.method} {exchange.path}"}))
            return
        with self._lock:
            self.requests[route.name] += 1
            fault = self._faults[route.name].popleft() if self._faults[route.name] else None
        denied = self.authenticate(exchange) if route.authenticated else None
        if denied is not None:
            _send(handler, denied)
            return
        if isinstance(fault, RateLimited):
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            _send(handler, json_answer(429, self.rate_limited_body(), headers))
            return
        if isinstance(fault, ServerError):
            _send(handler, json_answer(fault.status, {"error": "Internal server error"}))
            return
        if isinstance(fault, EchoHeaders):
            echoed = {"error": "Internal server error", "request_headers": dict(exchange.headers.items())}
            _send(handler, json_answer(fault.status, echoed))
            return
        answer = route.serve(exchange, **match.groupdict())
        if isinstance(fault, ServerErrorAfterWork | DroppedConnection) and fault.delay_s:
            time.sleep(fault.delay_s)
        if isinstance(fault, ServerErrorAfterWork):
            _send(handler, json_answer(fault.status, {"error": "Gateway timeout"}))
            return
        if isinstance(fault, SlowDrip):
            _drip(handler, answer, fault)
            return
        if isinstance(fault, DroppedConnection):
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(fault, SlowAnswer):
            time.sleep(fault.delay_s)
        _send(handler, answer)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer stalls on a delayed ACK.
    disable_nagle_algorithm = True
    emulator: EmulatorServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.emulator.serve(self, Exchange(self.command, urlsplit(self.path).path, self.headers, body))

    def log_message(self, format: str, *args) -> None:
        pass


def _drip(handler: BaseHTTPRequestHandler, answer: Answer, drip: SlowDrip) -> None:
    """Send `answer` a few bytes at a time, then hang up if the time runs out first."""
    handler.close_connection = True
    try:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        until = time.monotonic() + drip.for_s
        for start in range(0, len(answer.body), drip.chunk_bytes):
            if time.monotonic() > until:
                break
            handler.wfile.write(answer.body[start : start + drip.chunk_bytes])
            handler.wfile.flush()
            time.sleep(drip.interval_s)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _send(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
    try:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(answer.body)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True
