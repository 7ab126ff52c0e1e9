"""A worker started again in the same container (compose's restart policy: same hostname, PIDs from 1
again) finds its killed predecessor's record under its own pid, and must still take over that one's job
at once rather than take it for itself. Real Redis and RQ worker records (conftest's stack)."""
from __future__ import annotations

import uuid
from datetime import timedelta

from rq import Worker
from rq.utils import utcformat

from jobs import worker as studio_worker
from jobs.models import FineTuneJob
from jobs.queues import connection, queue_for

WAREHOUSE = "RESTARTED_WH"  # no worker serves it: only the recovery under test touches its jobs


def in_progress_job() -> FineTuneJob:
    return FineTuneJob.objects.create(
        base_model="tiny-llama", database="RESTARTED", schema="PUBLIC", requested_name="M",
        training_data="SELECT prompt, completion FROM t", warehouse=WAREHOUSE, role="ACCOUNTADMIN",
        status=FineTuneJob.Status.IN_PROGRESS, rq_job_id=f"finetune-restarted-{uuid.uuid4().hex[:8]}")


def record_of_this_pid(rq_job_id: str, born) -> Worker:
    """An RQ worker's record with this host's name and this process's pid, training rq_job_id."""
    record = Worker([queue_for(WAREHOUSE)], connection=connection(), name=f"RESTARTED_WH-1.{uuid.uuid4().hex[:6]}")
    record.register_birth()
    connection().hset(record.key, "birth", utcformat(born))
    record.set_current_job_id(rq_job_id)
    return record


def test_a_worker_restarted_with_its_predecessors_pid_takes_over_the_predecessors_job(stack):
    job = in_progress_job()
    predecessor = record_of_this_pid(job.rq_job_id, born=studio_worker.PROCESS_STARTED - timedelta(minutes=5))
    try:
        assert studio_worker.recover_abandoned_jobs(connection(), [WAREHOUSE]) == [(job.id, "failed")]
        job.refresh_from_db()
        assert job.status == "ERROR"
        assert job.error_message.startswith(studio_worker.KILLED)  # no checkpoint yet: nothing to carry on from
    finally:
        predecessor.register_death()


def test_its_own_record_is_not_taken_for_a_dead_one(stack):
    job = in_progress_job()
    itself = record_of_this_pid(job.rq_job_id, born=studio_worker.PROCESS_STARTED + timedelta(seconds=1))
    try:
        assert studio_worker.recover_abandoned_jobs(connection(), [WAREHOUSE]) == []
        job.refresh_from_db()
        assert job.status == "IN_PROGRESS"
    finally:
        itself.register_death()
        FineTuneJob.objects.filter(pk=job.pk).delete()
