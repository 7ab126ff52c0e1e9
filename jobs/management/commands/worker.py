from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from jobs.queues import connection, queue_for
from jobs.worker import StudioWorker, fail_abandoned_jobs
from warehouses.models import Warehouse


class Command(BaseCommand):
    help = "Run an RQ worker that trains the fine-tuning jobs queued on a warehouse."

    def add_arguments(self, parser):
        parser.add_argument("--warehouse", action="append", help="warehouse name (repeatable; default: all)")
        parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
        parser.add_argument("--name", help="worker name shown in RQ's dashboard")

    def handle(self, *args, warehouse=None, burst=False, name=None, **opts):
        names = [w.upper() for w in warehouse] if warehouse else list(Warehouse.objects.values_list("name", flat=True))
        if not names:
            raise CommandError("No warehouses exist. Run `python manage.py bootstrap` to create COMPUTE_WH.")
        missing = [n for n in names if not Warehouse.objects.filter(name=n).exists()]
        if missing:
            raise CommandError(f"Warehouse '{missing[0]}' does not exist.")
        queues = [queue_for(n) for n in names]
        for job_id in fail_abandoned_jobs(connection(), names):
            self.stderr.write(f"Job {job_id} was left IN_PROGRESS by a worker that was killed: marked ERROR")
        connections.close_all()
        worker = StudioWorker(queues, connection=connection(), name=name)
        self.stdout.write(f"Worker listening on {', '.join(q.name for q in queues)}")
        worker.work(burst=burst, with_scheduler=False)
