"""The Jobs pages: the list, a job's page and its live fragment, and Cancel, for the admin, a user whose
role may fine-tune, and one whose role may not."""
from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from access.bootstrap import bootstrap
from access.models import AccessEvent
from jobs.models import FineTuneJob
from sqlengine.executor import Executor
from studio.jobs_views import live_context
from tests.support.cortex import admin_session

PASSWORD = "pw-for-tests-1"
HTMX = {"HTTP_HX_REQUEST": "true"}


def make_job(**fields) -> FineTuneJob:
    values = {"base_model": "smollm2-135m", "database": "DEMO", "schema": "PUBLIC", "requested_name": "TRIAGE",
              "training_data": "SELECT prompt, completion FROM t", "warehouse": "COMPUTE_WH", "role": "ACCOUNTADMIN"}
    return FineTuneJob.objects.create(**(values | fields))


def finished_job(**fields) -> FineTuneJob:
    return make_job(**({
        "status": "SUCCESS", "progress": 1.0, "phase": "done", "final_model_name": "DEMO.PUBLIC.TRIAGE",
        "trained_tokens": 1200, "training_loss": 0.25, "validation_loss": 0.5, "epochs": 2,
        "started_on": timezone.now() - timezone.timedelta(seconds=75), "finished_on": timezone.now(),
        "options": {"learning_rate": 0.001},
        "history": [{"step": s, "total_steps": 4, "epoch": s / 2, "loss": 2.0 / s, "learning_rate": 1e-3,
                     "tokens_per_second": 50.0} for s in range(1, 5)],
        "validation_history": [{"epoch": 1, "validation_loss": 0.9}, {"epoch": 2, "validation_loss": 0.5}],
        "adapter_check": {"prompts": 1, "differing": 1, "live": True,
                          "examples": [{"prompt": "Where is my parcel?", "adapter": "SHIPPING", "base": "I am an AI."}]},
    } | fields))


def running_job(**fields) -> FineTuneJob:
    return make_job(**({
        "status": "IN_PROGRESS", "progress": 0.5, "phase": "training", "started_on": timezone.now(),
        "history": [{"step": 1, "total_steps": 2, "epoch": 0.5, "loss": 2.0, "learning_rate": 1e-3,
                     "tokens_per_second": 50.0, "eta_seconds": 250.0}],
    } | fields))


@pytest.fixture
def account(db):
    """admin; ana (role UI_ANALYST with CORTEX_USER); nina (role UI_NOBODY without it)."""
    bootstrap(password=PASSWORD, demo=False)
    admin = Executor(admin_session())
    for statement in ("CREATE ROLE ui_analyst", "CREATE ROLE ui_nobody",
                      "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE ui_analyst",
                      f"CREATE USER ana PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_analyst",
                      "GRANT ROLE ui_analyst TO USER ana",
                      f"CREATE USER nina PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_nobody",
                      "GRANT ROLE ui_nobody TO USER nina"):
        admin.execute(statement)


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


@pytest.fixture
def admin_client(account):
    return client_for("admin")


# The list ---------------------------------------------------------------------------------------------

def test_the_list_shows_each_jobs_status_progress_base_model_and_model(admin_client):
    done = finished_job()
    running = running_job(requested_name="NEXT")
    page = admin_client.get("/jobs/").content.decode()
    assert f'href="/jobs/{done.id}/"' in page and f'href="/jobs/{running.id}/"' in page
    assert "SUCCESS" in page and "IN_PROGRESS" in page and "smollm2-135m" in page
    assert "DEMO.PUBLIC.TRIAGE" in page and "DEMO.PUBLIC.NEXT" in page  # the final name, else the requested one
    assert f'value="0.5" aria-label="progress of {running.id}"' in page and "50%" in page
    assert page.index(running.id) < page.index(done.id)  # newest first


def test_the_list_polls_its_rows_only_while_a_job_can_change(admin_client):
    done = finished_job()
    assert 'hx-trigger="every 2s"' not in admin_client.get("/jobs/").content.decode()
    running = running_job()
    page = admin_client.get("/jobs/").content.decode()
    assert 'hx-get="/jobs/?page=1" hx-trigger="every 2s"' in page
    rows = admin_client.get("/jobs/?page=1", **HTMX).content.decode()
    assert rows.startswith("<tbody") and "<html" not in rows and running.id in rows and done.id in rows


def test_an_empty_list_says_how_to_start(admin_client):
    page = admin_client.get("/jobs/").content.decode()
    assert "No fine-tuning jobs yet." in page and "current role (ACCOUNTADMIN)" in page
    assert "SNOWFLAKE.CORTEX.FINETUNE('CREATE'" in page and 'href="/worksheets/"' in page


