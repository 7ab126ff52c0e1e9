from __future__ import annotations

import logging
import signal
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from redis.exceptions import RedisError

from rq import Queue

from jobs.queues import JOB_TIMEOUT, connection, queue_for
from jobs.reconcile import requeue_lost_jobs
from jobs.worker import StudioWorker, recover_abandoned_jobs
from warehouses.models import Warehouse

log = logging.getLogger(__name__)

# RQ runs its maintenance (here also: queueing again the PENDING jobs Redis lost, jobs/reconcile.py) only
# between two waits for a job, and waits worker_ttl - 15 s: together, a lost job is queued again within
# about 20 s. The worker's Redis key lives worker_ttl + 60 s without a heartbeat.
WORKER_TTL_S = 25
MAINTENANCE_INTERVAL_S = 10
# Heartbeats while a job trains; RQ counts a job abandoned 60 s after the last one.
JOB_MONITORING_INTERVAL_S = 10
# RQ waits 1, 2, 4 … s between attempts to reach a Redis that went away; by default up to 60 s.
MAX_RECONNECT_WAIT_S = 5.0
# RQ's work loop ending this many times in a row, quickly, while Redis answers: a bug, not an outage.
MAX_QUICK_RESTARTS = 5


class Command(BaseCommand):
    help = "Run an RQ worker that trains the fine-tuning jobs queued on a warehouse."

    def add_arguments(self, parser):
        parser.add_argument("--warehouse", action="append", help="warehouse name (repeatable; default: all)")
        parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
        parser.add_argument("--name", help="worker name shown in RQ's dashboard")
        parser.add_argument("--host", help="this machine as a warehouse's hosts name it (one that trains a job across "
                                           "several hosts): the first host's workers take the jobs, the others join")

    def handle(self, *args, warehouse=None, burst=False, name=None, host=None, **opts):
        names = [w.upper() for w in warehouse] if warehouse else list(Warehouse.objects.values_list("name", flat=True))
        if not names:
            raise CommandError("No warehouses exist. Run `python manage.py bootstrap` to create COMPUTE_WH.")
        missing = [n for n in names if not Warehouse.objects.filter(name=n).exists()]
        if missing:
            raise CommandError(f"Warehouse '{missing[0]}' does not exist.")
        queues, names = self.queues(names, host, named=bool(warehouse))
        for job_id, outcome in recover_abandoned_jobs(connection(), names):
            then = "queued to carry on from its checkpoint" if outcome == "resumed" else "marked ERROR"
            self.stderr.write(f"Job {job_id} was left IN_PROGRESS by a worker that was killed: {then}")
        requeue_lost_jobs(names)  # logs each job it queues again
        connections.close_all()
        self.work(queues, burst=burst, name=name)

    def queues(self, names: list[str], host: str | None, named: bool) -> tuple[list, list[str]]:
        """The queues to listen on, and the warehouses whose jobs this worker takes (the ones it sweeps)."""
        queues, takes = [], []
        for warehouse in Warehouse.objects.filter(name__in=names).order_by("name"):
            hosts = warehouse.host_list
            if hosts and host not in hosts:
                problem = (f"Warehouse '{warehouse.name}' trains each job across hosts {', '.join(hosts)}: "
                           + ("name this one with --host." if host is None else f"'{host}' is none of them."))
                if named:
                    raise CommandError(problem)
                self.stderr.write(f"Not serving it: {problem}")
            elif hosts and host != hosts[0]:  # joins the trainings that the first host's workers start
                queues.append(Queue(warehouse.join_queue_name(host), connection=connection(), default_timeout=JOB_TIMEOUT))
            else:
                queues.append(queue_for(warehouse))
                takes.append(warehouse.name)
        if not queues:
            raise CommandError("No warehouse to serve (see above).")
        return queues, takes

    def work(self, queues, burst: bool, name: str | None) -> None:
        """RQ's work loop, started afresh when it ends on an error. RQ rides out a Redis outage while it
        waits for a job, but quits on a Redis error anywhere else (between jobs, after one): then this
        waits for Redis to answer and starts a new worker, rather than leave the warehouse without one."""
        quick_restarts = 0
        while True:
            worker = StudioWorker(queues, connection=connection(), name=name, worker_ttl=WORKER_TTL_S,
                                  maintenance_interval=MAINTENANCE_INTERVAL_S,
                                  job_monitoring_interval=JOB_MONITORING_INTERVAL_S)
            worker.max_connection_wait_time = MAX_RECONNECT_WAIT_S
            self.stdout.write(f"Worker listening on {', '.join(q.name for q in queues)}")
            started = time.monotonic()
            try:
                worker.work(burst=burst, with_scheduler=False)
            except RedisError as exc:  # its teardown (or its stop on a signal) needed Redis
                log.warning("Worker %s: Redis unreachable as it stopped: %s", worker.name, exc)
            if burst:
                return
            if getattr(worker, "stop_signal", None) is not None:  # SIGTERM or Ctrl+C, even if Redis is away
                raise SystemExit()
            if worker.horse_pid:  # it quit while a job was training: the training goes on and ends in the DB
                worker.wait_for_horse()
            # Until the next worker installs its own: a stop request now needs no Redis and no cleanup.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            redis_was_down = self.wait_for_redis(worker)
            try:
                worker.teardown()  # what it could not record while Redis was away
            except Exception as exc:
                log.info("Worker %s: could not tear down: %s", worker.name, exc)
            quick = time.monotonic() - started < 60
            quick_restarts = quick_restarts + 1 if quick and not redis_was_down else 0
            if quick_restarts >= MAX_QUICK_RESTARTS:
                raise CommandError("The RQ work loop keeps ending on an error (logged above) while Redis answers; "
                                   "giving up.")
            self.stderr.write(f"Worker {worker.name} stopped on an error (logged above): starting a new worker")
            time.sleep(2 ** quick_restarts if quick_restarts else 0)

    def wait_for_redis(self, worker: StudioWorker) -> bool:
        """Block until Redis answers; whether it did not at first."""
        waited = False
        while True:
            try:
                worker.connection.ping()
                if waited:
                    self.stderr.write("Redis is back")
                return waited
            except RedisError as exc:
                if not waited:
                    self.stderr.write(f"Redis unreachable ({exc}): waiting for it")
                waited = True
                time.sleep(1)

