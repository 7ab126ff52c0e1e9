"""FINETUNE('CANCEL', …) is honoured within 5 seconds whatever the job is doing: queued, loading,
training or registering its model. Nothing of a cancelled job is trained on afterwards, registered or
left in the model store. Every job here is created and cancelled through SQL, as a user would."""
from __future__ import annotations

import time

import pytest
from django.conf import settings

from jobs.queues import queue_for
from models_registry.models import FineTunedModel
from models_registry.registry import adapters_dir, staging_dir
from tests.support.cortex import admin_session, make_table, wait_for_status
from tests.support.workers import (LOADING_PHASES, cancel_job, child_pids, create_job, described, job, shown,
                                   start_worker, steps, stop_workers, wait_for, wait_for_workers)
from warehouses.models import Warehouse

CANCEL_WITHIN_S = 5


@pytest.fixture
def tables(stack, tmp_path):
    """A short job's rows and a long one's (10 epochs of 400 rows: minutes on this machine)."""
    row = {"prompt": "Ticket {i}: where is my order?", "completion": "Thank you for contacting ACME support."}
    make_table(tmp_path, "CANCELS", "SHORT_ROWS", [{k: v.format(i=i) for k, v in row.items()} for i in range(12)])
    make_table(tmp_path, "CANCELS", "LONG_ROWS", [{k: v.format(i=i) for k, v in row.items()} for i in range(400)])
    return "SELECT prompt, completion FROM cancels.public.short_rows", "SELECT prompt, completion FROM cancels.public.long_rows"


@pytest.fixture
def workers():
    started = []
    yield started
    stop_workers(started)


def session_on(warehouse: str):
    Warehouse.objects.get_or_create(name=warehouse)
    return admin_session(database="CANCELS", schema="PUBLIC", warehouse=warehouse)


def assert_cancelled_as_seen_by_the_user(session, job_id: str) -> dict:
    """DESCRIBE and SHOW say CANCELLED, with no model; the row holds no trace of a model either."""
    description = described(session, job_id)
    assert description["status"] == "CANCELLED", description
    assert description["finished_on"] >= description["created_on"]
    assert description["progress"] < 1.0
    assert "model" not in description and "trained_tokens" not in description and "error" not in description
    assert shown(session, job_id)["status"] == "CANCELLED"
    row = job(job_id)
    assert row.phase == "cancelled" and row.final_model_name == ""
    return description


def assert_nothing_left(job_id: str) -> None:
    assert not FineTunedModel.objects.filter(job_id=job_id).exists(), "a cancelled job's model was registered"
    assert not (adapters_dir() / job_id).exists(), "a cancelled job's adapter is in the model store"
    assert not staging_dir(job_id).exists(), "a cancelled job's staging directory is left behind"
    # Nor anything else named after it (a checkpoint, say): the model store keeps files per job id.
    assert not list(settings.MODEL_STORE.glob(f"*/{job_id}*")), list(settings.MODEL_STORE.glob(f"*/{job_id}*"))


def cancel_and_time_it(session, job_id: str) -> float:
    """CANCEL, then DESCRIBE until it says CANCELLED; the seconds it took."""
    started = time.monotonic()
    assert cancel_job(session, job_id) == f"Canceled Cortex Fine-tuning job: {job_id}"
    wait_for(lambda: described(session, job_id)["status"] == "CANCELLED", CANCEL_WITHIN_S, "DESCRIBE says CANCELLED")
    return time.monotonic() - started


def assert_horse_gone_within(worker, horses: list[int], since: float) -> None:
    """The work horses stopped within CANCEL_WITHIN_S of `since`, and the worker lives on."""
    left = CANCEL_WITHIN_S - (time.monotonic() - since)
    wait_for(lambda: not set(horses) & set(child_pids(worker.pid)), max(left, 0.01),
             f"the work horse {horses} stopped within {CANCEL_WITHIN_S} s of CANCEL")
    assert worker.poll() is None, "CANCEL stopped the worker itself, not just its job"


# ---------------------------------------------------------------------------------------------------------


def test_a_queued_job_is_cancelled_at_once_and_never_trained(stack, tables, workers):
    short, _ = tables
    session = session_on("CANCEL_QUEUED_WH")  # no worker yet: the job waits in the queue
    job_id = create_job(session, "never_trained", short, epochs=1)
    assert shown(session, job_id)["status"] == "PENDING"
    assert cancel_and_time_it(session, job_id) < 1.0
    assert_cancelled_as_seen_by_the_user(session, job_id)
    assert queue_for("CANCEL_QUEUED_WH").job_ids == [], "the cancelled job is still on its queue"

    # A worker for the warehouse comes up later, and trains the job queued after it, not the cancelled one.
    workers.append(start_worker(stack, "CANCEL_QUEUED_WH", log="worker-cancel"))
    wait_for_workers("warehouse.CANCEL_QUEUED_WH", 1, workers)
    next_id = create_job(session, "trained_after_it", short, epochs=1)
    assert wait_for_status(next_id, ("SUCCESS", "ERROR", "CANCELLED"), timeout=60, stack=stack)["status"] == "SUCCESS"
    row = job(job_id)
    assert row.started_on is None and row.history == [] and row.epochs is None, "the cancelled job was started"
    assert_cancelled_as_seen_by_the_user(session, job_id)
    assert_nothing_left(job_id)


