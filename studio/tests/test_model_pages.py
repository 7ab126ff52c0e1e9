"""A model's page: facts, deployments, grants with GRANT / REVOKE through the service, usage per day;
the Models list linking to it; and the admin console's sections for an administrator only.

The cast: olga (role UI_OWNER, owns SHOP.PUBLIC.TRIAGE), gus (role UI_GRANTEE, holds USAGE on it),
nina (role UI_NOBODY, nothing), and the admin."""
from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from access.bootstrap import bootstrap
from access.models import AccessEvent, Grant
from catalog import accountdata
from inference.models import CompletionUsage, InferenceServer
from jobs.models import FineTuneJob
from models_registry.models import Deployment, FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session

PASSWORD = "pw-for-tests-1"
MODEL = "SHOP.PUBLIC.TRIAGE"
PAGE = f"/models/{MODEL}/"
HTMX = {"HTTP_HX_REQUEST": "true"}
REFUSAL = "Insufficient privileges to operate on model &#x27;TRIAGE&#x27;"  # as the page escapes it


@pytest.fixture
def account(db, settings, tmp_path):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password=PASSWORD, demo=False)
    accountdata.create_database("SHOP")
    admin = Executor(admin_session())
    for statement in ("CREATE ROLE ui_owner", "CREATE ROLE ui_grantee", "CREATE ROLE ui_nobody", "CREATE ROLE ui_other",
                      f"CREATE USER olga PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_owner",
                      "GRANT ROLE ui_owner TO USER olga",
                      f"CREATE USER gus PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_grantee",
                      "GRANT ROLE ui_grantee TO USER gus",
                      f"CREATE USER nina PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_nobody",
                      "GRANT ROLE ui_nobody TO USER nina"):
        admin.execute(statement)


@pytest.fixture
def model(account, tmp_path) -> FineTunedModel:
    job = FineTuneJob.objects.create(status="SUCCESS", base_model="smollm2-135m", database="SHOP", schema="PUBLIC",
                                     requested_name="TRIAGE", final_model_name=MODEL, training_data="SELECT 1",
                                     role="UI_OWNER")
    tuned = FineTunedModel.objects.create(
        schema=accountdata.get_schema("SHOP", "PUBLIC"), name="TRIAGE", base_model="smollm2-135m",
        owner_role="UI_OWNER", job=job, adapter_path=str(tmp_path / "adapter"),
        metrics={"training_loss": 0.123456, "validation_loss": 0.654321, "trained_tokens": 4096, "epochs": 2})
    Executor(admin_session()).execute(f"GRANT USAGE ON MODEL {MODEL} TO ROLE ui_grantee")
    return tuned


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def usage(user: str, day: datetime.date, tokens: int, model: str = MODEL, hour: int = 12) -> CompletionUsage:
    return CompletionUsage.objects.create(
        user=get_user_model().objects.get(username=user), user_name=user, role="R", model_name=model,
        base_model="smollm2-135m", entry_point="sql", input_tokens=tokens, output_tokens=tokens,
        started_on=datetime.datetime.combine(day, datetime.time(hour), tzinfo=datetime.UTC), status="SUCCESS")


def section(page: str, section_id: str) -> str:
    return re.search(rf'<section class="card" id="{section_id}">.*?</section>', page, re.S).group(0)


def grantees(page: str) -> list[str]:
    return re.findall(r'<tr data-grantee="([^"]+)">', page)


# The page ----------------------------------------------------------------------------------------------

def test_the_page_shows_base_model_owner_created_job_metrics_and_the_playground_link(model):
    page = client_for("olga").get(PAGE).content.decode()
    assert f"<code>{MODEL}</code>" in page and "smollm2-135m" in page and "UI_OWNER" in page
    assert model.created_on.strftime("%Y-%m-%d %H:%M") in page
    assert f'href="/jobs/{model.job_id}/"' in page
    assert "0.1235" in page and "0.6543" in page and "Trained tokens" in page and "4096" in page
    assert 'href="/playground/?model=SHOP.PUBLIC.TRIAGE">Open in playground</a>' in page
    assert 'aria-current="page"' in page and 'class="nav-models active"' in page


