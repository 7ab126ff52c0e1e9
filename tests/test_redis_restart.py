"""Redis restarting mid-job loses no job: the real redis-server is stopped and started again under real
workers. The database is the truth about jobs; Redis keeps its queues across a restart (append-only
file), and what it lost anyway, workers queue again from the PENDING rows (jobs/reconcile.py).

These tests restart the session's Redis (the stack's worker and this process use it, on
settings.EMBEDDED_REDIS_PORT), always on the same port and data dir, and leave it running. Each test has
its own warehouse and its own worker, so no other worker takes its jobs.
"""
from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings

from jobs import queues
from jobs.models import FineTuneJob
from jobs.reconcile import requeue_lost_jobs
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from supervision import processes
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value, wait_for_status
from warehouses.models import Warehouse

REPLY = "Thank you for contacting ACME support."
DATABASE = "REDIS_RESTART"


class SessionRedis:
    """The session's redis-server, stopped and started the way `manage.py runstack` starts it."""

    def __init__(self, stack):
        self.stack = stack
        self.port = settings.EMBEDDED_REDIS_PORT
        self.data_dir: Path = settings.DATA_DIR / "redis"

    @property
    def running(self) -> bool:
        return self.stack.processes["redis"].poll() is None

    def stop(self) -> None:
        processes.stop(self.stack.processes["redis"])  # SIGTERM: what `docker stop` and Ctrl+C send
        assert not processes.port_open(self.port)

    def start(self, wipe: bool = False) -> None:
        """Start it again; wipe: as a Redis without persistence (or a new one) would, with no data."""
        if wipe:
            shutil.rmtree(self.data_dir)
        log = open(self.stack.data_dir / "logs" / "redis.log", "ab")
        self.stack.processes["redis"] = processes.start_redis(self.port, self.data_dir, password=settings.REDIS_PASSWORD,
                                                              stdout=log, stderr=log)


@pytest.fixture
def redis_server(stack):
    server = SessionRedis(stack)
    yield server
    if not server.running:  # a test that failed half-way leaves Redis running for the tests after it
        server.start()


class OwnWorker:
    def __init__(self, stack, warehouse: str):
        self.stack, self.warehouse = stack, warehouse
        self.log_path = stack.data_dir / "logs" / f"worker-{warehouse.lower()}.log"
        self.process = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = processes.manage("worker", "--warehouse", self.warehouse, stdout=log, stderr=log)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text()[-6000:] if self.log_path.exists() else ""


@pytest.fixture
def own_worker(stack, request):
    """A warehouse of this test's own, and a worker for it (not started yet)."""
    warehouse = request.node.name.upper().replace("TEST_", "", 1)[:40] + "_WH"
    Warehouse.objects.get_or_create(name=warehouse)
    worker = OwnWorker(stack, warehouse)
    yield worker
    worker.stop()


def create_job(tmp_path, warehouse: str, model: str, rows: int, epochs: int) -> str:
    table = f"{model.upper()}_ROWS"
    make_table(tmp_path, DATABASE, table,
               [{"prompt": f"Ticket {i}: where is my order?", "completion": REPLY} for i in range(rows)])
    session = admin_session(database=DATABASE, schema="PUBLIC", warehouse=warehouse)
    query = sql_literal(f"SELECT prompt, completion FROM {table}")
    return sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{model}', 'tiny-llama', {query}, NULL, "
                              f"'{{\"max_epochs\": {epochs}}}')")


