"""Helpers for tests that start their own workers on their own warehouses and watch their jobs."""
from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from jobs.models import FineTuneJob
from supervision import processes
from tests.support.cortex import sql_literal, sql_value

LOADING_PHASES = ("loading", "reading data", "preparing")  # an IN_PROGRESS job's phases before it trains


def start_worker(stack, warehouse: str, *args: str, log: str | None = None) -> subprocess.Popen:
    """`manage.py worker --warehouse WAREHOUSE [args]`, logging to the stack's logs/<log>.log."""
    out = open(stack.data_dir / "logs" / f"{log or 'worker-' + warehouse.lower()}.log", "ab")
    return processes.manage("worker", "--warehouse", warehouse, *args, stdout=out, stderr=out)


def wait_for_workers(queue_name: str, count: int, workers: list[subprocess.Popen], timeout: float = 60) -> None:
    """Until `count` workers listen on the queue (they have swept and registered with RQ)."""
    from rq import Worker

    from jobs.queues import connection, queue_for

    queue = queue_for(queue_name.removeprefix("warehouse."))
    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=connection(), queue=queue)) < count:
        dead = [w.returncode for w in workers if w.poll() is not None]
        assert not dead and time.monotonic() < deadline, f"workers on {queue_name}: exited {dead} / not ready"
        time.sleep(0.2)


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        processes.stop(worker)


def create_job(session, name: str, query: str, epochs: int) -> str:
    """FINETUNE('CREATE', …) on the tiny model, as a user would."""
    return sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{name}', 'tiny-llama', "
                              f"{sql_literal(query)}, NULL, '{{\"max_epochs\": {epochs}}}')")


def cancel_job(session, job_id: str) -> str:
    return sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{job_id}')")


def job(job_id: str) -> FineTuneJob:
    return FineTuneJob.objects.get(pk=job_id)


def steps(job_id: str) -> int:
    return len(job(job_id).history)


def wait_for(check, timeout: float, what: str, interval: float = 0.1) -> Any:
    """check()'s first truthy value, polled until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(interval)


def child_pids(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (a worker's work horse)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(entry))
    return children


def shown(session, job_id: str) -> dict[str, Any]:
    """The job's row in FINETUNE('SHOW')."""
    rows = [row for row in sql_value(session, "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')") if row["id"] == job_id]
    assert len(rows) == 1, rows
    return rows[0]


def described(session, job_id: str) -> dict[str, Any]:
    return sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{job_id}')")
