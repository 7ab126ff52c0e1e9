"""What becomes of a job whose training stopped outside its own control: a worker stopped or killed,
a work horse that died. With a checkpoint the job goes back on its queue and carries on from it;
without one (or after too many tries) it ends ERROR saying why. Never IN_PROGRESS with nobody on it.

Each try runs under its own RQ job id, and only the job's current one counts: RQ reports an abandoned
RQ job long after the fact (its started-jobs registry expires it a minute after the last heartbeat),
and by then the job may be training again under a new id.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.models import FineTuneJob
from trainer.checkpoint import saved_step

log = logging.getLogger(__name__)
Status = FineTuneJob.Status

# A job interrupted this many times ends ERROR: something kills it (memory, a bad machine), and carrying
# on once more would only loop.
MAX_RESUMES = 3


def checkpoint_dir(job_id: str) -> Path:
    return settings.MODEL_STORE / "checkpoints" / job_id


def staging_dir(job_id: str) -> Path:
    from models_registry.registry import staging_dir

    return staging_dir(job_id)


def tokens_dir(job_id: str) -> Path:
    """The job's token store (jobs/training_data.prepare_tokens), beside its staging directory: never inside
    it, which becomes the model's adapter directory."""
    return settings.MODEL_STORE / "staging" / f"{job_id}.tokens"


def discard_files(job_id: str) -> None:
    """The half-written adapter, the token store and the checkpoint: none is any use once the job has ended."""
    shutil.rmtree(staging_dir(job_id), ignore_errors=True)
    shutil.rmtree(tokens_dir(job_id), ignore_errors=True)
    shutil.rmtree(checkpoint_dir(job_id), ignore_errors=True)


def fail(job_id: str, message: str) -> bool:
    """Mark the job ERROR unless it already ended; whether it was marked. Its files go."""
    failed = FineTuneJob.objects.filter(pk=job_id, status__in=(Status.PENDING, Status.IN_PROGRESS)).update(
        status=Status.ERROR, error_message=message, finished_on=timezone.now(), phase="failed"
    ) == 1
    discard_files(job_id)
    return failed


def interrupted(rq_job_id: str | None, reason: str) -> str | None:
    """The training behind this RQ job stopped for `reason` (a sentence). Queue it again to carry on from
    its checkpoint, or fail it. Returns "resumed", "failed", or None when the RQ job is not the job's
    current try (already handled, or an old try reported late)."""
    if not rq_job_id:
        return None
    job = FineTuneJob.objects.filter(rq_job_id=rq_job_id, status__in=(Status.PENDING, Status.IN_PROGRESS)).first()
    if job is None:
        return None
    step = saved_step(checkpoint_dir(job.id))
    if step is None:
        fail(job.id, f"{reason} Nothing was saved. Start the job again with FINETUNE('CREATE', …).")
        return "failed"
    if job.resumes >= MAX_RESUMES:
        fail(job.id, f"{reason} It was interrupted {job.resumes + 1} times, so it does not carry on again. "
                     "Start it again with FINETUNE('CREATE', …), with a smaller batch_size if memory ran short.")
        return "failed"
    return "resumed" if resume(job, step, reason) else None


def resume(job: FineTuneJob, step: int, reason: str) -> bool:
    """Back on its warehouse's queue under a new RQ job id, to carry on from the checkpoint at `step`."""
    from jobs import queues

    tries = job.resumes + 1
    new_rq_job_id = f"{queues.RQ_JOB_PREFIX}{job.id}-resume{tries}"
    with transaction.atomic():
        moved = FineTuneJob.objects.filter(pk=job.pk, rq_job_id=job.rq_job_id,
                                           status__in=(Status.PENDING, Status.IN_PROGRESS)).update(
            status=Status.PENDING, phase="queued", rq_job_id=new_rq_job_id, resumes=tries,
            interruption=f"{reason} It carries on from its checkpoint at step {step} "
                         f"(try {tries + 1} of {MAX_RESUMES + 1}).",
        )
        if not moved:
            return False
        job.rq_job_id = new_rq_job_id

        def enqueue() -> None:
            try:
                queues.enqueue(job)
            except Exception as exc:  # Redis away: the row says PENDING, and the reconciler queues it later
                log.warning("could not queue job %s to carry on: %s", job.id, exc)

        transaction.on_commit(enqueue)
    log.info("job %s interrupted (%s): queued to carry on from step %d", job.id, reason, step)
    return True
