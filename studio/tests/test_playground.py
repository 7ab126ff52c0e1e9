"""The playground (/playground/) through Django's test client: the models each role is offered, the
service layer's refusals shown in the chat, the form's validation, and the history kept per session and
model. Streamed answers from the stack's real inference server are tested at the end, and in a real
browser in browser/test_playground_in_browser.py."""
from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from access.bootstrap import bootstrap
from access.models import AccessEvent
from catalog import accountdata
from catalog.models import BaseModel
from inference.models import CompletionUsage
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from inference.tests.gateway_support import gateway, web  # noqa: F401 (fixtures)
from studio.chats import Chat
from studio.tests.playground_support import sql_complete
from tests.support.cortex import admin_session

PASSWORD = "pw-for-tests-1"
TUNED = "SEEN.PUBLIC.REPLIES"
ASK = {"model": TUNED, "message": "Hello?", "system": "", "temperature": "0", "max_tokens": "16"}


@pytest.fixture
def account(db, settings, tmp_path, tiny_llama):
    """ana (PG_ANALYST: CORTEX_USER, USAGE on the model); otto (PG_OUTSIDER: CORTEX_USER, USAGE on its
    database and schema only); nina (PG_NOBODY: nothing). The model is tiny-llama's, with no server."""
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password=PASSWORD, demo=False)
    admin = Executor(admin_session())
    admin.execute("CREATE DATABASE seen")
    FineTunedModel.objects.create(schema=accountdata.get_schema("SEEN", "PUBLIC"), name="REPLIES",
                                  base_model="tiny-llama", owner_role="ACCOUNTADMIN", adapter_path=str(tmp_path))
    for statement in ("CREATE ROLE pg_analyst", "CREATE ROLE pg_outsider", "CREATE ROLE pg_nobody",
                      "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE pg_analyst",
                      "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE pg_outsider",
                      "GRANT USAGE ON DATABASE seen TO ROLE pg_analyst",
                      "GRANT USAGE ON SCHEMA seen.public TO ROLE pg_analyst",
                      f"GRANT USAGE ON MODEL {TUNED} TO ROLE pg_analyst",
                      "GRANT USAGE ON DATABASE seen TO ROLE pg_outsider",
                      "GRANT USAGE ON SCHEMA seen.public TO ROLE pg_outsider"):
        admin.execute(statement)
    for user, role in (("ana", "pg_analyst"), ("otto", "pg_outsider"), ("nina", "pg_nobody")):
        admin.execute(f"CREATE USER {user} PASSWORD = '{PASSWORD}' DEFAULT_ROLE = {role}")
        admin.execute(f"GRANT ROLE {role} TO USER {user}")


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def options(page: str) -> list[str]:
    picker = re.search(r'<select name="model".*?</select>', page, re.S)
    return re.findall(r'<option value="([^"]+)"', picker.group(0)) if picker else []


def events(response) -> list[dict]:
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]


# The model picker ------------------------------------------------------------------------------------

def test_each_role_is_offered_exactly_the_models_complete_would_answer(account):
    # Installed base models (tiny-llama here; smollm2-135m too once a slow test has installed it), in order.
    installed = [m.name for m in BaseModel.objects.order_by("name") if m.is_installed]
    assert "tiny-llama" in installed
    assert options(client_for("ana").get("/playground/").content.decode()) == installed + [TUNED]
    assert options(client_for("otto").get("/playground/").content.decode()) == installed
    assert {"tiny-llama", TUNED} <= set(options(client_for("admin").get("/playground/").content.decode()))


def test_a_role_without_cortex_user_sees_why_and_no_chat(account):
    page = client_for("nina").get("/playground/").content.decode()
    assert options(page) == []
    assert "Insufficient privileges to operate on function &#x27;COMPLETE&#x27;" in page
    assert "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE PG_NOBODY" in page
    assert 'id="pg-form"' not in page


def test_a_disabled_base_model_is_not_offered(account):
    BaseModel.objects.update(enabled=False)
    page = client_for("ana").get("/playground/").content.decode()
    assert options(page) == []
    assert "may use no model yet" in page


