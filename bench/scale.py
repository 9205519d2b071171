"""Catalog-scale figures: drops of 2,000 and 10,000 rows to all their render runs requested, and a 1,000-SKU
backfill through the daemon, and a batch of emulated API clips (bench/api_batch.py: wall time against the sum of
the render delays, at the `api` pool's limit and one at a time).

    python bench/scale.py [--drop-rows 2000,10000] [--planned-events both] [--skip-drops] [--backfill-skus 1000]
                          [--catalog-skus 10000]
                          [--per-run-sample 30] [--work-sample 100]
                          [--out bench/results/scale.json]

Targets: a 10,000-row drop has all its render runs requested within 60 s (drop sensor tick, ingest run, render
sensor tick and run submission, through a real daemon and code server; the baseline is one run per SKU at the
submission rate measured in the same run). Each drop is measured with Dagster's default planned events (one per
SKU) and with its opt-in of one per run (`--planned-events`); the backfill on the CPU tier at most 30 minutes
with Dagster's own overhead at most 0.5 s per SKU. The baseline is one run per partition, also through the daemon.
The backfill takes its SKUs from a catalog of `--catalog-skus` partitions, because some of Dagster's per-SKU costs
grow with the number of partitions, not with the size of the backfill.

Overhead is counted in CPU seconds, not wall seconds: on 2 cores with 4 concurrent runs, a run's wall time is
mostly waiting for a core, which is not Dagster's cost. Overhead per SKU = CPU seconds of the daemon and every
process it starts (code server, runs), sampled while the backfill runs, divided by the SKUs, minus the CPU
seconds per SKU of the same work done without Dagster, run the same way: as many worker processes at once as
the instance runs runs at once (4 processes on 2 cores cost more CPU per SKU than one, Dagster or not).
"""

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg
import psutil
import yaml
from rich.console import Console
from rich.table import Table

from bench.machine import machine_info
from devkit.sample_art import PRODUCT_KINDS, draw_packshot
from tests.servers import free_port, seaweedfs

console = Console()
KINDS = list(PRODUCT_KINDS)
VENV_BIN = Path(sys.executable).parent  # the CLIs beside this interpreter, activated or not
BRANDS_YAML = "brands:\n  acme:\n    background: {style: studio, colors: ['#F1ECE4', '#D6CBBB']}\n"
SUBSET_PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"  # Dagster's own opt-in (dagster#32242)


def base_packshots(size: int) -> list[bytes]:
    shots = []
    for index, kind in enumerate(KINDS):
        color = ((60 + 37 * index) % 200, (90 + 53 * index) % 200, (120 + 71 * index) % 200)
        buffer = io.BytesIO()
        draw_packshot(kind, color=color, accent=(230, 200, 90), size=size).save(buffer, "PNG")
        shots.append(buffer.getvalue())
    return shots


