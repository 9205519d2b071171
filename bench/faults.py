"""The money fault matrix as figures: every paid clip provider x every fault x with and without a SIGKILL in
that phase, each followed by a re-run (and the operator's answer where a job is left uncertain), on a SQLite
and on a PostgreSQL ledger.

    python bench/faults.py [--ledgers sqlite,postgresql] [--out bench/results/faults.json]

Prints cells run, duplicate tasks (tasks beyond one per job), ledger minus billed (dollars the ledger booked
minus dollars the emulators billed, summed over cells as absolute differences), worst overspend of a daily
budget set to exactly one clip, and wall time. Targets: 0, $0, $0. Writes the JSON and a markdown table next
to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text

from tests.resources.providers.api.fault_matrix import CellResult, cells, run_cell
from tests.servers import postgres


def fresh_postgres_database(server_url: str) -> str:
    name = f"faults_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def run_matrix(ledger: str, server_url: str | None) -> tuple[list[CellResult], float]:
    results = []
    started = time.monotonic()
    for name, fault, killed in cells():
        with tempfile.TemporaryDirectory(prefix="skuvid-faults-") as work:
            url = (
                f"sqlite:///{Path(work) / 'ledger.sqlite'}"
                if ledger == "sqlite"
                else fresh_postgres_database(server_url)
            )
            result = run_cell(name, fault, killed, url, Path(work))
        results.append(result)
        mark = "ok " if result.ok else "BAD"
        print(f"  {mark} {ledger:10s} {name:7s} {fault.name:38s} {'sigkill' if killed else '':8s} {result.outcome}",
              flush=True)
    return results, time.monotonic() - started


def summary(results: list[CellResult], wall_s: float) -> dict:
    return {
        "cells": len(results),
        "duplicate_tasks": sum(max(0, r.tasks - 1) for r in results),
        "ledger_minus_billed_usd": round(sum(abs(r.ledger_usd - r.billed_usd) for r in results), 6),
        "worst_overspend_usd": round(max((r.overspend_usd for r in results), default=0.0), 6),
        "reserved_left_usd": round(sum(r.reserved_usd for r in results), 6),
        "cells_failing": sum(not r.ok for r in results),
        "wall_s": round(wall_s, 1),
    }


def markdown(report: dict) -> str:
    lines = [
        f"# Fault matrix ({report['measured_at']})",
        "",
        "| ledger | cells | duplicate tasks | ledger - billed | worst overspend | reservations left | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for ledger, figures in report["summary"].items():
        lines.append(
            f"| {ledger} | {figures['cells']} | {figures['duplicate_tasks']} | "
            f"${figures['ledger_minus_billed_usd']:.2f} | ${figures['worst_overspend_usd']:.2f} | "
            f"${figures['reserved_left_usd']:.2f} | {figures['wall_s']} |"
        )
    lines += ["", "| ledger | provider | fault | sigkill | tasks | ledger $ | billed $ | what happened |",
              "|---|---|---|---|---|---|---|---|"]
    for ledger, rows in report["cells"].items():
        for row in rows:
            lines.append(
                f"| {ledger} | {row['provider']} | {row['fault']} | {'yes' if row['killed'] else 'no'} | "
                f"{row['tasks']} | {row['ledger_usd']:.2f} | {row['billed_usd']:.2f} | {row['outcome']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledgers", default="sqlite,postgresql")
    parser.add_argument("--out", default="bench/results/faults.json")
    args = parser.parse_args()
    ledgers = [ledger.strip() for ledger in args.ledgers.split(",") if ledger.strip()]
    report = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "summary": {}, "cells": {}}
    with ExitStack() as stack:
        server_url = stack.enter_context(postgres()).url if "postgresql" in ledgers else None
        for ledger in ledgers:
            results, wall_s = run_matrix(ledger, server_url)
            report["summary"][ledger] = summary(results, wall_s)
            report["cells"][ledger] = [result.to_dict() for result in results]
    for ledger, figures in report["summary"].items():
        print(
            f"{ledger}: cells run {figures['cells']}, duplicate tasks {figures['duplicate_tasks']}, "
            f"ledger minus billed ${figures['ledger_minus_billed_usd']:.2f}, "
            f"worst overspend ${figures['worst_overspend_usd']:.2f}, wall {figures['wall_s']} s"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    return 0 if all(f["cells_failing"] == 0 for f in report["summary"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
