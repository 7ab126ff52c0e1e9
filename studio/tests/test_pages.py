"""The shell (left navigation, header), the Studio overview, the Models registry and the Data browser.
The Jobs pages are tested in test_jobs_views.py."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from access.bootstrap import bootstrap
from catalog import accountdata
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table

PASSWORD = "pw-for-tests-1"


@pytest.fixture
def account(db, settings, tmp_path):
    """admin; ana (role UI_ANALYST: CORTEX_USER, USAGE on database SEEN); nina (role UI_NOBODY: nothing)."""
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password=PASSWORD, demo=False)
    make_table(tmp_path, "SEEN", "EXAMPLES", [{"prompt": f"p{i}", "completion": "c"} for i in range(3)])
    make_table(tmp_path, "HIDDEN", "SECRETS", [{"prompt": "p", "completion": "c"}])
    admin = Executor(admin_session())
    for statement in ("CREATE ROLE ui_analyst", "CREATE ROLE ui_nobody",
                      "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE ui_analyst",
                      "GRANT USAGE ON DATABASE seen TO ROLE ui_analyst",
                      "GRANT USAGE ON SCHEMA seen.public TO ROLE ui_analyst",
                      "GRANT SELECT ON TABLE seen.public.examples TO ROLE ui_analyst",
                      f"CREATE USER ana PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_analyst",
                      "GRANT ROLE ui_analyst TO USER ana",
                      f"CREATE USER nina PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_nobody",
                      "GRANT ROLE ui_nobody TO USER nina"):
        admin.execute(statement)


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def model(database: str, name: str, owner: str, tmp_path, **fields) -> FineTunedModel:
    return FineTunedModel.objects.create(schema=accountdata.get_schema(database, "PUBLIC"), name=name,
                                         base_model="smollm2-135m", owner_role=owner,
                                         adapter_path=str(tmp_path / name), **fields)


def nav_links(page: str) -> list[tuple[str, str]]:
    nav = re.search(r'<nav class="sidenav".*?</nav>', page, re.S).group(0)
    return [(href, re.sub(r"<[^>]+>", "", label).strip())
            for href, label in re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', nav, re.S)]


# The shell --------------------------------------------------------------------------------------------

def test_pages_require_login(db):
    for url in ("/", "/jobs/", "/models/", "/data/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_the_login_page_has_no_navigation(db):
    page = Client().get("/accounts/login/").content.decode()
    assert 'class="sidenav"' not in page and 'name="username"' in page
    assert '<span class="crumbs"></span>' in page and "Sign in</a>" not in page


def test_the_navigation_offers_admin_to_console_users_only(account):
    admin_page = client_for("admin").get("/").content.decode()
    assert [label for _, label in nav_links(admin_page)] == ["Studio", "Worksheets", "Data", "Models", "Playground", "Jobs", "Admin"]
    ana_page = client_for("ana").get("/").content.decode()
    assert [label for _, label in nav_links(ana_page)] == ["Studio", "Worksheets", "Data", "Models", "Playground", "Jobs"]
    assert 'href="/admin/"' not in ana_page


def test_every_navigation_link_opens_a_page(account):
    client = client_for("admin")
    for href, label in nav_links(client.get("/").content.decode()):
        page = client.get(href).content.decode()
        assert client.get(href).status_code == 200, href
        if href != "/admin/":  # the console has its own header
            assert f'aria-current="page">' in page and re.search(rf'active" aria-current="page">.*?{label}</a>',
                                                                page, re.S), label


def test_the_job_page_belongs_to_jobs_in_the_navigation(account):
    job = FineTuneJob.objects.create(base_model="smollm2-135m", database="SEEN", schema="PUBLIC", requested_name="M",
                                     training_data="SELECT 1", warehouse="COMPUTE_WH", role="ACCOUNTADMIN")
    page = client_for("admin").get(f"/jobs/{job.id}/").content.decode()
    assert re.search(r'class="nav-jobs active" aria-current="page">', page)


def test_the_shell_keeps_the_header_menus_a_skip_link_and_logout(account):
    page = client_for("ana").get("/models/").content.decode()
    assert '<a class="skip-link" href="#main">Skip to content</a>' in page and '<main id="main"' in page
    assert 'action="/session/role"' in page and 'action="/session/warehouse"' in page
    assert 'name="next" value="/models/"' in page  # a switch comes back to this page
    assert 'action="/accounts/logout/"' in page and ">Log out</button>" in page
    assert '<span class="crumbs">AI &amp; ML » Models</span>' in page


# Studio -----------------------------------------------------------------------------------------------

def test_the_studio_page_lists_recent_jobs_and_base_models(account):
    job = FineTuneJob.objects.create(status="SUCCESS", progress=1.0, base_model="smollm2-135m", database="SEEN",
                                     schema="PUBLIC", requested_name="TRIAGE", final_model_name="SEEN.PUBLIC.TRIAGE",
                                     training_data="SELECT 1", warehouse="COMPUTE_WH", role="ACCOUNTADMIN",
                                     finished_on=timezone.now())
    page = client_for("admin").get("/").content.decode()
    assert job.id in page and "SEEN.PUBLIC.TRIAGE" in page and 'href="/jobs/"' in page
    assert "mistral-7b" in page and "not installed" in page


def test_an_empty_account_shows_how_to_start(account):
    page = client_for("admin").get("/").content.decode()
    assert "No fine-tuning jobs yet" in page and "SNOWFLAKE.CORTEX.FINETUNE('CREATE'" in page


def test_a_role_that_may_not_fine_tune_is_told_so_on_the_studio_page(account):
    page = client_for("nina").get("/").content.decode()
    assert "Role UI_NOBODY may not fine-tune: it needs the SNOWFLAKE.CORTEX_USER database role." in page
    assert "Recent jobs" not in page and "FINETUNE(&#x27;CREATE&#x27;" not in page


# Models -----------------------------------------------------------------------------------------------

def test_the_models_page_lists_the_registry_by_schema(account, tmp_path):
    job = FineTuneJob.objects.create(status="SUCCESS", base_model="smollm2-135m", database="SEEN", schema="PUBLIC",
                                     requested_name="TRIAGE", training_data="SELECT 1", warehouse="COMPUTE_WH",
                                     role="UI_ANALYST")
    model("SEEN", "TRIAGE", "UI_ANALYST", tmp_path, job=job,
          metrics={"training_loss": 0.123456, "validation_loss": 0.5})
    model("HIDDEN", "SECRET_MODEL", "ACCOUNTADMIN", tmp_path)
    page = client_for("ana").get("/models/").content.decode()
    assert "<code>SEEN.PUBLIC</code>" in page and '<tr id="seenpublictriage">' in page
    assert "<td>UI_ANALYST</td>" in page and "0.1235" in page and "0.5000" in page and "not deployed" in page
    assert f'href="/jobs/{job.id}/"' in page and "1 model" in page
    assert "SECRET_MODEL" not in page and "HIDDEN" not in page
    admin_page = client_for("admin").get("/models/").content.decode()
    assert "<code>HIDDEN.PUBLIC</code>" in admin_page and "SECRET_MODEL" in admin_page
    assert admin_page.index("HIDDEN.PUBLIC") < admin_page.index("SEEN.PUBLIC")


def test_the_models_page_finds_models_by_name_and_pages_them(account, tmp_path):
    for i in range(101):
        model("SEEN", f"M{i:03d}", "UI_ANALYST", tmp_path)
    model("SEEN", "TRIAGE", "UI_ANALYST", tmp_path)
    client = client_for("ana")
    first = client.get("/models/").content.decode()
    assert first.count("<tr id=") == 100 and "102 models" in first and "Page 1 of 2" in first
    assert client.get("/models/?page=2").content.decode().count("<tr id=") == 2
    found = client.get("/models/?q=triage").content.decode()
    assert found.count("<tr id=") == 1 and '<tr id="seenpublictriage">' in found and 'value="triage"' in found
    missing = client.get("/models/?q=nothing").content.decode()
    assert "No model whose name contains “nothing”." in missing and "No fine-tuned models yet" not in missing


def test_an_empty_registry_says_where_models_come_from(account):
    page = client_for("nina").get("/models/").content.decode()
    assert "No fine-tuned models yet." in page and "current role (UI_NOBODY)" in page and 'href="/jobs/"' in page


# Data -------------------------------------------------------------------------------------------------

def test_the_data_page_lists_what_the_role_may_see_with_row_counts(account):
    page = client_for("ana").get("/data/").content.decode()
    assert "<strong>SEEN</strong>" in page and "<code>SEEN.PUBLIC</code>" in page
    assert re.search(r'<code>EXAMPLES</code></a></td>\s*<td>table</td><td class="num">3</td>', page)
    assert "HIDDEN" not in page and "SECRETS" not in page
    admin_page = client_for("admin").get("/data/").content.decode()
    assert "<strong>HIDDEN</strong>" in admin_page and "SECRETS" in admin_page


def test_a_role_that_sees_no_data_is_told_how_to_add_some(account):
    page = client_for("nina").get("/data/").content.decode()
    assert "No databases your current role (UI_NOBODY) may see." in page and "manage.py load_table" in page