def distinct_packshot(base: bytes, index: int) -> bytes:
    """The base image with the SKU's number stamped in a corner pixel row, so every SKU has its own bytes."""
    from PIL import Image

    image = Image.open(io.BytesIO(base)).convert("RGB")
    for bit in range(16):
        image.putpixel((bit, 0), (254, 254, 254) if index >> bit & 1 else (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def catalog_rows(count: int, image_for) -> str:
    lines = ["sku_id,title,category,brand,image,tier,prompt,aspect"]
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        tier = "hero" if index % 10 == 0 else "bulk"
        lines.append(f"SKU-{index:06d},{kind} {index},{PRODUCT_KINDS[kind]},acme,{image_for(index)},{tier},,16:9")
    return "\n".join(lines) + "\n"


def drop_instance_yaml(home: Path) -> None:
    """The repository's production instance settings (PostgreSQL), with render runs held in the queue: the drop
    section measures how soon every run is requested, so the renders themselves are not started (the ingest
    run is)."""
    config = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    runs = config.setdefault("concurrency", {}).setdefault("runs", {})
    runs["tag_concurrency_limits"] = [{"key": "skuvid/render", "limit": 0}]
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def measure_drop_to_runs(rows: int, work: Path, planned_events: str = "per-partition", timeout_s: float = 1800) -> dict:
    """One catalog file of `rows` SKUs put into the drop zone of a running daemon and code server (as in
    production): seconds until its ingest run is requested, until the ingest has run, and until every render run
    is requested (tick plus run submission). Packshots are 8 tiny images reused, so the figure is the
    orchestration's, not the image intake's (bench/pixel_identity.py measures that).

    `planned_events="subset"` runs the daemon with Dagster's opt-in DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS:
    one planned event per asset and run instead of one per SKU, at the cost of the UI no longer marking the SKUs
    of a failed batched run as failed (README, "Operating skuvid")."""
    from tests.servers import postgres

    home, data = work / "dagster_home", work / "data"
    home.mkdir(parents=True)
    drop_instance_yaml(home)
    with seaweedfs(work / "s3") as server, postgres() as database:
        client = server.client()
        client.create_bucket(Bucket="catalog-drops")
        for index, shot in enumerate(base_packshots(128)):
            client.put_object(Bucket="catalog-drops", Key=f"drops/packshots/{index}.png", Body=shot)
        (work / "brands.yaml").write_text(BRANDS_YAML)
        env = {**os.environ, **server.env(), "DAGSTER_HOME": str(home), "SKUVID_STORAGE_ROOT": str(data),
               "SKUVID_DROP_ZONE": "s3://catalog-drops/drops/", "SKUVID_BRANDS": str(work / "brands.yaml"),
               "SKUVID_LEDGER_URL": f"sqlite:///{work}/ledger.sqlite", "SKUVID_PACKSHOT_WAIT_S": "0",
               "DAGSTER_PG_URL": database.url.replace("+psycopg2", "")}
        if planned_events == "subset":
            env[SUBSET_PLANNED_EVENTS_ENV] = "1"
        port = free_port()
        workspace = work / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port,
                                                                              "location_name": "skuvid"}}]}))
        code_server = subprocess.Popen([str(VENV_BIN / "dagster"), "code-server", "start", "-m",
                                        "pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO,
                                       env=env, stdout=open(work / "code-server.log", "wb"), stderr=subprocess.STDOUT)
        daemon = None
        try:
            wait_for_port(port, timeout_s=120)
            daemon = subprocess.Popen([str(VENV_BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=REPO,
                                      env=env, stdout=open(work / "daemon.log", "wb"), stderr=subprocess.STDOUT)
            with patch.dict(os.environ, {"DAGSTER_HOME": str(home), "DAGSTER_PG_URL": env["DAGSTER_PG_URL"]}):
                instance = dg.DagsterInstance.get()
            time.sleep(5)  # the daemon's first sensor ticks find an empty zone and keep that cursor
            body = catalog_rows(rows, lambda i: f"packshots/{i % len(KINDS)}.png").encode()
            dropped = time.time()
            client.put_object(Bucket="catalog-drops", Key="drops/big-drop.csv", Body=body)
            expected = -(-rows // 100)
            ingest, renders = None, []
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and len(renders) < expected:
                time.sleep(0.5)
                if ingest is None or ingest.end_time is None:
                    found = instance.get_run_records(dg.RunsFilter(job_name="catalog_job"), limit=1)
                    ingest = found[0] if found else None
                renders = instance.get_run_records(dg.RunsFilter(job_name="sku_video_job"))
            if len(renders) < expected:
                raise TimeoutError(f"{len(renders)} of {expected} render runs requested after {timeout_s}s")
            created = sorted(r.create_timestamp.timestamp() for r in renders)
            skus_requested = sum(len(partitions_in(r.dagster_run, instance)) for r in renders)
            stop(daemon)
            daemon = None
            baseline = run_creation_seconds(instance, list(instance.get_dynamic_partitions("sku")))
        finally:
            for process in (daemon, code_server):
                if process is not None:
                    stop(process)
    return {
        "rows": rows,
        "planned_events": planned_events,
        "render_runs": len(renders),
        "skus_in_render_runs": skus_requested,
        "drop_to_ingest_run_requested_s": round(ingest.create_timestamp.timestamp() - dropped, 1),
        "ingest_run_s": round(ingest.end_time - ingest.start_time, 1),
        "ingest_end_to_first_render_run_s": round(created[0] - ingest.end_time, 1),
        "render_runs_submission_s": round(created[-1] - created[0], 1),
        "submission_s_per_run": round((created[-1] - created[0]) / max(len(created) - 1, 1), 3),
        "drop_to_all_runs_requested_s": round(created[-1] - dropped, 1),
        "target_s": 60 if rows >= 10_000 else None,
        **baseline,
    }


def run_creation_seconds(instance: dg.DagsterInstance, keys: list[str]) -> dict:
    """Wall seconds Dagster takes to create one render run for 1 SKU and for a range of 100 (same instance, daemon
    stopped): per SKU, the baseline of one run per SKU against the batched runs. The cost of creating a run grows
    with its partitions (a planned-materialization event per partition and asset), so batching saves only the
    per-run part."""
    from dagster._core.execution.api import create_execution_plan

    from pipelines.definitions import defs

    job = defs.resolve_job_def("sku_video_job")
    timings = {}
    for name, tags in (("one_sku", {"dagster/partition": keys[-1]}),
                       ("batch_of_100", {"dagster/asset_partition_range_start": keys[-100],
                                         "dagster/asset_partition_range_end": keys[-1]})):
        plan = create_execution_plan(job, run_config={}, tags=tags, instance_ref=instance.get_ref())
        started = time.perf_counter()
        instance.create_run_for_job(job, execution_plan=plan, tags={**tags, "skuvid/bench": "creation"})
        timings[name] = time.perf_counter() - started
    return {"create_run_s_one_sku": round(timings["one_sku"], 2),
            "create_run_s_per_sku_in_batch_of_100": round(timings["batch_of_100"] / 100, 3),
            "create_run_ratio_one_per_sku_vs_batched": round(timings["one_sku"] / (timings["batch_of_100"] / 100), 1)}


def measure_big_drop_tick_and_ingest(rows: int, work: Path) -> dict:
    """A `rows`-row drop: the drop sensor's tick (it lists, never reads) and the ingest run's work, in this process
    on a SQLite instance, with 8 tiny packshots reused."""
    import logging

    from assets.catalog.sku_catalog import CatalogConfig, ingest_catalog_file
    from pipelines.sensors import new_sku_drops
    from resources.storage import StorageResource

    with seaweedfs(work / "s3") as server, patch.dict(os.environ):
        os.environ.update(server.env())
        client = server.client()
        client.create_bucket(Bucket="catalog-drops")
        for index, shot in enumerate(base_packshots(128)):
            client.put_object(Bucket="catalog-drops", Key=f"drops/packshots/{index}.png", Body=shot)
        (work / "brands.yaml").write_text(BRANDS_YAML)
        os.environ.update({"SKUVID_DROP_ZONE": "s3://catalog-drops/drops/", "SKUVID_BRANDS": str(work / "brands.yaml"),
                           "SKUVID_PACKSHOT_WAIT_S": "0"})
        body = catalog_rows(rows, lambda i: f"packshots/{i % len(KINDS)}.png").encode()
        client.put_object(Bucket="catalog-drops", Key="drops/big-drop.csv", Body=body)
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            [request] = new_sku_drops(dg.build_sensor_context(instance=instance)).run_requests
            ticked = time.perf_counter()
            config = CatalogConfig(**request.run_config["ops"]["sku_catalog"]["config"])
            metadata = ingest_catalog_file(instance, StorageResource(root=str(work / "data")), config,
                                           logging.getLogger("bench"))
            ingested = time.perf_counter()
            partitions = len(instance.get_dynamic_partitions("sku"))
    return {"rows": rows, "file_bytes": len(body), "tick_s": round(ticked - started, 2), "tick_target_s": 5,
            "ingest_s": round(ingested - ticked, 1), "accepted": metadata["accepted"], "partitions": partitions}


def partitions_in(run, instance: dg.DagsterInstance) -> list[str]:
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    keys = list(instance.get_dynamic_partitions("sku"))
    start, end = run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
    return keys[keys.index(start) : keys.index(end) + 1]


def pure_work(sample: list[str], storage_root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the keyframe, clip, QA and publish work a run does for `sample`, without Dagster."""
    from assets.catalog.sku_catalog import sku_lookup
    from assets.sku_video.artifacts import load_files, renditions
    from assets.sku_video.clips import ClipConfig, render_attempt
    from assets.sku_video.keyframes import render_keyframe
    from assets.sku_video.publish import publish_renditions
    from pipelines.resources import build_resources
    from resources.storage import StorageResource
    from videokit.sku_video.compose import KeyframeLayers

    resources = build_resources()
    storage = StorageResource(root=str(storage_root))
    started, cpu_started = time.perf_counter(), time.process_time()
    lookup = sku_lookup(storage)
    for sku_id in sample:
        passed = []
        for rendition in renditions(lookup(sku_id)):
            keyframe = render_keyframe(storage, rendition, resources["compose"], lambda _: None)
            layers = KeyframeLayers.from_files(load_files(storage, keyframe))
            clip, _ = render_attempt(storage, rendition, keyframe, layers, "motion", resources["motion"],
                                     ClipConfig(), 0, 1, lambda _: None)
            passed.append((rendition, clip, keyframe, 5))
        publish_renditions(storage, sku_id, passed)
    return time.perf_counter() - started, time.process_time() - cpu_started


def pure_work_in_parallel(sample: list[str], storage_root: Path, processes: int) -> tuple[float, float]:
    """Wall seconds per SKU of the whole sample, and CPU seconds per SKU, with `processes` workers at once."""
    shares = [sample[i::processes] for i in range(processes)]
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(pure_work, shares, [storage_root] * processes))
    wall = time.perf_counter() - started
    return wall / len(sample), sum(cpu for _, cpu in results) / len(sample)


def run_concurrency(dagster_yaml: Path) -> int:
    return yaml.safe_load(dagster_yaml.read_text())["concurrency"]["runs"]["max_concurrent_runs"]


class ProcessTreeCpu(threading.Thread):
    """CPU seconds used by some processes and all their descendants, sampled every `interval_s`, split by role:
    `runs` (run worker processes and what they start) and `orchestration` (the daemon and the code server).

    A process's last sample stands after it exits, so up to `interval_s` of each process's CPU is missed.
    """

    def __init__(self, root_pids: list[int], interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.roots = [psutil.Process(pid) for pid in root_pids]
        self.interval_s = interval_s
        self.seen: dict[tuple[int, float], tuple[str, float]] = {}
        self.programs: dict[tuple[int, float], str] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        for root in self.roots:
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                try:
                    with process.oneshot():
                        times = process.cpu_times()
                        # The role is read every time: a run worker is first seen between fork and exec, with
                        # the code server's command line.
                        key = (process.pid, process.create_time())
                        self.seen[key] = (self.role(process, root), times.user + times.system)
                        self.programs[key] = program(process.cmdline())
                except psutil.NoSuchProcess:
                    continue

    @staticmethod
    def role(process: psutil.Process, root: psutil.Process) -> str:
        # The code server starts each run as a multiprocessing "spawn" child; a run starts log tailers.
        lineage = [process, *(p for p in process.parents() if p.pid != root.pid)]
        return "runs" if any("spawn_main" in " ".join(p.cmdline()) for p in lineage) else "orchestration"

    def by_program(self) -> dict[str, float]:
        """CPU seconds per kind of process (daemon, code server, run worker, log tailer, ...)."""
        self.sample()
        totals: dict[str, float] = {}
        for key, (_, seconds) in self.seen.items():
            name = self.programs.get(key, "?")
            totals[name] = totals.get(name, 0.0) + seconds
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def totals(self) -> dict[str, float]:
        self.sample()
        totals = {"runs": 0.0, "orchestration": 0.0}
        for role, seconds in self.seen.values():
            totals[role] += seconds
        return totals

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def program(cmdline: list[str]) -> str:
    """A short name for a process: the program and, for Python, the script or module it runs."""
    if not cmdline:
        return "?"
    words = [Path(cmdline[0]).name]
    rest = [w for w in cmdline[1:] if not w.startswith("-")]
    if words[0].startswith("python") and rest:
        words.append(Path(rest[0]).name if "/" in rest[0] else rest[0])
    elif rest:
        words.append(rest[0])
    if "spawn_main" in " ".join(cmdline):
        words = [words[0], "spawned run worker"]
    return " ".join(words)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def cpu_since(cpu: ProcessTreeCpu, start: dict[str, float]) -> dict[str, float]:
    return {role: seconds - start[role] for role, seconds in cpu.totals().items()}


def wait_for_runs(instance: dg.DagsterInstance, tags: dict, expected_runs: int, timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    done = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags=tags))
        if len(runs) >= expected_runs and all(r.status in done for r in runs):
            return runs
        time.sleep(2)
    raise TimeoutError(f"runs tagged {tags} not finished after {timeout_s}s")


def run_seconds(instance: dg.DagsterInstance, runs: list) -> float:
    total = 0.0
    for run in runs:
        record = instance.get_run_record_by_id(run.run_id)
        total += record.end_time - record.start_time
    return total


def prepare_catalog(work: Path, rows: int) -> tuple[dg.DagsterInstance, list[str], Path]:
    """A Dagster home, storage and a `rows`-SKU catalog materialized into `work`: the instance, its sku
    partitions in order, and the storage folder. Points this process's environment at them."""
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    data = work / "data"
    catalog_dir = work / "catalog"
    (catalog_dir / "packshots").mkdir(parents=True)
    for index, shot in enumerate(base_packshots(900)):
        (catalog_dir / "packshots" / f"{index}.png").write_bytes(shot)
    (catalog_dir / "brands.yaml").write_text(BRANDS_YAML)
    (catalog_dir / "catalog.csv").write_text(catalog_rows(rows, lambda i: f"packshots/{i % len(KINDS)}.png"))
    os.environ.update({"DAGSTER_HOME": str(home), "SKUVID_STORAGE_ROOT": str(data)})

    from pipelines.definitions import defs
    from pipelines.instance import apply_pool_limits

    instance = dg.DagsterInstance.get()
    apply_pool_limits(instance)
    config = {"ops": {"sku_catalog": {"config": {"source": str(catalog_dir / "catalog.csv"),
                                                 "brands": str(catalog_dir / "brands.yaml")}}}}
    defs.resolve_job_def("catalog_job").execute_in_process(instance=instance, run_config=config)
    return instance, sorted(instance.get_dynamic_partitions("sku")), data


def measure_backfill(skus: int, per_run_sample: int, catalog_skus: int, work_sample: int, work: Path) -> dict:
    # Three disjoint sets of SKUs: the batched backfill, the one-run-per-SKU baseline, and the work done
    # without Dagster (so no set finds another's artifacts and skips its rendering).
    measured = skus + per_run_sample + work_sample
    instance, all_skus, data = prepare_catalog(work, max(catalog_skus, measured))
    home = work / "dagster_home"
    env = dict(os.environ)
    from pipelines.definitions import defs

    batched, single = all_skus[:skus], all_skus[skus : skus + per_run_sample]
    without_dagster = all_skus[skus + per_run_sample : measured]

    processes = run_concurrency(home / "dagster.yaml")
    console.print(f"measuring the same work without Dagster, {processes} processes at once ...")
    work_wall, work_cpu = pure_work_in_parallel(without_dagster, data, processes)

    # As in production (workspace.production.yaml): one long-lived code server, never replaced.
    port = free_port()
    workspace = work / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port,
                                                                          "location_name": "skuvid"}}]}))
    code_server = subprocess.Popen([str(VENV_BIN / "dagster"), "code-server", "start", "-m", "pipelines.definitions",
                                    "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
                                   stdout=open(work / "code-server.log", "wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, timeout_s=120)
    daemon = subprocess.Popen([str(VENV_BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=REPO, env=env,
                              stdout=open(work / "daemon.log", "wb"), stderr=subprocess.STDOUT)
    cpu = ProcessTreeCpu([daemon.pid, code_server.pid])
    cpu.start()
    try:
        from dagster._core.execution.backfill import PartitionBackfill
        from dagster._core.utils import make_new_backfill_id

        console.print(f"backfill of {len(batched)} SKUs through the daemon (batched runs) ...")
        backfill_id = make_new_backfill_id()
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id, asset_graph=defs.resolve_asset_graph(), partition_names=batched,
            asset_selection=[dg.AssetKey("keyframe"), dg.AssetKey("clip"), dg.AssetKey("published_video")],
            backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance, all_partitions=False,
            title="bench", description=None, run_config=None,
        )
        started, cpu_started, programs_started = time.perf_counter(), cpu.totals(), cpu.by_program()
        instance.add_backfill(backfill)
        batched_runs = wait_for_backfill(instance, backfill_id, timeout_s=3600)
        batched_wall, batched_cpu = time.perf_counter() - started, cpu_since(cpu, cpu_started)
        batched_programs = {name: seconds - programs_started.get(name, 0.0) for name, seconds in cpu.by_program().items()}

        console.print(f"baseline: {len(single)} SKUs, one run per partition through the daemon ...")
        started, cpu_started = time.perf_counter(), cpu.totals()
        subprocess.run([str(VENV_BIN / "dagster"), "job", "backfill", "-w", str(workspace), "-j", "sku_video_job",
                        "--partitions", ",".join(single), "--tags", json.dumps({"skuvid/bench": "per-run"}),
                        "--noprompt"], cwd=REPO, env=env, check=True, capture_output=True)
        single_runs = wait_for_runs(instance, {"skuvid/bench": "per-run"}, len(single), timeout_s=3600)
        single_wall, single_cpu = time.perf_counter() - started, cpu_since(cpu, cpu_started)
    finally:
        cpu.stop()
        for process in (daemon, code_server):
            stop(process)

    batched_cpu_per_sku = sum(batched_cpu.values()) / len(batched)
    single_cpu_per_sku = sum(single_cpu.values()) / len(single)
    batched_overhead = max(batched_cpu_per_sku - work_cpu, 0.0)
    single_overhead = max(single_cpu_per_sku - work_cpu, 0.0)
    failed = [r.run_id for r in batched_runs + single_runs if r.status != dg.DagsterRunStatus.SUCCESS]
    return {
        "skus": len(batched),
        "catalog_skus": len(all_skus),
        "runs": len(batched_runs),
        "concurrent_runs": processes,
        "wall_s": round(batched_wall, 1),
        "skus_per_minute": round(len(batched) / batched_wall * 60, 1),
        "work_sample_skus": len(without_dagster),
        "work_wall_s_per_sku_without_dagster": round(work_wall, 3),
        "work_cpu_s_per_sku_without_dagster": round(work_cpu, 3),
        "cpu_s_per_sku": round(batched_cpu_per_sku, 3),
        "run_cpu_s_per_sku": round(batched_cpu["runs"] / len(batched), 3),
        "orchestration_cpu_s_per_sku": round(batched_cpu["orchestration"] / len(batched), 3),
        "overhead_cpu_s_per_sku": round(batched_overhead, 3),
        "overhead_share": round(batched_overhead / batched_cpu_per_sku, 3) if batched_cpu_per_sku else None,
        "run_wall_s_per_sku": round(run_seconds(instance, batched_runs) / len(batched), 3),
        "baseline_skus": len(single),
        "baseline_wall_s": round(single_wall, 1),
        "baseline_skus_per_minute": round(len(single) / single_wall * 60, 1),
        "baseline_cpu_s_per_sku": round(single_cpu_per_sku, 3),
        "baseline_run_cpu_s_per_sku": round(single_cpu["runs"] / len(single), 3),
        "baseline_orchestration_cpu_s_per_sku": round(single_cpu["orchestration"] / len(single), 3),
        "baseline_overhead_cpu_s_per_sku": round(single_overhead, 3),
        "baseline_run_wall_s_per_sku": round(run_seconds(instance, single_runs) / len(single), 3),
        "cpu_s_per_sku_by_program": {name: round(seconds / len(batched), 3) for name, seconds in batched_programs.items()
                                     if seconds / len(batched) >= 0.001},
        "overhead_ratio_per_run_vs_batched": round(single_overhead / batched_overhead, 1) if batched_overhead else None,
        "failed_runs": failed,
        "targets": {"overhead_cpu_s_per_sku": 0.5, "wall_s": 1800},
    }


def wait_for_backfill(instance: dg.DagsterInstance, backfill_id: str, timeout_s: float) -> list:
    from dagster._core.execution.backfill import BulkActionStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backfill = instance.get_backfill(backfill_id)
        if backfill.status in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED,
                               BulkActionStatus.FAILED, BulkActionStatus.CANCELED, BulkActionStatus.COMPLETED):
            return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} not finished after {timeout_s}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drop-rows", default="2000,10000", help="rows of each drop measured (comma-separated)")
    parser.add_argument("--skip-drops", action="store_true")
    parser.add_argument("--planned-events", choices=["per-partition", "subset", "both"], default="both",
                        help="Dagster's planned events for the drops: one per SKU (the default), one per run (opt-in)")
    parser.add_argument("--big-drop-rows", type=int, default=100_000, help="rows of the drop whose tick and ingest "
                        "are timed in-process (0 to skip)")
    parser.add_argument("--backfill-skus", type=int, default=1_000)
    parser.add_argument("--catalog-skus", type=int, default=10_000, help="sku partitions in the instance")
    parser.add_argument("--per-run-sample", type=int, default=30)
    parser.add_argument("--work-sample", type=int, default=100,
                        help="SKUs rendered without Dagster for the baseline (20 left it about 0.1 CPU-s/SKU noisy)")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--api-skus", type=int, default=100, help="SKUs of the emulated API batch (0 to skip)")
    parser.add_argument("--api-render-s", type=float, default=20.0, help="the emulator's render delay per clip")
    parser.add_argument("--out", default=str(REPO / "bench/results/scale.json"))
    args = parser.parse_args()
    results = {"measured_at": datetime.now(UTC).isoformat(), "machine": machine_info()}
    with tempfile.TemporaryDirectory(prefix="skuvid-scale-") as tmp:
        work = Path(tmp)
        if args.big_drop_rows:
            results["big_drop"] = measure_big_drop_tick_and_ingest(args.big_drop_rows, work / "big-drop")
        if not args.skip_drops:
            modes = ["per-partition", "subset"] if args.planned_events == "both" else [args.planned_events]
            results["drops"] = [measure_drop_to_runs(int(rows), work / f"drop-{rows}-{mode}", mode)
                                for mode in modes for rows in args.drop_rows.split(",")]
        if not args.skip_backfill:
            (work / "backfill").mkdir()
            results["backfill"] = measure_backfill(args.backfill_skus, args.per_run_sample, args.catalog_skus,
                                                   args.work_sample, work / "backfill")
    table = Table(title="skuvid at catalog scale")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    if "big_drop" in results:
        big = results["big_drop"]
        table.add_row(f"drop sensor tick, {big['rows']:,}-row file (s)", f"{big['tick_s']:.2f}", "< 5")
        table.add_row(f"  its ingest run's work: {big['accepted']:,} SKUs, {big['partitions']:,} partitions (s)",
                      f"{big['ingest_s']:.0f}", "")
    for drop in results.get("drops", []):
        table.add_row(f"drop of {drop['rows']:,} rows to all {drop['render_runs']} render runs requested, planned "
                      f"events {drop.get('planned_events', 'per-partition')} (s)",
                      f"{drop['drop_to_all_runs_requested_s']:.1f}", "<= 60" if drop["target_s"] else "")
        table.add_row("  drop tick / ingest run / render tick / submission (s)",
                      f"{drop['drop_to_ingest_run_requested_s']:.1f} / {drop['ingest_run_s']:.1f} / "
                      f"{drop['ingest_end_to_first_render_run_s']:.1f} / {drop['render_runs_submission_s']:.1f}", "")
        table.add_row("  creating a run, per SKU: one run per SKU / batches of 100 (s), ratio",
                      f"{drop['create_run_s_one_sku']:.2f} / {drop['create_run_s_per_sku_in_batch_of_100']:.3f}, "
                      f"{drop['create_run_ratio_one_per_sku_vs_batched']}x", "")
    if "backfill" in results:
        b = results["backfill"]
        table.add_row(f"backfill of {b['skus']:,} of {b['catalog_skus']:,} SKUs in {b['runs']} runs (s)",
                      f"{b['wall_s']:.0f}", "<= 1800")
        table.add_row("SKUs per minute, batched / one run per SKU",
                      f"{b['skus_per_minute']:.1f} / {b['baseline_skus_per_minute']:.1f}", "")
        table.add_row("work per SKU without Dagster, CPU (s)", f"{b['work_cpu_s_per_sku_without_dagster']:.2f}", "")
        table.add_row("Dagster overhead per SKU, batched, CPU (s)", f"{b['overhead_cpu_s_per_sku']:.2f}", "<= 0.5")
        table.add_row("  of which daemon and code server (s)", f"{b['orchestration_cpu_s_per_sku']:.2f}", "")
        table.add_row("  of which inside the runs (s)",
                      f"{b['run_cpu_s_per_sku'] - b['work_cpu_s_per_sku_without_dagster']:.2f}", "")
        table.add_row("overhead share of all CPU, batched", f"{b['overhead_share']:.1%}", "")
        table.add_row("Dagster overhead per SKU, one run per SKU, CPU (s)", f"{b['baseline_overhead_cpu_s_per_sku']:.2f}", "")
        table.add_row("overhead ratio, one run per SKU / batched", f"{b['overhead_ratio_per_run_vs_batched']}x", "")
    console.print(table)
    if args.api_skus:
        from bench.api_batch import measure_api_batch, print_api_batch

        with tempfile.TemporaryDirectory(prefix="skuvid-api-batch-") as tmp:
            results["api_batch"] = measure_api_batch(args.api_skus, args.api_render_s, 4, Path(tmp))
        print_api_batch(console, results["api_batch"])
    console.print(machine_info())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
