"""Job retention (jobs/retention.py): finished jobs older than STUDIO_JOB_RETENTION_DAYS are collected with
their checkpoints and staging files; running jobs, recent jobs and registered models are not. A collected
job's DESCRIBE and CANCEL say it was collected; SHOW and the Jobs list no longer list it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from catalog import accountdata
from errors import UserError
from jobs import finetune, retention
from jobs.models import CollectedJob, FineTuneJob
from jobs.recovery import checkpoint_dir, staging_dir
from models_registry.models import FineTunedModel
from models_registry.registry import adapters_dir
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, sql_value

PASSWORD = "pw-for-tests-1"
OLD, RECENT = timedelta(days=30), timedelta(days=1)  # against the default retention of 14 days
FINAL = ("SUCCESS", "ERROR", "CANCELLED")


def make_job(status: str, age: timedelta, **fields) -> FineTuneJob:
    """A job of `status` created `age` ago; a finished one finished then, with files left in its
    checkpoint and staging directories (a killed work horse leaves them), as a running one has."""
    moment = timezone.now() - age
    values = {"base_model": "tiny-llama", "database": "RET", "schema": "PUBLIC", "requested_name": "M",
              "training_data": "SELECT prompt, completion FROM t", "warehouse": "COMPUTE_WH", "role": "ACCOUNTADMIN",
              "status": status, "created_on": moment, "finished_on": moment if status in FINAL else None,
              "error_message": "Training failed" if status == "ERROR" else ""}
    job = FineTuneJob.objects.create(**(values | fields))
    for directory in (checkpoint_dir(job.id), staging_dir(job.id)):
        directory.mkdir(parents=True)
        (directory / "state.pt").write_bytes(b"x" * 64)
    return job


@pytest.fixture
def store(db, settings, tmp_path):
    settings.MODEL_STORE, settings.DUCKDB_DIR = tmp_path / "models", tmp_path / "duckdb"
    from access.bootstrap import bootstrap

    bootstrap(password=PASSWORD, demo=False)
    accountdata.create_database("RET")
    return tmp_path


@pytest.fixture
def every_status(store):
    """An old and a recent job of every status, and the model the old successful one registered."""
    jobs = {(status, label): make_job(status, age) for status in FineTuneJob.Status.values
            for label, age in (("old", OLD), ("recent", RECENT))}
    trained = jobs["SUCCESS", "old"]
    adapter = adapters_dir() / trained.id
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    model = FineTunedModel.objects.create(schema=accountdata.get_schema("RET", "PUBLIC"), name="M",
                                          base_model="tiny-llama", owner_role="ACCOUNTADMIN", job=trained,
                                          adapter_path=str(adapter))
    FineTuneJob.objects.filter(pk=trained.pk).update(final_model_name=model.qualified_name)
    return jobs, model


def collected_ids(jobs) -> set[str]:
    return {jobs[status, "old"].id for status in FINAL}


def test_it_collects_only_finished_jobs_past_the_retention(every_status):
    jobs, _ = every_status
    result = retention.collect()
    assert set(result.jobs) == collected_ids(jobs)
    assert result.jobs[jobs["ERROR", "old"].id] == "ERROR"
    left = set(FineTuneJob.objects.values_list("id", flat=True))
    assert left == {job.id for key, job in jobs.items() if job.id not in collected_ids(jobs)}
    for status in ("PENDING", "IN_PROGRESS"):
        assert FineTuneJob.objects.get(pk=jobs[status, "old"].id).status == status, "a running job is never collected"


def test_the_collected_jobs_checkpoints_and_staging_go_and_the_others_stay(every_status):
    jobs, _ = every_status
    result = retention.collect()
    assert result.directories == 6
    for key, job in jobs.items():
        gone = job.id in collected_ids(jobs)
        assert checkpoint_dir(job.id).exists() is not gone and staging_dir(job.id).exists() is not gone, key


def test_the_registered_model_survives_with_its_adapter_files(every_status):
    jobs, model = every_status
    retention.collect()
    model.refresh_from_db()
    assert model.job is None and model.qualified_name == "RET.PUBLIC.M"
    assert (model.adapter_dir / "adapter_model.safetensors").read_bytes() == b"weights"


def test_a_directory_holding_a_registered_adapter_is_left_in_place(store):
    job = make_job("SUCCESS", OLD)
    FineTunedModel.objects.create(schema=accountdata.get_schema("RET", "PUBLIC"), name="ODD", base_model="tiny-llama",
                                  owner_role="ACCOUNTADMIN", job=job, adapter_path=str(staging_dir(job.id) / "adapter"))
    result = retention.collect()
    assert job.id in result.jobs and not FineTuneJob.objects.filter(pk=job.id).exists()
    assert staging_dir(job.id).exists() and not checkpoint_dir(job.id).exists()


def test_a_running_job_with_a_stray_old_finish_time_is_not_collected(store):
    job = make_job("IN_PROGRESS", OLD, finished_on=timezone.now() - OLD)
    assert retention.collect().jobs == {}
    assert not retention._delete(job.id, "IN_PROGRESS", job.role, job.finished_on, timezone.now())
    assert FineTuneJob.objects.filter(pk=job.id, status="IN_PROGRESS").exists()
    assert checkpoint_dir(job.id).exists() and not CollectedJob.objects.filter(pk=job.id).exists()


def test_the_retention_follows_the_setting(store, settings):
    job = make_job("CANCELLED", timedelta(days=3))
    assert retention.collect().jobs == {}
    settings.JOB_RETENTION_DAYS = 2
    assert set(retention.collect().jobs) == {job.id}


def test_a_dry_run_changes_nothing(every_status):
    jobs, _ = every_status
    result = retention.collect(dry_run=True)
    assert set(result.jobs) == collected_ids(jobs) and result.directories == 6
    assert "would collect 3 job(s) finished more than 14 days ago" in result.summary()
    assert FineTuneJob.objects.count() == 10 and not CollectedJob.objects.exists()
    assert all(checkpoint_dir(job.id).exists() for job in jobs.values())


def test_the_summary_says_what_went(every_status):
    assert retention.collect().summary() == (
        "job retention: collected 3 job(s) finished more than 14 days ago (SUCCESS 1, ERROR 1, CANCELLED 1), "
        "6 checkpoint/staging directories")


# What users see of a collected job -------------------------------------------------------------------

def test_describe_of_a_collected_job_says_it_no_longer_exists_and_when_it_went(every_status):
    jobs, _ = every_status
    job = jobs["ERROR", "old"]
    collected_on = timezone.now() - timedelta(hours=2)
    retention.collect(now=collected_on)
    with pytest.raises(UserError) as caught:
        sql_value(admin_session(), f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{job.id}')")
    assert caught.value.message == (
        f"Fine-tuning job '{job.id}' no longer exists: finished jobs are kept for 14 days (STUDIO_JOB_RETENTION_DAYS), "
        f"and this one, which finished with status ERROR on {job.finished_on:%Y-%m-%d %H:%M} UTC, was collected on "
        f"{collected_on:%Y-%m-%d %H:%M} UTC.")
    assert caught.value.code == 2003


def test_cancel_of_a_collected_job_says_the_same(every_status):
    jobs, _ = every_status
    retention.collect()
    with pytest.raises(UserError, match="no longer exists: finished jobs are kept for 14 days"):
        finetune.cancel(admin_session(), jobs["SUCCESS", "old"].id)


def test_an_id_never_seen_is_still_plainly_unknown(every_status):
    retention.collect()
    with pytest.raises(UserError) as caught:
        finetune.describe(admin_session(), "ft_00000000-0000-0000-0000-000000000000")
    assert caught.value.message == "Fine-tuning job 'ft_00000000-0000-0000-0000-000000000000' does not exist or not authorized."


def test_another_roles_collected_job_is_as_unknown_as_any(store):
    admin = Executor(admin_session())
    for statement in ("CREATE ROLE ret_analyst", "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE ret_analyst"):
        admin.execute(statement)
    theirs = make_job("SUCCESS", OLD, role="SYSADMIN")
    mine = make_job("SUCCESS", OLD, role="RET_ANALYST")
    retention.collect()
    analyst = admin_session()
    analyst.role = "RET_ANALYST"
    with pytest.raises(UserError, match="does not exist or not authorized"):
        finetune.describe(analyst, theirs.id)
    with pytest.raises(UserError, match="no longer exists"):
        finetune.describe(analyst, mine.id)


def test_show_no_longer_lists_a_collected_job(every_status):
    jobs, _ = every_status
    retention.collect()
    shown = {row["id"] for row in sql_value(admin_session(), "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')")}
    assert shown.isdisjoint(collected_ids(jobs))
    assert {job.id for job in jobs.values() if job.id not in collected_ids(jobs)} <= shown


def test_the_jobs_list_no_longer_lists_it_and_its_page_says_it_was_collected(every_status):
    jobs, _ = every_status
    retention.collect()
    client = Client()
    assert client.login(username="admin", password=PASSWORD)
    listing = client.get("/jobs/").content.decode()
    for key, job in jobs.items():
        assert (f'href="/jobs/{job.id}/"' in listing) is (job.id not in collected_ids(jobs)), key
    page = client.get(f"/jobs/{jobs['CANCELLED', 'old'].id}/")
    assert page.status_code == 404
    assert "no longer exists: finished jobs are kept for 14 days" in page.content.decode()
    assert client.get("/jobs/ft_never-was/").status_code == 404


def test_tombstones_are_forgotten_after_a_year(store):
    long_ago = timezone.now() - timedelta(days=retention.TOMBSTONE_DAYS + 1)
    CollectedJob.objects.create(id="ft_ancient", status="SUCCESS", role="ACCOUNTADMIN",
                                finished_on=long_ago - OLD, collected_on=long_ago)
    CollectedJob.objects.create(id="ft_lately", status="SUCCESS", role="ACCOUNTADMIN",
                                finished_on=timezone.now() - OLD, collected_on=timezone.now() - RECENT)
    assert retention.collect().tombstones_purged == 1
    with pytest.raises(UserError, match="'ft_ancient' does not exist or not authorized"):
        finetune.describe(admin_session(), "ft_ancient")
    with pytest.raises(UserError, match="'ft_lately' no longer exists"):
        finetune.describe(admin_session(), "ft_lately")


def test_collectjobs_lists_what_a_dry_run_would_collect_then_collects_it(every_status):
    from io import StringIO

    from django.core.management import call_command

    jobs, _ = every_status
    out = StringIO()
    call_command("collectjobs", "--dry-run", stdout=out, stderr=StringIO())
    assert f"{jobs['CANCELLED', 'old'].id}\tCANCELLED" in out.getvalue() and "would collect 3 job(s)" in out.getvalue()
    assert FineTuneJob.objects.filter(pk__in=collected_ids(jobs)).count() == 3
    out = StringIO()
    call_command("collectjobs", stdout=out, stderr=StringIO())
    assert "job retention: collected 3 job(s)" in out.getvalue()
    assert not FineTuneJob.objects.filter(pk__in=collected_ids(jobs)).exists()