def test_a_link_preselects_a_fine_tuned_model_and_offers_its_base_model_beside_it(account):
    page = client_for("ana").get("/playground/", {"model": TUNED.lower()}).content.decode()
    assert f'<option value="{TUNED}" selected>' in page
    assert f'name="model" value="{TUNED}"' in page
    assert 'name="compare"' in page and "Compare with base model <code>tiny-llama</code>" in page
    assert 'data-column="base"' in page
    assert "conversation: <span class=\"pg-total-tokens\">0</span> tokens" in page

    base_page = client_for("ana").get("/playground/", {"model": "tiny-llama"}).content.decode()
    assert '<option value="tiny-llama" selected>' in base_page
    assert 'name="compare"' not in base_page


def test_a_link_to_a_model_the_role_may_not_use_shows_the_services_refusal(account):
    page = client_for("otto").get("/playground/", {"model": TUNED}).content.decode()
    assert "Insufficient privileges to operate on model &#x27;REPLIES&#x27;" in page
    assert 'id="pg-form"' not in page
    assert AccessEvent.objects.filter(user_name="otto", object_name=TUNED, outcome="REFUSED",
                                      entry_point="playground").exists()


def test_the_navigation_links_the_playground(account):
    page = client_for("ana").get("/playground/").content.decode()
    assert 'href="/playground/" class="nav-playground active" aria-current="page"' in page


def test_the_playground_requires_login(db):
    for method, url in (("get", "/playground/"), ("post", "/playground/stream"), ("post", "/playground/clear")):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# Refusals in the chat -------------------------------------------------------------------------------

def test_a_model_whose_usage_was_revoked_answers_with_the_refusal_in_the_chat(account):
    ana = client_for("ana")
    ana.get("/playground/", {"model": TUNED})  # the page was opened while the role could use the model
    Executor(admin_session()).execute(f"REVOKE USAGE ON MODEL {TUNED} FROM ROLE pg_analyst")

    response = ana.post("/playground/stream", ASK)

    assert response.status_code == 200
    message = "Insufficient privileges to operate on model 'REPLIES'"
    assert events(response) == [{"type": "error", "column": "main", "model": TUNED, "message": message},
                                {"type": "end"}]
    assert Chat.load(ana.session, TUNED).columns["main"] == [{"role": "user", "content": "Hello?"},
                                                            {"role": "error", "content": message}]
    # Reopened, the page says why the model cannot be used instead of offering its chat.
    page = ana.get("/playground/", {"model": TUNED}).content.decode()
    assert "<p class=\"error\" role=\"alert\" id=\"pg-problem\">Insufficient privileges to operate on model &#x27;REPLIES&#x27;</p>" in page
    assert TUNED not in options(page)
    assert not CompletionUsage.objects.exists()


def test_a_disabled_base_model_refuses_both_columns_with_the_services_text(account):
    ana = client_for("ana")
    BaseModel.objects.filter(name="tiny-llama").update(enabled=False)

    response = ana.post("/playground/stream", {**ASK, "compare": "on"})

    # The fine-tuned model is no longer usable, so there is no base model to compare it with either.
    assert events(response)[0]["message"] == (
        f"Base model 'tiny-llama' is disabled, so fine-tuned model '{TUNED}' no longer works. An administrator "
        "can enable it again: python manage.py basemodels enable tiny-llama")


def test_a_model_no_server_answers_shows_the_inference_error_in_each_column(account):
    ana = client_for("ana")
    response = ana.post("/playground/stream", {**ASK, "compare": "on"})
    answer = events(response)
    assert [(e["type"], e["column"], e["model"]) for e in answer[:2]] == [("error", "main", TUNED),
                                                                          ("error", "base", "tiny-llama")]
    assert answer[1]["message"] == ("No inference server serves base model 'tiny-llama'. Start one with: python "
                                    "manage.py serve --base-model tiny-llama")
    rows = CompletionUsage.objects.filter(entry_point="playground")
    assert {(r.model_name, r.status, r.user_name) for r in rows} == {(TUNED, "FAILED", "ana"),
                                                                      ("tiny-llama", "FAILED", "ana")}


