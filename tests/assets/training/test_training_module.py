"""`training_module`: a module from a script, re-rendering only what changed; SKU clips, presenters, bad input
refused with its line before anything is paid; and the asset itself on a temporary instance."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime
from pathlib import Path

import av
import dagster as dg
import pandas as pd
import pytest

from assets.catalog.sku_catalog import write_parquet
from assets.partitions import module_partitions
from assets.sku_video.publish import MANIFEST_COLUMNS, manifest_key
from assets.training.training_module import TrainingError, build_module, training_module
from devkit.emulators.heygen import HeyGenEmulator
from resources.ledger import LedgerResource
from resources.presenters.did import DidPresenter
from resources.presenters.heygen import HeyGenPresenter
from resources.pricing import PricesResource
from resources.storage import StorageResource
from tests.videokit.training.training_media import SCRIPT, SMALL, product_clip, write_script
from videokit.training.captions import parse_webvtt
from videokit.training.module_assembly import inspect_module
from videokit.training.script import ScriptError

FAST = {
    "poll_interval_s": 0.02,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 2.0,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.05,
}


@pytest.fixture
def storage(tmp_path) -> StorageResource:
    return StorageResource(root=str(tmp_path / "data"))


@pytest.fixture
def ledger(tmp_path) -> LedgerResource:
    return LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")


@pytest.fixture
def heygen_emulator():
    with HeyGenEmulator() as emulator:
        yield emulator


def heygen(emulator: HeyGenEmulator, storage: StorageResource, ledger: LedgerResource) -> HeyGenPresenter:
    return HeyGenPresenter(
        base_url=emulator.base_url,
        api_key=emulator.api_key,
        storage=storage,
        ledger=ledger,
        prices=PricesResource(),
        **FAST,
    )


def build(storage, path, **options):
    messages: list[str] = []
    options.setdefault("workers", 1)
    report = build_module(
        "gear-care",
        str(path),
        storage,
        PricesResource(),
        options.pop("presenters", {}),
        settings=SMALL,
        log=messages.append,
        **options,
    )
    return report, messages


def publish_sku(storage: StorageResource, sku_id: str, title: str = "Ridgeline 24L Daypack - Moss") -> None:
    """A clip and its manifest row where `published_video` puts them, as if the SKU had been published."""
    clip = product_clip()
    storage.write_bytes(f"published/{sku_id}/c0ffee.mp4", clip)
    row = dict.fromkeys(MANIFEST_COLUMNS)
    row.update(
        {
            "sku_id": sku_id,
            "title": title,
            "tier": "bulk",
            "content_hash": "c0ffee",
            "video_url": storage.url(f"published/{sku_id}/c0ffee.mp4"),
            "duration_s": 2.0,
            "width": 256,
            "height": 144,
            "bytes": len(clip),
            "provider": "motion",
            "model": "test",
            "cost_usd": 0.0,
            "qa_summary": "test",
            "published_at": datetime.now(UTC).isoformat(),
        }
    )
    write_parquet(storage, manifest_key(sku_id), pd.DataFrame([row], columns=MANIFEST_COLUMNS))


def packets(mp4: bytes, seconds: float) -> list[bytes]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        return [
            bytes(p) for p in container.demux(stream) if p.pts is not None and p.pts * p.time_base < seconds
        ]


def test_a_module_is_made_from_a_script(storage, tmp_path):
    report, _ = build(storage, write_script(tmp_path))
    assert (report.scenes, report.scenes_rendered, report.narrator) == (3, 3, "espeak-ng")
    assert (report.video_codec, report.audio_codec, report.faststart, report.chapters) == (
        "h264",
        "aac",
        True,
        3,
    )
    assert report.chapter_titles == ["Welcome", "Clean gently", "Read the label"]
    mp4 = storage.read_bytes(report.files["module.mp4"])
    file = inspect_module(mp4)
    assert file.video_s == file.audio_s == pytest.approx(report.duration_s) and (file.width, file.height) == (
        320,
        180,
    )
    cues = parse_webvtt(storage.read_bytes(report.files["captions.vtt"]).decode())
    assert cues[0].start_s == pytest.approx(0.2) and cues[-1].end_s < report.duration_s
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(cues))
    chapters = parse_webvtt(storage.read_bytes(report.files["chapters.vtt"]).decode())
    assert [c.text for c in chapters] == report.chapter_titles and chapters[-1].end_s == report.duration_s
    assert storage.read_bytes(report.files["poster.jpg"])[:2] == b"\xff\xd8"
    assert report.tts_chars == report.narration_chars > 0 and report.cpu_s > 0 and report.cost_usd > 0
    assert {"heygen_avatar_iv_studio", "did_talks_pro"} <= set(report.estimates_usd)


def test_editing_one_scene_renders_that_scene_only_and_copies_the_rest(storage, tmp_path):
    path = write_script(tmp_path)
    first, _ = build(storage, path)
    same, _ = build(storage, path)
    assert same.reused and same.scenes_rendered == 0 and same.module_key == first.module_key
    path.write_text(SCRIPT.replace("Then use cool water.", "Then rinse it in cool water and let it dry."))
    edited, _ = build(storage, path)
    assert (edited.scenes_rendered, edited.scenes_reused, edited.reused) == (1, 2, False)
    assert edited.module_key != first.module_key
    old, new = (storage.read_bytes(r.files["module.mp4"]) for r in (first, edited))
    # The unchanged first scene is the very same encoded picture in both modules: joined by stream copy.
    first_scene_s = parse_webvtt(storage.read_bytes(edited.files["chapters.vtt"]).decode())[0].end_s
    assert packets(old, first_scene_s) == packets(new, first_scene_s)
    assert len([k for k in storage.list_keys("training/scenes/") if k.endswith("scene.json")]) == 4
    assert inspect_module(new).chapters == 3


def test_a_sku_scene_plays_the_published_clip_or_a_slide_until_it_is_published(storage, tmp_path):
    path = write_script(
        tmp_path,
        SCRIPT + "\n## The daypack\nsku: NW-BPK-001\n\nThis is our daypack. It is light and tough, "
        "and it carries all you need for a day in the hills.\n",
    )
    before, messages = build(storage, path)
    assert len(before.sku_fallbacks) == 1 and "NW-BPK-001 is not published yet" in before.sku_fallbacks[0]
    assert any("(line 29)" in m and "shows a slide instead" in m for m in messages)
    publish_sku(storage, "NW-BPK-001")
    after, _ = build(storage, path)
    assert after.sku_fallbacks == [] and (after.scenes_rendered, after.scenes_reused) == (1, 3)
    records = [
        storage.read_json(k) for k in storage.list_keys("training/scenes/") if k.endswith("scene.json")
    ]
    looped = [r for r in records if len(r["parts"]) and r["parts"][0]["frames"] == 50]
    assert looped, "the product scene repeats one 2-s loop of the clip"


BAD_INPUTS = [
    (SCRIPT.replace("images/label.png", "images/gone.png"), r"module.md:24: image: not allowed by the source policy: images/gone.png"),
    (
        SCRIPT.replace("- Cool water, mild soap", "- " + "far too many words " * 40),
        r"module.md:17: scene 'Clean gently': the 2 bullet\(s\) do not fit",
    ),
    (
        SCRIPT.replace("voice: en-us", "voice: xx-nonsense"),
        r"module.md:3: voice: unknown voice 'xx-nonsense'",
    ),
    (
        SCRIPT.replace("voice: en-us", "presenter: heygen").replace(
            "Welcome. This is", "Welcome. " + "word " * 450
        ),
        r"module.md:10: heygen: scene 'Welcome' has \d+ characters of narration; heygen takes at most 2000",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_INPUTS)
def test_bad_input_is_refused_with_its_line_before_anything_is_paid(
    text, message, storage, ledger, tmp_path, heygen_emulator
):
    path = write_script(
        tmp_path,
        text.replace("voice: en-us", "voice: en-us\npresenter: heygen", 1)
        if "presenter" not in text and "xx-nonsense" not in text
        else text,
    )
    with pytest.raises(ScriptError, match=message):
        build(storage, path, ledger=ledger, presenters={"heygen": heygen(heygen_emulator, storage, ledger)})
    assert sum(heygen_emulator.requests.values()) == 0 and storage.list_keys("training/") == []


def test_a_presenter_narrates_when_available_and_no_clip_is_bought_twice(
    storage, ledger, tmp_path, heygen_emulator
):
    path = write_script(tmp_path, SCRIPT.replace("voice: en-us", "presenter: heygen"))
    presenters = {"heygen": heygen(heygen_emulator, storage, ledger)}
    report, _ = build(storage, path, ledger=ledger, presenters=presenters)
    assert (report.narrator, report.presenter_clips_bought, heygen_emulator.submissions) == ("heygen", 3, 3)
    assert report.presenter_s > 2 and report.presenter_charged_usd > 0 and report.tts_chars == 0
    # A slide-only edit re-renders its scene with the stored clip: nothing is bought again.
    path.write_text(path.read_text().replace("- Brush off dry mud", "- Brush off the dry mud"))
    edited, _ = build(storage, path, ledger=ledger, presenters=presenters)
    assert (edited.scenes_rendered, edited.presenter_clips_bought, heygen_emulator.submissions) == (1, 0, 3)
    assert len(ledger.charges("heygen")) == 3


def test_without_a_presenter_the_module_is_narrated_slides(storage, ledger, tmp_path):
    path = write_script(tmp_path, SCRIPT.replace("voice: en-us", "voice: en-us\npresenter: heygen"))
    keyless = HeyGenPresenter(storage=storage, ledger=ledger, prices=PricesResource())
    report, messages = build(storage, path, ledger=ledger, presenters={"heygen": keyless})
    assert report.narrator == "espeak-ng" and "HEYGEN_API_KEY not set" in report.presenter_fallback
    assert any("narrated by espeak-ng over full-width slides" in m for m in messages)


def test_a_budget_too_small_stops_the_module_before_paying(storage, ledger, tmp_path, heygen_emulator):
    path = write_script(tmp_path, SCRIPT.replace("voice: en-us", "presenter: heygen"))
    with pytest.raises(TrainingError, match=r"budget training:gear-care: .* nothing was paid"):
        build(
            storage,
            path,
            ledger=ledger,
            budget_usd=0.05,
            presenters={"heygen": heygen(heygen_emulator, storage, ledger)},
        )
    assert heygen_emulator.submissions == 0


def test_the_asset_materializes_a_module_partition(storage, ledger, tmp_path):
    path = write_script(tmp_path)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(module_partitions.name, ["gear-care"])
        prices = PricesResource()
        resources = {
            "storage": storage,
            "prices": prices,
            "ledger": ledger,
            "heygen": HeyGenPresenter(storage=storage, ledger=ledger, prices=prices),
            "did": DidPresenter(storage=storage, ledger=ledger, prices=prices),
        }
        result = dg.materialize(
            [training_module],
            partition_key="gear-care",
            instance=instance,
            resources=resources,
            run_config={"ops": {"training_module": {"config": {"script": str(path), "workers": 1}}}},
        )
        assert result.success
        [event] = result.get_asset_materialization_events()
        metadata = {key: value.value for key, value in event.materialization.metadata.items()}
        assert (
            metadata["narrator"] == "espeak-ng" and metadata["scenes"] == 3 and metadata["scenes_rendered"] == 3
        )
        assert metadata["estimate_heygen_avatar_iv_studio_usd"] > 0 and metadata["tts_chars"] > 0
        [check] = result.get_asset_check_evaluations()
        assert check.passed and check.check_name == "training_module_format"
        failed = dg.materialize(
            [training_module],
            partition_key="gear-care",
            instance=instance,
            resources=resources,
            raise_on_error=False,
            run_config={"ops": {"training_module": {"config": {"script": str(tmp_path / "nope.md")}}}},
        )
        assert not failed.success


def test_sample_pictures_are_drawn_beside_the_sample_scripts():
    samples = Path(__file__).resolve().parents[3] / "samples" / "training"
    text = (samples / "product-care.md").read_text()
    assert "image: images/care-label.png" in text and "image: images/drying.png" in text
