"""Training records: round trip, records from before versions, and damaged or newer ones counting as absent."""

from datetime import UTC, datetime

import pytest

from assets.training.records import RECORD_VERSION, ModuleRecord, ScenePart, SceneRecord, read_training_record
from resources.storage import StorageResource
from videokit.training.captions import Cue

KEY = "training/scenes/abc/scene.json"


def scene() -> SceneRecord:
    return SceneRecord(key="abc", title="Care", n_frames=48, parts=(ScenePart(file="part-0.mp4", frames=24, repeat=2),),
                       speech_s=1.5, cues=(Cue(0.0, 1.5, "Rinse\nand dry"),), tts_chars=15, cpu_s=0.4,
                       created_at=datetime.now(UTC))


@pytest.fixture
def storage(tmp_path):
    return StorageResource(root=str(tmp_path / "data"))


def test_scene_record_round_trip_and_an_unversioned_record(storage):
    record = scene()
    storage.write_json(KEY, record.to_json())
    assert read_training_record(storage, KEY, SceneRecord) == record
    old = record.to_json()
    del old["version"]
    storage.write_json(KEY, old)
    assert read_training_record(storage, KEY, SceneRecord).version == 0
    assert read_training_record(storage, "training/scenes/none/scene.json", SceneRecord) is None


@pytest.mark.parametrize("damage", ["newer", "no parts", "not json"])
def test_a_damaged_or_newer_record_counts_as_absent(storage, damage):
    data = scene().to_json()
    if damage == "newer":
        data["version"] = RECORD_VERSION + 1
    elif damage == "no parts":
        del data["parts"]
    storage.write_json(KEY, data)
    if damage == "not json":
        storage.write_bytes(KEY, b"\x00\x01")
    assert read_training_record(storage, KEY, SceneRecord) is None


def test_module_record_round_trip(storage):
    record = ModuleRecord(files={"module.mp4": "training/m/k/module.mp4"}, title="T", scenes=("a", "b"),
                          created_at=datetime.now(UTC))
    storage.write_json("training/m/k/module.json", record.to_json())
    assert read_training_record(storage, "training/m/k/module.json", ModuleRecord) == record
