"""`campaign_clips` per campaign: one personalized clip per recipient and aspect, rendered smartly.

The partition key is the campaign name; the run config names the spec file. The template is analysed once
per aspect (unchanged spans encoded once, cached on local disk); each recipient then costs one encode of the
spans its overlays touch. Clips land at `campaigns/{campaign}/{spec_hash}/{aspect}/{recipient_id}.mp4`
(aspect written `16x9`), so a re-run skips every recipient already rendered. Bad rows go to a rejects
CSV with the reason and the others go on; the manifest is Parquet, one row per recipient and aspect.
"""

import csv
import hashlib
import io
import json
import os
import re
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

from assets.catalog import write_parquet
from assets.publish import read_manifest_row
from resources.pricing import PricesResource
from resources.storage import StorageError, StorageResource, parent_of, read_uri, resolve_relative
from videokit.campaign_spec import (
    CampaignSpec,
    ImageSlot,
    SpecError,
    TextSlot,
    check_columns,
    check_timing,
    load_spec,
)
from videokit.personalize import OverlayError, fit_text, open_image
from videokit.probe import ClipUnreadable, probe_mp4
from videokit.render_pool import RenderJob, RenderResult, SlotContent, render_all
from videokit.smart_render import (
    AspectPlan,
    EncoderSettings,
    TemplateError,
    frame_window,
    plan_spans,
    prepare_aspect,
    probe_template,
)

campaign_partitions = dg.DynamicPartitionsDefinition(name="campaign")

RECIPIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MANIFEST_COLUMNS = [
    "recipient_id", "aspect", "key", "url", "duration_s", "n_frames", "width", "height", "bytes", "row_hash",
    "qa_passed", "qa_summary", "overlay_diff", "join_psnr_db", "join_step", "cpu_s", "rendered_at",
]
REJECT_COLUMNS = ["row", "recipient_id", "field", "reason"]
REJECTS_SHOWN = 20
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "skuvid-campaign-cache")

Log = Callable[[str], None]


class CampaignError(RuntimeError):
    """The campaign cannot run at all (bad spec, unreadable recipients or template); the message says why."""


class CampaignConfig(dg.Config):
    spec: str = Field(default="samples/campaign/campaign.yaml", description="Campaign spec YAML: path, s3:// or https://.")
    workers: int = Field(default=0, description="Render processes; 0: one per CPU core.")
    chunk_size: int = Field(default=50, description="Clips per progress line and manifest part.")
    cache_dir: str = Field(default=DEFAULT_CACHE, description="Local folder for prepared template spans.")


@dataclass(frozen=True)
class Reject:
    row: int  # line in the recipients file (the header is line 1)
    recipient_id: str
    field: str
    reason: str


@dataclass(frozen=True)
class Recipient:
    row: int
    recipient_id: str
    contents: tuple[SlotContent, ...]
    row_hash: str


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


def load_campaign(spec_uri: str) -> CampaignSpec:
    try:
        text = read_uri(spec_uri)
    except StorageError as error:
        raise CampaignError(f"cannot read the campaign spec: {error}") from None
    return load_spec(text, source=spec_uri)


def read_recipients(spec: CampaignSpec, spec_uri: str) -> tuple[pd.DataFrame, str]:
    source = resolve_relative(spec.recipients, parent_of(spec_uri))
    try:
        raw = read_uri(source)
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except StorageError as error:
        raise CampaignError(f"recipients: {error}") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CampaignError(f"{source}: not a readable CSV ({error})") from None
    check_columns(spec, list(frame.columns), spec_source=spec_uri, recipients_source=source)
    return frame, source


def load_template(spec: CampaignSpec, spec_uri: str, storage: StorageResource) -> bytes:
    template = spec.template
    if template.video is not None:
        try:
            return read_uri(resolve_relative(template.video, parent_of(spec_uri)))
        except StorageError as error:
            raise CampaignError(f"{spec_uri}: template.video: {error}") from None
    row = read_manifest_row(storage, template.sku)
    if row is None:
        raise CampaignError(f"{spec_uri}: template.sku: SKU {template.sku!r} has no published clip yet "
                            "(materialize published_video for it first)")
    try:
        return read_uri(row["video_url"])
    except StorageError as error:
        raise CampaignError(f"{spec_uri}: template.sku: {error}") from None


