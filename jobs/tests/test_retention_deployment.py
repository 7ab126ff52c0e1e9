"""Job retention on a running deployment (conftest's `deployments`, the provider): jobs that really ran on
its worker (one trained and registered a model, one failed at run time, one cancelled) and one still
waiting, collected by the operator's `manage.py collectjobs`, and seen afterwards as users see them: through
the SQL API, COMPLETE on the inference server, and the model store on disk.

Two things stand in for what a test cannot wait for or make happen from outside. Two weeks passing: the
finished jobs' timestamps are moved back in the deployment's own metadata database. A work horse killed
outright, which leaves a checkpoint behind (every way a job ends on a running deployment removes its own):
one is written where the worker writes checkpoints."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from tests.support.deployments import Deployment, SqlError

DB = "RETENTION_DB"
MODEL = f"{DB}.PUBLIC.KEPT"
# No worker serves it (the deployment runs one for COMPUTE_WH): a job created there stays PENDING.
IDLE_WH = "RETENTION_IDLE_WH"
IDLE_ROLE, IDLE_USER = "RETENTION_IDLE", "retention_idle_user"
ROWS = [(f"Order {i}: where is it?", "It ships tomorrow.") for i in range(12)]
PROMPT = "Order 99: where is it?"
FINAL = ("SUCCESS", "ERROR", "CANCELLED")


def finetune(deployment: Deployment, name: str, query: str, **kw) -> str:
    return deployment.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{DB}.public.{name}', 'tiny-llama', "
                            f"'{query}', NULL, '{{\"max_epochs\": 1}}')", **kw)


def shown(deployment: Deployment, job_ids) -> dict[str, str]:
    """This module's jobs among FINETUNE('SHOW')'s rows (other modules share the deployment): id -> status."""
    rows = json.loads(deployment.value("SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')"))
    return {row["id"]: row["status"] for row in rows if row["id"] in job_ids}


def complete(deployment: Deployment) -> str:
    answer = deployment.value(f"SELECT SNOWFLAKE.CORTEX.COMPLETE('{MODEL}', '{PROMPT}', "
                              "{'temperature': 0, 'max_tokens': 8})")
    return json.loads(answer)["choices"][0]["messages"]


def store(deployment: Deployment, kind: str, job_id: str):
    """MODEL_STORE/<kind>/<job id> of the deployment: checkpoints, staging or adapters (jobs/recovery.py,
    models_registry/registry.py)."""
    return deployment.data_dir / "models" / kind / job_id


def collectjobs(deployment: Deployment, *args: str) -> tuple[dict[str, str], str]:
    """`manage.py collectjobs`: the jobs it lists (id -> status) and its summary line."""
    lines = deployment.manage("collectjobs", *args).stdout.strip().splitlines()
    listed = dict(line.split("\t") for line in lines[:-1])
    return listed, lines[-1]


def directories(summary: str) -> int:
    """The checkpoint/staging directories a summary counts (the whole deployment's: other modules' jobs are
    not old enough to count)."""
    found = re.search(r", (\d+) checkpoint/staging director", summary)
    assert found, summary
    return int(found[1])


def set_up_idle_warehouse(provider: Deployment) -> None:
    """A warehouse no worker serves, and a user whose default it is. Warehouses are made in the admin
    console (no SQL statement creates one); `manage.py shell` does what its form saves."""
    provider.manage("shell", "-c", "from warehouses.models import Warehouse; "
                    f"Warehouse.objects.get_or_create(name='{IDLE_WH}', defaults={{'concurrency': 0}})")
    for statement in (f"CREATE ROLE {IDLE_ROLE}",
                      f"GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {IDLE_ROLE}",
                      f"GRANT USAGE ON WAREHOUSE {IDLE_WH} TO ROLE {IDLE_ROLE}",
                      f"GRANT USAGE ON DATABASE {DB} TO ROLE {IDLE_ROLE}",
                      f"GRANT USAGE ON SCHEMA {DB}.public TO ROLE {IDLE_ROLE}",
                      f"GRANT SELECT ON TABLE {DB}.public.orders TO ROLE {IDLE_ROLE}",
                      f"GRANT CREATE MODEL ON SCHEMA {DB}.public TO ROLE {IDLE_ROLE}",
                      f"CREATE USER {IDLE_USER} PASSWORD = 'retention-idle-1' DEFAULT_ROLE = {IDLE_ROLE} "
                      f"DEFAULT_WAREHOUSE = {IDLE_WH}",
                      f"GRANT ROLE {IDLE_ROLE} TO USER {IDLE_USER}"):
        provider.sql(statement)


def age(provider: Deployment, job_ids: list[str]) -> dict[str, str]:
    """Stands in for two weeks passing: the finished jobs' times moved back past STUDIO_JOB_RETENTION_DAYS
    in the deployment's metadata database (finished_on is what the collector reads). Returns each job's new
    finish time as DESCRIBE's message writes it. The workers' own collection is put off an interval
    (STUDIO_JOB_COLLECTION_INTERVAL_S), as just after one: the operator's dry run must see the jobs first."""
    code = f"""
import json, time
from datetime import timedelta, timezone
from django.conf import settings
from jobs import retention
from jobs.models import FineTuneJob
from jobs.queues import connection
back = timedelta(days=settings.JOB_RETENTION_DAYS + 1)
moved = {{}}
for job in FineTuneJob.objects.filter(pk__in={job_ids!r}, status__in=FineTuneJob.FINAL_STATUSES):
    FineTuneJob.objects.filter(pk=job.pk).update(
        created_on=job.created_on - back, started_on=job.started_on and job.started_on - back,
        finished_on=job.finished_on - back)
    moved[job.pk] = f"{{(job.finished_on - back).astimezone(timezone.utc):%Y-%m-%d %H:%M}} UTC"
connection().set(retention.LAST_RUN_KEY, str(time.time()))
print(json.dumps(moved))
"""
    moved = json.loads(provider.manage("shell", "-c", code).stdout.strip().splitlines()[-1])
    assert sorted(moved) == sorted(job_ids), moved
    return moved


