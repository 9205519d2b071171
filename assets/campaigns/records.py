"""The typed records a campaign's steps hand to each other (as JSON in shared storage, see resources/step_outputs).

plan -> one CampaignChunk per chunk of recipients (one aspect each) -> render -> ChunkOutcome -> merge, which
also reads the CampaignPlan. Large data (the template, logos, clips, manifest rows) stays in storage; a record
carries its keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from assets.campaigns.inputs import Reject
from videokit.campaigns.spec import Slot


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecipientWork(Record):
    """What one recipient's clip shows: each text slot's formatted text, each image slot's logo (a storage key)."""

    row: int
    recipient_id: str
    row_hash: str
    texts: dict[str, str]
    images: dict[str, str]


class CampaignChunk(Record):
    """Recipients rendered by one step, all in one aspect, so the step prepares one template aspect."""

    campaign: str
    spec_hash: str
    aspect: str
    index: int
    template_key: str
    aspect_plan: dict[str, Any]  # AspectPlan.to_json(): spans, size, timing, encoder settings
    slots: list[Slot]
    recipients: list[RecipientWork]

    @property
    def mapping_key(self) -> str:
        return chunk_mapping_key(self.aspect, self.index)


def chunk_mapping_key(aspect: str, index: int) -> str:
    """The chunk's name among the run's steps (`render_campaign_chunk[a16x9_00003]`)."""
    return f"a{aspect.replace(':', 'x')}_{index:05d}"


class CampaignPlan(Record):
    """What the plan step decided, for the merge: counts, the rows it rejected and the clips it reused."""

    campaign: str
    spec_hash: str
    aspects: list[str]
    recipients: int
    accepted: int
    rejects: list[Reject]
    reused: int
    reused_part: str | None  # manifest rows of clips already rendered (Parquet), None when there are none
    chunks: int
    clips_to_render: int
    started_at: float  # epoch seconds: the run's wall clock spans several processes
    cpu_s: float
    prepare_s: float
    prepare_cpu_s: float
    peak_rss_mb: float


class ChunkOutcome(Record):
    """What one chunk step rendered: its manifest rows are in `manifest_part`, its failures in `rejects`."""

    aspect: str
    index: int
    rendered: int
    qa_failed: int
    rejects: list[Reject]
    manifest_part: str | None
    started_at: float
    ended_at: float
    cpu_s: float
    prepare_s: float  # preparing the template aspect when this worker's cache did not hold it yet
    peak_rss_mb: float
    host: str
    pid: int
    min_join_psnr_db: float | None
    max_join_step: float | None
