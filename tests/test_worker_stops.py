"""A worker that stops, politely or not, never leaves its job IN_PROGRESS or its work horse training on:
the job carries on from its checkpoint under the next worker, or ends ERROR when there is none."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from jobs.models import FineTuneJob
from jobs.recovery import checkpoint_dir
from supervision import processes
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value, wait_for_status
from tests.support.workers import child_pids
from warehouses.models import Warehouse

WAREHOUSE = "STOPPING_WH"


def start_worker(stack, **env):
    log = open(stack.data_dir / "logs" / "worker-stopping.log", "ab")
    return processes.manage("worker", "--warehouse", WAREHOUSE, stdout=log, stderr=log, env=env)


@pytest.fixture
def checkpoint_every_s(request):
    """The workers' STUDIO_CHECKPOINT_INTERVAL_S; the default (60 s) means no checkpoint within these tests."""
    return getattr(request, "param", None)


@pytest.fixture
def epochs(request):
    return getattr(request, "param", 10)


@pytest.fixture
def long_job(stack, tmp_path, checkpoint_every_s, epochs):
    """A worker of its own on its own warehouse, training a job long enough to be caught mid-way."""
    Warehouse.objects.get_or_create(name=WAREHOUSE)
    env = {} if checkpoint_every_s is None else {"STUDIO_CHECKPOINT_INTERVAL_S": str(checkpoint_every_s)}
    worker = start_worker(stack, **env)
    make_table(tmp_path, "E2E", "STOP_ROWS",
               [{"prompt": f"Ticket {i}: where is my order?", "completion": "Thank you for contacting ACME support."}
                for i in range(400)])
    session = admin_session(database="E2E", schema="PUBLIC", warehouse=WAREHOUSE)
    query = sql_literal("SELECT prompt, completion FROM stop_rows")
    job_id = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'stopped_model', 'tiny-llama', {query}, "
                                f"NULL, '{{\"max_epochs\": {epochs}}}')")
    deadline = time.monotonic() + 60
    while not FineTuneJob.objects.get(pk=job_id).history:
        assert time.monotonic() < deadline and worker.poll() is None, stack.log("worker-stopping")
        time.sleep(0.2)
    yield job_id, worker
    processes.stop(worker)


def steps_now(job_id: str) -> int:
    return len(FineTuneJob.objects.get(pk=job_id).history)


def test_stopping_a_worker_stops_its_job_at_once_and_says_why(long_job, stack):
    job_id, worker = long_job
    horses = child_pids(worker.pid)
    assert horses, "the worker should be training in a work horse"
    worker.send_signal(signal.SIGTERM)  # what bin/start's Ctrl+C and `docker stop` send
    worker.wait(10)
    described = wait_for_status(job_id, ("ERROR",), timeout=5, stack=stack)
    assert described["error"]["message"].startswith("The worker was stopped (SIGTERM) while this job was running")
    for pid in horses:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()


def test_a_killed_worker_takes_its_horse_along_and_the_next_worker_fails_the_job(long_job, stack):
    job_id, worker = long_job
    horses = child_pids(worker.pid)
    worker.kill()  # SIGKILL: no handler runs
    worker.wait(10)
    time.sleep(2)
    steps = steps_now(job_id)
    time.sleep(3)
    assert steps_now(job_id) == steps, "the orphaned work horse kept training"
    assert all(not os.path.exists(f"/proc/{pid}") for pid in horses)
    assert FineTuneJob.objects.get(pk=job_id).status == "IN_PROGRESS"  # nobody was left to say otherwise

    successor = start_worker(stack)
    try:
        described = wait_for_status(job_id, ("ERROR",), timeout=30, stack=stack)
        assert described["error"]["message"].startswith("The worker running this job stopped unexpectedly")
        assert "Nothing was saved" in described["error"]["message"]
    finally:
        processes.stop(successor)


def wait_for_checkpoint(job_id: str, at_least: int) -> int:
    summary = checkpoint_dir(job_id) / "checkpoint.json"
    deadline = time.monotonic() + 60
    while True:
        if summary.exists() and json.loads(summary.read_text())["step"] >= at_least:
            return json.loads(summary.read_text())["step"]
        assert time.monotonic() < deadline, f"no checkpoint at step {at_least} after 60 s"
        time.sleep(0.1)


