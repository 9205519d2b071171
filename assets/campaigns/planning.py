"""The plan step of a campaign: read and check the inputs, decide what to render, and cut it into chunks.

Everything a chunk step needs goes to shared storage first (the template, each distinct logo once), so a chunk
renders on any worker that reaches the storage. Clips already rendered for the same spec and row are reused.
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from assets.campaigns.inputs import (
    CampaignError,
    Recipient,
    load_campaign,
    load_template,
    read_recipients,
    validate_recipients,
)
from assets.campaigns.manifest import MANIFEST_COLUMNS, manifest_row, read_previous_manifest, write_part
from assets.campaigns.records import CampaignChunk, CampaignPlan, RecipientWork
from resources import storage_keys as keys
from resources.storage import StorageResource
from videokit.campaigns.smart_render import (
    AspectPlan,
    EncoderSettings,
    frame_window,
    plan_spans,
    prepare_aspect,
)
from videokit.campaigns.spec import CampaignSpec, SpecError, TextSlot, check_timing
from videokit.media.template_video import TemplateError, TemplateInfo, probe_template

Log = Callable[[str], None]
MAX_CHUNK_SIZE = 10_000


@dataclass(frozen=True)
class CampaignInputs:
    spec: CampaignSpec
    recipients: pd.DataFrame
    recipients_source: str
    template: bytes
    info: TemplateInfo
    n_frames: int
    spec_hash: str


def read_inputs(storage: StorageResource, campaign: str, spec_uri: str) -> CampaignInputs:
    """The spec, the recipients table and the template, checked against each other."""
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
    return CampaignInputs(spec, frame, source, template, info, n_frames, spec_hash)


def aspect_plan(spec: CampaignSpec, info: TemplateInfo, aspect: str, n_frames: int) -> AspectPlan:
    gop = max(1, round(spec.encode.gop_s * info.fps))
    windows = [frame_window(slot.start_s, slot.end_s, info.fps) for slot in spec.slots]
    settings = EncoderSettings(crf=spec.encode.crf, preset=spec.encode.preset, gop=gop, matrix=info.matrix,
                               fast_analysis=spec.encode.fast_analysis)
    return AspectPlan(info.sha256, spec.output.size(aspect), spec.template.focus, info.fps, n_frames,
                      tuple(plan_spans(n_frames, windows, gop)), settings)


def work_records(storage: StorageResource, prefix: str, recipients: list[Recipient]) -> list[RecipientWork]:
    """Each recipient's slot contents as a record; logo bytes go to storage once per distinct logo."""
    stored: set[str] = set()
    records = []
    for recipient in recipients:
        texts, images = {}, {}
        for content in recipient.contents:
            if isinstance(content.slot, TextSlot):
                texts[content.slot.name] = content.text or ""
                continue
            key = keys.campaign_logo(prefix, hashlib.sha256(content.image or b"").hexdigest())
            if key not in stored:
                if not storage.exists(key):
                    storage.write_bytes(key, content.image or b"")
                stored.add(key)
            images[content.slot.name] = key
        records.append(RecipientWork(row=recipient.row, recipient_id=recipient.recipient_id,
                                     row_hash=recipient.row_hash, texts=texts, images=images))
    return records


def split_reused(storage: StorageResource, campaign: str, spec_hash: str, aspect: str,
                 recipients: list[RecipientWork], previous: dict) -> tuple[list[dict], list[RecipientWork]]:
    """(manifest rows of clips already rendered for this row, recipients still to render) for one aspect.

    One listing per aspect, not one request per clip.
    """
    stored = set(storage.list_keys(keys.campaign_aspect(campaign, spec_hash, aspect)))
    reused, todo = [], []
    for recipient in recipients:
        key = keys.campaign_clip(campaign, spec_hash, aspect, recipient.recipient_id)
        earlier = previous.get((recipient.recipient_id, aspect))
        if key in stored and earlier is not None and earlier.row_hash == recipient.row_hash:
            reused.append({column: getattr(earlier, column) for column in MANIFEST_COLUMNS})
        elif key in stored and earlier is None:  # rendered by a run that stopped before writing its manifest part
            reused.append(manifest_row(storage, key, recipient, aspect, storage.read_bytes(key), None))
        else:
            todo.append(recipient)
    return reused, todo


