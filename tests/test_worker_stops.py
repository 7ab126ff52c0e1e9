"""A worker that stops, politely or not, never leaves its job IN_PROGRESS or its work horse training on."""
from __future__ import annotations

import os
import signal
import time

import pytest

from jobs.models import FineTuneJob
from studio import processes
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value, wait_for_status
from warehouses.models import Warehouse

WAREHOUSE = "STOPPING_WH"


@pytest.fixture
def long_job(stack, tmp_path):
    """A worker of its own on its own warehouse, training a job long enough to be caught mid-way."""
    Warehouse.objects.get_or_create(name=WAREHOUSE)
    log = open(stack.data_dir / "logs" / "worker-stopping.log", "ab")
    worker = processes.manage("worker", "--warehouse", WAREHOUSE, stdout=log, stderr=log)
    make_table(tmp_path, "E2E", "STOP_ROWS",
               [{"prompt": f"Ticket {i}: where is my order?", "completion": "Thank you for contacting ACME support."}
                for i in range(400)])
    session = admin_session(database="E2E", schema="PUBLIC", warehouse=WAREHOUSE)
    query = sql_literal("SELECT prompt, completion FROM stop_rows")
    job_id = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'stopped_model', 'tiny-llama', {query}, "
                                "NULL, '{\"max_epochs\": 10}')")
    deadline = time.monotonic() + 60
    while not FineTuneJob.objects.get(pk=job_id).history:
        assert time.monotonic() < deadline and worker.poll() is None, stack.log("worker-stopping")
        time.sleep(0.2)
    yield job_id, worker
    processes.stop(worker)


def horse_pids(worker_pid: int) -> list[int]:
    """Processes whose parent is the worker: its work horse."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == worker_pid:
                children.append(int(entry))
    return children


def steps_now(job_id: str) -> int:
    return len(FineTuneJob.objects.get(pk=job_id).history)


def test_stopping_a_worker_stops_its_job_at_once_and_says_why(long_job, stack):
    job_id, worker = long_job
    horses = horse_pids(worker.pid)
    assert horses, "the worker should be training in a work horse"
    worker.send_signal(signal.SIGTERM)  # what bin/start's Ctrl+C and `docker stop` send
    worker.wait(10)
    described = wait_for_status(job_id, ("ERROR",), timeout=5, stack=stack)
    assert described["error"]["message"].startswith("The worker was stopped (SIGTERM) while this job was running")
    for pid in horses:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()


def test_a_killed_worker_takes_its_horse_along_and_the_next_worker_fails_the_job(long_job, stack):
    job_id, worker = long_job
    horses = horse_pids(worker.pid)
    worker.kill()  # SIGKILL: no handler runs
    worker.wait(10)
    time.sleep(2)
    steps = steps_now(job_id)
    time.sleep(3)
    assert steps_now(job_id) == steps, "the orphaned work horse kept training"
    assert all(not os.path.exists(f"/proc/{pid}") for pid in horses)
    assert FineTuneJob.objects.get(pk=job_id).status == "IN_PROGRESS"  # nobody was left to say otherwise

    log = open(stack.data_dir / "logs" / "worker-stopping.log", "ab")
    successor = processes.manage("worker", "--warehouse", WAREHOUSE, stdout=log, stderr=log)
    try:
        described = wait_for_status(job_id, ("ERROR",), timeout=30, stack=stack)
        assert described["error"]["message"].startswith("The worker running this job stopped unexpectedly")
    finally:
        processes.stop(successor)