@pytest.mark.parametrize("checkpoint_every_s, epochs", [(1, 2)], indirect=True)  # 90 steps, about 30 s
@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
def test_a_stopped_workers_job_carries_on_from_its_checkpoint_under_the_next_worker(long_job, stack, stop):
    job_id, worker = long_job
    wait_for_checkpoint(job_id, at_least=3)
    worker.send_signal(getattr(signal, stop))
    worker.wait(10)
    stopped_at = time.time() * 1000
    time.sleep(0.5)  # a checkpoint being written as the signal came is finished or abandoned by now
    resumed_from = json.loads((checkpoint_dir(job_id) / "checkpoint.json").read_text())["step"]
    job = FineTuneJob.objects.get(pk=job_id)
    if stop == "SIGTERM":  # the worker says so itself; a killed one leaves it to its successor
        assert job.status == "PENDING"
        assert job.interruption == (f"The worker was stopped (SIGTERM) while this job was running. It carries on "
                                    f"from its checkpoint at step {resumed_from} (try 2 of 4).")

    successor = start_worker(stack, STUDIO_CHECKPOINT_INTERVAL_S="1")
    try:
        described = wait_for_status(job_id, ("SUCCESS", "ERROR"), timeout=120, stack=stack)
    finally:
        processes.stop(successor)
    assert described["status"] == "SUCCESS", described
    job = FineTuneJob.objects.get(pk=job_id)
    assert job.resumes == 1
    assert f"carries on from its checkpoint at step {resumed_from} " in job.interruption
    steps = [h["step"] for h in job.history]
    assert steps == list(range(1, job.history[-1]["total_steps"] + 1)), "every step once, none lost or repeated"
    # The steps up to the checkpoint were trained before the stop and not again after it.
    assert all(h["at"] < stopped_at for h in job.history if h["step"] <= resumed_from)
    assert all(h["at"] > stopped_at for h in job.history if h["step"] > resumed_from)
    assert described["model"] and not checkpoint_dir(job_id).exists()


def test_a_try_declared_abandoned_while_it_still_trains_stops_and_leaves_its_checkpoint_to_the_next(
        stack, tmp_path, settings, monkeypatch):
    """RQ declares a running job abandoned when its heartbeats stop reaching Redis for a minute, even if it
    still trains. The job is then queued to carry on from its checkpoint; the old try must stop, write
    nothing more, and keep the checkpoint for the new one. Run in this process, on a warehouse with no
    worker, so the handover can happen at a chosen step."""
    from jobs import recovery
    from jobs.tasks import JobHooks, run_finetune_job

    Warehouse.objects.get_or_create(name="HANDOVER_WH")
    settings.CHECKPOINT_INTERVAL_S = 0
    make_table(tmp_path, "E2E", "HANDOVER_ROWS",
               [{"prompt": f"Ticket {i}: where is my order?", "completion": "Thank you for contacting ACME support."}
                for i in range(40)])
    session = admin_session(database="E2E", schema="PUBLIC", warehouse="HANDOVER_WH")
    query = sql_literal("SELECT prompt, completion FROM handover_rows")
    job_id = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'handed_over', 'tiny-llama', {query}, "
                                "NULL, '{\"max_epochs\": 3}')")
    on_step = JobHooks.on_step
    handed_over = []

    def hand_over_after_step_3(hooks, m):
        on_step(hooks, m)
        if m.step == 3:
            handed_over.append(recovery.interrupted(hooks.job.rq_job_id, "RQ found it abandoned."))

    monkeypatch.setattr(JobHooks, "on_step", hand_over_after_step_3)
    assert run_finetune_job(job_id) == "cancelled"
    assert handed_over == ["resumed"]
    job = FineTuneJob.objects.get(pk=job_id)
    assert job.status == "PENDING" and job.rq_job_id.endswith("-resume1")
    # Handed over after step 3 was reported but before its checkpoint was written: the new try redoes step 3.
    assert job.interruption == "RQ found it abandoned. It carries on from its checkpoint at step 2 (try 2 of 4)."
    assert json.loads((checkpoint_dir(job_id) / "checkpoint.json").read_text())["step"] == 2
    assert all(h["step"] <= 3 for h in job.history), "the old try wrote progress after the handover"
