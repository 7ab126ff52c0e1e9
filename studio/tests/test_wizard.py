"""The fine-tune wizard: each step's choices and refusals, the draft kept across requests, the previews, and
the job started through FINETUNE CREATE with the wizard's role and warehouse. ana's role UI_ANALYST may
fine-tune and use database WIZ; she also holds UI_NOBODY, which may not; nina holds only UI_NOBODY."""
from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from access.bootstrap import bootstrap
from catalog.models import BaseModel, Schema
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table
from warehouses.models import Warehouse

PASSWORD = "pw-for-wizard-tests"
HTMX = {"HTTP_HX_REQUEST": "true"}
EXAMPLES = [{"ticket": i, "question": f"Where is parcel {i}?", "answer": f"Parcel {i} ships on Monday."}
            for i in range(1, 13)]
TABLE = "WIZ.PUBLIC.TICKETS"


@pytest.fixture
def account(db, tiny_llama, tmp_path):
    bootstrap(password=PASSWORD, demo=False)
    make_table(tmp_path, "WIZ", "TICKETS", EXAMPLES)
    make_table(tmp_path, "WIZ", "HELD_OUT", EXAMPLES[:3])
    make_table(tmp_path, "HIDDEN", "SECRETS", [{"question": "q", "answer": "a"}])
    admin = Executor(admin_session())
    for statement in ("CREATE ROLE ui_analyst", "CREATE ROLE ui_nobody",
                      "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE ui_analyst",
                      "GRANT USAGE ON DATABASE wiz TO ROLE ui_analyst",
                      "GRANT USAGE, CREATE MODEL ON SCHEMA wiz.public TO ROLE ui_analyst",
                      "GRANT SELECT ON TABLE wiz.public.tickets TO ROLE ui_analyst",
                      "GRANT SELECT ON TABLE wiz.public.held_out TO ROLE ui_analyst",
                      f"CREATE USER ana PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_analyst",
                      "GRANT ROLE ui_analyst TO USER ana", "GRANT ROLE ui_nobody TO USER ana",
                      f"CREATE USER nina PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ui_nobody",
                      "GRANT ROLE ui_nobody TO USER nina"):
        admin.execute(statement)


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


@pytest.fixture
def ana(account) -> Client:
    return client_for("ana")


def main(response) -> str:
    """The page's main part: the header's role menu lists every role the user holds."""
    return response.content.decode().split('<main id="main"', 1)[1]


def step(client: Client, key: str, **data):
    return client.post(f"/studio/fine-tune/{key}/", data)


def walk_to(client: Client, last: str, **overrides) -> None:
    """Fill in the steps up to and including `last` with the happy path's choices."""
    choices = [("model", {"base_model": "tiny-llama"}), ("role", {"role": "UI_ANALYST", "warehouse": "COMPUTE_WH"}),
               ("database", {"location": "WIZ.PUBLIC"}), ("name", {"name": "parcel_helper"}),
               ("training", {"table": TABLE}), ("prompt", {"column": "question"}),
               ("completion", {"column": "answer"}), ("validation", {"table": "__skip__"})]
    for key, data in choices:
        response = step(client, key, **(data | overrides.get(key, {})))
        assert response.status_code == 302, (key, response.content.decode()[:3000])
        if key == last:
            return


# Steps and their refusals --------------------------------------------------------------------------

def test_the_first_step_shows_each_base_models_limits_and_whether_it_is_installed(ana):
    page = ana.get("/studio/fine-tune/model/").content.decode()
    assert "tiny-llama" in page and "llama3.1-70b" in page
    assert "Context window 16384 tokens · prompt 12288 / completion 4096 tokens" in page
    assert "250.0\xa0MB" in page  # llama3.1-70b's training data limit
    assert "basemodels install llama3.1-70b" in page  # not installed in the test model store
    assert page.count("status success\">installed") >= 1


def test_it_offers_only_roles_granted_cortex_user(ana):
    walk_to(ana, "model")
    page = main(ana.get("/studio/fine-tune/role/"))
    assert '<option value="UI_ANALYST"' in page
    assert "UI_NOBODY" not in page and '<option value="PUBLIC"' not in page
    refused = step(ana, "role", role="UI_NOBODY", warehouse="COMPUTE_WH")
    assert refused.status_code == 400
    assert "Role UI_NOBODY is not granted SNOWFLAKE.CORTEX_USER, or not to you" in refused.content.decode()


def test_a_user_without_a_cortex_role_sees_the_empty_state(account):
    nina = client_for("nina")
    walk_to(nina, "model")
    page = nina.get("/studio/fine-tune/role/").content.decode()
    assert "None of your roles is granted <code>SNOWFLAKE.CORTEX_USER</code>" in page
    assert 'id="next" disabled' in page