def validate_recipients(spec: CampaignSpec, frame: pd.DataFrame, source: str, sizes: dict[str, tuple[int, int]]
                        ) -> tuple[list[Recipient], list[Reject]]:
    """Every row either becomes a Recipient with its slot contents, or a Reject naming field and reason."""
    base = parent_of(source)
    images: dict[str, tuple[bytes | None, str]] = {}  # uri -> (bytes, error); logos repeat across rows

    def image(uri: str) -> tuple[bytes | None, str]:
        if uri not in images:
            try:
                data = read_uri(resolve_relative(uri, base))
                open_image(data)
                images[uri] = (data, "")
            except (StorageError, OverlayError) as error:
                images[uri] = (None, getattr(error, "reason", str(error)))
        return images[uri]

    accepted, rejects, seen = [], [], {}
    for index, values in enumerate(frame.to_dict("records")):
        row = index + 2
        values = {k: str(v).strip() for k, v in values.items()}
        rid = values.get(spec.id_column, "")

        def reject(field_name: str, reason: str) -> None:
            rejects.append(Reject(row, rid, field_name, reason))

        if not RECIPIENT_ID.match(rid):
            reject(spec.id_column, f"{rid!r} is not a recipient id ([A-Za-z0-9_-], 1-64 characters)")
            continue
        if rid in seen:
            reject(spec.id_column, f"duplicate of row {seen[rid]}")
            continue
        seen[rid] = row
        missing = [name for name in spec.used_columns() if not values.get(name)]
        if missing:
            reject(missing[0], "missing value" + (f" (also {', '.join(missing[1:])})" if missing[1:] else ""))
            continue
        contents, digest, problem = [], hashlib.sha256(), None
        for slot in spec.slots:
            if isinstance(slot, TextSlot):
                text = slot.format(values)
                for aspect, size in sizes.items():
                    _, _, w, h = slot.box_for(aspect).pixels(size)
                    try:
                        fit_text(text, slot.font, (w, h))
                    except OverlayError as error:
                        problem = ("+".join(slot.fields()) or slot.name, f"slot {slot.name} ({aspect}): {error.reason}")
                        break
                contents.append(SlotContent(slot, text=text))
                digest.update(f"{slot.name}\0{text}\0".encode())
            else:
                data, error = image(values[slot.column])
                if data is None:
                    problem = (slot.column, f"{values[slot.column]}: {error}")
                contents.append(SlotContent(slot, image=data))
                digest.update(f"{slot.name}\0".encode() + hashlib.sha256(data or b"").digest())
            if problem:
                break
        if problem:
            reject(*problem)
            continue
        accepted.append(Recipient(row, rid, tuple(contents), digest.hexdigest()[:16]))
    return accepted, rejects


def plan_for(spec: CampaignSpec, info, aspect: str, n_frames: int) -> AspectPlan:
    gop = max(1, round(spec.encode.gop_s * info.fps))
    windows = [frame_window(slot.start_s, slot.end_s, info.fps) for slot in spec.slots]
    settings = EncoderSettings(crf=spec.encode.crf, preset=spec.encode.preset, gop=gop, matrix=info.matrix,
                               fast_analysis=spec.encode.fast_analysis)
    return AspectPlan(info.sha256, spec.output.size(aspect), spec.template.focus, info.fps, n_frames,
                      tuple(plan_spans(n_frames, windows, gop)), settings)


def read_previous_manifest(storage: StorageResource, prefix: str) -> pd.DataFrame:
    """The compacted manifest plus parts left by an interrupted run; the newest row per clip wins."""
    keys = [k for k in [f"{prefix}/manifest.parquet"] if storage.exists(k)]
    keys += [k for k in storage.list_keys(f"{prefix}/manifest-parts/") if k.endswith(".parquet")]
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


def write_rejects(storage: StorageResource, key: str, rejects: list[Reject]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REJECT_COLUMNS)
    writer.writerows([r.row, r.recipient_id, r.field, r.reason] for r in sorted(rejects, key=lambda r: r.row))
    storage.write_bytes(key, buffer.getvalue().encode())


