"""The RQ worker that trains fine-tuning jobs, and what becomes of a job when its worker stops.

RQ's defaults suit short jobs: on Ctrl+C or SIGTERM it waits for the running job to finish (a warm
shutdown, hours for a training run), a second signal within a second is ignored, and the work horse
runs in its own process group, so a worker killed outright leaves its horse training on as an orphan.
Here a stopping worker stops its job at once, a horse dies with its worker, and a worker starting up
takes over the jobs of workers that were killed. Such a job carries on from its last checkpoint
(jobs/recovery.py), or ends ERROR saying why: no job stays IN_PROGRESS with nobody training it.
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

from jobs import recovery, retention
from jobs.models import FineTuneJob

log = logging.getLogger(__name__)
Status = FineTuneJob.Status

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (Linux)
# A worker on another machine counts as alive while its heartbeat is this recent.
REMOTE_HEARTBEAT_S = 180

STOPPED = "The worker was stopped ({signal}) while this job was running."
KILLED = "The worker running this job stopped unexpectedly (it was killed, or its machine restarted)."
# Before this process registered any RQ worker (this module is imported first).
PROCESS_STARTED = timezone.now()


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the startup sweep still catches the orphan's job
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable")


def _alive(worker: Worker) -> bool:
    if worker.hostname == socket.gethostname() and worker.pid:
        if worker.pid == os.getpid():
            # A container restarted in place (compose's restart policy) keeps its hostname and starts its
            # PIDs again at 1, so the killed predecessor's record shows this very process's pid: it is this
            # process only if born after it started.
            return worker.birth_date is not None and worker.birth_date >= PROCESS_STARTED
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


def recover_abandoned_jobs(connection, warehouses: list[str]) -> list[tuple[str, str]]:
    """IN_PROGRESS jobs on these warehouses that no live worker is running (their worker was killed),
    queued again to carry on from their checkpoint or failed: (job id, "resumed" or "failed") each."""
    # Jobs first, workers second: RQ records a worker's job before its horse starts, so a job another
    # worker has just begun is seen as running, not as abandoned.
    in_progress = list(FineTuneJob.objects.filter(status=Status.IN_PROGRESS, warehouse__in=warehouses))
    running = {w.get_current_job_id() for w in Worker.all(connection=connection) if _alive(w)}
    outcomes = []
    for job in in_progress:
        if job.rq_job_id not in running:
            outcome = recovery.interrupted(job.rq_job_id, KILLED)
            if outcome:
                outcomes.append((job.id, outcome))
    return outcomes


class StudioWorker(Worker):
    def fork_work_horse(self, job, queue):
        # The forked horse must open its own database connections, not share the parent's socket.
        connections.close_all()
        return super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        _die_with_parent()
        return super().main_work_horse(job, queue)

    def request_stop(self, signum, frame):
        """Cold shutdown on the first signal: stop the horse, queue its job to carry on later (or fail
        it, without a checkpoint), exit."""
        rq_job_id = self.get_current_job_id()
        if self.horse_pid:
            self.kill_horse()
            self.wait_for_horse()
        if rq_job_id:
            connections.close_all()  # the signal may have interrupted a query on the main connection
            recovery.interrupted(rq_job_id, STOPPED.format(signal=signal.Signals(signum).name))
        raise SystemExit()

    # Redis going away must not end a training. RQ lets a Redis error in the worker's bookkeeping while the
    # horse trains (the working time and heartbeats it writes every job_monitoring_interval) out of
    # monitor_work_horse: the worker quits, and its horse dies with it. The horse trains from and reports to
    # the database, so the worker skips what it cannot write and writes it again once Redis is back.
    def set_current_job_working_time(self, current_job_working_time, pipeline=None):
        from redis.exceptions import RedisError

        try:
            super().set_current_job_working_time(current_job_working_time, pipeline=pipeline)
        except RedisError as exc:
            log.warning("Worker %s: Redis unreachable (%s); the job trains on", self.name, exc)

    def maintain_heartbeats(self, job):
        from redis.exceptions import RedisError

        try:
            super().maintain_heartbeats(job)
        except RedisError as exc:
            log.warning("Worker %s: Redis unreachable (%s); job %s trains on, heartbeats resume with Redis",
                        self.name, exc, job.id)

    def run_maintenance_tasks(self):
        """RQ's registry cleaning, then queue again the PENDING jobs of this worker's warehouses that Redis
        lost (jobs/reconcile.py), then job retention. RQ runs this in the main worker process when it starts
        and every maintenance_interval while idle; a Redis or database error is logged and retried, not fatal."""
        from django.db import DatabaseError
        from redis.exceptions import RedisError

        from jobs.reconcile import requeue_lost_jobs, warehouses_of

        try:
            super().run_maintenance_tasks()
            requeue_lost_jobs(warehouses_of(self.queue_names()), connection=self.connection)
        except (RedisError, DatabaseError) as exc:
            log.warning("Worker %s: maintenance failed, retried shortly: %s", self.name, exc)
            connections.close_all()
        self.collect_old_jobs()
        self.refresh_replicas()

    def refresh_replicas(self) -> None:
        """Secondary databases whose REPLICATION_SCHEDULE is due (replication/refresh.py). A refresh holds
        this worker for as long as it copies; a failure is the replica's (SHOW REPLICATION DATABASES shows
        it), never the worker's."""
        from replication.refresh import refresh_due

        try:
            for line in refresh_due():
                log.info("replication: %s", line)
        except Exception:
            log.exception("Worker %s: scheduled replication refresh failed; tried again next interval", self.name)
            connections.close_all()

    def collect_old_jobs(self) -> None:
        """Job retention (jobs/retention.py), when it is due and no other worker is at it. Whatever goes
        wrong is logged and tried again: a bug here must not stop the worker training."""
        from django.db import DatabaseError
        from redis.exceptions import RedisError

        try:
            retention.collect_if_due(self.connection)
        except (RedisError, DatabaseError) as exc:
            log.warning("Worker %s: job retention failed, retried shortly: %s", self.name, exc)
            connections.close_all()
        except Exception:
            log.exception("Worker %s: job retention failed; tried again next interval", self.name)
            connections.close_all()

    def _install_signal_handlers(self):
        """RQ's, noting that a stop was asked for: request_stop may fail while Redis is away, and the worker
        command must then end rather than start a new worker (manage.py worker restarts RQ's loop when it
        ends on a Redis error)."""
        def stop(signum, frame):
            self.stop_signal = signum
            self.request_stop(signum, frame)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
