"""Hostile inputs against every reader of untrusted files; prints and writes bench/results/hostile.json.

For each input: refused (with its reason) or read, crash or not, reads or fetches outside the source policy
(opens of a sentinel file outside the allowed folder, seen by an audit hook; requests reaching a loopback
server the policy does not open; bytes of a forbidden S3 object returned), wall time and peak memory (the
larger of Python's traced peak and the growth of the process's resident set while the input ran).
Targets: 0 crashes, 0 outside reads, every input under 2 s and 300 MB.

The corpus: every source-policy case (tests/hostile_sources.py) through every reader (catalog packshots,
brand-kit logos, campaign recipients, template and logos, training images, and the policy itself with
loopback opened for the slow-drip and huge-body servers), S3 names against a real SeaweedFS, two 400 MB
bodies at once, 20 spellings of one logo, catalog drops under hostile S3 keys (`#`, `?`, `//`, `%`, dot
segments; one sensor tick each, no other object may change), and, where those parsers exist, YAML alias bombs
and formula cells in rejects reports.

    .venv/bin/python bench/hostile.py [--deadline-s 1.5] [--out bench/results/hostile.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from assets.campaigns.inputs import CampaignError, LogoCache, load_template, read_recipients
from assets.catalog.packshot_intake import intake_packshots
from assets.catalog.rows import CatalogFileError
from assets.catalog.sku_catalog import load_brand_kits
from assets.training.inputs import load_script, resolve_visuals
from resources.routing import PolicyError
from resources.sources import SourceError, SourcePolicy, read_source
from resources.storage import StorageResource
from tests.hostile_sources import (
    LoggingServer,
    Sentinel,
    http_cases,
    local_cases,
    png_bytes,
    s3_cases,
)
from tests.servers import seaweedfs
from videokit.campaigns.spec import SpecError, load_spec
from videokit.training.script import ScriptError

MiB = 1024 * 1024
TARGET_S, TARGET_MB = 2.0, 300.0
REFUSALS = (SourceError, CatalogFileError, CampaignError, ScriptError, SpecError, PolicyError)
SECRET = b"SENTINEL-OUTSIDE-THE-POLICY"


@dataclass
class Outcome:
    reader: str
    input: str
    outcome: str  # refused | handled (processed, bad rows reported) | read | crash
    reason: str
    seconds: float
    peak_mb: float


class RssSampler:
    """Peak resident set of this process, sampled every 5 ms in a thread."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def __enter__(self):
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def measure(reader: str, name: str, run: Callable[[], str | None]) -> Outcome:
    """`run` returns a refusal reason, or None when it read the input; a REFUSALS exception is a refusal too."""
    tracemalloc.start()
    started = time.monotonic()
    with RssSampler() as rss:
        try:
            reason = run()
            outcome = "read" if reason is None else "handled" if reason.startswith("handled:") else "refused"
        except REFUSALS as error:
            outcome, reason = "refused", str(error)
        except Exception as error:  # noqa: BLE001 - a crash is what this benchmark counts
            outcome, reason = "crash", f"{type(error).__name__}: {error}"
    seconds = time.monotonic() - started
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = max(traced, rss.peak - rss.start) / MiB
    return Outcome(reader, name, outcome, (reason or "")[:240], round(seconds, 3), round(peak, 1))


def printable(names: list[str]) -> list[str]:
    return [n for n in names if n.isprintable()]