def test_a_warehouse_the_role_may_not_use_is_refused_on_the_warehouse_field(ana):
    Warehouse.objects.create(name="PRIVATE_WH")
    Executor(admin_session()).execute("GRANT MONITOR ON WAREHOUSE private_wh TO ROLE ui_analyst")  # seen, not usable
    walk_to(ana, "model")
    response = step(ana, "role", role="UI_ANALYST", warehouse="PRIVATE_WH")
    assert response.status_code == 400
    page = response.content.decode()
    assert "<strong>Warehouse:</strong> Insufficient privileges to operate on warehouse" in page
    assert '<option value="PRIVATE_WH" selected>' in page  # the form keeps the choice


def test_a_warehouse_the_role_holds_nothing_on_is_not_offered_as_show_warehouses_does_not_list_it(ana):
    Warehouse.objects.create(name="HIDDEN_WH")
    walk_to(ana, "model")
    page = main(ana.get("/studio/fine-tune/role/"))
    assert '<option value="COMPUTE_WH"' in page and "HIDDEN_WH" not in page
    refused = step(ana, "role", role="UI_ANALYST", warehouse="HIDDEN_WH")
    assert refused.status_code == 400 and '<option value="HIDDEN_WH"' not in main(refused)
    # Nor for a role posted that is not the user's: the list is never read for it.
    forged = main(step(ana, "role", role="ACCOUNTADMIN", warehouse="COMPUTE_WH"))
    assert "HIDDEN_WH" not in forged


def test_the_database_step_lists_only_schemas_where_the_role_may_create_models(ana):
    walk_to(ana, "role")
    page = ana.get("/studio/fine-tune/database/").content.decode()
    assert '<option value="WIZ.PUBLIC"' in page
    assert "HIDDEN" not in page


def test_the_database_step_has_an_empty_state(ana):
    Executor(admin_session()).execute("REVOKE CREATE MODEL ON SCHEMA wiz.public FROM ROLE ui_analyst")
    walk_to(ana, "role")
    page = ana.get("/studio/fine-tune/database/").content.decode()
    assert "Role UI_ANALYST may not create a model in any schema." in page


def test_a_name_with_invalid_characters_is_refused_with_the_rule(ana):
    walk_to(ana, "database")
    response = step(ana, "name", name="parcel-helper")
    assert response.status_code == 400
    page = response.content.decode()
    assert ("Invalid identifier &#x27;parcel-helper&#x27;: &#x27;parcel-helper&#x27; is not a valid unquoted name. "
            "Use letters, digits and underscores, starting with a letter or underscore, or enclose the name in "
            "double quotes.") in page
    assert 'value="parcel-helper"' in page  # the field keeps what was typed
    check = ana.get("/studio/fine-tune/check-name", {"name": "9lives"}, **HTMX)
    assert check.status_code == 400
    assert "&#x27;9lives&#x27; is not a valid unquoted name" in check.content.decode()


def test_the_name_check_shows_the_stored_name_and_the_suffix_when_the_name_is_taken(ana):
    walk_to(ana, "database")
    fresh = ana.get("/studio/fine-tune/check-name", {"name": "parcel_helper"}, **HTMX).content.decode()
    assert "Stored as <code>WIZ.PUBLIC.PARCEL_HELPER</code>" in fresh and "suffix" not in fresh
    FineTunedModel.objects.create(schema=Schema.objects.get(database__name="WIZ", name="PUBLIC"), name="PARCEL_HELPER",
                                  base_model="tiny-llama", owner_role="UI_ANALYST", adapter_path="/nowhere")
    taken = ana.get("/studio/fine-tune/check-name", {"name": "parcel_helper"}, **HTMX).content.decode()
    assert 'will be registered as <code id="final-name">WIZ.PUBLIC.PARCEL_HELPER_1</code>' in taken
    quoted = ana.get("/studio/fine-tune/check-name", {"name": '"Parcel helper"'}, **HTMX).content.decode()
    assert "Stored as <code>WIZ.PUBLIC.&quot;Parcel helper&quot;</code>" in quoted
    qualified = ana.get("/studio/fine-tune/check-name", {"name": "other.public.x"}, **HTMX)
    assert qualified.status_code == 400 and "enter the name only" in qualified.content.decode()


