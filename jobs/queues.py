"""Redis and RQ wiring: one queue per warehouse."""
from __future__ import annotations

import logging
import re

import django_rq
from django.db import transaction
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from jobs.models import FineTuneJob
from warehouses.models import Warehouse

log = logging.getLogger(__name__)

# Training may legitimately run for a day; RQ's default of 180 s would kill it.
JOB_TIMEOUT = 24 * 3600


RQ_JOB_PREFIX = "finetune-"  # each RQ job is named after its fine-tuning job, so one finds the other

def connection() -> Redis:
    return django_rq.get_connection("default")


def queue_for(warehouse: Warehouse | str) -> Queue:
    name = warehouse.queue_name if isinstance(warehouse, Warehouse) else f"warehouse.{warehouse}"
    return Queue(name, connection=connection(), default_timeout=JOB_TIMEOUT)


def rq_job_id_for(job: FineTuneJob) -> str:
    return job.rq_job_id or f"{RQ_JOB_PREFIX}{job.id}"


def enqueue(job: FineTuneJob, warehouse: Warehouse | str | None = None) -> bool:
    """Put one committed job on its warehouse's queue, unless Redis already has it under its RQ job id
    (each try of a job has its own); whether it queued it. Raises RedisError when Redis is unreachable.

    The one way a fine-tuning job is queued: by CREATE (enqueue_on_commit), by a resume from a checkpoint
    (jobs/recovery.py) and by the workers' reconciler (jobs/reconcile.py), which queues PENDING jobs that
    Redis does not have, so two of them may try at about the same time."""
    from rq import Callback

    rq_job_id = rq_job_id_for(job)
    queue = queue_for(warehouse if warehouse is not None else job.warehouse)
    if queue.connection.exists(Job.key_for(rq_job_id)):
        return False
    queue.enqueue(
        "jobs.tasks.run_finetune_job",
        job.id,
        job_id=rq_job_id,
        job_timeout=JOB_TIMEOUT,
        on_failure=Callback("jobs.tasks.on_worker_failure"),
        on_stopped=Callback("jobs.tasks.on_worker_stopped"),
    )
    return True


def enqueue_join(warehouse: Warehouse, host: str, job_id: str, join: dict) -> None:
    """Ask `host`'s workers of a warehouse over several hosts to join a job's training (jobs.tasks.join_training),
    ahead of anything else on their queue: the job's own worker waits for them."""
    queue = Queue(warehouse.join_queue_name(host), connection=connection(), default_timeout=JOB_TIMEOUT)
    queue.enqueue("jobs.tasks.join_training", job_id, join, job_id=f"join-{join['run_id']}-{re.sub(r'[^A-Za-z0-9_-]', '_', host)}",
                  job_timeout=JOB_TIMEOUT, at_front=True, result_ttl=3600)


def enqueue_on_commit(job: FineTuneJob, warehouse: Warehouse) -> None:
    """Queue after the job row is committed, so a fast worker never looks for a row it cannot see.

    The row is the truth: if Redis cannot be reached at that moment, CREATE still succeeds and the job
    stays PENDING until a worker's reconciler queues it, once Redis is back."""
    rq_job_id = f"{RQ_JOB_PREFIX}{job.id}"
    FineTuneJob.objects.filter(pk=job.pk).update(rq_job_id=rq_job_id)
    job.rq_job_id = rq_job_id

    def enqueue_committed() -> None:
        try:
            enqueue(job, warehouse)
        except RedisError as exc:
            log.warning("Redis unreachable while queueing fine-tuning job %s (%s): it stays PENDING and a "
                        "worker of %s queues it once Redis is back", job.id, exc, warehouse.name)

    transaction.on_commit(enqueue_committed)


def stop(job: FineTuneJob, *, was_running: bool) -> None:
    """Take a cancelled job off its queue, or kill the work horse that trains it."""
    if not job.rq_job_id:
        return
    conn = connection()
    try:
        rq_job = Job.fetch(job.rq_job_id, connection=conn)
    except NoSuchJobError:
        return
    except RedisError as exc:
        # The row already says CANCELLED: a worker that claims or trains the job checks it and stops.
        log.warning("Redis unreachable while cancelling %s: %s", job.id, exc)
        return
    try:
        if rq_job.get_status(refresh=True) == "started":
            send_stop_job_command(conn, job.rq_job_id)
        else:
            rq_job.cancel()
    except InvalidJobOperation as exc:
        # The job moved between the two calls; the trainer also polls the row and stops itself.
        log.info("could not stop RQ job %s: %s", job.rq_job_id, exc)
