"""Retention: a finished job stays in FINETUNE('SHOW'), DESCRIBE and the Jobs list for
STUDIO_JOB_RETENTION_DAYS after it finished; then it is collected, with whatever files it left behind.

"Finished" is SUCCESS, ERROR or CANCELLED. A PENDING or IN_PROGRESS job is never collected, however old,
and neither is the model a job registered: the model row only loses its link to the job (SET_NULL), and
its adapter lives under MODEL_STORE/adapters, which nothing here touches. What goes: the job's row, its
checkpoint (a work horse that was killed leaves one behind) and its staging directory (a half-written
adapter), and RQ's records of its tries (RQ keeps those of a killed work horse a year). A small
CollectedJob row stays, so DESCRIBE can say the job was collected rather than that it never existed;
those rows go TOMBSTONE_DAYS after, so they too are bounded.

The workers run the collection (StudioWorker.run_maintenance_tasks, between two jobs) every
STUDIO_JOB_COLLECTION_INTERVAL_S, one worker at a time whatever their number: collect_if_due.
`manage.py collectjobs` runs it by hand.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError

from jobs import recovery
from jobs.models import CollectedJob, FineTuneJob
from models_registry.models import FineTunedModel

log = logging.getLogger(__name__)

# A collected job answers "collected on …" this long after, then plain "does not exist".
TOMBSTONE_DAYS = 365
# Jobs collected in one run at most: a first run over years of jobs must not keep a worker from its queue
# for long. The rest go in the next runs.
BATCH = 1000
# Redis keys shared by every worker of the deployment: when the last collection ran, and who runs one now.
LAST_RUN_KEY = "studio:retention:last"
LOCK_KEY = "studio:retention:lock"
LOCK_S = 600  # a worker killed mid-collection holds the lock this long at most


def retention() -> timedelta:
    return timedelta(days=settings.JOB_RETENTION_DAYS)


def collectable(now: datetime | None = None):
    """The jobs a collection at `now` would collect: finished more than the retention ago."""
    cutoff = (now or timezone.now()) - retention()
    return FineTuneJob.objects.filter(status__in=FineTuneJob.FINAL_STATUSES, finished_on__lt=cutoff)


@dataclass
class Collection:
    retention_days: int
    dry_run: bool = False
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> its status
    directories: int = 0  # checkpoint and staging directories removed (or, in a dry run, to remove)
    tombstones_purged: int = 0
    left: int = 0  # collectable jobs beyond this run's BATCH

    def summary(self) -> str:
        verb = "would collect" if self.dry_run else "collected"
        counts = Counter(self.jobs.values())
        by_status = ", ".join(f"{status} {counts[status]}" for status in FineTuneJob.FINAL_STATUSES if counts[status])
        line = (f"job retention: {verb} {len(self.jobs)} job(s) finished more than {self.retention_days} days ago"
                f"{f' ({by_status})' if by_status else ''}, {self.directories} checkpoint/staging "
                f"director{'y' if self.directories == 1 else 'ies'}")
        if self.tombstones_purged:
            line += f", forgot {self.tombstones_purged} job(s) collected over {TOMBSTONE_DAYS} days ago"
        if self.left:
            line += f"; {self.left} more next run"
        return line


def collect(now: datetime | None = None, *, dry_run: bool = False, connection: Redis | None = None) -> Collection:
    """Collect the finished jobs older than the retention; what was (or, dry_run, would be) collected.
    With a Redis connection, RQ's records of their tries go too."""
    now = now or timezone.now()
    result = Collection(retention_days=settings.JOB_RETENTION_DAYS, dry_run=dry_run)
    expired = collectable(now)
    batch = list(expired.order_by("finished_on").values_list("id", "status", "role", "finished_on", "resumes",
                                                             "rq_job_id")[:BATCH])
    result.left = max(0, expired.count() - len(batch))
    adapters = [Path(p).resolve() for p in FineTunedModel.objects.values_list("adapter_path", flat=True) if p]
    for job_id, status, role, finished_on, resumes, rq_job_id in batch:
        if dry_run:
            result.jobs[job_id] = status
            result.directories += sum(d.exists() for d in _job_directories(job_id, adapters))
            continue
        if not _delete(job_id, status, role, finished_on, now):
            continue
        result.jobs[job_id] = status
        for directory in _job_directories(job_id, adapters):
            if directory.exists():
                shutil.rmtree(directory, ignore_errors=True)
                result.directories += 1
        if connection is not None:
            _forget_rq_jobs(connection, job_id, resumes, rq_job_id)
    stale = CollectedJob.objects.filter(collected_on__lt=now - timedelta(days=TOMBSTONE_DAYS))
    result.tombstones_purged = stale.count() if dry_run else stale.delete()[0]
    return result