def ends(job_id: str, worker: OwnWorker, timeout: float) -> dict:
    try:
        return wait_for_status(job_id, ("SUCCESS", "ERROR", "CANCELLED"), timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{worker.log()}") from None


def assert_registered(job_id: str, described: dict, worker: OwnWorker) -> None:
    assert described["status"] == "SUCCESS", f"{described}\n--- worker log ---\n{worker.log()}"
    database, schema, name = described["model"].split(".")
    shown = Executor(admin_session()).execute(f"SHOW MODELS LIKE '{name}' IN SCHEMA {database}.{schema}")[-1].rows
    assert [row[1] for row in shown] == [name]
    assert FineTunedModel.objects.get(job_id=job_id).adapter_dir.is_dir()


def steps(job_id: str) -> int:
    return len(FineTuneJob.objects.get(pk=job_id).history)


def wait_for(check, timeout: float, what: str, worker: OwnWorker) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} after {timeout} s\n--- worker log ---\n{worker.log()}"
        time.sleep(0.2)


def test_a_job_training_while_redis_restarts_ends_with_its_model_registered(stack, redis_server, own_worker,
                                                                            tmp_path):
    own_worker.start()
    job_id = create_job(tmp_path, own_worker.warehouse, "trained_through_restart", rows=200, epochs=2)
    wait_for(lambda: steps(job_id) > 0, 60, "the job should be training", own_worker)

    redis_server.stop()
    before = steps(job_id)
    # Down until the worker has failed to write a heartbeat (it writes one every 10 s while a job trains).
    wait_for(lambda: "trains on" in own_worker.log(), 30, "the worker's heartbeat should have failed", own_worker)
    assert wait_for_status(job_id, ("IN_PROGRESS",), timeout=1)["status"] == "IN_PROGRESS", "it should train on"
    assert steps(job_id) > before, "training should go on without Redis"
    assert own_worker.alive, own_worker.log()
    redis_server.start()

    assert_registered(job_id, ends(job_id, own_worker, timeout=90), own_worker)
    assert own_worker.alive, "the worker should outlive the Redis restart"
    assert "starting a new worker" not in own_worker.log(), "the worker should have ridden out the outage"


def test_a_job_that_finishes_while_redis_is_down_stays_a_success_and_the_worker_goes_on(stack, redis_server,
                                                                                       own_worker, tmp_path):
    own_worker.start()
    job_id = create_job(tmp_path, own_worker.warehouse, "finished_without_redis", rows=12, epochs=2)
    wait_for(lambda: steps(job_id) > 0, 60, "the job should be training", own_worker)
    redis_server.stop()
    # The job ends while Redis is away: RQ cannot record it, the database can.
    described = ends(job_id, own_worker, timeout=60)
    time.sleep(6)  # RQ's failed attempts to record the end, in the work horse and then in the worker
    redis_server.start()

    assert_registered(job_id, described, own_worker)
    assert FineTuneJob.objects.get(pk=job_id).status == "SUCCESS"
    # The worker is still there and takes the next job.
    next_id = create_job(tmp_path, own_worker.warehouse, "after_the_outage", rows=12, epochs=1)
    assert_registered(next_id, ends(next_id, own_worker, timeout=60), own_worker)
    assert own_worker.alive
    # RQ never recorded the first job's end: in time it counts that execution abandoned and runs the job's
    # failure callback. Here that time is now; the job stays a success.
    started = queues.queue_for(own_worker.warehouse).started_job_registry
    assert FineTuneJob.objects.get(pk=job_id).rq_job_id in started.get_job_ids(cleanup=False)
    started.cleanup(timestamp=time.time() + 3600)
    described = wait_for_status(job_id, ("SUCCESS", "ERROR"), timeout=1)
    assert described["status"] == "SUCCESS" and "error" not in described, "RQ's late bookkeeping must not fail it"


def test_a_job_created_while_redis_is_down_is_pending_then_trained_once_redis_is_back(stack, redis_server,
                                                                                     own_worker, tmp_path):
    own_worker.start()
    wait_for(lambda: "listening on" in own_worker.log().lower(), 30, "the worker should be listening", own_worker)
    redis_server.stop()

    job_id = create_job(tmp_path, own_worker.warehouse, "created_without_redis", rows=12, epochs=1)
    assert job_id.startswith("ft_")
    assert wait_for_status(job_id, ("PENDING",), timeout=1)["status"] == "PENDING"
    shown = sql_value(admin_session(), "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')")
    assert {"id": job_id, "status": "PENDING"}.items() <= next(j for j in shown if j["id"] == job_id).items()

    redis_server.start()
    assert_registered(job_id, ends(job_id, own_worker, timeout=60), own_worker)
    assert own_worker.alive
    assert "queued it again" in own_worker.log()


