"""Values handed from one op to the next, kept as JSON in the StorageResource (local folder or S3).

A run whose steps execute on several machines (Celery workers) cannot pass values through process memory or a
folder on one machine's disk; every worker reaches the same storage. Only typed records (pydantic models) are
accepted, written as JSON and read back as the type the producing op declared, so a stored value is never
unpickled and a wrong shape fails naming the step and output.
"""

from __future__ import annotations

import re

import dagster as dg
from pydantic import BaseModel, ValidationError

from resources.storage import StorageResource

STEP_OUTPUTS_PREFIX = "runs"
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def output_key(prefix: str, identifier: list[str]) -> str:
    """`runs/{run_id}/{step_key}/{output}[/{mapping_key}].json`, each part reduced to characters every store keeps."""
    parts = [_UNSAFE.sub("_", part) for part in identifier]
    return "/".join([prefix, *parts]) + ".json"


class StepOutputsIOManager(dg.IOManager):
    """Op outputs as JSON records in shared storage, so steps on any worker hand typed records to each other."""

    def __init__(self, storage: StorageResource, prefix: str = STEP_OUTPUTS_PREFIX):
        self.storage, self.prefix = storage, prefix

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if not isinstance(obj, BaseModel):
            raise TypeError(f"output {context.name!r} of step {context.step_key}: a {type(obj).__name__} is not a "
                            "typed record (pydantic model); only records travel between steps")
        data = obj.model_dump_json().encode()
        if len(data) > MAX_OUTPUT_BYTES:
            raise ValueError(f"output {context.name!r} of step {context.step_key}: {len(data)} bytes of JSON, over "
                             f"{MAX_OUTPUT_BYTES}; write large data to storage and pass its key")
        self.storage.write_bytes(output_key(self.prefix, context.get_identifier()), data)

    def load_input(self, context: dg.InputContext) -> object:
        upstream = context.upstream_output
        record_type = upstream.dagster_type.typing_type
        if not (isinstance(record_type, type) and issubclass(record_type, BaseModel)):
            raise TypeError(f"input {context.name!r}: step {upstream.step_key} declares {record_type!r}, not a record")
        key = output_key(self.prefix, upstream.get_identifier())
        try:
            return record_type.model_validate_json(self.storage.read_bytes(key))
        except ValidationError as error:
            raise ValueError(f"{self.storage.url(key)}: not a {record_type.__name__} record: {error}") from None


@dg.io_manager(required_resource_keys={"storage"},
               description="Typed records between steps, as JSON in the `storage` resource (local folder or S3).")
def step_outputs_io_manager(init_context: dg.InitResourceContext) -> StepOutputsIOManager:
    # Bound to the run's `storage` resource, so a run that overrides storage keeps its step records there too.
    return StepOutputsIOManager(init_context.resources.storage)