def _delete(job_id: str, status: str, role: str, finished_on: datetime, now: datetime) -> bool:
    """The job's row, if it is still finished and expired, replaced by its CollectedJob; whether it was.

    The conditional UPDATE claims the row and holds its lock (a row lock on PostgreSQL, the write lock on
    SQLite) until the DELETE commits with it, so nothing changes the job in between; and a job that is not
    finished is never matched at all."""
    with transaction.atomic():
        still_expired = FineTuneJob.objects.filter(pk=job_id, status__in=FineTuneJob.FINAL_STATUSES,
                                                   finished_on__lt=now - retention())
        if not still_expired.update(phase="collected"):
            return False
        CollectedJob.objects.update_or_create(
            id=job_id, defaults={"status": status, "role": role, "finished_on": finished_on, "collected_on": now})
        still_expired.delete()  # the registered model, if any, keeps its row and files: its job link goes null
    return True


def _job_directories(job_id: str, adapters: list[Path]) -> list[Path]:
    """The job's checkpoint and staging directories, less any that holds a registered model's adapter
    (none should: adapters are moved out under MODEL_STORE/adapters; this makes sure)."""
    kept = []
    for directory in (recovery.checkpoint_dir(job_id), recovery.staging_dir(job_id)):
        resolved = directory.resolve()
        if any(adapter == resolved or resolved in adapter.parents for adapter in adapters):
            log.warning("job retention: %s holds a registered model's adapter; left in place", directory)
            continue
        kept.append(directory)
    return kept


def _forget_rq_jobs(connection: Redis, job_id: str, resumes: int, rq_job_id: str) -> None:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from jobs.queues import RQ_JOB_PREFIX

    ids = {f"{RQ_JOB_PREFIX}{job_id}", *(f"{RQ_JOB_PREFIX}{job_id}-resume{n}" for n in range(1, resumes + 1))}
    for rq_id in ids | ({rq_job_id} if rq_job_id else set()):
        try:
            Job.fetch(rq_id, connection=connection).delete()
        except NoSuchJobError:
            pass
        except RedisError as exc:  # what RQ keeps expires on its own; the job's row is what counted
            log.info("job retention: could not remove RQ job %s: %s", rq_id, exc)
            return
        except Exception as exc:  # a record RQ cannot read back (e.g. half written): drop its key
            log.info("job retention: RQ job %s unreadable (%s); removing its key", rq_id, exc)
            connection.delete(Job.key_for(rq_id))


def collect_if_due(connection: Redis) -> Collection | None:
    """Run collect() if no worker did in the last STUDIO_JOB_COLLECTION_INTERVAL_S and none is at it
    now; what it collected, or None when it was not this worker's turn. Logs one line per collection."""
    if not _due(connection):
        return None
    lock = connection.lock(LOCK_KEY, timeout=LOCK_S, blocking=False)
    if not lock.acquire():
        return None  # another worker is collecting right now
    try:
        if not _due(connection):  # another worker finished a collection between the check and the lock
            return None
        try:
            result = collect(connection=connection)
        finally:
            # Also after a failure (logged by the caller): the next try waits an interval, not a few seconds.
            connection.set(LAST_RUN_KEY, str(time.time()))
        log.info("%s", result.summary())
        return result
    finally:
        try:
            lock.release()
        except Exception:  # expired, or Redis went away: the lock times out by itself
            pass


def _due(connection: Redis) -> bool:
    last = connection.get(LAST_RUN_KEY)
    try:
        return last is None or time.time() - float(last) >= settings.JOB_COLLECTION_INTERVAL_S
    except ValueError:
        return True


def collected_message(job: CollectedJob) -> str:
    """What DESCRIBE and CANCEL answer for a collected job."""
    def utc(moment: datetime) -> str:
        return f"{timezone.localtime(moment, dt_timezone.utc):%Y-%m-%d %H:%M} UTC"

    return (f"Fine-tuning job '{job.id}' no longer exists: finished jobs are kept for {settings.JOB_RETENTION_DAYS} "
            f"days (STUDIO_JOB_RETENTION_DAYS), and this one, which finished with status {job.status} on "
            f"{utc(job.finished_on)}, was collected on {utc(job.collected_on)}.")
