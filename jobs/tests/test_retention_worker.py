"""Job retention runs on its own in the workers, as `manage.py worker` starts them (and runstack starts
those): real Redis, real RQ workers, one collection at a time however many workers there are."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rq.job import Job

from catalog import accountdata
from jobs import retention
from jobs.models import CollectedJob, FineTuneJob
from jobs.queues import connection
from jobs.recovery import checkpoint_dir, staging_dir
from models_registry.models import FineTunedModel
from models_registry.registry import adapters_dir
from supervision import processes
from tests.support.workers import wait_for, wait_for_workers
from warehouses.models import Warehouse

WAREHOUSE = "RETENTION_WH"
# The jobs live on a warehouse no worker serves: the workers under test must not train the PENDING one.
IDLE_WAREHOUSE = "RETENTION_IDLE_WH"
FINAL = ("SUCCESS", "ERROR", "CANCELLED")
# The workers under test keep jobs 2 days; the suite's own worker keeps them the default 14, so the jobs
# here (finished 3 days ago) are these workers' to collect and no other's.
RETENTION = {"STUDIO_JOB_RETENTION_DAYS": "2"}
OLD, RECENT = timedelta(days=3), timedelta(hours=1)


def start_worker(stack, log: str, **env: str):
    out = open(stack.data_dir / "logs" / f"{log}.log", "ab")
    return processes.manage("worker", "--warehouse", WAREHOUSE, stdout=out, stderr=out, env={**RETENTION, **env})


def make_job(status: str, age: timedelta) -> FineTuneJob:
    moment = timezone.now() - age
    job = FineTuneJob.objects.create(
        base_model="tiny-llama", database="RETW", schema="PUBLIC", requested_name="M",
        training_data="SELECT prompt, completion FROM t", warehouse=IDLE_WAREHOUSE, role="ACCOUNTADMIN",
        status=status, created_on=moment, finished_on=moment if status in FINAL else None)
    for directory in (checkpoint_dir(job.id), staging_dir(job.id)):
        directory.mkdir(parents=True)
        (directory / "state.pt").write_bytes(b"x")
    return job


def until(check, timeout: float, what: str, stack, *logs: str) -> None:
    try:
        wait_for(check, timeout, what)
    except AssertionError as error:
        raise AssertionError(f"{error}\n" + "\n".join(stack.log(log) for log in logs)) from None


def collections_logged(stack, *logs: str) -> list[str]:
    return [line for log in logs for line in stack.log(log).splitlines() if "job retention: collected" in line]


@pytest.fixture
def warehouse(stack):
    Warehouse.objects.get_or_create(name=WAREHOUSE)
    accountdata.create_database("RETW", if_not_exists=True)
    return WAREHOUSE


def test_a_worker_collects_old_finished_jobs_every_interval_and_nothing_else(stack, warehouse):
    jobs = {(status, label): make_job(status, age) for status in FineTuneJob.Status.values
            for label, age in (("old", OLD), ("recent", RECENT))}
    old = {jobs[status, "old"].id for status in FINAL}
    trained = jobs["SUCCESS", "old"]
    adapter = adapters_dir() / trained.id
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    model = FineTunedModel.objects.create(schema=accountdata.get_schema("RETW", "PUBLIC"), name=f"M_{trained.pk[3:11]}",
                                          base_model="tiny-llama", owner_role="ACCOUNTADMIN", job=trained,
                                          adapter_path=str(adapter))
    # RQ's record of a try whose work horse was killed: RQ would keep it a year.
    redis = connection()
    Job.create("jobs.tasks.run_finetune_job", args=[trained.id], id=f"finetune-{trained.id}", connection=redis).save()

    worker = start_worker(stack, "worker-retention", STUDIO_JOB_COLLECTION_INTERVAL_S="1")
    try:
        until(lambda: not FineTuneJob.objects.filter(pk__in=old).exists(), 90, "old finished jobs collected",
              stack, "worker-retention")
        assert set(CollectedJob.objects.filter(pk__in=old).values_list("id", flat=True)) == old
        for key, job in jobs.items():
            kept = job.id not in old
            assert FineTuneJob.objects.filter(pk=job.id).exists() is kept, key
            assert checkpoint_dir(job.id).exists() is kept and staging_dir(job.id).exists() is kept, key
        model.refresh_from_db()
        assert model.job is None and (adapter / "adapter_model.safetensors").read_bytes() == b"weights"
        assert not redis.exists(Job.key_for(f"finetune-{trained.id}"))
        lines = wait_for(lambda: collections_logged(stack, "worker-retention"), 10, "the collection's log line")
        assert any("collected 3 job(s) finished more than 2 days ago (SUCCESS 1, ERROR 1, CANCELLED 1), "
                   "6 checkpoint/staging directories" in line for line in lines), lines

        # Periodic, not only at start: a job that expires later goes in a later run of the same worker.
        late = make_job("ERROR", timedelta(days=5))
        until(lambda: not FineTuneJob.objects.filter(pk=late.pk).exists(), 60, "a later run collects the next one",
              stack, "worker-retention")
        assert worker.poll() is None and not checkpoint_dir(late.id).exists()
        assert FineTuneJob.objects.filter(pk=jobs["PENDING", "old"].id, status="PENDING").exists()
        assert FineTuneJob.objects.filter(pk=jobs["IN_PROGRESS", "old"].id, status="IN_PROGRESS").exists()
    finally:
        processes.stop(worker)
        FineTuneJob.objects.filter(pk__in=[job.id for job in jobs.values()]).delete()
        FineTunedModel.objects.filter(pk=model.pk).delete()


def test_two_workers_starting_together_collect_once(stack, warehouse):
    job = make_job("SUCCESS", OLD)
    # The last collection ran 50 minutes ago: due for these workers (every 10 minutes), not for the suite's
    # own (every hour), which would otherwise take the turn and collect nothing of these.
    redis = connection()
    redis.set(retention.LAST_RUN_KEY, str(time.time() - 3000))
    interval = {"STUDIO_JOB_COLLECTION_INTERVAL_S": "600"}
    workers = [start_worker(stack, f"worker-retention-{n}", **interval) for n in (1, 2)]
    try:
        until(lambda: not FineTuneJob.objects.filter(pk=job.pk).exists(), 90, "collected",
              stack, "worker-retention-1", "worker-retention-2")
        # Both have been through their first maintenance (and more) once they listen on the queue.
        wait_for_workers(f"warehouse.{WAREHOUSE}", 2, workers)
        time.sleep(3)
        assert all(w.poll() is None for w in workers)
        assert len(collections_logged(stack, "worker-retention-1", "worker-retention-2")) == 1
    finally:
        for worker in workers:
            processes.stop(worker)


def test_a_collection_waits_for_its_turn_and_its_interval(stack):
    redis = connection()
    redis.delete(retention.LAST_RUN_KEY)
    lock = redis.lock(retention.LOCK_KEY, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert retention.collect_if_due(redis) is None, "another worker is collecting"
    finally:
        lock.release()
    assert retention.collect_if_due(redis) is not None
    assert retention.collect_if_due(redis) is None, "ran less than STUDIO_JOB_COLLECTION_INTERVAL_S ago"
