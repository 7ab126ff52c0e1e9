import json
import threading
import time

import pytest
from django.contrib.auth import get_user_model

from access import tokens
from access.bootstrap import bootstrap
from sqlapi.models import Statement
from tests.support.cortex import make_table

URL = "/api/v2/statements"
# About four seconds of DuckDB work on a 2-core machine: long enough to still be running after 1 s.
SLOW = "SELECT COUNT(DISTINCT MD5(TO_VARCHAR(SEQ4()))) AS n FROM TABLE(GENERATOR(ROWCOUNT => 15000000))"


@pytest.fixture
def account(transactional_db, tmp_path):
    """Committed rows: statements run in background threads with their own database connections."""
    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "APIDB", "PEOPLE", [{"name": "Ada", "age": 36, "active": True},
                                             {"name": "Alan", "age": 41, "active": False}])
    yield
    for thread in threading.enumerate():  # let statements finish before the tables are flushed
        if thread.name.startswith("sqlapi-"):
            thread.join(60)


@pytest.fixture
def admin_token(account):
    admin = get_user_model().objects.get(username="admin")
    return tokens.create_token(admin, "tests")[1]


@pytest.fixture
def outsider_token(account):
    user = get_user_model().objects.create_user("eve", password="pw-eve")
    return tokens.create_token(user, "eve's")[1]


def post(client, token, body, query=""):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(URL + query, json.dumps(body), content_type="application/json", headers=headers)


