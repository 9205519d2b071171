"""The `skuvid` command line."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from pipelines.code_server_cli import add_code_server_parser, run_code_server
from pipelines.estimate_cli import add_estimate_parser, run_estimate
from pipelines.jobs_cli import add_jobs_parser, run_jobs
from pipelines.worker_cli import add_worker_parser, run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skuvid", description="Turn a product catalog into product videos.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup-instance", help="Optional: copy the render pool limits (SKUVID_POOL_LIMITS) into the instance in $DAGSTER_HOME for the UI.")
    add_estimate_parser(commands)
    add_jobs_parser(commands)
    add_worker_parser(commands)
    add_code_server_parser(commands)
    args = parser.parse_args(argv)
    # Wide enough for the tables when the output is a file or a pipe, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 140)

    if args.command == "setup-instance":
        import dagster as dg

        from pipelines.instance import apply_pool_limits

        limits = apply_pool_limits(dg.DagsterInstance.get())
        console.print("pool limits: " + ", ".join(f"{k}={v}" for k, v in limits.items()))
        return 0
    if args.command == "estimate":
        return run_estimate(args, console)
    if args.command == "jobs":
        return run_jobs(args, console)
    if args.command == "worker":
        return run_worker(args, console)
    if args.command == "code-server":
        return run_code_server(args, console)
    return 2


if __name__ == "__main__":
    sys.exit(main())
