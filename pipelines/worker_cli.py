"""`skuvid worker --queues gpu|api|cpu`: a Celery worker for Dagster steps, over `dagster-celery worker start`.

Configured from the environment, like every other process of a deployment:
  SKUVID_CELERY_BROKER_URL   redis://host:6379/0 (SKUVID_CELERY_BACKEND_URL for results, default the broker)
  DAGSTER_HOME               the instance (dagster.postgres.yaml + DAGSTER_PG_URL: runs and events)
  SKUVID_STORAGE_ROOT        s3://bucket/prefix (with AWS_* or AWS_ENDPOINT_URL): artifacts
  SKUVID_LEDGER_URL          postgresql://...: costs, paid jobs, pool slot leases
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import tenacity

from assets.queues import QUEUES
from pipelines.executors import BROKER_ENV

# Per worker process: a gpu worker runs one step at a time (one GPU, one resident model); an api worker
# mostly waits on providers (the `api` pool's leases still bound how many render at once); cpu uses the cores.
DEFAULT_CONCURRENCY = {"gpu": 1, "api": 4}
START_CHECK_RETRY_S = 5.0
SCHEMA_RACE_ERRORS = {"DuplicateObject", "DuplicateTable", "UniqueViolation"}


class WorkerSetupError(RuntimeError):
    pass


def add_worker_parser(commands) -> None:
    parser = commands.add_parser("worker", help="Start a Celery worker that executes Dagster steps of the given queues.")
    parser.add_argument("--queues", required=True,
                        help="Comma-separated queues to consume: gpu, api, cpu (e.g. `gpu` or `api,cpu`).")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="Steps at once (default: gpu 1, api 4, cpu the number of cores).")
    parser.add_argument("--name", default=None, help="Worker name (default: the queues, a short id and the host).")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--skip-checks", action="store_true",
                        help="Start without first checking that the instance and the storage can be reached.")


def parse_queues(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    unknown = [q for q in queues if q not in QUEUES]
    if not queues or unknown:
        raise WorkerSetupError(f"--queues {value!r}: expected one or more of {', '.join(QUEUES)}")
    return list(dict.fromkeys(queues))


def concurrency_for(queues: list[str], requested: int | None) -> int:
    if requested is not None:
        if not 1 <= requested <= 256:
            raise WorkerSetupError(f"--concurrency {requested}: expected 1 to 256")
        return requested
    if "gpu" in queues:
        return DEFAULT_CONCURRENCY["gpu"]
    if queues == ["api"]:
        return DEFAULT_CONCURRENCY["api"]
    return os.cpu_count() or 1


def check_environment(log) -> None:
    """Fail at start, naming the setting, when the worker could not run a step here."""
    if not os.environ.get(BROKER_ENV):
        raise WorkerSetupError(f"{BROKER_ENV} is not set: the broker URL, e.g. redis://redis.internal:6379/0")
    home = os.environ.get("DAGSTER_HOME")
    if not home or not (Path(home) / "dagster.yaml").is_file():
        raise WorkerSetupError("DAGSTER_HOME must name a folder with the instance's dagster.yaml "
                               "(dagster.postgres.yaml for several machines)")
    try:
        if open_instance_once_created():
            log("warning: the instance is SQLite in DAGSTER_HOME; workers on other machines need a shared "
                "instance (dagster.postgres.yaml)")
    except Exception as error:  # noqa: BLE001 - any failure to reach it is reported the same way
        raise WorkerSetupError(f"cannot reach the Dagster instance in {home}: {root_cause(error)}") from None
    from resources.storage import StorageResource

    root = os.environ.get("SKUVID_STORAGE_ROOT", ".data")
    try:
        # A short retry: at start an unreachable store is a setting to fix, not an outage to wait out.
        StorageResource(root=root, retry_s=START_CHECK_RETRY_S).exists(f"workers/{socket.gethostname()}.probe")
    except Exception as error:  # noqa: BLE001 - any failure to reach it is reported the same way
        raise WorkerSetupError(f"cannot reach the storage SKUVID_STORAGE_ROOT={root}: {type(error).__name__}: "
                               f"{error}") from None
    if not root.startswith("s3://"):
        log(f"warning: storage {root} is a local folder; workers on other machines need s3://bucket/prefix")
    if not os.environ.get("SKUVID_LEDGER_URL", "").startswith("postgresql"):
        log("warning: the ledger is not PostgreSQL (SKUVID_LEDGER_URL); workers on other machines need one "
            "shared ledger, or a paid job could be sent from two machines")


def _lost_schema_race(error: BaseException) -> bool:
    return root_cause(error).split(":")[0] in SCHEMA_RACE_ERRORS


@tenacity.retry(retry=tenacity.retry_if_exception(_lost_schema_race), stop=tenacity.stop_after_attempt(5),
                wait=tenacity.wait_random(0.2, 1.0), reraise=True)
def open_instance_once_created() -> bool:
    """Open the instance (creating its tables on first use); True when it is SQLite.

    Workers started together against a fresh PostgreSQL instance race to create Dagster's tables and
    types; the losers fail with "already exists" and find them made on the next try.
    """
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        return "Sqlite" in type(instance.run_storage).__name__


def root_cause(error: BaseException) -> str:
    """The first line of the innermost error: the driver's own words (host and port), not the retry wrapper's."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def worker_command(queues: list[str], concurrency: int, name: str, loglevel: str) -> list[str]:
    """dagster-celery's own worker command, run from this interpreter's environment.

    Prefork with concurrency 1 on gpu and no max-tasks-per-child: the pool process lives on, so the
    diffusers pipelines it loaded stay in memory for the next step; a pool process that dies (even by
    SIGKILL) has its step handed back to the queue (late acknowledgement, reject on worker lost).
    """
    bin_dir = Path(sys.executable).parent
    dagster_celery = str(bin_dir / "dagster-celery") if (bin_dir / "dagster-celery").exists() \
        else shutil.which("dagster-celery")
    if dagster_celery is None:
        raise WorkerSetupError("`dagster-celery` not found: install the dagster-celery package")
    queue_args = [arg for q in queues for arg in ("-q", q)]
    return [dagster_celery, "worker", "start", "-A", "pipelines.celery_app", *queue_args, "-n", name,
            "-l", loglevel, "--", "--pool", "prefork", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle"]


def run_worker(args, console) -> int:
    try:
        queues = parse_queues(args.queues)
        concurrency = concurrency_for(queues, args.concurrency)
        if not args.skip_checks:
            check_environment(console.print)
        name = args.name or f"{'-'.join(queues)}-{uuid.uuid4().hex[:6]}"
        command = worker_command(queues, concurrency, name, args.loglevel)
    except WorkerSetupError as error:
        console.print(f"skuvid worker: {error}", style="red", soft_wrap=True, markup=False)
        return 2
    console.print(f"worker {name}: queues {', '.join(queues)}, {concurrency} at a time")
    # The `celery` command that dagster-celery starts lives beside this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    os.execve(command[0], command, env)
    return 0