def run_campaign(storage: StorageResource, campaign: str, spec_uri: str, *, workers: int = 0, chunk_size: int = 50,
                 cache_dir: str = DEFAULT_CACHE, log: Log = print) -> CampaignReport:
    """Validate, prepare each aspect once, render what is missing, and write clips, manifest and rejects."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
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
        raise SpecError(spec_uri, [("template.duration_s", f"{duration_s:g} s is longer than the "
                                    f"{info.duration_s:g}-s template video")])
    check_timing(spec, duration_s, source=spec_uri)
    n_frames = round(duration_s * info.fps)
    spec_hash = hashlib.sha256(f"{spec.fingerprint()}:{info.sha256}:{n_frames}".encode()).hexdigest()[:16]
    prefix = campaign_prefix(campaign, spec_hash)
    sizes = {aspect: spec.output.size(aspect) for aspect in spec.output.aspects}
    recipients, rejects = validate_recipients(spec, frame, source, sizes)
    log(f"{campaign}: {len(frame)} recipients, {len(recipients)} accepted, {len(rejects)} rejected; "
        f"template {info.width}x{info.height} {float(info.fps):g} fps, {n_frames} frames; spec hash {spec_hash}")

    previous = read_previous_manifest(storage, prefix)
    known = {(r.recipient_id, r.aspect): r for r in previous.itertuples()}
    rows: dict[tuple[str, str], dict] = {}
    lookup: dict[tuple[str, str], tuple[Recipient, str]] = {}
    jobs: list[RenderJob] = []
    prepare_s = 0.0
    for aspect in spec.output.aspects:
        todo = []
        for recipient in recipients:
            key = clip_key(campaign, spec_hash, aspect, recipient.recipient_id)
            earlier = known.get((recipient.recipient_id, aspect))
            if earlier is not None and earlier.row_hash == recipient.row_hash and storage.exists(key):
                rows[(recipient.recipient_id, aspect)] = {c: getattr(earlier, c) for c in MANIFEST_COLUMNS}
            elif earlier is None and storage.exists(key):  # rendered by a run that stopped before its manifest
                rows[(recipient.recipient_id, aspect)] = manifest_row(
                    storage, key, recipient, aspect, storage.read_bytes(key), None)
            else:
                todo.append((recipient, key))
        if not todo:
            continue
        started = time.perf_counter()
        plan = plan_for(spec, info, aspect, n_frames)
        folder = str(prepare_aspect(template, plan, cache_dir))
        prepare_s += time.perf_counter() - started
        changed = sum(s.length for s in plan.spans if s.changed)
        log(f"{aspect}: template prepared in {time.perf_counter() - started:.1f} s; {len(plan.spans)} spans, "
            f"{changed}/{n_frames} frames re-encoded per recipient; {len(todo)} clips to render")
        for recipient, key in todo:
            lookup[(recipient.recipient_id, aspect)] = (recipient, key)
            jobs.append(RenderJob(recipient.recipient_id, aspect, folder, recipient.contents))
    reused = len(rows)

    workers = workers or os.cpu_count() or 1
    workers = min(workers, max(1, len(jobs)))
    rendered = qa_failed = 0
    workers_cpu = inline_cpu = 0.0
    peaks: dict[int, float] = {}
    psnrs, steps = [], []
    part: list[dict] = []
    render0 = time.perf_counter()
    run_tag = uuid.uuid4().hex[:8]

    def flush_part() -> None:
        if part:
            write_parquet(storage, f"{prefix}/manifest-parts/{run_tag}-{rendered:08d}.parquet",
                          pd.DataFrame(part, columns=MANIFEST_COLUMNS))
            part.clear()

    done = 0
    for result in render_all(jobs, workers):
        done += 1
        workers_cpu += result.cpu_s
        if result.pid == os.getpid():
            inline_cpu += result.cpu_s
        peaks[result.pid] = max(peaks.get(result.pid, 0.0), result.peak_rss_mb)
        recipient, key = lookup[(result.recipient_id, result.aspect)]
        if result.mp4 is None:
            rejects.append(Reject(recipient.row, recipient.recipient_id, result.field, result.reason))
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
        if done % chunk_size == 0 or done == len(jobs):
            flush_part()
            elapsed = time.perf_counter() - render0
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (len(jobs) - done) / rate if rate > 0 else 0.0
            log(f"{done}/{len(jobs)} clips ({rendered} stored, {done - rendered} rejected); "
                f"{60 * rate:.1f} clips/min, about {eta / 60:.1f} min left")
    render_wall = time.perf_counter() - render0

    manifest = pd.DataFrame([rows[k] for k in sorted(rows)], columns=MANIFEST_COLUMNS)
    manifest_key, rejects_key = f"{prefix}/manifest.parquet", f"{prefix}/rejects.csv"
    write_parquet(storage, manifest_key, manifest)
    for stale in storage.list_keys(f"{prefix}/manifest-parts/"):
        storage.delete(stale)
    write_rejects(storage, rejects_key, rejects)
    parent_cpu = time.process_time() - cpu0 - inline_cpu
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return CampaignReport(
        campaign=campaign, spec_hash=spec_hash, recipients=len(frame), accepted=len(recipients), rejects=rejects,
        aspects=list(spec.output.aspects), rendered=rendered, reused=reused, qa_failed=qa_failed,
        cpu_s=parent_cpu + workers_cpu, workers_cpu_s=workers_cpu, wall_s=time.perf_counter() - wall0,
        render_wall_s=render_wall, prepare_s=prepare_s,
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
                              chunk_size=max(1, config.chunk_size), cache_dir=config.cache_dir, log=context.log.info)
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
        "cost_usd": dg.MetadataValue.float(cost.cost_usd),
        "cost_per_clip_usd": dg.MetadataValue.float(round(per_clip, 8)),
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
