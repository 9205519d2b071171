"""`campaign_clips` per campaign: one personalized clip per recipient and aspect, rendered smartly.

The partition key is the campaign name; the run config names the spec file. The template is analysed once
per aspect (unchanged spans encoded once, cached on local disk); each recipient then costs one encode of the
spans its overlays touch. Clips land at `campaigns/{campaign}/{spec_hash}/{aspect}/{recipient_id}.mp4`
(aspect written `16x9`), so a re-run skips every recipient already rendered. Bad rows go to a rejects
CSV with the reason and the others go on; the manifest is Parquet, one row per recipient and aspect.
"""

import hashlib
import io
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.campaigns.inputs import (
    REJECT_COLUMNS,
    CampaignError,
    Recipient,
    Reject,
    load_campaign,
    load_template,
    read_recipients,
    validate_recipients,
    write_rejects,
)
from assets.catalog.sku_catalog import write_parquet
from assets.partitions import campaign_partitions
from resources.pricing import PricesResource
from resources.storage import StorageResource
from videokit.campaigns.render_pool import RenderJob, RenderResult, render_all
from videokit.campaigns.smart_render import (
    AspectPlan,
    EncoderSettings,
    frame_window,
    plan_spans,
    prepare_aspect,
)
from videokit.campaigns.spec import CampaignSpec, SpecError, check_timing
from videokit.media.probe import probe_mp4
from videokit.media.template_video import TemplateError, probe_template

MANIFEST_COLUMNS = [
    "recipient_id", "aspect", "key", "url", "duration_s", "n_frames", "width", "height", "bytes", "row_hash",
    "qa_passed", "qa_summary", "overlay_diff", "join_psnr_db", "join_step", "cpu_s", "rendered_at",
]
REJECTS_SHOWN = 20
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "skuvid-campaign-cache")

Log = Callable[[str], None]


class CampaignConfig(dg.Config):
    spec: str = Field(default="samples/campaign/campaign.yaml", description="Campaign spec YAML: path, s3:// or https://.")
    workers: int = Field(default=0, description="Render processes; 0: one per CPU this process may run on.")
    chunk_size: int = Field(default=50, description="Clips per progress line and manifest part.")
    cache_dir: str = Field(default=DEFAULT_CACHE, description="Local folder for prepared template spans.")
    shard: int = Field(default=0, description="This run's share of the recipients, 0..shards-1.")
    shards: int = Field(default=1, description="Split the recipients over this many runs (machines) by id hash.")


@dataclass
class CampaignReport:
    campaign: str
    spec_hash: str
    recipients: int
    accepted: int
    rejects: list[Reject]
    aspects: list[str]
    rendered: int
    reused: int
    qa_failed: int
    cpu_s: float
    workers_cpu_s: float
    wall_s: float
    render_wall_s: float
    prepare_s: float
    prepare_cpu_s: float
    peak_rss_mb: float
    min_join_psnr_db: float
    max_join_step: float
    manifest_key: str
    rejects_key: str
    manifest: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    @property
    def clips_per_min(self) -> float:
        return 60.0 * self.rendered / self.render_wall_s if self.render_wall_s > 0 and self.rendered else 0.0


def aspect_slug(aspect: str) -> str:
    return aspect.replace(":", "x")


def campaign_prefix(campaign: str, spec_hash: str) -> str:
    return f"campaigns/{campaign}/{spec_hash}"


def clip_key(campaign: str, spec_hash: str, aspect: str, recipient_id: str) -> str:
    return f"{campaign_prefix(campaign, spec_hash)}/{aspect_slug(aspect)}/{recipient_id}.mp4"


def plan_for(spec: CampaignSpec, info, aspect: str, n_frames: int) -> AspectPlan:
    gop = max(1, round(spec.encode.gop_s * info.fps))
    windows = [frame_window(slot.start_s, slot.end_s, info.fps) for slot in spec.slots]
    settings = EncoderSettings(crf=spec.encode.crf, preset=spec.encode.preset, gop=gop, matrix=info.matrix,
                               fast_analysis=spec.encode.fast_analysis)
    return AspectPlan(info.sha256, spec.output.size(aspect), spec.template.focus, info.fps, n_frames,
                      tuple(plan_spans(n_frames, windows, gop)), settings)


def shard_suffix(shard: int, shards: int) -> str:
    return "" if shards == 1 else f"-{shard:03d}-of-{shards:03d}"


def in_shard(recipient_id: str, shard: int, shards: int) -> bool:
    """Stable assignment of a recipient to one of `shards` runs (the same on every machine and every run)."""
    return shards == 1 or int(hashlib.sha256(recipient_id.encode()).hexdigest()[:8], 16) % shards == shard


