"""Records between steps: JSON in storage, read back as the producer's declared type; nothing else travels."""

import dagster as dg
import pytest
from pydantic import BaseModel

from resources.step_outputs import StepOutputsIOManager
from resources.storage import StorageResource


class Tally(BaseModel):
    name: str
    count: int


def contexts(record_type):
    output = dg.build_output_context(step_key="count[a1x1_00001]", name="result", run_id="r1", mapping_key="a1x1_00001",
                                     dagster_type=dg.DagsterType(lambda _, v: True, name="T", typing_type=record_type))
    return output, dg.build_input_context(upstream_output=output, name="tally")


def test_a_record_round_trips_through_storage_by_its_declared_type(tmp_path):
    storage = StorageResource(root=str(tmp_path))
    manager = StepOutputsIOManager(storage)
    output, downstream = contexts(Tally)
    manager.handle_output(output, Tally(name="spring", count=3))
    assert storage.list_keys("runs") == ["runs/r1/count_a1x1_00001_/result/a1x1_00001.json"]
    assert manager.load_input(downstream) == Tally(name="spring", count=3)


def test_values_that_are_not_records_are_refused_naming_the_step(tmp_path):
    manager = StepOutputsIOManager(StorageResource(root=str(tmp_path)))
    output, _ = contexts(dict)
    with pytest.raises(TypeError, match=r"output 'result' of step count\[a1x1_00001\]: a dict is not a typed record"):
        manager.handle_output(output, {"count": 3})