def test_the_draft_survives_a_new_request_and_back_keeps_every_choice(ana):
    walk_to(ana, "name")
    assert ana.get("/studio/fine-tune/").url == "/studio/fine-tune/training/"
    # A refresh of a step, or Back to it, shows the choice made there.
    assert 'value="parcel_helper"' in ana.get("/studio/fine-tune/name/").content.decode()
    assert 'value="tiny-llama" checked' in ana.get("/studio/fine-tune/model/").content.decode()
    back = step(ana, "training", direction="back")
    assert back.url == "/studio/fine-tune/name/"
    assert '<option value="UI_ANALYST" selected>' in ana.get("/studio/fine-tune/role/").content.decode()
    # A later step cannot be opened before the earlier ones are done.
    assert ana.get("/studio/fine-tune/review/").url == "/studio/fine-tune/training/"


def test_start_over_clears_the_draft(ana):
    walk_to(ana, "name")
    ana.post("/studio/fine-tune/start-over")
    assert ana.get("/studio/fine-tune/").url == "/studio/fine-tune/model/"
    assert ana.get("/studio/fine-tune/name/").url == "/studio/fine-tune/model/"


def test_the_training_step_lists_what_the_role_may_read_and_refuses_anything_else(ana):
    walk_to(ana, "name")
    page = ana.get("/studio/fine-tune/training/").content.decode()
    assert f'<option value="{TABLE}"' in page and "(12 rows)" in page
    assert "HIDDEN.PUBLIC.SECRETS" not in page
    response = step(ana, "training", table="HIDDEN.PUBLIC.SECRETS")
    assert response.status_code == 400
    assert "HIDDEN.PUBLIC.SECRETS is not a table or view the role may use" in response.content.decode()


def test_the_training_step_has_an_empty_state(ana):
    Executor(admin_session()).execute("REVOKE SELECT ON TABLE wiz.public.tickets FROM ROLE ui_analyst")
    Executor(admin_session()).execute("REVOKE SELECT ON TABLE wiz.public.held_out FROM ROLE ui_analyst")
    walk_to(ana, "name")
    page = ana.get("/studio/fine-tune/training/").content.decode()
    assert "Role UI_ANALYST sees no table or view." in page


def test_the_column_steps_offer_the_tables_columns(ana):
    walk_to(ana, "training")
    page = ana.get("/studio/fine-tune/prompt/").content.decode()
    assert '<option value="question"' in page and '<option value="answer"' in page and "ticket (NUMBER(38,0))" in page
    response = step(ana, "prompt", column="nope")
    assert response.status_code == 400 and "The table has no column nope" in response.content.decode()


def test_a_validation_table_without_the_columns_is_refused(ana, tmp_path):
    make_table(tmp_path, "WIZ", "OTHER_SHAPE", [{"text": "x"}])
    Executor(admin_session()).execute("GRANT SELECT ON TABLE wiz.public.other_shape TO ROLE ui_analyst")
    walk_to(ana, "completion")
    response = step(ana, "validation", table="WIZ.PUBLIC.OTHER_SHAPE")
    assert response.status_code == 400
    assert "the validation query failed" in response.content.decode()


# Previews ---------------------------------------------------------------------------------------------

def test_the_rows_preview_shows_the_first_rows_with_the_chosen_columns_marked(ana):
    walk_to(ana, "prompt")
    page = ana.get("/studio/fine-tune/preview/rows", {"which": "training"}, **HTMX).content.decode()
    assert "<html" not in page
    assert "First 8 rows of <code>WIZ.PUBLIC.TICKETS</code>" in page and '<strong id="row-count">12</strong>' in page
    assert '<th scope="col" class="col-prompt">question' in page
    assert "Where is parcel 1?" in page and "Where is parcel 9?" not in page
    hidden = ana.get("/studio/fine-tune/preview/rows", {"which": "training", "table": "HIDDEN.PUBLIC.SECRETS"}, **HTMX)
    assert hidden.status_code == 400 and "is not visible to role UI_ANALYST" in hidden.content.decode()


def test_the_examples_preview_highlights_the_trained_tokens_and_counts_them(ana):
    walk_to(ana, "prompt")
    page = ana.get("/studio/fine-tune/preview/examples",
                   {"which": "training", "as": "completion", "column": "answer"}, **HTMX).content.decode()
    assert '<dd id="stat-rows">12</dd>' in page
    assert '<dd id="stat-over">0</dd>' in page
    first = page.split('id="example-1"')[1].split("</figure>")[0]
    trained = html.unescape("".join(re.findall(r'<span class="tok trained[^"]*">(.*?)</span>', first, re.S)))
    whole = html.unescape(re.sub(r"<[^>]+>", "", first.split("<pre", 1)[1]))
    # Only the completion and the end-of-turn token after it are trained on; the prompt is not.
    assert trained.startswith("Parcel 1 ships on Monday.") and "Where is parcel" not in trained
    assert "Where is parcel 1?" in whole and whole.index("Where is parcel 1?") < whole.index("Parcel 1 ships")
    assert 'id="example-4"' not in page