def reader_inputs(folder: Path, names: list[str], storage: StorageResource) -> list[tuple[str, str, Callable]]:
    """(reader, input, run) for every name through every reader of untrusted files."""
    inputs = []

    def packshot(name):
        result = intake_packshots([name], base=str(folder), storage=storage, max_pixels=40_000_000)[name]
        result = getattr(result, "reason", result)  # ImageUnavailable: refused or missing, said the same way
        return result if isinstance(result, str) else None

    def brand_logo(name):
        path = folder / "brands.yaml"
        path.write_text(f"brands:\n  acme:\n    background: {{style: solid, colors: ['#FFFFFF']}}\n"
                        f"    logo: {json.dumps(name)}\n")
        load_brand_kits(str(path))

    logos = LogoCache(str(folder))

    def campaign_logo(name):
        return logos(name)[1] or None

    def campaign_spec(name):
        path = folder / "spec.yaml"
        path.write_text(f"name: hostile\ntemplate: {{video: {json.dumps(name)}}}\nrecipients: {json.dumps(name)}\n"
                        "slots:\n  - {name: logo, kind: image, column: logo, start_s: 0, end_s: 1,"
                        " box: {x: 0.1, y: 0.1, w: 0.3, h: 0.3}}\n")
        return load_spec(path.read_bytes(), source=str(path)), str(path)

    def recipients(name):
        read_recipients(*campaign_spec(name))

    def template(name):
        spec, path = campaign_spec(name)
        load_template(spec, path, storage)

    def training_image(name):
        path = folder / "module.md"
        path.write_text(f"---\ntitle: Hostile\nvoice: en-us\n---\n\n## Picture\nimage: {name}\n\nA picture.\n")
        script, base = load_script(str(path))
        resolve_visuals(script, base, storage, lambda _: None)

    for reader, run, only_printable in [
        ("catalog packshot", packshot, False), ("brand-kit logo", brand_logo, True),
        ("campaign logo", campaign_logo, False), ("campaign recipients", recipients, True),
        ("campaign template", template, True), ("training image", training_image, True),
    ]:
        for name in printable(names) if only_printable else names:
            inputs.append((reader, name, lambda run=run, name=name: run(name)))
    return inputs


def policy_inputs(policy: SourcePolicy, cases) -> list[tuple[str, str, Callable]]:
    def run(case):
        try:
            data = read_source(case.uri, base=case.base, policy=policy)
        except SourceError as error:
            return str(error)
        return "returned bytes it should not have" if SECRET in data else None

    return [("source policy", f"{case.name}: {case.uri}", lambda case=case: run(case)) for case in cases]


def two_huge_bodies(server: LoggingServer, policy: SourcePolicy) -> Callable:
    def run():
        with ThreadPoolExecutor(2) as pool:
            reasons = list(pool.map(lambda path: _reason(server.url(path), policy), ["/huge", "/huge"]))
        return " | ".join(reasons)

    return run


def _reason(uri: str, policy: SourcePolicy) -> str:
    try:
        read_source(uri, policy=policy)
    except SourceError as error:
        return str(error)
    return "read"


def logo_spellings(folder: Path) -> Callable:
    """20 spellings of one 12 MB logo: the cache must keep it once."""
    import numpy as np
    from PIL import Image

    logo = folder / "logos" / "big.png"
    logo.parent.mkdir(exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)).save(logo)
    size = logo.stat().st_size
    spellings = [f"logos/{'./' * i}big.png" for i in range(10)] + [f"{'logos//' if i else 'logos/'}" + "./" * i + "big.png"
                                                                  for i in range(10)]

    def run():
        cache = LogoCache(str(folder))
        for spelling in spellings:
            data, error = cache(spelling)
            if data is None:
                return error
        if cache.held != size:
            raise AssertionError(f"held {cache.held} bytes for one {size}-byte logo")
        return None

    return run


def extra_corpus(tmp: Path) -> list[tuple[str, str, Callable]]:
    """Other parts of the hostile corpus, taken from their tests when those exist: YAML bombs, formula cells."""
    inputs = []
    try:
        from tests.test_yaml_inputs import bombs, brand_kits, front_matter, routing, spec
    except ImportError:
        print("(no YAML bomb corpus found: tests/test_yaml_inputs.py)")
    else:
        readers = {"routing.yaml": routing, "spring.yaml": spec, "module.md": front_matter,
                   "brands.yaml": lambda text: brand_kits(tmp, text)}
        for name, text in bombs().items():
            inputs.append(("yaml loader", f"alias bomb in {name}", lambda r=readers[name], t=text: _refusal(r, t)))
    try:
        from resources.csv_report import csv_report
    except ImportError:
        print("(no CSV report writer found: resources/csv_report.py)")
    else:
        for cell in ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd",
                     "x" * 1_000_000]:
            inputs.append(("rejects csv", f"cell {cell[:30]!r}", lambda c=cell: _formula_check(csv_report, c)))
    return inputs


