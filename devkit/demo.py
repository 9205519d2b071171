"""`make demo` (`python -m devkit.demo`): the sample catalog through the whole graph on the local instance, then a
per-SKU table. Development tooling: it starts the API emulators when no key is set, so it lives outside the product."""

from __future__ import annotations

import argparse
import html
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from assets.catalog.sku_catalog import read_catalog
from assets.costs.cost_report import cost_report
from assets.sku_video.publish import PUBLISHED_ROOT, read_manifest
from devkit.emulators import start_emulators
from pipelines.definitions import build_definitions
from pipelines.instance import apply_pool_limits
from pipelines.resources import api_settings, build_resources
from resources import storage_keys
from resources.providers.emulation import is_emulated
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
    emulated: bool = False
    aspects: str = "-"


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
DEMO_MODULE = ("quick-start", "samples/training/quick-start.md")
CLIP_APIS = ("runway", "kling", "fal")


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
        # What this run spent: a reused artifact costs 0 here, as in its metadata and the ledger.
        cost_usd=float(keyframe_meta.get("cost_usd", 0.0)) + float(clip_meta.get("cost_usd", 0.0)),
        seconds=seconds,
        reused=bool(clip_meta.get("reused", False)),
        emulated=bool(clip_meta.get("emulated", False)),
        aspects=str(clip_meta.get("aspects", "-")),
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
    narrator = str(meta["narrator"])
    if is_emulated(defs.resources.get(narrator)):
        narrator = f"a PLACEHOLDER presenter from a local {narrator} emulator (not {narrator}'s work)"
    console.print(
        f"training module {name}: {meta['duration_s']:.0f}s, {meta['scenes']} chapters, narrated by "
        f"{narrator}, in {seconds:.1f}s; {meta['video']}"
    )


def clip_origin(row) -> str:
    """Who made the clip, in words a viewer cannot mistake: emulator output is never shown as the provider's."""
    if bool(getattr(row, "emulated", False)):
        return f"placeholder from a local {row.provider} emulator, no money spent"
    return f"{row.provider}, {row.model}, ${row.cost_usd:.5f}"


def write_gallery(storage: StorageResource) -> Path | None:
    """`published/index.html`: every published clip playing in a loop. Its links are the manifest's URLs, which
    are relative to the published root (or under the public base URL), so the folder works from disk, from any
    static server and from a CDN."""
    manifest = read_manifest(storage)
    cards = "\n".join(
        f'<figure><video src="{html.escape(row.video_url)}" poster="{html.escape(row.poster_url)}" autoplay loop muted '
        f'playsinline></video><figcaption>{html.escape(row.sku_id)} {html.escape(str(row.aspect or ""))} - '
        f"{html.escape(row.title)} ({html.escape(clip_origin(row))})</figcaption></figure>"
        for row in manifest.sort_values(["sku_id", "aspect"], key=lambda column: column.fillna("")).itertuples()
    )
    page = (
        "<!doctype html><meta charset=utf-8><title>skuvid: published videos</title><style>body{font-family:sans-serif;"
        "background:#222;color:#eee}figure{display:inline-block;margin:8px;vertical-align:top}video{max-width:420px;"
        f"max-height:420px;display:block}}</style><h1>Published videos</h1>{cards}"
    )
    storage.write_bytes(storage_keys.GALLERY, page.encode())
    if storage.root.startswith("s3://"):
        return None
    return Path(storage.url(storage_keys.GALLERY).removeprefix("file://"))


def demo_definitions(stack: ExitStack, console: Console) -> dg.Definitions:
    """The project's definitions; clip APIs with no key set point at local emulators, and the demo says so.

    Presenters are never emulated here: a cartoon from an emulator must not narrate as if HeyGen or D-ID made it,
    so without their keys the training module is narrated slides.
    """
    settings = api_settings()
    unset = [name for name in CLIP_APIS if not any(k in settings[name] for k in ("api_key", "access_key"))]
    if not unset:
        return build_definitions()
    emulators = stack.enter_context(start_emulators()).provider_settings()
    console.print(
        f"[yellow]No API key set for {', '.join(unset)}: hero SKUs routed to them are rendered by local EMULATORS of "
        f"those APIs on 127.0.0.1 (placeholder output, no money spent). Their list prices are booked in the ledger "
        f"as emulated and kept out of real totals. Set RUNWAYML_API_SECRET, KLING_ACCESS_KEY/KLING_SECRET_KEY or "
        f"FAL_KEY to use the real services; HEYGEN_API_KEY or DID_API_KEY for a presenter in training videos.[/]"
    )
    return build_definitions(build_resources(api_overrides={name: emulators[name] for name in unset}))


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
    for column in ("SKU", "aspects", "status", "route", "clip by", "keyframe QA", "clip QA", "cost USD", "seconds",
                   "reused"):
        table.add_column(column, justify="right" if column in ("cost USD", "seconds") else "left")
    for o in outcomes:
        table.add_row(o.sku_id, o.aspects, o.status, o.route, f"{o.provider} EMULATOR" if o.emulated else o.provider, o.keyframe_qa, o.clip_qa, f"{o.cost_usd:.6f}", f"{o.seconds:.1f}",
                      "yes" if o.reused else "no")
    console.print(table)
    render_campaign(defs, instance, console)
    render_training(defs, instance, console)
    gallery = write_gallery(storage)
    report = materialize_cost_report(defs, instance)
    total = time.perf_counter() - started
    published = sum(o.status == "published" for o in outcomes)
    spent = sum(o.cost_usd for o in outcomes if not o.emulated)
    emulated = sum(o.cost_usd for o in outcomes if o.emulated)
    console.print(f"{published}/{len(outcomes)} published in {total:.1f}s; SKU videos cost ${spent:.5f} in this run"
                  + (f" (plus ${emulated:.5f} list price of emulated API clips, not spent)" if emulated else ""))
    console.print(f"ledger, all runs: ${report.get('total_usd', 0.0):.5f} spent"
                  f" (+ ${report.get('emulated_usd', 0.0):.5f} emulated) in {report.get('charges', 0)} charges;"
                  " see cost_report in the UI")
    console.print(f"videos and manifest: {storage.url(PUBLISHED_ROOT)}")
    if gallery:
        console.print(f"open in a browser: {gallery}")
        console.print(f"or serve it: cd {gallery.parent} && python3 -m http.server -b 127.0.0.1 8000")
    console.print("Dagster UI with these runs: make dev   (open http://127.0.0.1:3000)")
    return outcomes


def materialize_cost_report(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict:
    """The report of what the ledger holds, so the UI opens on a real chart; its metadata."""
    result = dg.materialize([cost_report], instance=instance, resources=defs.resources, raise_on_error=False,
                            run_config=QUIET)
    return materialization_metadata(result, "cost_report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default="samples/catalog.csv")
    parser.add_argument("--brands", default="samples/brands.yaml")
    args = parser.parse_args(argv)
    # Wide enough for the tables when the output is a file or a pipe, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 140)
    outcomes = run_demo(args.catalog, args.brands, console)
    return 0 if outcomes and all(o.status == "published" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
