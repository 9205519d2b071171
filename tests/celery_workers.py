"""Redis and Celery workers for tests: real processes on 127.0.0.1, started and stopped by the tests.

    with redis_server(tmp_path / "redis") as redis:
        env = {**os.environ, **redis.env(), "DAGSTER_HOME": str(home), ...}
        with celery_worker("cpu", env, tmp_path / "logs") as worker:
            ...  # runs of a `sku_video_cpu_job` (or any job on the celery executor) execute on it
            worker.kill()  # SIGKILL the worker and its pool processes, as a machine that dies

A worker is `skuvid worker --queues Q` (so `dagster-celery worker start` underneath), in its own process
group; its log (`worker.log_path`) has Celery's lines, and its name is in the run's engine events
("Celery worker": "<name>@<host>"), which tells which worker ran which step.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port


@dataclass
class RedisServer:
    port: int
    data_dir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def env(self) -> dict[str, str]:
        """What a launcher and its workers need to share this broker (and result backend)."""
        return {"SKUVID_CELERY_BROKER_URL": self.url}

    def start(self, timeout_s: float = 15.0) -> None:
        redis = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/bin")
        if redis is None:
            raise RuntimeError("`redis-server` not found: install Debian's redis-server (scripts/system-deps.sh)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Append-only file, synced on every write: queued steps and their results survive a restart.
        command = [redis, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
                   "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
                   "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_redis(self, timeout_s)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop (SIGTERM: Redis syncs its append-only file), stay down `down_s`, start on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()


def wait_for_redis(server: RedisServer, timeout_s: float) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                log = server.data_dir / "redis.log"
                raise RuntimeError(f"redis-server exited with {server.process.returncode}: "
                                   f"{log.read_text()[-2000:] if log.exists() else ''}")
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server not ready on port {server.port} after {timeout_s}s")
    finally:
        client.close()


@contextmanager
def redis_server(data_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class CeleryWorker:
    name: str
    queues: tuple[str, ...]
    log_path: Path
    process: subprocess.Popen
    log_file: object = field(repr=False, default=None)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as when its machine dies."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # Celery's warm shutdown
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log_file is not None:
            self.log_file.close()


def start_celery_worker(queues: str | tuple[str, ...], env: Mapping[str, str], log_dir: Path, *,
                        name: str | None = None, concurrency: int = 1, timeout_s: float = 120.0,
                        skip_checks: bool = False) -> CeleryWorker:
    """`skuvid worker --queues ...` in its own process group; returns once Celery says it is ready."""
    worker = spawn_celery_worker(queues, env, log_dir, name=name, concurrency=concurrency, skip_checks=skip_checks)
    wait_until_ready(worker, timeout_s)
    return worker


def spawn_celery_worker(queues: str | tuple[str, ...], env: Mapping[str, str], log_dir: Path, *,
                        name: str | None = None, concurrency: int = 1, skip_checks: bool = False) -> CeleryWorker:
    """Start `skuvid worker --queues ...` in its own process group without waiting for it."""
    queues = (queues,) if isinstance(queues, str) else tuple(queues)
    name = name or f"{'-'.join(queues)}-{uuid.uuid4().hex[:6]}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - open while the worker runs, closed by stop()
    command = [str(Path(sys.executable).parent / "skuvid"), "worker", "--queues", ",".join(queues),
               "--name", name, "--concurrency", str(concurrency)] + (["--skip-checks"] if skip_checks else [])
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=dict(env),
                               start_new_session=True)
    return CeleryWorker(name, queues, log_path, process, log_file)


def wait_until_ready(worker: CeleryWorker, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            worker.stop()
            raise RuntimeError(f"worker {worker.name} exited with {worker.process.returncode}: {worker.log()[-3000:]}")
        if " ready." in worker.log():
            return
        time.sleep(0.2)
    worker.stop()
    raise RuntimeError(f"worker {worker.name} not ready after {timeout_s}s: {worker.log()[-3000:]}")


@contextmanager
def celery_workers(specs: list[dict], env: Mapping[str, str], log_dir: Path, timeout_s: float = 120.0
                   ) -> Iterator[dict[str, CeleryWorker]]:
    """Several workers started at once (their start-ups overlap), by name; each spec holds `queues` and
    optionally `name`, `concurrency`, `skip_checks`, `env` (overrides for that worker)."""
    workers: dict[str, CeleryWorker] = {}
    try:
        for spec in specs:
            spec = dict(spec)
            worker_env = {**env, **spec.pop("env", {})}
            worker = spawn_celery_worker(spec.pop("queues"), worker_env, log_dir, **spec)
            workers[worker.name] = worker
        for worker in workers.values():
            wait_until_ready(worker, timeout_s)
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


@contextmanager
def celery_worker(queues: str | tuple[str, ...], env: Mapping[str, str], log_dir: Path, **options
                  ) -> Iterator[CeleryWorker]:
    worker = start_celery_worker(queues, env, log_dir, **options)
    try:
        yield worker
    finally:
        worker.stop()


def workers_by_step(instance, run_id: str) -> dict[str, list[str]]:
    """Step key -> the names of the workers that executed it, read from the run's engine events
    (dagster-celery reports "Executing steps ... in celery worker" with the worker's hostname)."""
    import dagster as dg

    ran: dict[str, list[str]] = {}
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
        event = record.event_log_entry.dagster_event
        metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
        if "Celery worker" in metadata and event.step_key:
            ran.setdefault(event.step_key, []).append(metadata["Celery worker"].value.split("@")[0])
    return ran


LOCATION = "tests.pipelines.celery_location"  # the project's Definitions, resources from the environment
REPO = Path(__file__).resolve().parents[1]


def new_database(server_url: str, prefix: str) -> str:
    """A fresh database on the PostgreSQL server of `server_url`; its URL."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def deployment_env(folder: Path, *, postgres_url: str, s3_env: Mapping[str, str], storage_root: str,
                   broker_url: str, routing: str, kling: Mapping[str, str], **settings: str) -> dict[str, str]:
    """What a launcher and its workers share, as a deployment's environment holds it: an instance on a fresh
    PostgreSQL database (dagster.postgres.yaml in `folder`/dagster_home), a fresh ledger database, artifacts under
    `storage_root`, the broker, the routing file and the Kling emulator's settings; `settings` add or override."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    (folder / "routing.yaml").write_text(routing)
    return {
        **os.environ,
        **s3_env,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": new_database(postgres_url, "dagster").replace("+psycopg2", ""),
        "SKUVID_LEDGER_URL": new_database(postgres_url, "ledger"),
        "SKUVID_STORAGE_ROOT": storage_root,
        "SKUVID_CELERY_BROKER_URL": broker_url,
        "SKUVID_ROUTING": str(folder / "routing.yaml"),
        "KLING_ACCESS_KEY": kling["access_key"],
        "KLING_SECRET_KEY": kling["secret_key"],
        "SKUVID_KLING_BASE_URL": kling["base_url"],
        **settings,
    }


def job_execute(env: Mapping[str, str], job: str, *, tags: dict | None = None, config: dict | None = None,
                timeout_s: float = 600) -> subprocess.CompletedProcess:
    """`dagster job execute` as a launcher would run it: with a broker configured the steps go to the workers."""
    command = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", LOCATION, "-j", job]
    if tags:
        command += ["--tags", json.dumps(tags)]
    if config:
        config_path = Path(env["DAGSTER_HOME"]) / f"{job}-{uuid.uuid4().hex[:6]}.json"
        config_path.write_text(json.dumps(config))
        command += ["-c", str(config_path)]
    return subprocess.run(command, env=env, check=False, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)


def launcher_batches(env: Mapping[str, str], batch_size: int, timeout_s: float = 300) -> list[list[str]]:
    """[job, first SKU, last SKU] per run: the launcher's own grouping of the SKUs by queue (pipelines/launch.py)."""
    code = ("import json, dagster as dg\n"
            f"from {LOCATION} import defs\n"
            "from pipelines.launch import sku_run_batches\n"
            "with dg.DagsterInstance.get() as instance:\n"
            f"    print(json.dumps(sku_run_batches(instance, defs.resources, batch_size={batch_size})))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True,
                          cwd=REPO, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
