"""Warehouse slots: a warehouse trains `concurrency` jobs at once, one per worker; the rest wait, PENDING.

Two jobs on one single-slot warehouse run one after the other; two warehouses, or one warehouse with
two slots, train two jobs in parallel. Each test starts its own workers on its own warehouse, with the
commands `manage.py runstack` starts them with (supervision.processes.worker_commands).
"""
from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest

from supervision import processes
from tests.support.cortex import admin_session, make_table, wait_for_status
from tests.support.workers import create_job, job, start_worker, stop_workers, wait_for_workers
from warehouses.models import Warehouse

DONE = ("SUCCESS", "ERROR", "CANCELLED")
# Long enough (5 steps an epoch) to watch a job train, short enough for two rounds of jobs in a test.
ROWS = [{"prompt": f"Ticket {i}: where is my order?", "completion": "Thank you for contacting ACME support."}
        for i in range(40)]


@pytest.fixture
def table(stack, tmp_path):
    make_table(tmp_path, "SLOTS", "TICKETS", ROWS)
    return "SELECT prompt, completion FROM slots.public.tickets"


@pytest.fixture
def workers():
    started = []
    yield started
    stop_workers(started)


def warehouse(name: str, concurrency: int = 1) -> Warehouse:
    wh, _ = Warehouse.objects.update_or_create(name=name, defaults={"concurrency": concurrency})
    return wh


def watch(job_ids: list[str], until_done: list[str], timeout: float, stack) -> list[dict[str, tuple]]:
    """Samples of every job's (status, steps) until the `until_done` jobs ended."""
    samples = []
    deadline = time.monotonic() + timeout
    while True:
        rows = {i: job(i) for i in job_ids}
        samples.append({i: (r.status, len(r.history)) for i, r in rows.items()})
        if all(rows[i].status in DONE for i in until_done):
            return samples
        assert time.monotonic() < deadline, f"not done after {timeout} s: {samples[-1]}\n{stack.log('worker-slots')}"
        time.sleep(0.2)


def training(sample, job_id) -> bool:
    status, steps = sample[job_id]
    return status == "IN_PROGRESS" and steps > 0


def assert_overlap(a, b) -> None:
    assert max(a.started_on, b.started_on) < min(a.finished_on, b.finished_on), (
        f"{a.id} {a.started_on}..{a.finished_on} and {b.id} {b.started_on}..{b.finished_on} did not overlap")


# ---------------------------------------------------------------------------------------------------------
# which workers the stack starts


def test_the_stack_starts_concurrency_workers_per_warehouse_each_with_its_own_name():
    warehouses = [SimpleNamespace(name="COMPUTE_WH", concurrency=1), SimpleNamespace(name="BIG_WH", concurrency=3),
                  SimpleNamespace(name="PAUSED_WH", concurrency=0)]
    commands = processes.worker_commands(warehouses, run_id="abc123")
    assert commands == [
        ("worker COMPUTE_WH-1", ["worker", "--warehouse", "COMPUTE_WH", "--name", "COMPUTE_WH-1.abc123"]),
        ("worker BIG_WH-1", ["worker", "--warehouse", "BIG_WH", "--name", "BIG_WH-1.abc123"]),
        ("worker BIG_WH-2", ["worker", "--warehouse", "BIG_WH", "--name", "BIG_WH-2.abc123"]),
        ("worker BIG_WH-3", ["worker", "--warehouse", "BIG_WH", "--name", "BIG_WH-3.abc123"]),
    ]
    # A stack started again (after a crash, say) names its workers afresh: RQ would refuse a name that
    # a killed worker still holds in Redis.
    again = processes.worker_commands(warehouses)
    assert not {c[1][-1] for c in again} & {c[1][-1] for c in commands}
    assert len({c[1][-1] for c in again}) == 4


