"""Chunks as steps: all in one process (the default executor) or two processes at once (the multiprocess executor),
the same manifest and the same frames."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.campaigns.campaign_clips import campaign_clips
from assets.partitions import campaign_partitions
from resources.pricing import PricesResource
from resources.step_outputs import step_outputs_io_manager
from resources.storage import StorageResource
from tests.assets.campaigns.small_campaign import assert_same_campaign


def campaign_on_processes() -> dg.JobDefinition:
    """The campaign job with each step in its own process (rebuilt by every step process from this module)."""
    job = dg.define_asset_job("campaign_on_processes", selection=[campaign_clips],
                              executor_def=dg.multiprocess_executor)
    defs = dg.Definitions(assets=[campaign_clips], jobs=[job], resources={
        "storage": StorageResource.configure_at_launch(), "prices": PricesResource(),
        "step_outputs": step_outputs_io_manager})
    return defs.resolve_job_def("campaign_on_processes")


def run_on_processes(instance, spec: Path, root: Path, max_concurrent: int) -> dg.JobExecutionResult:
    config = {"spec": str(spec), "chunk_size": 2, "cache_dir": str(root / "cache")}
    result = dg.execute_job(
        dg.reconstructable(campaign_on_processes), instance=instance, tags={"dagster/partition": "spring"},
        run_config={"ops": {"campaign_clips": {"config": config}},
                    "resources": {"storage": {"config": {"root": str(root / "data")}}},
                    "execution": {"config": {"max_concurrent": max_concurrent}}},
    )
    assert result.success
    return result


def chunk_spans(instance, run_id: str) -> list[tuple[float, float]]:
    """(launched, finished) of each render step, from the run's events: the executor launches a step's process
    when a slot is free, so the spans overlap only when two chunks were given processes at once."""
    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or "render_campaign_chunk" not in (event.step_key or ""):
            continue
        if event.event_type == dg.DagsterEventType.STEP_WORKER_STARTING:
            starts[event.step_key] = record.timestamp
        elif event.is_step_success:
            ends[event.step_key] = record.timestamp
    return [(starts[key], ends[key]) for key in sorted(ends)]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    return max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)


def test_chunks_in_one_process_or_two_at_once_give_the_same_manifest_and_frames(small_campaign, tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(campaign_partitions.name, ["spring"])
        config = {"spec": str(small_campaign), "chunk_size": 2, "cache_dir": str(tmp_path / "one" / "cache")}
        one = dg.materialize([campaign_clips], instance=instance, partition_key="spring",
                             resources={"storage": StorageResource(root=str(tmp_path / "one" / "data")),
                                        "prices": PricesResource(), "step_outputs": step_outputs_io_manager},
                             run_config={"ops": {"campaign_clips": {"config": config}}})
        two = run_on_processes(instance, small_campaign, tmp_path / "two", max_concurrent=2)
        assert most_at_once(chunk_spans(instance, two.run_id)) == 2
        processes = []
        for result in (one, two):
            meta = result.asset_materializations_for_node("campaign_clips")[-1].metadata
            assert (meta["clips"].value, meta["chunks"].value) == (4, 2)
            processes.append(meta["chunk_processes"].value)
        assert processes == [1, 2]
    assert_same_campaign(StorageResource(root=str(tmp_path / "one" / "data")),
                         StorageResource(root=str(tmp_path / "two" / "data")))
