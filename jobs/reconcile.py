"""The database is the truth about jobs; Redis only carries the queue. This puts back on their queue the
PENDING jobs that Redis does not have: queued while Redis was unreachable, or lost with Redis's data (a
Redis without persistence that restarted, a flushed or replaced Redis, an RQ job that failed before it
ever reached run_finetune_job). Workers run it when they start and every few seconds after.

IN_PROGRESS jobs are not touched here: a job whose worker died is jobs.worker.recover_abandoned_jobs's
(jobs/recovery.py).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from redis import Redis
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job, JobStatus

from jobs import queues
from jobs.models import FineTuneJob

log = logging.getLogger(__name__)

# CREATE queues its job right after the row commits (queues.enqueue_on_commit); a job younger than this
# may still be on its way to Redis, and queueing it here too would queue it twice.
GRACE_S = 5
# One reconciler per warehouse at a time, so two workers of a warehouse never both queue a lost job.
LOCK_S = 60
# RQ statuses under which RQ itself will still run the job (or is running it): nothing to do.
LIVE = {JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def warehouses_of(queue_names: list[str]) -> list[str]:
    """The warehouses behind RQ queue names (queues.queue_for names a warehouse's queue warehouse.NAME)."""
    return [name.removeprefix("warehouse.") for name in queue_names if name.startswith("warehouse.")]


def requeue_lost_jobs(warehouses: list[str], connection: Redis | None = None, grace_s: float = GRACE_S) -> list[str]:
    """Queue again the PENDING jobs of these warehouses that Redis no longer holds on their queue; their ids.

    Raises RedisError when Redis is unreachable (nothing is lost: the next run catches up) and the
    database's errors when it is."""
    conn = connection or queues.connection()
    requeued: list[str] = []
    for warehouse in warehouses:
        lock = conn.lock(f"studio:reconcile:{warehouse}", timeout=LOCK_S, blocking=False)
        if not lock.acquire():
            continue  # another worker of this warehouse is at it right now
        try:
            requeued += _requeue_lost(warehouse, conn, grace_s)
        finally:
            try:
                lock.release()
            except Exception:  # expired, or Redis went away: the lock times out by itself
                pass
    return requeued


def _requeue_lost(warehouse: str, conn: Redis, grace_s: float) -> list[str]:
    queue = queues.queue_for(warehouse)
    requeued = []
    pending = FineTuneJob.objects.filter(status=FineTuneJob.Status.PENDING, warehouse=warehouse,
                                         created_on__lt=timezone.now() - timedelta(seconds=grace_s))
    for job in pending.order_by("created_on"):
        rq_job_id = queues.rq_job_id_for(job)
        on_its_way, leftover = _rq_state(rq_job_id, queue, conn)
        if on_its_way:
            continue
        # Checked again last: a job cancelled, or claimed by a worker, since the query is left alone.
        if not FineTuneJob.objects.filter(pk=job.pk, status=FineTuneJob.Status.PENDING).exists():
            continue
        if leftover is not None:
            leftover.delete()
        if not queues.enqueue(job, warehouse):
            continue  # queued meanwhile by CREATE or a resume
        if not job.rq_job_id:
            FineTuneJob.objects.filter(pk=job.pk).update(rq_job_id=rq_job_id)
        log.warning("fine-tuning job %s was PENDING but not queued in Redis: queued it again on %s",
                    job.id, queue.name)
        requeued.append(job.id)
    return requeued


def _rq_state(rq_job_id: str, queue, conn: Redis):
    """(whether RQ will run, or is running, this job; what is left of it in Redis otherwise).

    A queued job moves forward only: onto the queue's list, then (taken by a worker) onto RQ's
    intermediate list, then out of it in the same transaction that marks it started. Looking in that
    order, a job moving meanwhile is still seen somewhere."""
    if conn.lpos(queue.key, rq_job_id) is not None or conn.lpos(queue.intermediate_queue_key, rq_job_id) is not None:
        return True, None
    try:
        rq_job = Job.fetch(rq_job_id, connection=conn)
    except NoSuchJobError:
        return False, None
    except DeserializationError:  # half a record (e.g. a heartbeat written after the job was lost)
        conn.delete(Job.key_for(rq_job_id))
        return False, None
    if rq_job.get_status(refresh=False) in LIVE:
        return True, None
    # Queued but in no list (lost half-way, e.g. the last second before a crash), or finished, failed,
    # stopped or cancelled in RQ while the row is still PENDING: run_finetune_job never claimed it (its
    # worker failed before starting it). RQ's record is cleared and the job queued afresh.
    return False, rq_job