def drop_key_inputs(s3, tmp: Path) -> list[tuple[str, str, Callable]]:
    """Catalog drops under hostile S3 keys, one sensor tick each: no other object may change."""
    import dagster as dg

    from assets.catalog.sku_catalog import CatalogConfig, ingest_catalog_file
    from pipelines.sensors import new_sku_drops
    from tests.pipelines.fixtures import BRANDS_YAML, ROWS, catalog_csv, write_packshots

    client, bucket = s3.client(), "hostile-zone"
    client.create_bucket(Bucket=bucket)
    for name, path in write_packshots(tmp / "shots").items():
        client.put_object(Bucket=bucket, Key=f"drops/packshots/{name}", Body=path.read_bytes())
    victim = catalog_csv(ROWS["HERO-1"]).encode()
    client.put_object(Bucket=bucket, Key="drops/victim.csv", Body=victim)
    (tmp / "drop-brands.yaml").write_text(BRANDS_YAML)
    storage = StorageResource(root=str(tmp / "drop-data"))
    state = {"cursor": None, "instance": dg.DagsterInstance.ephemeral()}

    def run(key: str | None) -> str | None:
        os.environ["SKUVID_DROP_ZONE"] = f"s3://{bucket}/drops/"
        os.environ["SKUVID_BRANDS"] = str(tmp / "drop-brands.yaml")
        os.environ["SKUVID_PACKSHOT_WAIT_S"] = "0"  # a packshot missing here is refused at once, not awaited
        try:
            if key is not None:
                client.put_object(Bucket=bucket, Key=key, Body=catalog_csv(ROWS["BULK-2"], "bad*id,X,c,fresh,p.png,hero,,"))
            context = dg.build_sensor_context(instance=state["instance"], cursor=state["cursor"])
            result = new_sku_drops(context)
            state["cursor"] = getattr(result, "cursor", None) or state["cursor"]
            for request in getattr(result, "run_requests", []):  # the ingest run the tick requests, its asset's code
                config = CatalogConfig(**request.run_config["ops"]["sku_catalog"]["config"])
                try:
                    ingest_catalog_file(state["instance"], storage, config, logging.getLogger("hostile"))
                except dg.Failure:
                    pass  # a refused file fails its run; what matters here is that no other object changed
            if client.get_object(Bucket=bucket, Key="drops/victim.csv")["Body"].read() != victim:
                return "returned bytes it should not have: drops/victim.csv was overwritten"
            return f"handled: one tick and its ingest run, {type(result).__name__}; no other object changed"
        finally:
            del os.environ["SKUVID_DROP_ZONE"], os.environ["SKUVID_BRANDS"], os.environ["SKUVID_PACKSHOT_WAIT_S"]

    run(None)  # the first tick ingests drops/victim.csv and pays the one-off imports and set-up
    keys = ["drops/victim.csv#x.csv", "drops/victim.csv?x=1.csv", "drops//p.csv", "drops/100%41.csv",
            "drops/a b ü€.csv", "drops/%2e%2e/p.csv", "drops/a%2Fb/p#1.csv"]
    return [("drop sensor", f"key {key!r}", lambda key=key: run(key)) for key in keys]


def _refusal(read: Callable, text: str) -> str | None:
    try:
        read(text)
    except REFUSALS as error:
        return str(error)
    return None


