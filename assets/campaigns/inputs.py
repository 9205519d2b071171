"""What a campaign run reads: the spec, the template video and the recipients, validated row by row.

A row either becomes a Recipient (its slot contents: formatted text, logo bytes) or a Reject that names the
row, the field and the reason; one bad row never stops the others.
"""

import hashlib
import io
import re
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel

from assets.sku_video.publish import read_manifest_row
from resources.csv_report import bounded, csv_report
from resources.sources import read_source
from resources.storage import StorageError, StorageResource, parent_of, resolve_relative
from videokit.campaigns.personalize import OverlayError, fit_text, open_image
from videokit.campaigns.recipient_clip import SlotContent
from videokit.campaigns.spec import CampaignSpec, TextSlot, check_columns, load_spec

MiB = 1024 * 1024
LOGO_CACHE_BYTES = 256 * MiB  # distinct logo bytes one campaign holds; 20 spellings of one logo count once
LOGO_SPELLINGS = 100_000
RECIPIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REJECT_COLUMNS = ["row", "recipient_id", "field", "reason"]
ECHO_CHARS = 80  # of a rejected value quoted back in its reject


class CampaignError(RuntimeError):
    """The campaign cannot run at all (bad spec, unreadable recipients or template); the message says why."""


class Reject(BaseModel, frozen=True):
    """A recipient row that gets no clip (for one aspect, or at all), written to the campaign's rejects file."""

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


def load_campaign(spec_uri: str) -> CampaignSpec:
    try:
        text = read_source(spec_uri)
    except StorageError as error:
        raise CampaignError(f"cannot read the campaign spec: {error}") from None
    return load_spec(text, source=spec_uri)


def read_recipients(spec: CampaignSpec, spec_uri: str) -> tuple[pd.DataFrame, str]:
    source = resolve_relative(spec.recipients, parent_of(spec_uri))
    try:
        raw = read_source(spec.recipients, base=parent_of(spec_uri))
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
            return read_source(template.video, base=parent_of(spec_uri))
        except StorageError as error:
            raise CampaignError(f"{spec_uri}: template.video: {error}") from None
    row = read_manifest_row(storage, template.sku)
    if row is None:
        raise CampaignError(f"{spec_uri}: template.sku: SKU {template.sku!r} has no published clip yet "
                            "(materialize published_video for it first)")
    try:
        key = str(row.get("video_key") or "") or storage.key_of(str(row["video_url"]))
        return storage.read_bytes(key) if key else read_source(str(row["video_url"]))
    except StorageError as error:
        raise CampaignError(f"{spec_uri}: template.sku: {error}") from None


def validate_recipients(spec: CampaignSpec, frame: pd.DataFrame, source: str, sizes: dict[str, tuple[int, int]]
                        ) -> tuple[list[Recipient], list[Reject]]:
    """Every row either becomes a Recipient with its slot contents, or a Reject naming field and reason."""
    image = LogoCache(parent_of(source))

    accepted, rejects, seen = [], [], {}
    for index, values in enumerate(frame.to_dict("records")):
        row = index + 2
        values = {k: str(v).strip() for k, v in values.items()}
        rid = values.get(spec.id_column, "")
        problem = recipient_problem(spec, values, rid, seen.get(rid), sizes, image)
        if problem is None and rid not in seen:
            seen[rid] = row
            contents, row_hash = slot_contents(spec, values, image)
            accepted.append(Recipient(row, rid, contents, row_hash))
        else:
            field, reason = problem or (spec.id_column, f"duplicate of row {seen[rid]}")
            rejects.append(Reject(row=row, recipient_id=bounded(rid, ECHO_CHARS), field=field, reason=bounded(reason)))
    return accepted, rejects


class LogoCache:
    """Logos by content: each spelling of a URI is read once, each distinct image is decoded and kept once.

    The bytes kept are bounded (LOGO_CACHE_BYTES): a logo that would go over is refused for its row, since the
    recipients already accepted hold theirs until the campaign renders.
    """

    def __init__(self, base: str, max_bytes: int = LOGO_CACHE_BYTES):
        self.base, self.max_bytes, self.held = base, max_bytes, 0
        self.by_uri: dict[str, str] = {}  # spelling -> sha256, or "!reason"
        self.by_content: dict[str, bytes] = {}

    def __call__(self, uri: str) -> tuple[bytes | None, str]:
        if uri not in self.by_uri:
            if len(self.by_uri) >= LOGO_SPELLINGS:
                return None, f"{uri}: more than {LOGO_SPELLINGS} distinct logo names in one campaign"
            self.by_uri[uri] = self._load(uri)
        found = self.by_uri[uri]
        return (None, found[1:]) if found.startswith("!") else (self.by_content[found], "")

    def _load(self, uri: str) -> str:
        try:
            data = read_source(uri, base=self.base)
        except StorageError as error:  # the source policy's reason already names the URI
            return f"!{error}"
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self.by_content:
            if self.held + len(data) > self.max_bytes:
                return f"!{uri}: distinct logos in this campaign over {self.max_bytes // MiB} MiB"
            try:
                open_image(data)
            except OverlayError as error:
                return f"!{uri}: {error.reason}"
            self.by_content[digest] = data
            self.held += len(data)
        return digest


def recipient_problem(spec: CampaignSpec, values: dict[str, str], rid: str, duplicate_of: int | None,
                      sizes: dict[str, tuple[int, int]], image) -> tuple[str, str] | None:
    """(field, reason) of the first thing wrong with a row, or None."""
    if not RECIPIENT_ID.match(rid):
        return spec.id_column, f"{bounded(rid, ECHO_CHARS)!r} is not a recipient id ([A-Za-z0-9_-], 1-64 characters)"
    if duplicate_of is not None:
        return spec.id_column, f"duplicate of row {duplicate_of}"
    missing = [name for name in spec.used_columns() if not values.get(name)]
    if missing:
        return missing[0], "missing value" + (f" (also {', '.join(missing[1:])})" if missing[1:] else "")
    for slot in spec.slots:
        if isinstance(slot, TextSlot):
            text = slot.format(values)
            for aspect, size in sizes.items():
                _, _, w, h = slot.box_for(aspect).pixels(size)
                try:
                    fit_text(text, slot.font, (w, h))
                except OverlayError as error:
                    return "+".join(slot.fields()) or slot.name, f"slot {slot.name} ({aspect}): {error.reason}"
        else:
            data, error = image(values[slot.column])
            if data is None:
                return slot.column, error
    return None


def slot_contents(spec: CampaignSpec, values: dict[str, str], image) -> tuple[tuple[SlotContent, ...], str]:
    """What each slot shows for this recipient, and a hash of it (a changed row renders again)."""
    contents, digest = [], hashlib.sha256()
    for slot in spec.slots:
        if isinstance(slot, TextSlot):
            text = slot.format(values)
            contents.append(SlotContent(slot, text=text))
            digest.update(f"{slot.name}\0{text}\0".encode())
        else:
            data, _ = image(values[slot.column])
            contents.append(SlotContent(slot, image=data))
            digest.update(f"{slot.name}\0".encode() + hashlib.sha256(data).digest())
    return tuple(contents), digest.hexdigest()[:16]


def write_rejects(storage: StorageResource, key: str, rejects: list[Reject]) -> None:
    rows = ([r.row, r.recipient_id, r.field, r.reason] for r in sorted(rejects, key=lambda r: r.row))
    storage.write_bytes(key, csv_report(REJECT_COLUMNS, rows))