def read_previous_manifest(storage: StorageResource, prefix: str, suffix: str) -> pd.DataFrame:
    """The compacted manifest plus parts left by an interrupted run; the newest row per clip wins."""
    keys = [k for k in [f"{prefix}/manifest{suffix}.parquet"] if storage.exists(k)]
    keys += [k for k in storage.list_keys(f"{prefix}/manifest-parts{suffix}/") if k.endswith(".parquet")]
    frames = [pd.read_parquet(io.BytesIO(storage.read_bytes(k))) for k in keys]
    if not frames:
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    merged = pd.concat(frames, ignore_index=True).sort_values("rendered_at")
    return merged.drop_duplicates(["recipient_id", "aspect"], keep="last")


def manifest_row(storage: StorageResource, key: str, recipient: Recipient, aspect: str, mp4: bytes,
                 result: RenderResult | None) -> dict:
    report = probe_mp4(mp4)
    qa = result.qa if result else None
    return {
        "recipient_id": recipient.recipient_id, "aspect": aspect, "key": key, "url": storage.url(key),
        "duration_s": float(report.duration_s), "n_frames": int(report.n_frames), "width": int(report.width),
        "height": int(report.height), "bytes": len(mp4), "row_hash": recipient.row_hash,
        "qa_passed": bool(qa.passed) if qa else True, "qa_summary": qa.summary if qa else "found in storage",
        "overlay_diff": float(qa.overlay_diff) if qa else float("nan"),
        "join_psnr_db": float(qa.join_psnr_db) if qa else float("nan"),
        "join_step": float(qa.join_step) if qa else float("nan"),
        "cpu_s": float(result.cpu_s) if result else 0.0,
        "rendered_at": datetime.now(UTC).isoformat(),
    }