def test_it_shows_the_state_on_each_server_of_the_base_model_with_the_reason(model):
    ready = InferenceServer.objects.create(name="a-ready", url="http://127.0.0.1:1", base_model="smollm2-135m")
    failed = InferenceServer.objects.create(name="b-failed", url="http://127.0.0.1:2", base_model="smollm2-135m")
    InferenceServer.objects.create(name="c-idle", url="http://127.0.0.1:3", base_model="smollm2-135m")
    InferenceServer.objects.create(name="d-other-base", url="http://127.0.0.1:4", base_model="llama3.1-8b")
    Deployment.objects.create(model=model, server=ready, state="ready")
    Deployment.objects.create(model=model, server=failed, state="failed", reason="adapter rank 64 exceeds max 32")
    deployments = section(client_for("gus").get(PAGE).content.decode(), "deployments")
    rows = re.findall(r"<tr>(.*?)</tr>", deployments.split("<tbody>")[1], re.S)
    assert [re.search(r"<code>(.*?)</code>", r).group(1) for r in rows] == ["a-ready", "b-failed", "c-idle"]
    assert ">ready<" in rows[0] and ">failed<" in rows[1] and "adapter rank 64 exceeds max 32" in rows[1]
    assert ">not deployed<" in rows[2]
    assert "127.0.0.1" not in deployments  # servers are named, never located, outside the admin console


def test_without_a_server_it_says_how_to_deploy(model):
    deployments = section(client_for("olga").get(PAGE).content.decode(), "deployments")
    assert "No inference server serves <code>smollm2-135m</code> yet" in deployments
    assert f"manage.py deploy {MODEL}" in deployments


def test_a_role_without_a_privilege_on_the_model_gets_a_404_like_a_missing_model(model):
    assert client_for("nina").get(PAGE).status_code == 404
    assert client_for("olga").get("/models/SHOP.PUBLIC.NOPE/").status_code == 404
    assert client_for("olga").get("/models/not a name/").status_code == 404
    assert client_for("nina").post(f"{PAGE}grant", {"role": "UI_NOBODY"}).status_code == 404
    assert not Grant.objects.filter(object_name=MODEL, grantee_name="UI_NOBODY").exists()


def test_the_page_requires_login(model):
    assert Client().get(PAGE).status_code == 302


# Grants ------------------------------------------------------------------------------------------------

def test_the_grants_show_the_owner_and_each_role_holding_usage(model):
    grants = section(client_for("olga").get(PAGE).content.decode(), "grants")
    assert "OWNERSHIP</td><td><code>UI_OWNER</code>" in grants
    assert grantees(grants) == ["UI_GRANTEE"]
    assert 'name="role" list="grant-roles"' in grants  # the owner may grant


def test_the_owner_grants_usage_to_a_role(model):
    response = client_for("olga").post(f"{PAGE}grant", {"role": "ui_other"}, follow=True)
    assert response.redirect_chain == [(f"{PAGE}#grants", 302)]
    page = response.content.decode()
    assert f"Granted USAGE on {MODEL} to role UI_OTHER." in page
    assert grantees(page) == ["UI_GRANTEE", "UI_OTHER"]
    grant = Grant.objects.get(object_type="MODEL", object_name=MODEL, grantee_name="UI_OTHER")
    assert (grant.privilege, grant.grant_option, grant.granted_by) == ("USAGE", False, "UI_OWNER")
    assert AccessEvent.objects.filter(action="GRANT", object_name=MODEL, outcome="SUCCESS").exists()