@pytest.fixture(scope="module")
def jobs(deployments):
    """On the provider: a SUCCESS, an ERROR and a CANCELLED job aged past the retention, and a PENDING one
    on the idle warehouse. Returns (provider, {status: job id}, {job id: finish time}, COMPLETE's answer)."""
    provider, _ = deployments
    provider.sql(f"CREATE DATABASE {DB}")
    provider.sql(f"CREATE TABLE {DB}.public.orders (prompt VARCHAR, completion VARCHAR)")
    provider.sql(f"INSERT INTO {DB}.public.orders VALUES " + ", ".join(f"('{p}', '{c}')" for p, c in ROWS))
    set_up_idle_warehouse(provider)

    ids = {"SUCCESS": finetune(provider, "kept", f"SELECT prompt, completion FROM {DB}.public.orders"),
           # Accepted at CREATE (text columns, rows), refused by the worker: every completion is empty.
           "ERROR": finetune(provider, "blank", f"SELECT prompt, '''' AS completion FROM {DB}.public.orders")}
    cancelled = finetune(provider, "dropped", f"SELECT prompt, completion FROM {DB}.public.orders")
    try:  # queued behind the two above on the one worker, so normally still PENDING
        provider.sql(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{cancelled}')")
    except SqlError as error:  # the worker got to it first: it finished some other way, which wait shows
        assert "has already finished" in error.message or "before it could be cancelled" in error.message, error
    ids["CANCELLED"] = cancelled
    ids["PENDING"] = finetune(provider, "waiting", f"SELECT prompt, completion FROM {DB}.public.orders",
                              user=IDLE_USER)

    finished = {status: provider.wait_for_job(ids[status], 120, success=False) for status in FINAL}
    assert finished["SUCCESS"]["status"] == "SUCCESS", f"{finished['SUCCESS']}\n{provider.log('worker')}"
    assert finished["SUCCESS"]["model"] == MODEL
    assert finished["ERROR"]["status"] == "ERROR"
    assert finished["ERROR"]["error"]["message"] == "12 rows have an empty completion (rows 1, 2, 3, 4, 5, …)."
    assert finished["CANCELLED"]["status"] in FINAL, "cancelled, or (if the worker was first) finished"
    assert provider.describe_job(ids["PENDING"])["status"] == "PENDING"
    answer = complete(provider)

    # Every way a job ends removes its checkpoint and staging directory; a killed work horse leaves its
    # checkpoint, which this one stands for.
    for job_id in (ids[status] for status in FINAL):
        assert not store(provider, "checkpoints", job_id).exists() and not store(provider, "staging", job_id).exists()
    leftover = store(provider, "checkpoints", ids["ERROR"])
    leftover.mkdir(parents=True)
    (leftover / "checkpoint.json").write_text('{"step": 3}')

    moved = age(provider, [ids[status] for status in FINAL])
    yield provider, ids, moved, answer
    if provider.describe_job(ids["PENDING"])["status"] == "PENDING":  # the last test did not get to cancel it
        provider.sql(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{ids['PENDING']}')")


def test_a_dry_run_lists_the_old_finished_jobs_and_changes_nothing(jobs):
    provider, ids, _, _ = jobs
    listed, summary = collectjobs(provider, "--dry-run")
    statuses = {ids[status]: provider.describe_job(ids[status])["status"] for status in FINAL}
    assert {job_id: listed.get(job_id) for job_id in statuses} == statuses
    assert ids["PENDING"] not in listed
    assert summary.startswith("job retention: would collect ") and "finished more than 14 days ago" in summary
    assert directories(summary) >= 1, summary
    assert shown(provider, set(ids.values())) == {**statuses, ids["PENDING"]: "PENDING"}
    assert store(provider, "checkpoints", ids["ERROR"]).exists(), "a dry run removes nothing"


def test_collectjobs_collects_them_and_users_see_them_gone_but_the_model_and_the_pending_job_stay(jobs):
    provider, ids, moved, answer = jobs
    statuses = {ids[status]: provider.describe_job(ids[status])["status"] for status in FINAL}
    before = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    listed, summary = collectjobs(provider)
    after = datetime.now(timezone.utc)
    assert {job_id: listed.get(job_id) for job_id in statuses} == statuses
    assert ids["PENDING"] not in listed
    assert summary.startswith("job retention: collected ") and directories(summary) >= 1, summary

    assert shown(provider, set(ids.values())) == {ids["PENDING"]: "PENDING"}
    for job_id, status in statuses.items():
        with pytest.raises(SqlError) as gone:
            provider.describe_job(job_id)
        message = gone.value.message
        expected = (f"Fine-tuning job '{job_id}' no longer exists: finished jobs are kept for 14 days "
                    f"(STUDIO_JOB_RETENTION_DAYS), and this one, which finished with status {status} on "
                    f"{moved[job_id]}, was collected on ")
        assert message.startswith(expected), message
        collected_on = re.fullmatch(r"(\d{4}-\d\d-\d\d \d\d:\d\d) UTC\.", message.removeprefix(expected))
        assert collected_on, message
        collected = datetime.strptime(collected_on[1], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
        assert before <= collected <= after
        assert (gone.value.code, gone.value.sqlstate) == ("002003", "02000")
    with pytest.raises(SqlError, match=f"Fine-tuning job '{ids['CANCELLED']}' no longer exists"):
        provider.sql(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{ids['CANCELLED']}')")

    # The registered model outlives its job: same answer, its adapter still in the model store.
    assert complete(provider) == answer
    assert MODEL.split(".")[-1] in {row["name"] for row in provider.sql(f"SHOW MODELS IN SCHEMA {DB}.public")}
    assert (store(provider, "adapters", ids["SUCCESS"]) / "adapter_config.json").is_file()
    for job_id in statuses:
        assert not store(provider, "checkpoints", job_id).exists() and not store(provider, "staging", job_id).exists()

    pending = provider.describe_job(ids["PENDING"])
    assert (pending["status"], pending["progress"]) == ("PENDING", 0)
    assert provider.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{ids['PENDING']}')", user=IDLE_USER) == \
        f"Canceled Cortex Fine-tuning job: {ids['PENDING']}"