def _formula_check(csv_report: Callable, cell: str) -> str | None:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(csv_report(["row", "reason"], [[1, cell]]).decode())))
    written = rows[1][1]
    if written[:1] in ("=", "+", "-", "@", "\t", "\r") or len(written) > 10_000:
        raise AssertionError(f"cell written as {written[:40]!r} ({len(written)} chars)")
    return f"written as {written[:40]!r} ({len(written)} chars)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deadline-s", type=float, default=1.5, help="the source policy's deadline in this run")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "hostile.json"))
    args = parser.parse_args()
    for name in list(os.environ):
        if name.startswith("SKUVID_SOURCE_"):
            del os.environ[name]
    os.environ["SKUVID_SOURCE_DEADLINE_S"] = str(args.deadline_s)

    results: list[Outcome] = []
    with tempfile.TemporaryDirectory() as tmp_name, seaweedfs(Path(tmp_name) / "s3") as s3:
        tmp = Path(tmp_name)
        os.environ.update(s3.env())
        folder = tmp / "inputs"
        folder.mkdir()
        (folder / "ok.png").write_bytes(png_bytes())
        sentinel = Sentinel.create(tmp / "outside.png")
        opened, forbidden = LoggingServer("127.0.0.1"), LoggingServer("127.0.0.2")
        storage = StorageResource(root=str(tmp / "data"))

        bucket, other = "hostile-drops", "hostile-private"
        client = s3.client()
        for name in (bucket, other):
            client.create_bucket(Bucket=name)
        client.put_object(Bucket=other, Key="secret.png", Body=SECRET)
        client.put_object(Bucket=bucket, Key="private/secret.png", Body=SECRET)

        local = local_cases(folder, sentinel)
        web = http_cases(opened, forbidden, base="https://cdn.example/catalog/")
        names = [c.uri for c in local] + [c.uri for c in web]
        inputs = reader_inputs(folder, names, storage)
        loopback_open = SourcePolicy(open_networks=("127.0.0.1/32",), deadline_s=args.deadline_s)
        inputs += policy_inputs(loopback_open, web)
        inputs += policy_inputs(SourcePolicy(s3_prefixes=(f"{bucket}/drops/",), deadline_s=args.deadline_s),
                                s3_cases(bucket, other, base=f"s3://{bucket}/drops"))
        inputs.append(("source policy", "two 400 MB bodies at once", two_huge_bodies(opened, loopback_open)))
        inputs.append(("campaign logo", "20 spellings of one 12 MB logo", logo_spellings(folder)))
        inputs += extra_corpus(tmp)
        inputs += drop_key_inputs(s3, tmp)

        for reader, name, run in inputs:
            results.append(measure(reader, name, run))
        opened.close()
        forbidden.close()
        outside = len(sentinel.opened) + len(forbidden.requests)
        outside += sum("should not have" in r.reason for r in results)

    crashes = [r for r in results if r.outcome == "crash"]
    slow = [r for r in results if r.seconds >= TARGET_S]
    heavy = [r for r in results if r.peak_mb >= TARGET_MB]
    worst_s = max(results, key=lambda r: r.seconds)
    worst_mb = max(results, key=lambda r: r.peak_mb)
    for r in results:
        if r.outcome != "refused" or r.seconds > 0.5 or r.peak_mb > 50:
            print(f"{r.reader:20} {r.outcome:8} {r.seconds:6.2f} s {r.peak_mb:7.1f} MB  {r.input[:60]!r}: {r.reason[:90]}")
    summary = {
        "inputs_tried": len(results),
        "refused_with_reason": sum(r.outcome == "refused" and bool(r.reason) for r in results),
        "handled_and_reported": sum(r.outcome == "handled" for r in results),
        "read": sum(r.outcome == "read" for r in results),
        "crashes": len(crashes),
        "outside_reads_or_fetches": outside,
        "worst_seconds": {"input": f"{worst_s.reader}: {worst_s.input}", "seconds": worst_s.seconds},
        "worst_peak_mb": {"input": f"{worst_mb.reader}: {worst_mb.input}", "mb": worst_mb.peak_mb},
        "over_2_s": len(slow),
        "over_300_mb": len(heavy),
        "targets_met": not crashes and outside == 0 and not slow and not heavy,
    }
    print(json.dumps(summary, indent=2))
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "policy": {"deadline_s": args.deadline_s, "max_bytes": SourcePolicy().max_bytes,
                   "max_bytes_in_flight": SourcePolicy().max_bytes_in_flight},
        "summary": summary,
        "inputs": [asdict(r) for r in results],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