def test_the_owner_grants_with_grant_option_and_revokes_through_htmx(model):
    client = client_for("olga")
    granted = client.post(f"{PAGE}grant", {"role": "UI_OTHER", "grant_option": "on"}, **HTMX)
    fragment = granted.content.decode()
    assert granted.status_code == 200 and fragment.startswith('<section class="card" id="grants">')
    assert "to role UI_OTHER with grant option." in fragment and "<html" not in fragment
    assert Grant.objects.get(object_name=MODEL, grantee_name="UI_OTHER").grant_option
    revoked = client.post(f"{PAGE}revoke", {"role": "UI_OTHER"}, **HTMX).content.decode()
    assert f"Revoked USAGE on {MODEL} from role UI_OTHER." in revoked and grantees(revoked) == ["UI_GRANTEE"]
    assert not Grant.objects.filter(object_name=MODEL, grantee_name="UI_OTHER").exists()


def test_a_grantee_is_refused_with_the_services_message_and_the_form_keeps_the_input(model):
    client = client_for("gus")
    page = client.get(PAGE).content.decode()
    assert "Only the owner role (UI_OWNER)" in page and 'name="role" list=' not in page and ">Revoke<" not in page
    refused = client.post(f"{PAGE}grant", {"role": "ui_other"})
    assert refused.status_code == 403
    assert REFUSAL in refused.content.decode()
    assert not Grant.objects.filter(object_name=MODEL, grantee_name="UI_OTHER").exists()
    refusals = AccessEvent.objects.filter(action="GRANT", object_name=MODEL, user_name="gus").exclude(outcome="SUCCESS")
    assert refusals.exists()  # the service recorded it
    revoke = client.post(f"{PAGE}revoke", {"role": "UI_GRANTEE"}, **HTMX)
    assert revoke.status_code == 403 and REFUSAL in revoke.content.decode()
    assert Grant.objects.filter(object_name=MODEL, grantee_name="UI_GRANTEE").exists()