def test_runstack_starts_the_workers_worker_commands_gives(monkeypatch):
    """runstack's worker loop is worker_commands() over every warehouse, whatever it starts around it."""
    from django.core.management import call_command

    from supervision.management.commands import runstack

    warehouses = [SimpleNamespace(name="COMPUTE_WH", concurrency=2), SimpleNamespace(name="PAUSED_WH", concurrency=0),
                  SimpleNamespace(name="OTHER_WH", concurrency=1)]
    monkeypatch.setattr(runstack, "Warehouse", SimpleNamespace(objects=SimpleNamespace(all=lambda: warehouses)))
    started = []

    class Stop(Exception):
        pass

    def manage(*args, **kw):
        if args[0] != "worker":
            raise Stop  # the workers come first: nothing else is started
        started.append(list(args))
        return SimpleNamespace(poll=lambda: None)

    monkeypatch.setattr(runstack.processes, "manage", manage)
    monkeypatch.setattr(runstack.processes, "stop", lambda process: None)
    monkeypatch.setattr(runstack.settings, "REDIS_URL_IS_EMBEDDED", False)
    monkeypatch.setattr(runstack, "call_command", lambda *a, **kw: None)
    monkeypatch.setattr(runstack.signal, "signal", lambda *a: None)
    errors = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("runstack", stderr=errors)
    assert "Warehouse PAUSED_WH has concurrency 0: no worker trains its jobs" in errors.getvalue()
    names = [args[-1] for args in started]
    assert [args[:3] for args in started] == [["worker", "--warehouse", "COMPUTE_WH"]] * 2 + \
           [["worker", "--warehouse", "OTHER_WH"]]
    assert [n.split(".")[0] for n in names] == ["COMPUTE_WH-1", "COMPUTE_WH-2", "OTHER_WH-1"]
    assert len(set(names)) == 3


# ---------------------------------------------------------------------------------------------------------
# real workers


def test_two_jobs_on_a_single_slot_warehouse_run_one_after_the_other(stack, table, workers):
    warehouse("ONE_SLOT_WH", concurrency=1)
    workers += [start_worker(stack, "ONE_SLOT_WH", log="worker-slots")]
    session = admin_session(database="SLOTS", schema="PUBLIC", warehouse="ONE_SLOT_WH")
    first = create_job(session, "one_slot_first", table, epochs=2)
    second = create_job(session, "one_slot_second", table, epochs=1)

    samples = watch([first, second], until_done=[first], timeout=90, stack=stack)
    assert any(training(s, first) for s in samples), "never saw the first job train"
    waiting = [s[second] for s in samples if s[first][0] not in DONE]
    assert waiting and all(status == "PENDING" for status, _ in waiting), waiting

    wait_for_status(second, DONE, timeout=60, stack=stack)
    a, b = job(first), job(second)
    assert (a.status, b.status) == ("SUCCESS", "SUCCESS"), (a.error_message, b.error_message)
    assert a.started_on < a.finished_on <= b.started_on < b.finished_on


def test_two_warehouses_train_in_parallel(stack, table, workers):
    for name in ("PARALLEL_A_WH", "PARALLEL_B_WH"):
        warehouse(name, concurrency=1)
        workers.append(start_worker(stack, name, log="worker-slots"))
        wait_for_workers(f"warehouse.{name}", 1, workers)
    ids = [create_job(admin_session(database="SLOTS", schema="PUBLIC", warehouse=name), f"parallel_{name}", table, 2)
           for name in ("PARALLEL_A_WH", "PARALLEL_B_WH")]

    samples = watch(ids, until_done=ids, timeout=90, stack=stack)
    assert any(training(s, ids[0]) and training(s, ids[1]) for s in samples), "never saw both train at once"
    a, b = job(ids[0]), job(ids[1])
    assert (a.status, b.status) == ("SUCCESS", "SUCCESS"), (a.error_message, b.error_message)
    assert_overlap(a, b)


def test_a_two_slot_warehouse_trains_two_jobs_at_once_and_queues_the_third(stack, table, workers):
    wh = warehouse("TWO_SLOT_WH", concurrency=2)
    log = open(stack.data_dir / "logs" / "worker-slots.log", "ab")
    for _, command in processes.worker_commands([wh]):  # what runstack starts for this warehouse
        workers.append(processes.manage(*command, stdout=log, stderr=log))
    assert len(workers) == 2
    wait_for_workers("warehouse.TWO_SLOT_WH", 2, workers)
    session = admin_session(database="SLOTS", schema="PUBLIC", warehouse="TWO_SLOT_WH")
    ids = [create_job(session, f"two_slots_{n}", table, epochs=1) for n in (1, 2, 3)]

    samples = watch(ids, until_done=ids[:2], timeout=90, stack=stack)
    assert any(training(s, ids[0]) and training(s, ids[1]) for s in samples), "never saw two jobs train at once"
    waiting = [s[ids[2]] for s in samples if s[ids[0]][0] not in DONE and s[ids[1]][0] not in DONE]
    assert waiting and all(status == "PENDING" for status, _ in waiting), waiting

    wait_for_status(ids[2], DONE, timeout=60, stack=stack)
    a, b, c = (job(i) for i in ids)
    assert [j.status for j in (a, b, c)] == ["SUCCESS"] * 3, [j.error_message for j in (a, b, c)]
    assert_overlap(a, b)
    assert c.started_on >= min(a.finished_on, b.finished_on)
