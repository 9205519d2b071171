"""What a training module is made from, checked before anything is rendered or paid for.

The script is parsed (errors name the line), each scene's visual is fetched (pictures by path or URI, SKU
clips from the published manifest), the voice is checked against espeak-ng, and every still is drawn, so text
that does not fit the frame, a missing picture or an unknown voice stops the run with the script's line
before a presenter is asked for anything. A SKU that is not published yet is not an error: its scene shows a
slide instead, and the log says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assets.sku_video.publish import read_manifest_row
from resources import storage_keys
from resources.sources import read_source
from resources.storage import StorageError, StorageResource, parent_of
from videokit.campaigns.personalize import MAX_IMAGE_PIXELS
from videokit.media.images import ImageRejected, digest_image
from videokit.media.probe import ClipUnreadable, probe_mp4
from videokit.training.module_assembly import AssemblySettings
from videokit.training.narration import EspeakSpeech, VoiceUnknown
from videokit.training.script import (
    ImageVisual,
    ModuleScript,
    Scene,
    ScriptError,
    SkuVisual,
    Slide,
    parse_script,
)
from videokit.training.slides import (
    Look,
    SlideError,
    frame_presenter,
    presenter_box,
    product_card,
    render_picture,
    render_slide,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class SceneVisual:
    """A scene's visual with what it was made from, ready to draw."""

    kind: str  # slide | picture | product
    identity: dict  # what makes the picture what it is (hashed into the scene key)
    image: bytes | None = None  # picture file
    clip: bytes | None = None  # product clip
    clip_size: tuple[int, int] | None = None
    product_title: str = ""
    fallback: str = ""  # why a SKU scene shows a slide instead, if it does


@dataclass(frozen=True)
class Still:
    rgb: np.ndarray
    loop_box: tuple[int, int, int, int] | None = None  # where a product clip plays
    presenter_box: tuple[int, int, int, int] | None = None  # where the presenter's picture goes


def load_script(uri: str) -> tuple[ModuleScript, str]:
    """The parsed script and the folder its relative paths resolve against."""
    try:
        text = read_source(uri).decode("utf-8")
    except StorageError as error:
        raise ScriptError(uri, [(1, f"cannot read the script: {error}")]) from None
    except UnicodeDecodeError as error:
        raise ScriptError(
            uri, [(1, f"the script is not UTF-8 text ({error.reason} at byte {error.start})")]
        ) from None
    return parse_script(text, source=uri), parent_of(uri)


def look_of(script: ModuleScript) -> Look:
    theme = script.front.defaults.theme
    return Look.from_hex(theme.background, theme.background_2, theme.text, theme.accent)


def published_clip(storage: StorageResource, sku_id: str) -> tuple[bytes, dict] | None:
    """The SKU's published video and manifest row, or None when it is not published."""
    row = read_manifest_row(storage, sku_id)
    if row is None:
        return None
    key = str(row.get("video_key") or "") or storage_keys.published_video(sku_id, row["content_hash"])
    if not storage.exists(key):
        key = storage.key_of(str(row["video_url"])) or ""
    data = storage.read_bytes(key) if key else read_source(str(row["video_url"]))
    return data, row