def test_without_javascript_the_form_posts_and_the_refusal_is_shown_after_the_redirect(account):
    ana = client_for("ana")
    response = ana.post("/playground/", ASK)
    assert response.status_code == 302 and response["Location"] == "/playground/?model=SEEN.PUBLIC.REPLIES"
    page = ana.get(response["Location"]).content.decode()
    assert "No inference server serves base model &#x27;tiny-llama&#x27;" in page


# Validation -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,message", [
    ("temperature", "2.5", "Temperature must be a number from 0 to 2."),
    ("temperature", "-1", "Temperature must be a number from 0 to 2."),
    ("temperature", "warm", "Temperature must be a number from 0 to 2."),
    ("max_tokens", "0", "Max tokens must be a whole number from 1 to 512."),
    ("max_tokens", "513", "Max tokens must be a whole number from 1 to 512."),
    ("max_tokens", "1.5", "Max tokens must be a whole number from 1 to 512."),
    ("message", "", "Message: type a message to send."),
])
def test_invalid_settings_are_refused_naming_the_field(account, field, value, message):
    ana = client_for("ana")
    response = ana.post("/playground/stream", {**ASK, field: value})
    assert response.status_code == 400
    assert response.json() == {"errors": {field: [message]}}
    assert "playground" not in ana.session  # nothing was asked, nothing kept


