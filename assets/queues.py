"""Celery queues a step can ask for when runs execute on workers (pipelines/executors.py); in-process runs
ignore the tag."""

QUEUES = ("gpu", "api", "cpu")
QUEUE_TAG = "dagster-celery/queue"


def on_queue(queue: str) -> dict[str, str]:
    if queue not in QUEUES:
        raise ValueError(f"queue {queue!r}: expected one of {', '.join(QUEUES)}")
    return {QUEUE_TAG: queue}