def resolve_visuals(script: ModuleScript, base: str, storage: StorageResource, log: Log) -> list[SceneVisual]:
    """Fetch every scene's picture or clip; raises ScriptError listing each one that cannot be had."""
    problems: list[tuple[int, str]] = []
    visuals: list[SceneVisual] = []
    for scene in script.scenes:
        visual = scene.visual
        if isinstance(visual, Slide):
            visuals.append(SceneVisual("slide", {"slide": visual.title, "bullets": list(visual.bullets)}))
        elif isinstance(visual, ImageVisual):
            try:
                data = read_source(visual.uri, base=base)
            except StorageError as error:
                hint = " (run `make samples` to draw the sample pictures)" if "samples" in base else ""
                problems.append((scene.visual_line, f"image: {error}{hint}"))
                continue
            try:  # checked here, so a bad picture is reported with its line before anything renders
                _, _, digest = digest_image(data, max_pixels=MAX_IMAGE_PIXELS)
            except ImageRejected as error:
                problems.append((scene.visual_line, f"image: {visual.uri}: {error}"))
                continue
            # Identified by its upright pixels: a re-tagged copy of the same picture does not re-render the module.
            visuals.append(
                SceneVisual("picture", {"image": digest, "title": visual.title}, image=data)
            )
        elif isinstance(visual, SkuVisual):
            try:
                found = published_clip(storage, visual.sku_id)
            except StorageError as error:
                problems.append(
                    (scene.visual_line, f"sku: {visual.sku_id}: cannot read its published video: {error}")
                )
                continue
            if found is None:
                manifest = storage.url(storage_keys.manifest(visual.sku_id))
                reason = f"SKU {visual.sku_id} is not published yet (no {manifest})"
                log(
                    f"scene {scene.title!r} (line {scene.visual_line}): {reason}; it shows a slide instead until the "
                    "SKU is published (run its sku_video_job, then materialize this module again)"
                )
                visuals.append(
                    SceneVisual(
                        "slide",
                        {"slide": visual.title or scene.title, "fallback": visual.sku_id},
                        fallback=reason,
                    )
                )
                continue
            data, row = found
            try:
                report = probe_mp4(data)
            except ClipUnreadable as error:
                problems.append(
                    (scene.visual_line, f"sku: {visual.sku_id}: its published video is unreadable: {error}")
                )
                continue
            title = visual.title or str(row.get("title") or visual.sku_id)
            visuals.append(
                SceneVisual(
                    "product",
                    {"sku": visual.sku_id, "content_hash": str(row["content_hash"]), "title": title},
                    clip=data,
                    clip_size=(report.width, report.height),
                    product_title=title,
                )
            )
    if problems:
        raise ScriptError(script.source, problems)
    return visuals


def check_voice(script: ModuleScript, speech: EspeakSpeech) -> None:
    available, reason = speech.availability()
    if not available:
        raise ScriptError(script.source, [(script.line_of("voice"), f"cannot narrate: {reason}")])
    try:
        speech.check_voice(script.front.voice)
    except VoiceUnknown as error:
        raise ScriptError(script.source, [(script.line_of("voice"), f"voice: {error}")]) from None


def draw_stills(
    script: ModuleScript,
    visuals: list[SceneVisual],
    settings: AssemblySettings,
    look: Look,
    show_presenter: list[bool],
) -> list[Still]:
    """Every scene's still; raises ScriptError naming each scene whose text or picture does not fit."""
    problems: list[tuple[int, str]] = []
    stills: list[Still] = []
    size = settings.size
    for scene, visual, with_presenter in zip(script.scenes, visuals, show_presenter):
        try:
            stills.append(_still(scene, visual, size, look, with_presenter))
        except SlideError as error:
            problems.append((scene.visual_line, f"scene {scene.title!r}: {error}"))
    if problems:
        raise ScriptError(script.source, problems)
    return stills


def _still(
    scene: Scene, visual: SceneVisual, size: tuple[int, int], look: Look, with_presenter: bool
) -> Still:
    box = presenter_box(size)
    inset = (box.x, box.y, box.w, box.h) if with_presenter else None
    if visual.kind == "product":
        card = product_card(visual.product_title, visual.clip_size, size, look, with_presenter=False)
        b = card.clip_box
        return Still(card.still, loop_box=(b.x, b.y, b.w, b.h))
    if visual.kind == "picture":
        rgb = render_picture(visual.image, scene.visual.title, size, look, with_presenter)
    else:
        title = visual.identity["slide"]
        rgb = render_slide(
            title,
            tuple(visual.identity["bullets"]) if "bullets" in visual.identity else (),
            size,
            look,
            with_presenter,
        )
    if with_presenter:
        rgb = frame_presenter(rgb, size, look)
    return Still(np.ascontiguousarray(rgb), presenter_box=inset)