def test_a_worker_asked_to_stop_while_redis_is_down_stops(stack, redis_server, own_worker):
    own_worker.start()
    wait_for(lambda: "listening on" in own_worker.log().lower(), 30, "the worker should be listening", own_worker)
    redis_server.stop()
    time.sleep(2)
    own_worker.process.send_signal(signal.SIGTERM)
    own_worker.process.wait(10)  # rather than wait for Redis, and then start a new worker
    assert "starting a new worker" not in own_worker.log()


def queued_ids(warehouse: str) -> list[str]:
    return queues.queue_for(warehouse).job_ids


def test_queued_jobs_survive_a_redis_restart_and_a_redis_that_lost_its_data(stack, redis_server, own_worker,
                                                                           tmp_path):
    # No worker yet: the jobs wait on their queue.
    ids = [create_job(tmp_path, own_worker.warehouse, f"queued_{i}", rows=12, epochs=1) for i in range(2)]
    rq_ids = [FineTuneJob.objects.get(pk=i).rq_job_id for i in ids]
    assert queued_ids(own_worker.warehouse) == rq_ids

    redis_server.stop()
    redis_server.start()
    assert queued_ids(own_worker.warehouse) == rq_ids, "the append-only file keeps the queue across a restart"

    redis_server.stop()
    redis_server.start(wipe=True)
    assert queued_ids(own_worker.warehouse) == [], "a Redis without its data has no queue"
    assert {wait_for_status(i, ("PENDING",), timeout=1)["status"] for i in ids} == {"PENDING"}

    newest = FineTuneJob.objects.get(pk=ids[-1]).created_on.timestamp()
    time.sleep(max(0.0, newest + 5.5 - time.time()))  # past the grace period for jobs just created
    own_worker.start()  # queues the PENDING jobs Redis lost as it starts
    for job_id in ids:
        assert_registered(job_id, ends(job_id, own_worker, timeout=60), own_worker)
    assert own_worker.log().count("queued it again") == 2, "each lost job is queued once"


def test_the_reconciler_queues_lost_pending_jobs_once_and_leaves_others_alone(stack, own_worker, tmp_path):
    # No worker on this warehouse: what the reconciler does stays on the queue to be looked at.
    warehouse = own_worker.warehouse
    queued, lost, running = (create_job(tmp_path, warehouse, f"reconciled_{i}", rows=12, epochs=1) for i in range(3))
    conn = queues.connection()
    conn.lrem(queues.queue_for(warehouse).key, 0, FineTuneJob.objects.get(pk=lost).rq_job_id)
    conn.delete(f"rq:job:{FineTuneJob.objects.get(pk=lost).rq_job_id}")
    FineTuneJob.objects.filter(pk=running).update(status="IN_PROGRESS")
    conn.lrem(queues.queue_for(warehouse).key, 0, FineTuneJob.objects.get(pk=running).rq_job_id)

    assert requeue_lost_jobs([warehouse], grace_s=3600) == [], "jobs just created may be on their way to Redis"
    assert requeue_lost_jobs([warehouse], grace_s=0) == [lost]
    assert requeue_lost_jobs([warehouse], grace_s=0) == [], "a job queued again is queued, not queued twice"
    rq_id = {i: FineTuneJob.objects.get(pk=i).rq_job_id for i in (queued, lost, running)}
    assert sorted(queued_ids(warehouse)) == sorted([rq_id[queued], rq_id[lost]])

    FineTuneJob.objects.filter(pk__in=[queued, lost, running]).update(status="CANCELLED")
    queues.queue_for(warehouse).empty()