def test_an_unknown_role_is_refused_and_the_form_keeps_what_was_typed(model):
    response = client_for("olga").post(f"{PAGE}grant", {"role": "ui_nonesuch", "grant_option": "on"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "Role &#x27;UI_NONESUCH&#x27; does not exist or not authorized." in page
    assert 'value="ui_nonesuch"' in page and 'name="grant_option" checked' in page


def test_a_role_holding_usage_with_grant_option_may_grant(model):
    Executor(admin_session()).execute(f"GRANT USAGE ON MODEL {MODEL} TO ROLE ui_grantee WITH GRANT OPTION")
    assert client_for("gus").post(f"{PAGE}grant", {"role": "UI_OTHER"}).status_code == 302
    assert Grant.objects.filter(object_name=MODEL, grantee_name="UI_OTHER").exists()


# Usage -------------------------------------------------------------------------------------------------

def bars(page: str) -> list[str]:
    return re.findall(r'<rect class="bar"[^>]*><title>(.*?)</title>', section(page, "usage"))


def test_the_owner_sees_one_bar_per_day_with_usage_by_every_user(model):
    today = timezone.now().astimezone(datetime.UTC).date()
    usage("olga", today, 100)
    usage("gus", today, 50, hour=1)
    usage("gus", today - datetime.timedelta(days=3), 10)
    usage("gus", today - datetime.timedelta(days=40), 999)  # outside the 30 days
    usage("gus", today, 777, model="smollm2-135m")  # another model
    page = client_for("olga").get(PAGE).content.decode()
    assert bars(page) == [f"{today - datetime.timedelta(days=3):%Y-%m-%d}: 20 tokens (10 in, 10 out) in 1 call",
                          f"{today:%Y-%m-%d}: 300 tokens (150 in, 150 out) in 2 calls"]
    assert "All users' COMPLETE calls" in page and "320 tokens in 3 calls" in page


def test_a_grantee_sees_only_its_own_usage(model):
    today = timezone.now().astimezone(datetime.UTC).date()
    usage("olga", today - datetime.timedelta(days=1), 100)
    usage("gus", today, 5)
    page = client_for("gus").get(PAGE).content.decode()
    assert bars(page) == [f"{today:%Y-%m-%d}: 10 tokens (5 in, 5 out) in 1 call"]
    assert "Your own COMPLETE calls" in page


def test_no_usage_shows_how_to_try_the_model(model):
    usage_section = section(client_for("olga").get(PAGE).content.decode(), "usage")
    assert "No COMPLETE calls on this model in the last 30 days." in usage_section and "<svg" not in usage_section
    assert f"SNOWFLAKE.CORTEX.COMPLETE('{MODEL}', 'Hello')" in usage_section


# The list ----------------------------------------------------------------------------------------------

def test_the_models_list_links_each_model_to_its_page(model):
    page = client_for("gus").get("/models/").content.decode()
    assert f'<a href="{PAGE}"><code>TRIAGE</code></a>' in page


def test_a_quoted_name_has_a_page_too(model, tmp_path):
    FineTunedModel.objects.create(schema=accountdata.get_schema("SHOP", "PUBLIC"), name="my model",
                                  base_model="smollm2-135m", owner_role="UI_OWNER", adapter_path=str(tmp_path))
    client = client_for("olga")
    link = re.search(r'<a href="([^"]+)"><code>my model</code>', client.get("/models/").content.decode()).group(1)
    assert link == "/models/SHOP.PUBLIC.%22my%20model%22/"
    assert "<code>SHOP.PUBLIC.&quot;my model&quot;</code>" in client.get(link).content.decode()


# The admin console -------------------------------------------------------------------------------------

CONSOLE_SECTIONS = {
    "Users": "/admin/auth/user/", "Roles": "/admin/access/role/", "Grants": "/admin/access/grant/",
    "Warehouses": "/admin/warehouses/warehouse/", "Inference servers": "/admin/inference/inferenceserver/",
    "Fine-tuning jobs": "/admin/jobs/finetunejob/", "Fine-tuned models": "/admin/models_registry/finetunedmodel/",
    "Deployments": "/admin/models_registry/deployment/", "Completion usage": "/admin/inference/completionusage/",
}


def test_the_console_has_every_section_for_an_administrator(model):
    server = InferenceServer.objects.create(name="srv", url="http://127.0.0.1:1", base_model="smollm2-135m")
    Deployment.objects.create(model=model, server=server, state="failed", reason="out of memory")
    usage("gus", timezone.now().date(), 7)
    client = client_for("admin")
    index = client.get("/admin/").content.decode()
    for label, url in CONSOLE_SECTIONS.items():
        assert f'<a href="{url}"' in index, label
        assert client.get(url).status_code == 200, url
    assert 'href="/">' in index and "Back to the studio" in index
    models = client.get("/admin/models_registry/finetunedmodel/").content.decode()
    assert "srv: failed (out of memory)" in models and f'href="{PAGE}"' in models
    assert "out of memory" in client.get("/admin/models_registry/deployment/").content.decode()


@pytest.mark.parametrize("user", ["olga", "nina"])
def test_the_console_refuses_a_user_without_an_admin_role(model, user):
    client = client_for(user)
    for url in ("/admin/", *CONSOLE_SECTIONS.values()):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url


def test_the_models_changelist_reads_a_fixed_number_of_queries(model, tmp_path, django_assert_max_num_queries):
    schema = accountdata.get_schema("SHOP", "PUBLIC")
    server = InferenceServer.objects.create(name="srv", url="http://127.0.0.1:1", base_model="smollm2-135m")
    for i in range(30):
        extra = FineTunedModel.objects.create(schema=schema, name=f"M{i}", base_model="smollm2-135m",
                                              owner_role="UI_OWNER", adapter_path=str(tmp_path))
        Deployment.objects.create(model=extra, server=server, state="ready")
    client = client_for("admin")
    client.get("/admin/models_registry/finetunedmodel/")  # warm the session
    with django_assert_max_num_queries(25):
        assert client.get("/admin/models_registry/finetunedmodel/").status_code == 200
