"""Training records: a rendered scene (`training/scenes/{key}/scene.json`) and a written module (`module.json`).

Typed and versioned like the SKU artifact records: records from before versions read as version 0, and one
that does not validate (damaged, or written by a newer release) counts as absent, so the scene renders again
or the module is joined again. Presenter clips are stored on their own, so a scene rendered again never buys
its clip twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resources.storage import StorageResource
from videokit.training.captions import Cue

RECORD_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=RECORD_VERSION, ge=0, le=RECORD_VERSION)
    created_at: datetime

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


class ScenePart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    frames: int = Field(ge=1)
    repeat: int = Field(ge=1)


class SceneRecord(_Record):
    key: str
    title: str
    n_frames: int = Field(ge=1)
    parts: tuple[ScenePart, ...]
    speech_s: float = Field(ge=0)
    cues: tuple[Cue, ...]
    tts_chars: int = Field(ge=0)
    cpu_s: float = Field(ge=0)


class ModuleRecord(_Record):
    files: dict[str, str]
    title: str
    scenes: tuple[str, ...]


Record = TypeVar("Record", SceneRecord, ModuleRecord)


def read_training_record(storage: StorageResource, key: str, model: type[Record]) -> Record | None:
    """The record at `key`, or None when there is none or it does not validate."""
    if not storage.exists(key):
        return None
    try:
        data: Any = storage.read_json(key)
    except ValueError:
        return None
    if isinstance(data, dict) and "version" not in data:  # written before records had versions
        data = {**data, "version": 0}
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