def test_a_training_job_stops_within_seconds_and_leaves_nothing(stack, tables, workers):
    _, long = tables
    session = session_on("CANCEL_TRAINING_WH")
    worker = start_worker(stack, "CANCEL_TRAINING_WH", log="worker-cancel")
    workers.append(worker)
    job_id = create_job(session, "cancelled_in_training", long, epochs=10)
    wait_for(lambda: steps(job_id) > 0, 90, "the job trains")
    horses = child_pids(worker.pid)
    assert horses, "the worker should be training in a work horse"

    cancelled_at = time.monotonic()
    assert cancel_and_time_it(session, job_id) < CANCEL_WITHIN_S
    assert_horse_gone_within(worker, horses, cancelled_at)
    wait_for(lambda: not staging_dir(job_id).exists(), CANCEL_WITHIN_S, "the staging directory is removed")
    count = steps(job_id)
    time.sleep(2)
    assert steps(job_id) == count, "steps were still recorded after CANCEL"
    description = assert_cancelled_as_seen_by_the_user(session, job_id)
    assert 0 < description["progress"] < 1.0
    assert_nothing_left(job_id)


def test_a_job_cancelled_while_its_worker_loads_it_never_trains(stack, tables, workers):
    """CANCEL right after CREATE, while the worker loads the job (reads its data, loads the base model)."""
    _, long = tables
    session = session_on("CANCEL_LOADING_WH")
    worker = start_worker(stack, "CANCEL_LOADING_WH", log="worker-cancel")
    workers.append(worker)
    wait_for_workers("warehouse.CANCEL_LOADING_WH", 1, workers)
    # The loading phases last under a second here: poll closely, and try again with a new job if the
    # poll came too late (that job is cancelled in training, which is covered above).
    for attempt in range(3):
        job_id = create_job(session, f"cancelled_while_loading_{attempt}", long, epochs=10)
        seen = wait_for(lambda: (lambda r: r.status == "IN_PROGRESS" and (r.phase, bool(r.history)))(job(job_id)),
                        60, "the worker takes the job", interval=0.01)
        if seen[0] in LOADING_PHASES and not seen[1]:
            break
        cancel_job(session, job_id)
        wait_for(lambda: not child_pids(worker.pid), 10, "the worker is idle again")
    else:
        pytest.fail(f"never caught a job loading: last seen in phase {seen[0]!r}")
    horses = child_pids(worker.pid)

    cancelled_at = time.monotonic()
    assert cancel_and_time_it(session, job_id) < CANCEL_WITHIN_S
    assert_horse_gone_within(worker, horses, cancelled_at)
    wait_for(lambda: not staging_dir(job_id).exists(), CANCEL_WITHIN_S, "the staging directory is removed")
    time.sleep(2)
    row = job(job_id)
    assert row.history == [] and row.phase == "cancelled", (row.phase, len(row.history))
    assert_cancelled_as_seen_by_the_user(session, job_id)
    assert_nothing_left(job_id)


# ---------------------------------------------------------------------------------------------------------
# registering: after training, before the model exists. No worker can be paused there, so these run the
# worker's task in this process, on a warehouse without workers, and cancel from inside it.


def run_in_this_process(job_id: str) -> str:
    from jobs.tasks import run_finetune_job

    return run_finetune_job(job_id)


def test_a_job_cancelled_while_registering_registers_no_model(stack, tables, monkeypatch):
    from jobs.tasks import JobHooks

    short, _ = tables
    session = session_on("CANCEL_REGISTERING_WH")
    job_id = create_job(session, "cancelled_while_registering", short, epochs=1)
    on_phase = JobHooks.on_phase
    trained = []

    def cancel_when_registering(hooks, phase):
        on_phase(hooks, phase)
        if phase == "registering":
            trained.append(staging_dir(job_id).exists())
            cancel_job(session, job_id)

    monkeypatch.setattr(JobHooks, "on_phase", cancel_when_registering)
    assert run_in_this_process(job_id) == "cancelled"
    assert trained == [True], "the job should have been cancelled with its adapter trained and staged"
    assert_cancelled_as_seen_by_the_user(session, job_id)
    assert_nothing_left(job_id)


def test_a_cancel_arriving_as_the_model_is_registered_is_refused_and_the_job_keeps_its_model(stack, tables,
                                                                                        monkeypatch):
    """SUCCESS is claimed before the model is registered, in one transaction: a CANCEL then finds the job
    finished. A job is CANCELLED without a model or SUCCESS with one, never CANCELLED with a model."""
    from errors import UserError
    from models_registry import registry

    short, _ = tables
    session = session_on("CANCEL_REGISTERING_WH")
    job_id = create_job(session, "cancelled_before_register", short, epochs=1)
    register = registry.register
    refusals = []

    def cancel_then_register(job, staging, metrics):
        with pytest.raises(UserError) as refused:
            cancel_job(session, job_id)
        refusals.append(str(refused.value))
        return register(job, staging, metrics)

    monkeypatch.setattr(registry, "register", cancel_then_register)
    try:
        outcome = run_in_this_process(job_id)
    finally:
        monkeypatch.undo()
    assert outcome == "success"
    assert refusals == [f"Fine-tuning job '{job_id}' has already finished with status SUCCESS; only PENDING or "
                        "IN_PROGRESS jobs can be cancelled."]
    description = described(session, job_id)
    assert description["status"] == "SUCCESS" and description["model"]
    assert FineTunedModel.objects.filter(job_id=job_id).exists()