def test_the_list_shows_only_the_roles_own_jobs(account):
    mine = make_job(role="UI_ANALYST")
    theirs = make_job(role="ACCOUNTADMIN")
    page = client_for("ana").get("/jobs/").content.decode()
    assert mine.id in page and theirs.id not in page


def test_the_list_is_paged(admin_client):
    for _ in range(51):
        finished_job()
    page = admin_client.get("/jobs/").content.decode()
    assert page.count("<tr data-job=") == 50 and "51 jobs" in page and "Page 1 of 2" in page
    assert admin_client.get("/jobs/?page=2").content.decode().count("<tr data-job=") == 1


def test_a_role_without_cortex_user_sees_the_refusal_not_the_list(account):
    make_job(role="UI_NOBODY")
    response = client_for("nina").get("/jobs/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Insufficient privileges to operate on function &#x27;FINETUNE&#x27;" in page
    assert "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE UI_NOBODY" in page and "<tr data-job" not in page
    rows = client_for("nina").get("/jobs/", **HTMX)
    assert rows.status_code == 403 and rows.content.decode().startswith('<tbody id="job-rows"><tr>')


def test_the_list_needs_a_login(db):
    response = Client().get("/jobs/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# A job's page -------------------------------------------------------------------------------------------

def test_a_finished_job_shows_its_results_chart_and_queries_and_stops_polling(admin_client):
    job = finished_job(validation_data="SELECT prompt, completion FROM v")
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert page.count("<polyline") == 2 and 'class="train"' in page
    assert "hx-trigger" not in page and 'id="cancel-job"' not in page  # finished: no polling, no Cancel
    assert "<dt>Trained tokens</dt><dd>1200</dd>" in page and "<dt>Tokens/s</dt><dd>50.0</dd>" in page
    assert "<dt>Training loss</dt><dd>0.2500</dd>" in page and "<dt>Validation loss</dt><dd>0.5000</dd>" in page
    assert "SELECT prompt, completion FROM t" in page and "SELECT prompt, completion FROM v" in page
    assert "<code>learning_rate</code> = 0.001, <code>max_epochs</code> = 2" in page
    assert "1 min 15 s elapsed" in page and "left" not in page
    assert "1 of 1 validation prompts get a different answer" in page and "<td>SHIPPING</td>" in page
    assert "(no longer in the registry)" in page  # the model row was never created here


def test_a_successful_job_links_its_model(admin_client, tmp_path):
    from catalog import accountdata
    from models_registry.models import FineTunedModel

    accountdata.create_database("DEMO")
    job = finished_job()
    FineTunedModel.objects.create(schema=accountdata.get_schema("DEMO", "PUBLIC"), name="TRIAGE", job=job,
                                  base_model="smollm2-135m", owner_role="ACCOUNTADMIN", adapter_path=str(tmp_path))
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert '<a href="/models/DEMO.PUBLIC.TRIAGE/"><code>DEMO.PUBLIC.TRIAGE</code></a>' in page


def test_a_running_job_shows_the_time_left_and_polls_its_live_part(admin_client):
    job = running_job()
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert f'hx-get="/jobs/{job.id}/" hx-trigger="every 2s" hx-swap="outerHTML"' in page
    assert "about 4 min 10 s left" in page and "step 1 of 2" in page and 'id="cancel-job"' in page
    assert "<dt>Learning rate</dt><dd>1.0e-03</dd>" in page and "<dt>Tokens/s</dt><dd>50.0</dd>" in page
    assert "js/htmx.min.js" in page
    fragment = admin_client.get(f"/jobs/{job.id}/", **HTMX).content.decode()
    assert "<html" not in fragment
    assert 'id="job-live"' in fragment and "<polyline" in fragment and "about 4 min 10 s left" in fragment


def test_the_time_left_counts_down_from_the_step_that_estimated_it():
    job = FineTuneJob(status="IN_PROGRESS", history=[{"step": 1, "total_steps": 9, "epoch": 0.1, "loss": 1.0,
                                                      "learning_rate": 1e-3, "tokens_per_second": 5.0,
                                                      "eta_seconds": 100.0, "at": 1_000_000}])
    assert live_context(job, now=1_000 + 40)["eta"] == "1 min 00 s"
    assert live_context(job, now=1_000 + 400)["eta"] == "0 s"


def test_the_live_part_stops_polling_once_the_job_has_finished(admin_client):
    job = running_job()
    FineTuneJob.objects.filter(pk=job.pk).update(status="SUCCESS", progress=1.0, finished_on=timezone.now())
    fragment = admin_client.get(f"/jobs/{job.id}/", **HTMX).content.decode()
    assert 'data-status="SUCCESS"' in fragment and "hx-trigger" not in fragment


def test_a_failed_job_shows_its_error(admin_client):
    job = make_job(status="ERROR", finished_on=timezone.now(),
                   error_message="1 row has an empty prompt (row 5).")
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert "The job failed.</strong> 1 row has an empty prompt (row 5)." in page
    assert "The loss chart appears" not in page


def test_a_queued_job_says_where_the_chart_will_be(admin_client):
    page = admin_client.get(f"/jobs/{make_job().id}/").content.decode()
    assert "PENDING" in page and "The loss chart appears with the first training step." in page


def test_a_job_that_carries_on_after_an_interruption_says_so(admin_client):
    job = make_job(resumes=1, interruption="The worker was stopped (SIGTERM) while this job was running.")
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert "Interrupted 1 time. The worker was stopped (SIGTERM)" in page


def test_a_missing_or_another_roles_job_is_a_404(account):
    assert client_for("admin").get("/jobs/ft_missing/").status_code == 404
    theirs = make_job(role="ACCOUNTADMIN")
    assert client_for("ana").get(f"/jobs/{theirs.id}/").status_code == 404
    assert client_for("ana").post(f"/jobs/{theirs.id}/cancel").status_code == 404
    assert FineTuneJob.objects.get(pk=theirs.pk).status == "PENDING"


def test_a_role_without_cortex_user_is_refused_its_own_jobs_page(account):
    job = make_job(role="UI_NOBODY")
    response = client_for("nina").get(f"/jobs/{job.id}/")
    assert response.status_code == 403 and "Insufficient privileges" in response.content.decode()
    assert job.training_data not in response.content.decode()
    fragment = client_for("nina").get(f"/jobs/{job.id}/", **HTMX)
    assert fragment.status_code == 403 and 'id="job-live"' in fragment.content.decode()
    assert "hx-trigger" not in fragment.content.decode()  # the refusal ends the polling


# Cancel -------------------------------------------------------------------------------------------------

def test_cancel_from_the_page_cancels_through_the_service(admin_client):
    job = make_job()
    response = admin_client.post(f"/jobs/{job.id}/cancel")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.id}/"
    job.refresh_from_db()
    assert job.status == "CANCELLED" and job.finished_on is not None
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert f"Canceled Cortex Fine-tuning job: {job.id}" in page and 'id="cancel-job"' not in page
    event = AccessEvent.objects.get(action="FINETUNE CANCEL")
    assert (event.object_name, event.outcome, event.entry_point) == (job.id, "SUCCESS", "web")


def test_cancel_with_htmx_answers_the_live_part(admin_client):
    job = running_job(rq_job_id="")
    fragment = admin_client.post(f"/jobs/{job.id}/cancel", **HTMX).content.decode()
    assert "<html" not in fragment and 'data-status="CANCELLED"' in fragment and "hx-trigger" not in fragment
    assert f"Canceled Cortex Fine-tuning job: {job.id}" in fragment


def test_cancel_by_a_role_that_lost_cortex_user_is_refused(account):
    job = make_job(role="UI_ANALYST")
    ana = client_for("ana")
    assert 'id="cancel-job"' in ana.get(f"/jobs/{job.id}/").content.decode()
    Executor(admin_session()).execute("REVOKE DATABASE ROLE SNOWFLAKE.CORTEX_USER FROM ROLE ui_analyst")
    response = ana.post(f"/jobs/{job.id}/cancel", **HTMX)
    assert response.status_code == 403
    assert "Insufficient privileges to operate on function &#x27;FINETUNE&#x27;" in response.content.decode()
    assert FineTuneJob.objects.get(pk=job.pk).status == "PENDING"
    assert AccessEvent.objects.get(action="FINETUNE CANCEL").outcome == "REFUSED"


def test_cancelling_a_finished_job_says_why_not(admin_client):
    job = finished_job()
    response = admin_client.post(f"/jobs/{job.id}/cancel")
    assert response.status_code == 400
    assert "has already finished with status SUCCESS" in response.content.decode()
    assert FineTuneJob.objects.get(pk=job.pk).status == "SUCCESS"


def test_cancel_is_a_post(admin_client):
    assert admin_client.get(f"/jobs/{make_job().id}/cancel").status_code == 405

