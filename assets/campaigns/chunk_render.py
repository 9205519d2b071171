"""The render step of a campaign: one chunk of recipients in one aspect, on whichever worker runs the step.

The chunk finds its template aspect prepared in this machine's cache (or prepares it from the template in
storage), renders each recipient's clip, stores clips that pass their QA, and writes its manifest rows as one
part, so a run that stops keeps what its finished chunks rendered.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Callable

from assets.campaigns.inputs import Reject
from assets.campaigns.manifest import manifest_row, write_part
from assets.campaigns.records import CampaignChunk, ChunkOutcome, RecipientWork
from resources import storage_keys as keys
from resources.storage import StorageResource
from videokit.campaigns.recipient_clip import RenderJob, SlotContent, render_recipient
from videokit.campaigns.smart_render import AspectPlan, prepare_aspect
from videokit.campaigns.spec import TextSlot

Log = Callable[[str], None]
PROGRESS_EVERY = 10  # clips between progress lines in the step's log


def slot_contents(chunk: CampaignChunk, recipient: RecipientWork, logos: dict[str, bytes]) -> tuple[SlotContent, ...]:
    contents = []
    for slot in chunk.slots:
        if isinstance(slot, TextSlot):
            contents.append(SlotContent(slot, text=recipient.texts[slot.name]))
        else:
            contents.append(SlotContent(slot, image=logos[recipient.images[slot.name]]))
    return tuple(contents)


def read_logos(storage: StorageResource, chunk: CampaignChunk) -> dict[str, bytes]:
    """Each distinct logo of the chunk, read once."""
    wanted = {key for recipient in chunk.recipients for key in recipient.images.values()}
    return {key: storage.read_bytes(key) for key in sorted(wanted)}


def prepared_folder(storage: StorageResource, chunk: CampaignChunk, cache_dir: str) -> tuple[str, float]:
    """The prepared aspect in this machine's cache, and the seconds spent preparing it (0 when it was there)."""
    plan = AspectPlan.from_json(chunk.aspect_plan)
    started = time.perf_counter()
    folder = os.path.join(cache_dir, plan.key())
    if not os.path.exists(os.path.join(folder, "plan.json")):
        folder = str(prepare_aspect(storage.read_bytes(chunk.template_key), plan, cache_dir))
        return folder, time.perf_counter() - started
    return folder, 0.0


def log_progress(log: Log, chunk: CampaignChunk, done: int, elapsed_s: float) -> None:
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    left = (len(chunk.recipients) - done) / rate / 60 if rate else 0.0
    log(f"chunk {chunk.mapping_key}: {done}/{len(chunk.recipients)} clips, {60 * rate:.1f} clips/min, "
        f"about {left:.1f} min left")


def render_chunk(storage: StorageResource, chunk: CampaignChunk, *, run_id: str, cache_dir: str,
                 log: Log = print) -> ChunkOutcome:
    started, cpu0 = time.time(), time.process_time()
    folder, prepare_s = prepared_folder(storage, chunk, cache_dir)
    logos = read_logos(storage, chunk)
    rows, rejects, psnrs, steps = [], [], [], []
    qa_failed = 0
    for done, recipient in enumerate(chunk.recipients):
        if done and done % PROGRESS_EVERY == 0:
            log_progress(log, chunk, done, time.time() - started)
        result = render_recipient(RenderJob(recipient.recipient_id, chunk.aspect, folder,
                                            slot_contents(chunk, recipient, logos)))
        if result.mp4 is None:
            rejects.append(Reject(row=recipient.row, recipient_id=recipient.recipient_id, field=result.field,
                                  reason=f"{chunk.aspect}: {result.reason}"))
        elif not result.qa.passed:
            qa_failed += 1
            rejects.append(Reject(row=recipient.row, recipient_id=recipient.recipient_id, field="qa",
                                  reason=f"{chunk.aspect}: {result.qa.summary}"))
        else:
            key = keys.campaign_clip(chunk.campaign, chunk.spec_hash, chunk.aspect, recipient.recipient_id)
            storage.write_bytes(key, result.mp4)
            rows.append(manifest_row(storage, key, recipient, chunk.aspect, result.mp4, result))
            psnrs.append(result.qa.join_psnr_db)
            steps.append(result.qa.join_step)
    prefix = keys.campaign(chunk.campaign, chunk.spec_hash)
    part = write_part(storage, keys.campaign_manifest_part(prefix, run_id, chunk.mapping_key), rows)
    ended = time.time()
    log(f"chunk {chunk.mapping_key}: {len(rows)} of {len(chunk.recipients)} clips stored, {len(rejects)} rejected, "
        f"in {ended - started:.1f} s ({60 * len(chunk.recipients) / max(ended - started, 1e-9):.1f} clips/min)"
        + (f"; template aspect prepared here in {prepare_s:.1f} s" if prepare_s else ""))
    return ChunkOutcome(
        aspect=chunk.aspect, index=chunk.index, rendered=len(rows), qa_failed=qa_failed, rejects=rejects,
        manifest_part=part, started_at=started, ended_at=ended, cpu_s=time.process_time() - cpu0,
        prepare_s=prepare_s, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        host=socket.gethostname(), pid=os.getpid(),
        min_join_psnr_db=min(psnrs, default=None), max_join_step=max(steps, default=None),
    )