def test_the_examples_preview_lists_rows_over_the_models_limits(ana):
    BaseModel.objects.filter(name="tiny-llama").update(max_completion_tokens=7)
    walk_to(ana, "completion")
    page = ana.get("/studio/fine-tune/preview/examples", {"which": "training"}, **HTMX).content.decode()
    # "Parcel 10 ships on Monday." is a token longer than "Parcel 9 …": rows 10-12 go over 7 tokens.
    assert 'id="over-completion"' in page
    assert "over the completion limit: rows" in page
    assert "The job would refuse this data:" in page and "a completion longer than 7 tokens" in page


def test_the_preview_says_a_base_model_that_is_not_installed_must_be_installed(ana):
    walk_to(ana, "completion", model={"base_model": "mistral-7b"})
    page = ana.get("/studio/fine-tune/preview/examples", {"which": "training"}, **HTMX).content.decode()
    assert '<dd id="stat-rows">12</dd>' in page
    assert "needs the model installed: python manage.py basemodels install mistral-7b" in page


# Review and start -------------------------------------------------------------------------------------

def test_review_shows_every_choice_and_the_same_job_in_sql(ana):
    walk_to(ana, "validation", validation={"table": "WIZ.PUBLIC.HELD_OUT"})
    page = ana.get("/studio/fine-tune/review/").content.decode()
    for text in ("tiny-llama", "UI_ANALYST · COMPUTE_WH", "WIZ.PUBLIC.PARCEL_HELPER", TABLE, "WIZ.PUBLIC.HELD_OUT",
                 "SELECT SNOWFLAKE.CORTEX.FINETUNE(", "SELECT &quot;question&quot; AS prompt"):
        assert text in page, text


def test_start_creates_the_job_as_the_chosen_role_and_warehouse_and_shows_its_id(ana):
    walk_to(ana, "validation", validation={"table": "WIZ.PUBLIC.HELD_OUT"})
    response = ana.post("/studio/fine-tune/review/", {"direction": "start"})
    job = FineTuneJob.objects.get()
    assert response.url == f"/studio/fine-tune/started/{job.id}/"
    assert (job.role, job.warehouse, job.base_model) == ("UI_ANALYST", "COMPUTE_WH", "tiny-llama")
    assert (job.database, job.schema, job.requested_name) == ("WIZ", "PUBLIC", "PARCEL_HELPER")
    assert job.training_data == f'SELECT "question" AS prompt, "answer" AS completion FROM {TABLE}'
    assert job.validation_data == 'SELECT "question" AS prompt, "answer" AS completion FROM WIZ.PUBLIC.HELD_OUT'
    page = ana.get(response.url).content.decode()
    assert f'<code id="job-id">{job.id}</code>' in page and f'href="/jobs/{job.id}/"' in page
    # The draft is done with: the wizard starts afresh, and a second Start creates nothing.
    assert ana.get("/studio/fine-tune/").url == "/studio/fine-tune/model/"
    assert ana.post("/studio/fine-tune/review/", {"direction": "start"}).url == "/studio/fine-tune/model/"
    assert FineTuneJob.objects.count() == 1
    # Another user cannot open the confirmation.
    assert client_for("nina").get(f"/studio/fine-tune/started/{job.id}/").status_code == 404


def test_a_refusal_from_create_is_shown_on_the_step_it_concerns_and_keeps_the_choices(ana):
    walk_to(ana, "validation", model={"base_model": "mistral-7b"})
    response = ana.post("/studio/fine-tune/review/", {"direction": "start"})
    assert response.url == "/studio/fine-tune/model/"
    assert FineTuneJob.objects.count() == 0
    page = ana.get(response.url).content.decode()
    assert ("<strong>Base model:</strong> Base model &#x27;mistral-7b&#x27; is not installed in this studio&#x27;s "
            "model store. Install it with: python manage.py basemodels install mistral-7b") in page
    assert 'value="mistral-7b" checked' in page
    assert ana.get("/studio/fine-tune/name/").status_code == 200  # later choices are still there


def test_a_grant_revoked_before_start_is_refused_on_its_step(ana):
    walk_to(ana, "validation")
    Executor(admin_session()).execute("REVOKE CREATE MODEL ON SCHEMA wiz.public FROM ROLE ui_analyst")
    response = ana.post("/studio/fine-tune/review/", {"direction": "start"})
    assert response.url == "/studio/fine-tune/database/"
    page = ana.get(response.url).content.decode()
    assert "<strong>Database:</strong> Insufficient privileges to operate on schema &#x27;PUBLIC&#x27;" in page


def test_the_studio_home_links_to_the_wizard(ana):
    assert 'href="/studio/fine-tune/"' in ana.get("/").content.decode()