def chunked(items: list, size: int) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def plan_campaign(storage: StorageResource, campaign: str, spec_uri: str, *, run_id: str, chunk_size: int,
                  cache_dir: str, log: Log = print) -> tuple[CampaignPlan, list[CampaignChunk]]:
    """Validate, reuse what exists, stage the inputs in storage, and cut the remaining clips into chunks."""
    started, wall0, cpu0 = time.time(), time.perf_counter(), time.process_time()
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise CampaignError(f"chunk_size {chunk_size}: expected 1 to {MAX_CHUNK_SIZE} recipients per chunk")
    inputs = read_inputs(storage, campaign, spec_uri)
    spec, info, spec_hash = inputs.spec, inputs.info, inputs.spec_hash
    prefix = keys.campaign(campaign, spec_hash)
    sizes = {aspect: spec.output.size(aspect) for aspect in spec.output.aspects}
    accepted, rejects = validate_recipients(spec, inputs.recipients, inputs.recipients_source, sizes)
    log(f"{campaign}: {len(inputs.recipients)} recipients, {len(accepted)} accepted, {len(rejects)} rejected; "
        f"template {info.width}x{info.height} {float(info.fps):g} fps, {inputs.n_frames} frames; spec hash {spec_hash}")
    work = work_records(storage, prefix, accepted)

    previous = {(r.recipient_id, r.aspect): r for r in read_previous_manifest(storage, prefix).itertuples()}
    template_key = keys.campaign_template(prefix)
    reused_rows, chunks = [], []
    prepare_s = prepare_cpu_s = 0.0
    for aspect in spec.output.aspects:
        reused, todo = split_reused(storage, campaign, spec_hash, aspect, work, previous)
        reused_rows += reused
        if not todo:
            continue
        if not storage.exists(template_key):
            storage.write_bytes(template_key, inputs.template)
        plan = aspect_plan(spec, info, aspect, inputs.n_frames)
        # Prepared here once, so chunks on this machine find it; a chunk elsewhere prepares its own copy.
        prepared0, prepared_cpu0 = time.perf_counter(), time.process_time()
        prepare_aspect(inputs.template, plan, cache_dir)
        prepare_s += time.perf_counter() - prepared0
        prepare_cpu_s += time.process_time() - prepared_cpu0
        changed = sum(span.length for span in plan.spans if span.changed)
        log(f"{aspect}: template prepared in {time.perf_counter() - prepared0:.1f} s; {len(plan.spans)} spans, "
            f"{changed}/{inputs.n_frames} frames re-encoded per recipient; {len(todo)} clips to render in "
            f"{-(-len(todo) // chunk_size)} chunks")
        chunks += [CampaignChunk(campaign=campaign, spec_hash=spec_hash, aspect=aspect, index=index,
                                 template_key=template_key, aspect_plan=plan.to_json(), slots=spec.slots,
                                 recipients=part)
                   for index, part in enumerate(chunked(todo, chunk_size))]

    reused_part = write_part(storage, keys.campaign_manifest_part(prefix, run_id, "reused"), reused_rows)
    plan_record = CampaignPlan(
        campaign=campaign, spec_hash=spec_hash, aspects=list(spec.output.aspects),
        recipients=len(inputs.recipients), accepted=len(accepted), rejects=rejects, reused=len(reused_rows),
        reused_part=reused_part, chunks=len(chunks), clips_to_render=sum(len(c.recipients) for c in chunks),
        started_at=started, cpu_s=time.process_time() - cpu0, prepare_s=prepare_s, prepare_cpu_s=prepare_cpu_s,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    log(f"{plan_record.reused} clips reused, {plan_record.clips_to_render} to render in {len(chunks)} chunks "
        f"(planned in {time.perf_counter() - wall0:.1f} s)")
    return plan_record, chunks