def get(client, token, url):
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def poll(client, token, url, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        response = get(client, token, url)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_a_select_returns_snowflake_result_set_with_row_type_and_string_data(client, admin_token):
    response = post(client, admin_token, {"statement": "SELECT name, age, active FROM people ORDER BY age",
                                          "database": "apidb", "schema": "public"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["code"] == "090001" and body["sqlState"] == "00000"
    assert body["message"] == "Statement executed successfully."
    assert body["data"] == [["Ada", "36", "true"], ["Alan", "41", "false"]]
    meta = body["resultSetMetaData"]
    assert meta["numRows"] == 2 and meta["format"] == "jsonv2" and meta["partitionInfo"][0]["rowCount"] == 2
    assert [(c["name"], c["type"]) for c in meta["rowType"]] == [("NAME", "text"), ("AGE", "fixed"), ("ACTIVE", "boolean")]
    assert meta["rowType"][1]["precision"] == 38 and meta["rowType"][1]["scale"] == 0
    handle = body["statementHandle"]
    assert body["statementStatusUrl"] == f"{URL}/{handle}" and isinstance(body["createdOn"], int)
    assert Statement.objects.get(pk=handle).status == Statement.SUCCESS
    # The result stays fetchable by its handle.
    assert get(client, admin_token, body["statementStatusUrl"]).json()["data"] == body["data"]


def test_finetune_show_returns_its_json_array_as_text(client, admin_token):
    body = post(client, admin_token, {"statement": "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW') AS jobs"}).json()
    assert body["resultSetMetaData"]["rowType"][0]["type"] == "array"
    assert isinstance(body["data"][0][0], str) and json.loads(body["data"][0][0]) == []


def test_null_is_json_null(client, admin_token):
    body = post(client, admin_token, {"statement": "SELECT NULL AS nothing, 'x' AS something"}).json()
    assert body["data"] == [[None, "x"]]


def test_an_error_is_422_with_code_sqlstate_and_message(client, admin_token):
    response = post(client, admin_token, {"statement": "SELECT * FROM apidb.public.missing"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "002003" and body["sqlState"] == "42S02"
    assert "MISSING" in body["message"].upper() and body["statementHandle"] and body["createdOn"]
    assert Statement.objects.get(pk=body["statementHandle"]).status == Statement.FAILED


def test_a_malformed_body_is_400_naming_the_field(client, admin_token):
    response = post(client, admin_token, {"statement": "SELECT 1", "timeout": "soon"})
    assert response.status_code == 400 and response.json()["field"] == "timeout"
    response = post(client, admin_token, {"database": "apidb"})
    assert response.status_code == 400 and "'statement'" in response.json()["message"]
    response = client.post(URL, "{not json", content_type="application/json",
                           headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 400 and response.json()["field"] == "body"
    assert not Statement.objects.exists()


def test_without_a_token_it_is_401(client, account):
    response = post(client, None, {"statement": "SELECT 1"})
    assert response.status_code == 401 and response.json()["code"] == "390303"
    assert post(client, "sft_not-a-real-token", {"statement": "SELECT 1"}).status_code == 401
    assert not Statement.objects.exists()


def test_a_session_cookie_is_not_enough(client, account):
    client.login(username="admin", password="pw-for-tests")
    assert post(client, None, {"statement": "SELECT 1"}).status_code == 401


def test_a_revoked_token_is_401(client, admin_token):
    assert post(client, admin_token, {"statement": "SELECT 1"}).status_code == 200
    tokens.revoke(tokens.ApiToken.objects.get())
    response = post(client, admin_token, {"statement": "SELECT 1"})
    assert response.status_code == 401 and response.json()["code"] == "390303"


def test_several_statements_need_multi_statement_count(client, admin_token):
    response = post(client, admin_token, {"statement": "SELECT 1; SELECT 2"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "000008"
    assert body["message"] == "Actual statement count 2 did not match the desired statement count 1."


def test_multi_statements_answer_handles_and_use_carries_over(client, admin_token):
    response = post(client, admin_token, {
        "statement": "USE DATABASE apidb; SELECT name FROM people ORDER BY name; SELECT COUNT(*) AS n FROM people",
        "parameters": {"MULTI_STATEMENT_COUNT": "0"}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["data"] == [["Multiple statements executed successfully."]]
    assert len(body["statementHandles"]) == 3
    results = [get(client, admin_token, f"{URL}/{h}").json() for h in body["statementHandles"]]
    assert results[1]["data"] == [["Ada"], ["Alan"]] and results[2]["data"] == [["2"]]


def test_multi_statement_count_must_match_when_not_zero(client, admin_token):
    ok = post(client, admin_token, {"statement": "SELECT 1; SELECT 2", "parameters": {"MULTI_STATEMENT_COUNT": "2"}})
    assert ok.status_code == 200 and len(ok.json()["statementHandles"]) == 2
    wrong = post(client, admin_token, {"statement": "SELECT 1; SELECT 2", "parameters": {"MULTI_STATEMENT_COUNT": 3}})
    assert wrong.status_code == 422
    assert wrong.json()["message"] == "Actual statement count 2 did not match the desired statement count 3."


def test_a_failing_statement_stops_a_multi_statement_request(client, admin_token):
    response = post(client, admin_token, {"statement": "SELECT 1; SELECT * FROM apidb.public.nope; SELECT 3",
                                          "parameters": {"MULTI_STATEMENT_COUNT": "0"}})
    assert response.status_code == 422 and response.json()["code"] == "002003"
    handles = response.json()["statementHandles"]
    assert len(handles) == 2  # the third never ran
    assert get(client, admin_token, f"{URL}/{handles[0]}").status_code == 200
    assert get(client, admin_token, f"{URL}/{handles[1]}").status_code == 422


def test_async_answers_202_then_the_result_when_polled(client, admin_token):
    response = post(client, admin_token, {"statement": "SELECT 42 AS answer"}, "?async=true")
    assert response.status_code == 202
    body = response.json()
    assert body["code"] == "333334" and body["message"].startswith("Asynchronous execution in progress.")
    result = poll(client, admin_token, body["statementStatusUrl"])
    assert result.status_code == 200 and result.json()["data"] == [["42"]]


def test_a_statement_running_past_the_timeout_answers_202_until_it_finishes(client, admin_token):
    response = post(client, admin_token, {"statement": SLOW, "timeout": 1})
    assert response.status_code == 202, response.content
    url = response.json()["statementStatusUrl"]
    assert get(client, admin_token, url).status_code == 202
    result = poll(client, admin_token, url)
    assert result.status_code == 200 and result.json()["data"] == [["15000000"]]


def test_cancel_marks_a_running_statement_cancelled(client, admin_token):
    handle = post(client, admin_token, {"statement": SLOW}, "?async=true").json()["statementHandle"]
    response = client.post(f"{URL}/{handle}/cancel", headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200 and response.json()["code"] == "000604"
    polled = get(client, admin_token, f"{URL}/{handle}")
    assert polled.status_code == 422 and polled.json()["code"] == "000604"
    again = client.post(f"{URL}/{handle}/cancel", headers={"Authorization": f"Bearer {admin_token}"})
    assert again.status_code == 200


def test_another_user_can_neither_poll_nor_cancel(client, admin_token, outsider_token):
    handle = post(client, admin_token, {"statement": "SELECT 'secret' AS s"}).json()["statementHandle"]
    response = get(client, outsider_token, f"{URL}/{handle}")
    assert response.status_code == 404 and "secret" not in response.content.decode()
    cancel = client.post(f"{URL}/{handle}/cancel", headers={"Authorization": f"Bearer {outsider_token}"})
    assert cancel.status_code == 404
    assert get(client, admin_token, f"{URL}/{handle}").json()["data"] == [["secret"]]


def test_a_statement_abandoned_by_a_dead_process_fails_when_polled(client, admin_token):
    from datetime import timedelta

    from django.utils import timezone

    admin = get_user_model().objects.get(username="admin")
    statement = Statement.objects.create(user=admin, text="SELECT 1",
                                         heartbeat_on=timezone.now() - timedelta(hours=1))
    response = get(client, admin_token, f"{URL}/{statement.pk}")
    assert response.status_code == 422 and "stopped" in response.json()["message"]
    statement.refresh_from_db()
    assert statement.status == Statement.FAILED


def test_a_user_without_a_role_cannot_ask_for_it(client, outsider_token):
    response = post(client, outsider_token, {"statement": "SELECT 1", "role": "ACCOUNTADMIN"})
    assert response.status_code == 422 and "ACCOUNTADMIN" in response.json()["message"]
    assert post(client, outsider_token, {"statement": "SELECT 1"}).status_code == 200  # PUBLIC by default


def test_put_of_a_local_file_is_refused_over_http(client, admin_token):
    response = post(client, admin_token, {"statement": "PUT file:///etc/passwd @~"})
    assert response.status_code == 422


def test_a_password_in_a_statement_is_not_stored(client, admin_token):
    response = post(client, admin_token, {"statement": "CREATE USER carol PASSWORD = 'correct-horse-battery'"})
    assert response.status_code == 200, response.content
    stored = Statement.objects.get(pk=response.json()["statementHandle"]).text
    assert "correct-horse-battery" not in stored and "PASSWORD = '***'" in stored
    from django.contrib.auth import authenticate

    assert authenticate(username="carol", password="correct-horse-battery") is not None
