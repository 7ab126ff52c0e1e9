from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from redis.exceptions import RedisError

from jobs import retention
from jobs.queues import connection


class Command(BaseCommand):
    help = (f"Collect the fine-tuning jobs that finished more than STUDIO_JOB_RETENTION_DAYS "
            f"({settings.JOB_RETENTION_DAYS}) days ago, with their checkpoints and staging files, as the workers "
            f"do every STUDIO_JOB_COLLECTION_INTERVAL_S. Running jobs and registered models are never touched.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="list what would be collected, change nothing")

    def handle(self, *args, dry_run=False, **opts):
        redis = connection()
        try:
            redis.ping()
        except RedisError as exc:  # RQ's records expire on their own; the rows and files are what matter
            self.stderr.write(f"Redis unreachable ({exc}): RQ's records of these jobs are left to expire")
            redis = None
        result = retention.collect(dry_run=dry_run, connection=redis)
        for job_id, status in result.jobs.items():
            self.stdout.write(f"{job_id}\t{status}")
        self.stdout.write(result.summary())
