"""`skuvid demo`: the sample catalog through the whole graph on the local instance, then a per-SKU table."""

from __future__ import annotations

import html
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from assets.catalog import read_catalog
from assets.publish import read_manifest
from pipelines.definitions import build_definitions
from pipelines.instance import apply_pool_limits
from pipelines.resources import api_settings, build_resources
from resources.emulators import start_emulators
from resources.emulators.presenters import start_presenter_emulators
from resources.storage import StorageResource


@dataclass
class SkuOutcome:
    sku_id: str
    status: str
    route: str
    provider: str
    keyframe_qa: str
    clip_qa: str
    cost_usd: float
    seconds: float
    reused: bool


def checks_summary(result: dg.ExecuteInProcessResult, asset: str) -> str:
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(asset)]
    if not evaluations:
        return "-"
    passed = sum(e.passed for e in evaluations)
    return f"{passed}/{len(evaluations)}"


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in events[-1].metadata.items()} if events else {}


# The demo prints its own table; Dagster's per-event lines would bury it (they stay in the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DEMO_CAMPAIGN = ("spring-welcome-demo", "samples/campaign/demo.yaml")
EMULATED_LEDGER = "sqlite:///.data/ledger-emulated-apis.sqlite"
DEMO_MODULE = ("quick-start", "samples/training/quick-start.md")


def render_sku(defs: dg.Definitions, instance: dg.DagsterInstance, sku_id: str) -> SkuOutcome:
    job = defs.resolve_job_def("sku_video_job")
    started = time.perf_counter()
    result = job.execute_in_process(partition_key=sku_id, instance=instance, raise_on_error=False, run_config=QUIET)
    seconds = time.perf_counter() - started
    keyframe_meta = materialization_metadata(result, "keyframe")
    clip_meta = materialization_metadata(result, "clip")
    published = bool(materialization_metadata(result, "published_video"))
    if published:
        status = "published"
    elif clip_meta and not clip_meta.get("qa_passed", True):
        status = "failed QA"
    else:
        failures = [e for e in result.all_events if e.is_step_failure]
        status = "error: " + (failures[0].step_failure_data.error.message.strip().splitlines()[0] if failures else "?")
    return SkuOutcome(
        sku_id=sku_id,
        status=status,
        route=str(clip_meta.get("route", "-")),
        provider=str(clip_meta.get("provider", "-")),
        keyframe_qa=checks_summary(result, "keyframe"),
        clip_qa=checks_summary(result, "clip"),
        cost_usd=float(keyframe_meta.get("original_cost_usd", 0.0)) + float(clip_meta.get("original_cost_usd", 0.0)),
        seconds=seconds,
        reused=bool(clip_meta.get("reused", False)),
    )


def run_partition(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, asset: str, partitions: str,
                  key: str, config: dict) -> tuple[dict, float]:
    """Materialize one partition of a dynamically partitioned asset; its metadata ({} if it failed) and seconds."""
    instance.add_dynamic_partitions(partitions, [key])
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False,
        run_config={**QUIET, "ops": {asset: {"config": config}}},
    )
    return materialization_metadata(result, asset), time.perf_counter() - started


def render_campaign(defs: dg.Definitions, instance: dg.DagsterInstance, console: Console) -> None:
    name, spec = DEMO_CAMPAIGN
    meta, seconds = run_partition(defs, instance, "campaign_job", "campaign_clips", "campaign", name, {"spec": spec})
    if not meta:
        console.print(f"[red]campaign {name}: failed, see the run in the UI[/]")
        return
    console.print(
        f"campaign {name}: {meta['clips']} personalized clips rendered, {meta['clips_reused']} reused, "
        f"{meta['rejected_rows']} recipients rejected, {meta['qa_failed']} failed QA, in {seconds:.1f}s; "
        f"manifest {meta['manifest']}"
    )


def render_training(defs: dg.Definitions, instance: dg.DagsterInstance, console: Console) -> None:
    name, script = DEMO_MODULE
    meta, seconds = run_partition(defs, instance, "training_job", "training_module", "module", name,
                                  {"script": script})
    if not meta:
        console.print(f"[red]training module {name}: failed, see the run in the UI[/]")
        return
    console.print(
        f"training module {name}: {meta['duration_s']:.0f}s, {meta['scenes']} chapters, narrated by "
        f"{meta['narrator']}, in {seconds:.1f}s; {meta['video']}"
    )


