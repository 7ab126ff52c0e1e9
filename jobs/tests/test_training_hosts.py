"""A warehouse whose jobs train across several hosts: the first host's worker takes a job and starts its ranks
and the rendezvous, the other hosts' workers join it. Here two "hosts" on this machine, named 127.0.0.1 and
localhost (both loopback), each with its own real worker, one CPU rank each over gloo."""
from __future__ import annotations

import json
import os
import re
import signal

import pytest
from django.core.management import CommandError, call_command

from models_registry.models import FineTunedModel
from tests.support.cortex import admin_session, make_table, wait_for_status
from tests.support.workers import create_job, job, start_worker, stop_workers, wait_for, wait_for_workers
from warehouses.models import Warehouse

ROWS = [{"prompt": f"Ticket {i}: where is my order?", "completion": "Thank you for contacting ACME support."}
        for i in range(40)]


@pytest.mark.django_db
def test_a_worker_of_a_warehouse_over_several_hosts_must_be_one_of_them():
    Warehouse.objects.create(name="SPREAD_WH", hosts="gpu-a, gpu-b")
    with pytest.raises(CommandError, match=r"^Warehouse 'SPREAD_WH' trains each job across hosts gpu-a, gpu-b: "
                                           r"name this one with --host\.$"):
        call_command("worker", "--warehouse", "SPREAD_WH")
    with pytest.raises(CommandError, match=r"^Warehouse 'SPREAD_WH' trains each job across hosts gpu-a, gpu-b: "
                                           r"'gpu-c' is none of them\.$"):
        call_command("worker", "--warehouse", "SPREAD_WH", "--host", "gpu-c")


@pytest.fixture
def workers():
    started = []
    yield started
    stop_workers(started)


def test_a_job_trains_across_two_hosts_carries_on_after_a_killed_rank_and_registers_one_model(
        stack, tmp_path, workers, monkeypatch):
    monkeypatch.setenv("STUDIO_CHECKPOINT_INTERVAL_S", "0")  # the workers checkpoint after every step
    Warehouse.objects.update_or_create(name="HOSTS_WH", defaults={"hosts": "127.0.0.1,localhost"})
    make_table(tmp_path, "HOSTS", "TICKETS", ROWS)
    workers.append(start_worker(stack, "HOSTS_WH", "--host", "127.0.0.1", log="worker-hosts-a"))
    workers.append(start_worker(stack, "HOSTS_WH", "--host", "localhost", log="worker-hosts-b"))
    wait_for_workers("warehouse.HOSTS_WH", 1, workers)
    wait_for_workers("warehouse.HOSTS_WH@localhost", 1, workers)

    session = admin_session(database="HOSTS", schema="PUBLIC", warehouse="HOSTS_WH")
    job_id = create_job(session, "TWO_HOSTS_MODEL", "SELECT prompt, completion FROM hosts.public.tickets", epochs=4)
    # The first try's ranks, as the job's worker logs them once all have started.
    ranks = wait_for(lambda: re.search(rf"job {job_id} trains on rank 0 \(process (\d+) on (\S+)\), "
                                       r"rank 1 \(process (\d+) on (\S+)\)", stack.log("worker-hosts-a")),
                     240, "the job's ranks started")
    wait_for(lambda: len(job(job_id).history) >= 2, 120, "two steps trained", interval=0.05)
    os.kill(int(ranks.group(3)), signal.SIGKILL)  # rank 1, wherever the rendezvous put it

    described = wait_for_status(job_id, ("SUCCESS", "ERROR", "CANCELLED"), 300, stack)
    assert described["status"] == "SUCCESS", (described, stack.log("worker-hosts-a"), stack.log("worker-hosts-b"))
    row = job(job_id)
    assert row.resumes == 1
    assert row.interruption.startswith(
        f"Training stopped: rank 1 of 2 (process {ranks.group(3)} on {ranks.group(4)}) exited unexpectedly (killed, "
        "or out of memory), so the other ranks stopped too. It carries on from its checkpoint at step "), row.interruption
    steps = [h["step"] for h in row.history]
    assert steps == list(range(1, row.history[-1]["total_steps"] + 1))  # rank 0 reported each step once
    model = FineTunedModel.objects.get(job_id=job_id)
    recorded = json.loads((model.adapter_dir / "studio_adapter.json").read_text())["hyperparameters"]
    assert (recorded["nodes"], recorded["batches_per_step"], recorded["devices"]) == (2, 2, ["cpu"])
    assert "joining its training" in stack.log("worker-hosts-b")
