"""The RQ worker that trains fine-tuning jobs, and what becomes of a job when its worker stops.

RQ's defaults suit short jobs: on Ctrl+C or SIGTERM it waits for the running job to finish (a warm
shutdown, hours for a training run), a second signal within a second is ignored, and the work horse
runs in its own process group, so a worker killed outright leaves its horse training on as an orphan.
Here a stopping worker stops its job at once and says so on the job, a horse dies with its worker,
and a worker starting up marks the jobs of workers that were killed, so no job stays IN_PROGRESS.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket

from django.db import connections
from django.utils import timezone
from rq import Worker

from jobs.models import FineTuneJob
from jobs.queues import RQ_JOB_PREFIX

log = logging.getLogger(__name__)
Status = FineTuneJob.Status

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (Linux)
# A worker on another machine counts as alive while its heartbeat is this recent.
REMOTE_HEARTBEAT_S = 180

STOPPED = ("The worker was stopped ({signal}) while this job was running; nothing was saved. "
           "Start the job again with FINETUNE('CREATE', …).")
KILLED = ("The worker running this job stopped unexpectedly (it was killed, or its machine restarted); "
          "nothing was saved. Start the job again with FINETUNE('CREATE', …).")


def fail_job(rq_job_id: str | None, message: str) -> bool:
    """Mark the fine-tuning job behind an RQ job ERROR (unless it already ended); drop its staging."""
    if not rq_job_id or not rq_job_id.startswith(RQ_JOB_PREFIX):
        return False
    from jobs.tasks import fail_abandoned

    return fail_abandoned(rq_job_id.removeprefix(RQ_JOB_PREFIX), message)


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the startup sweep still catches the orphan's job
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable")


def _alive(worker: Worker) -> bool:
    if worker.hostname == socket.gethostname() and worker.pid:
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    beat = worker.last_heartbeat
    if beat is None:
        return False
    if timezone.is_naive(beat):
        beat = timezone.make_aware(beat, timezone.utc)
    return (timezone.now() - beat).total_seconds() < REMOTE_HEARTBEAT_S


def fail_abandoned_jobs(connection, warehouses: list[str]) -> list[str]:
    """IN_PROGRESS jobs on these warehouses that no live worker is running: their worker was killed."""
    running = {w.get_current_job_id() for w in Worker.all(connection=connection) if _alive(w)}
    failed = []
    for job in FineTuneJob.objects.filter(status=Status.IN_PROGRESS, warehouse__in=warehouses):
        if job.rq_job_id not in running and fail_job(job.rq_job_id, KILLED):
            failed.append(job.id)
    return failed


class StudioWorker(Worker):
    def fork_work_horse(self, job, queue):
        # The forked horse must open its own database connections, not share the parent's socket.
        connections.close_all()
        return super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        _die_with_parent()
        return super().main_work_horse(job, queue)

    def request_stop(self, signum, frame):
        """Cold shutdown on the first signal: stop the horse, record why on the job, exit."""
        rq_job_id = self.get_current_job_id()
        if self.horse_pid:
            self.kill_horse()
            self.wait_for_horse()
        if rq_job_id:
            connections.close_all()  # the signal may have interrupted a query on the main connection
            fail_job(rq_job_id, STOPPED.format(signal=signal.Signals(signum).name))
        raise SystemExit()