def write_gallery(storage: StorageResource) -> Path | None:
    """A page that plays every published clip in a loop, for a quick look in a browser (local storage only)."""
    if storage.root.startswith("s3://"):
        return None
    manifest = read_manifest(storage)
    cards = "\n".join(
        f'<figure><video src="{html.escape(row.video_url)}" poster="{html.escape(row.poster_url)}" autoplay loop muted '
        f'playsinline></video><figcaption>{html.escape(row.sku_id)} - {html.escape(row.title)} ({row.provider}, '
        f"${row.cost_usd:.5f})</figcaption></figure>"
        for row in manifest.sort_values("sku_id").itertuples()
    )
    page = (
        "<!doctype html><meta charset=utf-8><title>skuvid: published videos</title><style>body{font-family:sans-serif;"
        "background:#222;color:#eee}figure{display:inline-block;margin:8px;vertical-align:top}video{max-width:420px;"
        f"max-height:420px;display:block}}</style><h1>Published videos</h1>{cards}"
    )
    storage.write_bytes("published/index.html", page.encode())
    return Path(storage.url("published/index.html").removeprefix("file://"))


def demo_definitions(stack: ExitStack, console: Console) -> dg.Definitions:
    """The project's definitions; API providers with no key set point at local emulators, and the demo says so."""
    unset = [name for name, fields in api_settings().items() if not any(k in fields for k in ("api_key", "access_key"))]
    if not unset:
        return build_definitions()
    emulators = stack.enter_context(start_emulators())
    presenters = stack.enter_context(start_presenter_emulators())
    settings = {**emulators.provider_settings(), **presenters.provider_settings()}
    # Emulated jobs are booked at list price in a ledger of their own, never with real spending.
    os.environ["SKUVID_LEDGER_URL"] = EMULATED_LEDGER
    console.print(
        f"[yellow]No API key set for {', '.join(unset)}: hero SKUs and presenters routed to them are rendered by local "
        f"EMULATORS of those APIs on 127.0.0.1 (emulated output, no money spent; list prices are booked in "
        f"{EMULATED_LEDGER}). Set RUNWAYML_API_SECRET, KLING_ACCESS_KEY/KLING_SECRET_KEY, FAL_KEY, HEYGEN_API_KEY "
        f"or DID_API_KEY to use the real services.[/]"
    )
    return build_definitions(build_resources(api_overrides={name: settings[name] for name in unset}))


def run_demo(catalog: str, brands: str, console: Console) -> list[SkuOutcome]:
    with ExitStack() as stack:
        return run_demo_with(demo_definitions(stack, console), catalog, brands, console)


def run_demo_with(defs: dg.Definitions, catalog: str, brands: str, console: Console) -> list[SkuOutcome]:
    instance = dg.DagsterInstance.get()
    apply_pool_limits(instance)
    storage: StorageResource = defs.resources["storage"]
    started = time.perf_counter()
    run_config = {**QUIET, "ops": {"sku_catalog": {"config": {"source": catalog, "brands": brands}}}}
    catalog_result = defs.resolve_job_def("catalog_job").execute_in_process(instance=instance, run_config=run_config)
    catalog_meta = materialization_metadata(catalog_result, "sku_catalog")
    console.print(
        f"catalog: {catalog_meta['accepted']} SKUs accepted, {catalog_meta['rejected_rows']} rejected "
        f"({catalog_meta['categories']} categories, {catalog_meta['brands']} brands)"
    )
    skus = sorted(read_catalog(storage)["sku_id"])
    outcomes = []
    for sku_id in skus:
        outcome = render_sku(defs, instance, sku_id)
        console.print(f"  {sku_id}: {outcome.status} in {outcome.seconds:.1f}s")
        outcomes.append(outcome)
    table = Table(title="skuvid demo: one row per SKU")
    for column in ("SKU", "status", "route", "clip by", "keyframe QA", "clip QA", "cost USD", "seconds", "reused"):
        table.add_column(column, justify="right" if column in ("cost USD", "seconds") else "left")
    for o in outcomes:
        table.add_row(o.sku_id, o.status, o.route, o.provider, o.keyframe_qa, o.clip_qa, f"{o.cost_usd:.6f}", f"{o.seconds:.1f}",
                      "yes" if o.reused else "no")
    console.print(table)
    render_campaign(defs, instance, console)
    render_training(defs, instance, console)
    gallery = write_gallery(storage)
    total = time.perf_counter() - started
    published = sum(o.status == "published" for o in outcomes)
    console.print(f"{published}/{len(outcomes)} published in {total:.1f}s; total cost ${sum(o.cost_usd for o in outcomes):.5f}")
    console.print(f"videos and manifest: {storage.url('published')}")
    if gallery:
        console.print(f"open in a browser: {gallery}")
    console.print(f"Dagster UI with these runs: DAGSTER_HOME={instance.root_directory} dagster dev -h 127.0.0.1")
    return outcomes
