"""`skuvid jobs`: paid API jobs that are still open or uncertain, and an operator's answer for uncertain ones."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from pipelines.settings import ledger_url
from resources.ledger import JobStatus, LedgerError, LedgerResource


def add_jobs_parser(commands: argparse._SubParsersAction) -> None:
    jobs = commands.add_parser(
        "jobs", help="List paid API jobs that are open or uncertain; resolve an uncertain one."
    )
    jobs.add_argument("--ledger", help="Ledger URL (default: $SKUVID_LEDGER_URL, else the local SQLite file).")
    actions = jobs.add_subparsers(dest="jobs_command")
    resolve = actions.add_parser(
        "resolve", help="Say whether the provider billed an unconfirmed job (see its dashboard)."
    )
    resolve.add_argument("job_id", help="The job id shown by `skuvid jobs` (a unique prefix of its key).")
    outcome = resolve.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--paid", action="store_true", help="A task was made: book its list price.")
    outcome.add_argument(
        "--not-paid", action="store_true", help="No task was made: release the reservation; a later run submits."
    )
    resolve.add_argument(
        "--usd", type=float, help="With --paid: what the provider billed, if less than the reservation."
    )
    resolve.add_argument("--note", default="", help="Kept with the job, e.g. the provider's task id.")


def run_jobs(args: argparse.Namespace, console: Console) -> int:
    ledger = LedgerResource(url=args.ledger or ledger_url())
    if args.jobs_command == "resolve":
        try:
            job = ledger.find_job(args.job_id)
            if args.usd is not None and not args.paid:
                raise LedgerError("--usd goes with --paid")
            job = ledger.resolve_uncertain(job.key, paid=args.paid, usd=args.usd, note=args.note)
        except LedgerError as error:
            console.print(f"[red]{error}[/red]")
            return 1
        booked = f"charged ${job.charged_usd:.4f}" if args.paid else "reservation released"
        console.print(f"{job.describe()}: {job.status} ({booked})")
        return 0
    jobs = ledger.jobs_needing_attention()
    table = Table(title=f"{len(jobs)} open or uncertain API jobs")
    for column in ("job", "provider", "sku", "attempt", "status", "reserved $", "task", "since (UTC)", "why"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(
            job.key[:12],
            job.provider,
            job.sku_id,
            str(job.attempt),
            f"[yellow]{job.status}[/yellow]" if job.status == JobStatus.UNCONFIRMED else str(job.status),
            f"{job.price_usd:.4f}",
            job.provider_task_id or "",
            f"{job.updated_at:%Y-%m-%d %H:%M}",
            (job.failure_reason or "")[:160],
        )
    console.print(table)
    if any(job.status == JobStatus.UNCONFIRMED for job in jobs):
        console.print(
            "Unconfirmed jobs may have been billed. Check the provider's dashboard, then "
            "`skuvid jobs resolve JOB --paid` or `skuvid jobs resolve JOB --not-paid`."
        )
    return 0
