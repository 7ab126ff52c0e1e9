import pytest
from django.utils import timezone

from access.bootstrap import bootstrap
from jobs.models import FineTuneJob


@pytest.fixture
def admin_client(db, client):
    bootstrap(password="pw-for-tests", demo=False)
    client.login(username="admin", password="pw-for-tests")
    return client


@pytest.fixture
def finished_job(db):
    return FineTuneJob.objects.create(
        status="SUCCESS", progress=1.0, base_model="smollm2-135m", database="DEMO", schema="PUBLIC",
        requested_name="TRIAGE", final_model_name="DEMO.PUBLIC.TRIAGE", training_data="SELECT prompt, completion FROM t",
        warehouse="COMPUTE_WH", role="ACCOUNTADMIN", trained_tokens=1200, training_loss=0.25, validation_loss=0.5,
        finished_on=timezone.now(),
        history=[{"step": s, "total_steps": 4, "epoch": s / 2, "loss": 2.0 / s, "learning_rate": 1e-3,
                  "tokens_per_second": 50.0} for s in range(1, 5)],
        validation_history=[{"epoch": 1, "validation_loss": 0.9}, {"epoch": 2, "validation_loss": 0.5}],
        adapter_check={"prompts": 1, "differing": 1, "live": True,
                       "examples": [{"prompt": "Where is my parcel?", "adapter": "SHIPPING", "base": "I am an AI."}]},
    )


def test_pages_require_login(client, db):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_home_page_lists_jobs_and_base_models(admin_client, finished_job):
    page = admin_client.get("/").content.decode()
    assert finished_job.id in page and "DEMO.PUBLIC.TRIAGE" in page
    assert "mistral-7b" in page and "not installed" in page


def test_an_empty_account_shows_how_to_start(admin_client):
    page = admin_client.get("/").content.decode()
    assert "No fine-tuning jobs yet" in page and "SNOWFLAKE.CORTEX.FINETUNE('CREATE'" in page


def test_the_job_page_shows_describe_and_the_loss_curves(admin_client, finished_job):
    page = admin_client.get(f"/jobs/{finished_job.id}/").content.decode()
    assert "DEMO.PUBLIC.TRIAGE" in page and "1200" in page
    assert page.count("<polyline") == 2 and 'class="train"' in page
    assert "refresh" not in page  # finished jobs stop polling
    assert "1 of 1 validation prompts get a different answer" in page and "<td>SHIPPING</td>" in page


def test_a_missing_job_is_a_404(admin_client):
    assert admin_client.get("/jobs/ft_missing/").status_code == 404


def test_a_running_job_shows_the_time_left_and_keeps_polling(admin_client):
    job = FineTuneJob.objects.create(
        status="IN_PROGRESS", progress=0.5, phase="training", base_model="smollm2-135m", database="DEMO",
        schema="PUBLIC", requested_name="TRIAGE", training_data="SELECT prompt, completion FROM t",
        warehouse="COMPUTE_WH", role="ACCOUNTADMIN",
        history=[{"step": 1, "total_steps": 2, "epoch": 0.5, "loss": 2.0, "learning_rate": 1e-3,
                  "tokens_per_second": 50.0, "eta_seconds": 250.0}],
    )
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert "about 4 min 10 s left" in page and 'http-equiv="refresh"' in page
    assert "step 1 of 2" in page and "learning rate 1.0e-03" in page and "50.0 tokens/s" in page


def test_a_job_that_carries_on_after_an_interruption_says_so(admin_client):
    job = FineTuneJob.objects.create(
        status="PENDING", phase="queued", base_model="smollm2-135m", database="DEMO", schema="PUBLIC",
        requested_name="TRIAGE", training_data="SELECT prompt, completion FROM t", warehouse="COMPUTE_WH",
        role="ACCOUNTADMIN", resumes=1,
        interruption="The worker was stopped (SIGTERM) while this job was running. It carries on from its "
                     "checkpoint at step 35 (try 2 of 4).",
    )
    page = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert "Interrupted 1 time. The worker was stopped (SIGTERM)" in page
    assert "carries on from its checkpoint at step 35" in page
