"""The Celery app `skuvid worker` runs (`celery -A pipelines.celery_app`): dagster-celery's own tasks, with the
broker, backend and settings built from the environment in memory, so the broker URL (which may hold a
password) is never written to a config file."""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from pipelines.executors import worker_config

# Which queue is the default matters only to whoever submits; a worker consumes the queues it is given.
_settings = worker_config("cpu")["execution"]["config"]
app = make_app(CeleryExecutor.for_cli(**_settings).app_args())
execute_plan = create_task(app)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
