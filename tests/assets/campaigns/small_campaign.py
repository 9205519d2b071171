"""A campaign small enough to run through separate processes in a test: 5 rows (one rejected), one aspect,
240p, 2 s; and how to read back what a run made."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pandas as pd

from resources.storage import StorageResource
from samples.campaign.make_campaign_samples import draw_logo, write_template

SPEC = """
name: spring
template: {video: template.mp4}
recipients: recipients.csv
output: {aspects: ["1:1"], short_side: 240}
slots:
  - {name: greeting, kind: text, text: "Hi {first_name}!", start_s: 0.5, end_s: 1.0,
     box: {x: 0.1, y: 0.3, w: 0.8, h: 0.3}, font: {min_size: 14, max_size: 48}}
  - {name: logo, kind: image, column: logo, start_s: 1.0, end_s: 1.5, box: {x: 0.35, y: 0.3, w: 0.3, h: 0.4}}
"""
RECIPIENTS = """recipient_id,first_name,logo
a1,Ada,acme.png
a2,Grace,globex.png
a3,Linus,acme.png
a4,,acme.png
a5,Radia,globex.png
"""
RENDERED = ["a1", "a2", "a3", "a5"]
FRAMES = 48
# Columns that say when and how fast a clip was made, or where the storage root is; everything else must match.
RUN_COLUMNS = ["url", "cpu_s", "rendered_at"]


def write_small_campaign(folder: Path) -> Path:
    write_template(folder / "template.mp4", (426, 240), 2.0, 24, audio=False, preset="ultrafast")
    for name in ("acme", "globex"):
        draw_logo(name, 96).save(folder / f"{name}.png")
    (folder / "spring.yaml").write_text(SPEC)
    (folder / "recipients.csv").write_text(RECIPIENTS)
    return folder / "spring.yaml"


def manifest_and_frames(storage: StorageResource) -> tuple[pd.DataFrame, dict[str, list[np.ndarray]]]:
    """The campaign's manifest without its run-specific columns, and every clip's decoded frames by key."""
    (key,) = [k for k in storage.list_keys("campaigns/spring") if k.endswith("/manifest.parquet")]
    manifest = pd.read_parquet(io.BytesIO(storage.read_bytes(key)))
    frames = {}
    for clip in manifest["key"]:
        with av.open(io.BytesIO(storage.read_bytes(clip))) as container:
            frames[clip] = [frame.to_ndarray(format="yuv420p") for frame in container.decode(video=0)]
    return manifest.drop(columns=RUN_COLUMNS), frames


def assert_same_campaign(one: StorageResource, two: StorageResource) -> None:
    manifest_one, frames_one = manifest_and_frames(one)
    manifest_two, frames_two = manifest_and_frames(two)
    assert list(manifest_one["recipient_id"]) == RENDERED
    pd.testing.assert_frame_equal(manifest_one, manifest_two)
    assert frames_one.keys() == frames_two.keys()
    for clip, frames in frames_one.items():
        assert len(frames) == FRAMES
        assert all(np.array_equal(a, b) for a, b in zip(frames, frames_two[clip], strict=True)), clip