def test_without_javascript_an_invalid_form_keeps_what_was_typed(account):
    ana = client_for("ana")
    response = ana.post("/playground/", {**ASK, "system": "Answer in French.", "temperature": "3",
                                         "message": "Bonjour?", "compare": "on"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Temperature must be a number from 0 to 2." in page
    assert 'aria-invalid="true"' in page
    assert ">Answer in French.</textarea>" in page and ">Bonjour?</textarea>" in page
    assert 'name="temperature" type="number" min="0" max="2" step="0.1" value="3"' in page
    assert 'id="pg-compare" checked' in page


# History --------------------------------------------------------------------------------------------

def test_the_history_is_kept_per_model_and_new_chat_clears_it(account):
    ana = client_for("ana")
    ana.post("/playground/stream", {**ASK, "message": "For the tuned model", "system": "Be brief."})
    ana.post("/playground/stream", {**ASK, "model": "tiny-llama", "message": "For the base model",
                                    "temperature": "0.7", "max_tokens": "20"})

    tuned = ana.get("/playground/", {"model": TUNED}).content.decode()
    base = ana.get("/playground/", {"model": "tiny-llama"}).content.decode()
    assert "For the tuned model" in tuned and "For the base model" not in tuned
    assert "For the base model" in base and "For the tuned model" not in base
    assert ">Be brief.</textarea>" in tuned  # each model's chat keeps its own settings
    assert 'value="0.7"' in base and 'value="20"' in base
    # Without ?model= the page reopens the model used last.
    assert '<option value="tiny-llama" selected>' in ana.get("/playground/").content.decode()

    response = ana.post("/playground/clear", {"model": TUNED})
    assert response.status_code == 302 and response["Location"] == "/playground/?model=SEEN.PUBLIC.REPLIES"
    tuned = ana.get(response["Location"]).content.decode()
    assert "For the tuned model" not in tuned and "Send a message to start the conversation." in tuned
    assert "For the base model" in ana.get("/playground/", {"model": "tiny-llama"}).content.decode()


def test_the_history_belongs_to_the_browser_session(account):
    ana = client_for("ana")
    ana.post("/playground/stream", {**ASK, "message": "Only in this browser"})
    assert "Only in this browser" in ana.get("/playground/").content.decode()
    assert "Only in this browser" not in client_for("ana").get("/playground/").content.decode()


# Streamed answers from the stack's inference server ---------------------------------------------------

def test_streamed_answers_equal_complete_and_the_conversation_goes_on_from_them(gateway):
    ana = Client()
    assert ana.login(username="gw_ana", password="a long password")
    session = gateway.session("gw_ana")
    system = "Answer as ACME support."
    turns = [{"role": "system", "content": system}, {"role": "user", "content": "Ticket 9: My order is late."}]
    ask = {"model": gateway.model, "message": turns[1]["content"], "system": system, "temperature": "0",
           "max_tokens": "12"}

    # One column: the fine-tuned model's answer, piece by piece, is COMPLETE's.
    answer = events(ana.post("/playground/stream", ask))
    expected = sql_complete(session, gateway.model, turns, max_tokens=12)
    assert [e["type"] for e in answer[:2]] == ["start", "piece"] and answer[-1] == {"type": "end"}
    pieces = [e["text"] for e in answer if e["type"] == "piece"]
    assert len(pieces) > 1 and "".join(pieces) == expected["choices"][0]["messages"]
    done = answer[-2]
    assert done == {"type": "done", "column": "main", "prompt_tokens": expected["usage"]["prompt_tokens"],
                    "completion_tokens": expected["usage"]["completion_tokens"], "finish_reason": done["finish_reason"],
                    "total_tokens": expected["usage"]["total_tokens"]}
    turns.append({"role": "assistant", "content": expected["choices"][0]["messages"]})

    # Compared: the base model joins the same conversation, and both columns stream at once.
    turns.append({"role": "user", "content": "Ticket 10: And my refund?"})
    answer = events(ana.post("/playground/stream", {**ask, "message": turns[-1]["content"], "compare": "on"}))
    chat = Chat.load(ana.session, gateway.model)
    texts = {}
    for column, model in (("main", gateway.model), ("base", "tiny-llama")):
        expected = sql_complete(session, model, turns, max_tokens=12)
        texts[column] = "".join(e["text"] for e in answer if e["type"] == "piece" and e["column"] == column)
        done = next(e for e in answer if e["type"] == "done" and e["column"] == column)
        # The same messages were sent (the prompt tokens say so). The text itself may differ from COMPLETE's
        # in its last digits: the server batches the two requests, and the tiny random test model's
        # near-equal logits tip either way under a batch's different floating-point order.
        assert done["prompt_tokens"] == expected["usage"]["prompt_tokens"]
        assert chat.columns[column][-1] == {"role": "assistant", "content": texts[column], "stopped": False,
                                            "prompt_tokens": done["prompt_tokens"],
                                            "completion_tokens": done["completion_tokens"]}
        assert chat.messages(column) == turns + [{"role": "assistant", "content": texts[column]}]
    assert texts["main"] and texts["base"] and texts["main"] != texts["base"]
    columns = [e["column"] for e in answer if e["type"] == "piece"]
    assert columns.index("base") < len(columns) - 1 - columns[::-1].index("main"), "one answer waited for the other"

    rows = CompletionUsage.objects.filter(user__username="gw_ana", entry_point="playground").order_by("-pk")[:3]
    assert {(r.model_name, r.status) for r in rows[:2]} == {(gateway.model, "SUCCESS"), ("tiny-llama", "SUCCESS")}
    assert (rows[2].model_name, rows[2].status) == (gateway.model, "SUCCESS")
    assert all(r.request_id.startswith("playground-") and r.output_tokens > 0 for r in rows)

    page = ana.get("/playground/", {"model": gateway.model}).content.decode()
    totals = [chat.total_tokens(column) for column in ("main", "base")]
    assert [int(t) for t in re.findall(r'class="pg-total-tokens">(\d+)<', page)] == totals
    last = chat.columns["base"][-1]
    assert f"{last['prompt_tokens']} prompt · {last['completion_tokens']} completion tokens" in page


def test_a_base_column_joining_a_conversation_answers_the_same_conversation():
    chat = Chat("DB.S.TUNED", system="Be brief.")
    chat.ask("Hi", ["main"])
    chat.fail("main", "No inference server serves base model 'x'.")
    chat.answer("main", "Hello!", 10, 2)
    chat.ask("And now?", ["main", "base"])
    expected = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "And now?"}]
    assert chat.messages("main") == chat.messages("base") == expected
    chat.fail("base", "refused")
    assert chat.messages("base") == expected  # errors are shown, never sent back
    # The main column's answers it joined with are shown as that model's, and cost the base column nothing.
    assert chat.columns["base"][1] == {"role": "assistant", "content": "Hello!", "answered_by": "DB.S.TUNED"}
    assert chat.total_tokens("main") == 12 and chat.total_tokens("base") == 0