def run_campaign(storage: StorageResource, campaign: str, spec_uri: str, *, workers: int = 0, chunk_size: int = 50,
                 cache_dir: str = DEFAULT_CACHE, shard: int = 0, shards: int = 1, log: Log = print) -> CampaignReport:
    """Validate, prepare each aspect once, render what is missing, and write clips, manifest and rejects.

    With shards > 1 this run takes only the recipients whose id hashes to `shard`, and writes its own
    manifest and rejects files (suffix `-{shard}-of-{shards}`), so several machines can share one campaign.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if not 0 <= shard < shards:
        raise CampaignError(f"shard {shard} is not in 0..{shards - 1}")
    spec = load_campaign(spec_uri)
    if spec.name is not None and spec.name != campaign:
        raise CampaignError(f"{spec_uri}: name: spec is for campaign {spec.name!r}, not {campaign!r}")
    frame, source = read_recipients(spec, spec_uri)
    template = load_template(spec, spec_uri, storage)
    try:
        info = probe_template(template)
    except TemplateError as error:
        raise CampaignError(f"{spec_uri}: template: {error}") from None
    duration_s = spec.template.duration_s or info.duration_s
    if spec.template.video is not None and duration_s > info.duration_s + 0.5 / float(info.fps):
        message = f"{duration_s:g} s is longer than the {info.duration_s:g}-s template video"
        raise SpecError(spec_uri, [("template.duration_s", message)])
    check_timing(spec, duration_s, source=spec_uri)
    n_frames = round(duration_s * info.fps)
    spec_hash = hashlib.sha256(f"{spec.fingerprint()}:{info.sha256}:{n_frames}".encode()).hexdigest()[:16]
    prefix, suffix = campaign_prefix(campaign, spec_hash), shard_suffix(shard, shards)
    if shards > 1:
        ids = frame[spec.id_column].astype(str).str.strip()
        frame = frame[[in_shard(rid, shard, shards) for rid in ids]]
    sizes = {aspect: spec.output.size(aspect) for aspect in spec.output.aspects}
    recipients, rejects = validate_recipients(spec, frame, source, sizes)
    log(f"{campaign}{suffix}: {len(frame)} recipients, {len(recipients)} accepted, {len(rejects)} rejected; "
        f"template {info.width}x{info.height} {float(info.fps):g} fps, {n_frames} frames; spec hash {spec_hash}")

    # What exists already: one listing per aspect (not one request per clip), and the previous manifest rows.
    previous = read_previous_manifest(storage, prefix, suffix)
    known = {(r.recipient_id, r.aspect): r for r in previous.itertuples()}
    rows: dict[tuple[str, str], dict] = {}
    work: list[tuple[str, str, list[Recipient]]] = []  # (aspect, prepared folder, recipients to render)
    prepare_s = prepare_cpu_s = 0.0
    for aspect in spec.output.aspects:
        stored = set(storage.list_keys(f"{prefix}/{aspect_slug(aspect)}/"))
        todo = []
        for recipient in recipients:
            key = clip_key(campaign, spec_hash, aspect, recipient.recipient_id)
            earlier = known.get((recipient.recipient_id, aspect))
            if key in stored and earlier is not None and earlier.row_hash == recipient.row_hash:
                rows[(recipient.recipient_id, aspect)] = {c: getattr(earlier, c) for c in MANIFEST_COLUMNS}
            elif key in stored and earlier is None:  # rendered by a run that stopped before its manifest part
                rows[(recipient.recipient_id, aspect)] = manifest_row(
                    storage, key, recipient, aspect, storage.read_bytes(key), None)
            else:
                todo.append(recipient)
        if not todo:
            continue
        started, started_cpu = time.perf_counter(), time.process_time()
        plan = plan_for(spec, info, aspect, n_frames)
        folder = str(prepare_aspect(template, plan, cache_dir))
        prepare_s += time.perf_counter() - started
        prepare_cpu_s += time.process_time() - started_cpu
        changed = sum(s.length for s in plan.spans if s.changed)
        log(f"{aspect}: template prepared in {time.perf_counter() - started:.1f} s; {len(plan.spans)} spans, "
            f"{changed}/{n_frames} frames re-encoded per recipient; {len(todo)} clips to render")
        work.append((aspect, folder, todo))
    reused = len(rows)
    total = sum(len(todo) for _, _, todo in work)
    by_id = {r.recipient_id: r for r in recipients}
    jobs = (RenderJob(r.recipient_id, aspect, folder, r.contents) for aspect, folder, todo in work for r in todo)

    workers = min(workers or len(os.sched_getaffinity(0)), max(1, total))
    rendered = qa_failed = 0
    workers_cpu = inline_cpu = 0.0
    peaks: dict[int, float] = {}
    psnrs, steps, part = [], [], []
    render0 = time.perf_counter()
    run_tag = uuid.uuid4().hex[:8]
    for done, result in enumerate(render_all(jobs, workers), start=1):
        workers_cpu += result.cpu_s
        if result.pid == os.getpid():
            inline_cpu += result.cpu_s
        peaks[result.pid] = max(peaks.get(result.pid, 0.0), result.peak_rss_mb)
        recipient = by_id[result.recipient_id]
        key = clip_key(campaign, spec_hash, result.aspect, recipient.recipient_id)
        if result.mp4 is None:
            rejects.append(Reject(recipient.row, recipient.recipient_id, result.field,
                                  f"{result.aspect}: {result.reason}"))
        elif not result.qa.passed:
            qa_failed += 1
            rejects.append(Reject(recipient.row, recipient.recipient_id, "qa", f"{result.aspect}: {result.qa.summary}"))
        else:
            storage.write_bytes(key, result.mp4)
            row = manifest_row(storage, key, recipient, result.aspect, result.mp4, result)
            rows[(recipient.recipient_id, result.aspect)] = row
            part.append(row)
            rendered += 1
            psnrs.append(result.qa.join_psnr_db)
            steps.append(result.qa.join_step)
        if done % chunk_size == 0 or done == total:
            if part:  # a part per chunk: a run that dies keeps what it rendered in the manifest
                write_parquet(storage, f"{prefix}/manifest-parts{suffix}/{run_tag}-{done:08d}.parquet",
                              pd.DataFrame(part, columns=MANIFEST_COLUMNS))
                part.clear()
            elapsed = time.perf_counter() - render0
            rate = done / elapsed if elapsed > 0 else 0.0
            log(f"{done}/{total} clips ({rendered} stored, {done - rendered} rejected); {60 * rate:.1f} clips/min, "
                f"about {(total - done) / rate / 60 if rate else 0.0:.1f} min left")
    render_wall = time.perf_counter() - render0

    manifest = pd.DataFrame([rows[k] for k in sorted(rows)], columns=MANIFEST_COLUMNS)
    manifest_key, rejects_key = f"{prefix}/manifest{suffix}.parquet", f"{prefix}/rejects{suffix}.csv"
    write_parquet(storage, manifest_key, manifest)
    for stale in storage.list_keys(f"{prefix}/manifest-parts{suffix}/"):
        storage.delete(stale)
    write_rejects(storage, rejects_key, rejects)
    parent_cpu = time.process_time() - cpu0 - inline_cpu
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return CampaignReport(
        campaign=campaign, spec_hash=spec_hash, recipients=len(frame), accepted=len(recipients), rejects=rejects,
        aspects=list(spec.output.aspects), rendered=rendered, reused=reused, qa_failed=qa_failed,
        cpu_s=parent_cpu + workers_cpu, workers_cpu_s=workers_cpu, wall_s=time.perf_counter() - wall0,
        render_wall_s=render_wall, prepare_s=prepare_s, prepare_cpu_s=prepare_cpu_s,
        peak_rss_mb=own_peak + sum(peak for pid, peak in peaks.items() if pid != os.getpid()),
        min_join_psnr_db=min(psnrs, default=float("nan")), max_join_step=max(steps, default=float("nan")),
        manifest_key=manifest_key, rejects_key=rejects_key, manifest=manifest,
    )


def rejects_markdown(rejects: list[Reject], rejects_url: str) -> str:
    if not rejects:
        return "No rejected recipients."
    shown = sorted(rejects, key=lambda r: r.row)[:REJECTS_SHOWN]
    table = pd.DataFrame([vars(r) for r in shown], columns=REJECT_COLUMNS).to_markdown(index=False)
    more = len(rejects) - len(shown)
    return table + (f"\n\n... and {more} more in {rejects_url}" if more > 0 else "")


@dg.asset(
    partitions_def=campaign_partitions,
    group_name="campaigns",
    kinds={"mp4", "parquet"},
    check_specs=[dg.AssetCheckSpec("campaign_clips_qa", asset="campaign_clips",
                                   description="Every clip rendered in the run passed its per-clip QA.")],
    description="One personalized clip per recipient and aspect (smart rendering), a Parquet manifest and a "
                "rejects CSV, for the campaign named by the partition key.",
)
def campaign_clips(context: dg.AssetExecutionContext, config: CampaignConfig, storage: StorageResource,
                   prices: PricesResource) -> dg.MaterializeResult:
    try:
        report = run_campaign(storage, context.partition_key, config.spec, workers=config.workers,
                              chunk_size=max(1, config.chunk_size), cache_dir=config.cache_dir, shard=config.shard,
                              shards=max(1, config.shards), log=context.log.info)
    except (SpecError, CampaignError) as error:
        raise dg.Failure(description=str(error)) from None
    for reject in report.rejects[:REJECTS_SHOWN]:
        context.log.warning(f"row {reject.row} ({reject.recipient_id or 'no id'}): {reject.field}: {reject.reason}")
    cost = prices.table.cost(provider="personalize", model="smart-render", cpu_s=report.cpu_s, wall_s=report.wall_s)
    per_clip = cost.cost_usd / report.rendered if report.rendered else 0.0
    metadata = {
        "provider": cost.provider,
        "model": cost.model,
        "spec_hash": report.spec_hash,
        "aspects": ", ".join(report.aspects),
        "recipients": dg.MetadataValue.int(report.recipients),
        "accepted": dg.MetadataValue.int(report.accepted),
        "rejected_rows": dg.MetadataValue.int(len({r.row for r in report.rejects})),
        "clips": dg.MetadataValue.int(report.rendered),
        "clips_reused": dg.MetadataValue.int(report.reused),
        "qa_failed": dg.MetadataValue.int(report.qa_failed),
        "cpu_s": dg.MetadataValue.float(round(report.cpu_s, 3)),
        "workers_cpu_s": dg.MetadataValue.float(round(report.workers_cpu_s, 3)),
        "wall_s": dg.MetadataValue.float(round(report.wall_s, 3)),
        "template_prepare_s": dg.MetadataValue.float(round(report.prepare_s, 3)),
        "template_prepare_cpu_s": dg.MetadataValue.float(round(report.prepare_cpu_s, 3)),
        "cost_usd": dg.MetadataValue.float(cost.cost_usd),
        "cost_per_clip_usd": dg.MetadataValue.float(per_clip),
        "clips_per_min": dg.MetadataValue.float(round(report.clips_per_min, 2)),
        "peak_rss_mb": dg.MetadataValue.float(round(report.peak_rss_mb, 1)),
        "min_join_psnr_db": dg.MetadataValue.float(float(report.min_join_psnr_db)),
        "max_join_step": dg.MetadataValue.float(float(report.max_join_step)),
        "reused": report.rendered == 0,
        "manifest": dg.MetadataValue.path(storage.url(report.manifest_key)),
        "rejects": dg.MetadataValue.md(rejects_markdown(report.rejects, storage.url(report.rejects_key))),
    }
    check = dg.AssetCheckResult(
        check_name="campaign_clips_qa",
        passed=report.qa_failed == 0,
        description=f"{report.qa_failed} of {report.rendered + report.qa_failed} rendered clips failed QA",
        metadata={"qa_failed": dg.MetadataValue.int(report.qa_failed),
                  "min_join_psnr_db": dg.MetadataValue.float(float(report.min_join_psnr_db))},
    )
    context.log.info(f"{report.rendered} clips in {report.wall_s:.1f} s ({report.clips_per_min:.1f} clips/min), "
                     f"{report.reused} reused, {len(report.rejects)} rejects; cost ${cost.cost_usd:.5f}")
    return dg.MaterializeResult(metadata=metadata, check_results=[check])
