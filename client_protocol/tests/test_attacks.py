"""Attacks on Snowflake's client protocol, as someone who has read Snowflake's, DuckDB's and Django's docs
would try them: tokens, sign-in, bindings, describeOnly, other users' statements, request bodies and a
session's role. Each refusal is asserted by its code and message, and what it must not leak or change
is read back afterwards.

The cast is the security review's (tests/support/security.py): user `low` in role LOW may read PUB.S.X
and write PUB.S.SINK, never database ACC, whose rows carry SECRET; `admin` is ACCOUNTADMIN. Django's
test client, in process; statements run on their own threads, hence the committed rows.
"""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone

from client_protocol.models import ClientSession, LoginAttempt
from client_protocol.tests.test_sessions import login, post, run
from errors import UserError
from inference.models import CompletionUsage
from sqlapi.models import Statement
from tests.support.security import SECRET, leaks

LOW_PASSWORD = "low-password"


@pytest.fixture
def low(committed_low_account, settings):
    settings.CLIENT_RESULT_FORMAT = "json"  # rows read as the JSON rowset
    return committed_low_account


@pytest.fixture
def low_token(client, low):
    return login(client, user="low", password=LOW_PASSWORD)["data"]["token"]


def refused(answer: dict, code: str, message: str) -> None:
    assert (answer["success"], answer["code"], answer["message"]) == (False, code, message), answer


def rows(answer: dict) -> list:
    assert answer["success"], answer
    return answer["data"]["rowset"]


def bound(client, token, sql, *values, kind="TEXT"):
    return run(client, token, sql, bindings={str(n): {"type": kind, "value": v} for n, v in enumerate(values, 1)})


def no_statement_left_running() -> None:
    assert list(Statement.objects.filter(status=Statement.RUNNING).values_list("text", flat=True)) == []


# --- bindings: a bound value is data, never SQL -----------------------------------------------------------

# Decimal() takes every one of these; DuckDB would read the first four as a column's name, "1_000" as
# 1000 and the Arabic-Indic digits as a name, were they pasted into the SQL as a number.
@pytest.mark.parametrize("value", ["nan", "Infinity", "-inf", "sNaN", "1_000", "\u0661\u0662", "1 OR 1=1",
                                   "1); DROP TABLE pub.s.x; --", "0x10", "1e", ""])
def test_a_fixed_binding_that_is_not_a_plain_number_is_refused_not_read_as_a_name(client, low_token, value):
    answer = bound(client, low_token, 'SELECT ? AS v FROM (SELECT 1 AS nan, 2 AS infinity, 3 AS "١٢")', value,
                   kind="FIXED")
    refused(answer, "002049", f"Bind variable error: value {value!r} of binding 1 is not a valid FIXED.")
    assert rows(run(client, low_token, "SELECT COUNT(*) FROM pub.s.x")) == [["2"]]


def test_numbers_bound_as_fixed_and_real_come_back_as_those_numbers(client, low_token):
    answer = run(client, low_token, "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e", bindings={
        "1": {"type": "FIXED", "value": "-12.50"}, "2": {"type": "FIXED", "value": 42},
        "3": {"type": "REAL", "value": "nan"}, "4": {"type": "REAL", "value": "-inf"},
        "5": {"type": "REAL", "value": "1.5e-3"}})
    assert rows(answer) == [["-12.50", "42", "nan", "-inf", "0.0015"]]


@pytest.mark.parametrize("value", ["9" * 39, "1E+38", "1E+999999999"])
def test_a_fixed_binding_beyond_number_38_is_out_of_range(client, low_token, value):
    refused(bound(client, low_token, "SELECT ? AS v", value, kind="FIXED"), "002049",
            f"Bind variable error: value {value!r} of binding 1 is out of range for FIXED: NUMBER holds 38 digits.")


def test_sql_bound_as_text_is_stored_and_returned_as_text(client, low_token):
    payload = "x'); DROP TABLE pub.s.x; SELECT * FROM acc.s.t; --"
    assert rows(bound(client, low_token, "INSERT INTO pub.s.sink (id, name) VALUES (7, ?)", payload)) == [["1"]]
    assert rows(run(client, low_token, "SELECT name FROM pub.s.sink WHERE id = 7")) == [[payload]]
    assert rows(run(client, low_token, "SELECT COUNT(*) FROM pub.s.x")) == [["2"]]


def test_question_marks_and_colons_in_literals_identifiers_and_comments_are_not_placeholders(client, low_token):
    sql = "SELECT '?' AS \":1\", '?:1' AS q, ? AS v -- and ? :2 here\n/* ? */"
    answer = bound(client, low_token, sql, "bound")
    assert [c["name"] for c in answer["data"]["rowtype"]] == [":1", "Q", "V"]
    assert rows(answer) == [["?", "?:1", "bound"]]
    refused(bound(client, low_token, sql, "bound", "extra"), "002049",
            "Bind variable error: 2 values were bound but the statement has 1 placeholders.")


@pytest.mark.parametrize("key", ["0", "-1", "01", "\u00b2", "\u0661", "1" * 5000, "a", " 1"])
def test_a_binding_numbered_other_than_1_2_3_is_refused_without_an_internal_error(client, low_token, key):
    answer = run(client, low_token, "SELECT ? AS v", bindings={key: {"type": "TEXT", "value": "x"}})
    refused(answer, "002049", f"Bind variable error: binding '{key[:20]}' must be numbered from 1 and be "
                              '{"type", "value"}.')
    no_statement_left_running()


def test_1_and_01_cannot_both_bind_the_first_placeholder(client, low_token):
    answer = run(client, low_token, "SELECT ? AS v", bindings={"1": {"type": "TEXT", "value": "mine"},
                                                              "01": {"type": "TEXT", "value": "theirs"}})
    refused(answer, "002049", "Bind variable error: binding '01' must be numbered from 1 and be "
                              '{"type", "value"}.')


def test_a_million_bindings_for_one_placeholder_are_refused_before_any_is_built(client, low_token):
    many = {str(n): {"type": "TEXT", "value": "x"} for n in range(1, 1_000_001)}
    refused(run(client, low_token, "SELECT ? AS v", bindings=many), "002049",
            "Bind variable error: 1000000 values were bound but the statement has 1 placeholders.")


@pytest.mark.parametrize("value", ["abc", "de ad", "zz", "0x00", "de'ad"])
def test_binary_binds_only_whole_bytes_of_hex(client, low_token, value):
    refused(bound(client, low_token, "SELECT ? AS v", value, kind="BINARY"), "002049",
            f"Bind variable error: value {value!r} of binding 1 is not a valid BINARY.")


def test_nested_arrays_and_objects_bind_as_their_text(client, low_token):
    answer = run(client, low_token, "INSERT INTO pub.s.sink (id, name) VALUES (?, ?)", bindings={
        "1": {"type": "FIXED", "value": [1, 2]}, "2": {"type": "TEXT", "value": [["a", "b"], {"k": "v"}]}})
    assert rows(answer) == [["2"]]
    assert rows(run(client, low_token, "SELECT id, name FROM pub.s.sink ORDER BY id")) == [
        ["1", "['a', 'b']"], ["2", "{'k': 'v'}"]]


@pytest.mark.parametrize("kind, value", [("DATE", "9" * 30), ("TIME", "1" * 5000), ("TIMESTAMP_TZ", "0 99999999999"),
                                         ("TIMESTAMP_NTZ", "now()")])
def test_an_impossible_date_or_time_is_a_binding_error(client, low_token, kind, value):
    refused(bound(client, low_token, "SELECT ? AS v", value, kind=kind), "002049",
            f"Bind variable error: value {value[:40]!r} of binding 1 is not a valid {kind}.")


def test_the_sandbox_still_sees_every_name_of_a_bound_statement(client, low_token):
    refused(bound(client, low_token, "SELECT ? AS v FROM acc.s.t", "x"), "002003",
            "Database 'ACC' does not exist or not authorized.")
    refused(bound(client, low_token, "SELECT * FROM TABLE(?)", "acc.s.t"), "002140",
            "SQL compilation error: Unknown table function 'acc.s.t'")
    refused(bound(client, low_token, "SELECT * FROM IDENTIFIER(?)", "acc.s.t"), "002140",
            "SQL compilation error: Unknown table function IDENTIFIER")
    # GRANT is not parsed into a tree with placeholders: a value bound to it binds nothing.
    refused(bound(client, low_token, "GRANT ROLE ? TO USER low", "ACCOUNTADMIN"), "002049",
            "Bind variable error: 1 values were bound but the statement has 0 placeholders.")
    refused(bound(client, low_token, "USE ROLE ?", "ACCOUNTADMIN"), "002003",
            "SQL compilation error: expected a name, found 'ACCOUNTADMIN'")
    assert rows(run(client, low_token, "SELECT CURRENT_ROLE()")) == [["LOW"]]


# --- describeOnly runs nothing ----------------------------------------------------------------------------

SLOW = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000) SELECT COUNT(*) FROM r"


def start_slow(client, token) -> Statement:
    answer = run(client, token, SLOW, asyncExec=True)
    assert answer["code"] == "333334", answer
    return Statement.objects.get(pk=answer["data"]["queryId"])


def status_of(statement: Statement) -> str:
    statement.refresh_from_db()
    return statement.status


def test_describing_an_insert_select_with_a_cortex_call_or_a_cte_inserts_nothing(client, low_token):
    for sql in ("INSERT INTO pub.s.sink SELECT id, SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', note) FROM pub.s.x",
                "INSERT INTO pub.s.sink WITH c AS (SELECT id, note FROM pub.s.x) SELECT * FROM c",
                "WITH c AS (SELECT 1 AS id, 'x' AS name) SELECT * FROM c"):
        answer = run(client, low_token, sql, describeOnly=True)
        assert answer["success"] and answer["data"]["rowset"] == [] and answer["data"]["total"] == 0, answer
    assert rows(run(client, low_token, "SELECT COUNT(*) FROM pub.s.sink")) == [["0"]]
    no_statement_left_running()  # a describe is recorded and finished like any statement


def test_describing_a_statement_that_is_not_a_query_is_its_status_column_and_recorded(client, low_token):
    answer = run(client, low_token, "DROP TABLE pub.s.x", describeOnly=True)
    assert [(c["name"], c["type"]) for c in answer["data"]["rowtype"]] == [("status", "text")]
    assert Statement.objects.get(pk=answer["data"]["queryId"]).status == Statement.SUCCESS
    assert rows(run(client, low_token, "SELECT COUNT(*) FROM pub.s.x")) == [["2"]]


def test_describing_a_table_the_role_may_not_read_reads_as_missing_and_names_no_column(client, low_token):
    for sql in ("SELECT * FROM acc.s.t", "SELECT name, detail FROM acc.s.t WHERE 1 = 0",
                "SELECT * FROM pub.s.x JOIN acc.s.t USING (id)", f"SELECT * FROM acc.s.{SECRET}_names"):
        answer = run(client, low_token, sql, describeOnly=True)
        refused(answer, "002003", "Database 'ACC' does not exist or not authorized.")
        assert "DETAIL" not in str(answer).upper() and not leaks(answer)
    refused(run(client, low_token, "SELECT * FROM acc.s.missing", describeOnly=True), "002003",
            "Database 'ACC' does not exist or not authorized.")


def test_describing_cancel_all_queries_or_alter_session_changes_nothing(client, low):
    signed_in = login(client, user="low", password=LOW_PASSWORD)["data"]
    token, session_id = signed_in["token"], signed_in["sessionId"]
    slow = start_slow(client, token)
    answer = run(client, token, f"SELECT SYSTEM$CANCEL_ALL_QUERIES({session_id})", describeOnly=True)
    assert [c["name"] for c in answer["data"]["rowtype"]] == [f"SYSTEM$CANCEL_ALL_QUERIES({session_id})"]
    assert answer["data"]["rowset"] == [] and status_of(slow) == Statement.RUNNING
    assert run(client, token, "ALTER SESSION SET PYTHON_CONNECTOR_QUERY_RESULT_FORMAT = 'ARROW'",
               describeOnly=True)["success"]
    assert run(client, token, "SELECT 1")["data"]["queryResultFormat"] == "json"
    # Not described, the same statement cancels: the describe above would have seen it.
    assert rows(run(client, token, f"SELECT SYSTEM$CANCEL_ALL_QUERIES({session_id})")) == [
        ["1 queries were canceled."]]
    assert status_of(slow) == Statement.CANCELLED


@pytest.mark.parametrize("digits", ["9" * 5000, "9" * 20, "\u0661"])
def test_cancel_all_queries_takes_a_session_id_in_ascii_digits_only(client, low_token, digits):
    # Not the protocol's own statement then, but SQL, which has no such function: no 500 for int() of
    # 5,000 digits, and no session 1 read from an Arabic-Indic one.
    refused(run(client, low_token, f"SELECT SYSTEM$CANCEL_ALL_QUERIES({digits})"), "002140",
            "SQL compilation error: Unknown function SYSTEM$CANCEL_ALL_QUERIES")
    no_statement_left_running()


# --- other users' statements -------------------------------------------------------------------------------

def get(client, path, token):
    response = client.get(path, HTTP_AUTHORIZATION=f'Snowflake Token="{token}"')
    assert response.status_code == 200
    return response.json()


def test_another_users_statement_reads_as_missing_everywhere_and_cannot_be_cancelled(client, low_token, low):
    admin = login(client)["data"]
    secret = run(client, admin["token"], "SELECT name FROM acc.s.t ORDER BY id")
    assert leaks(secret)  # what admin may read
    query_id = secret["data"]["queryId"]
    missing = f"Statement {query_id} not found."
    refused(get(client, f"/queries/{query_id}/result", low_token), "000709", missing)
    refused(get(client, f"/monitoring/queries/{query_id}", low_token), "000709", missing)
    refused(get(client, f"/monitoring/queries//{query_id}", low_token), "000709", missing)
    refused(run(client, low_token, f"SELECT * FROM TABLE(RESULT_SCAN('{query_id}'))"), "000709", missing)
    unknown = "5f1c0b8e-0000-4000-8000-0000000000ff"  # a statement nobody ran answers alike
    refused(get(client, f"/queries/{unknown}/result", low_token), "000709", f"Statement {unknown} not found.")
    slow = start_slow(client, admin["token"])
    not_running = "Identified SQL statement is not currently executing."
    refused(post(client, f"/queries/{slow.pk}/abort-request", {}, token=low_token), "000605", not_running)
    refused(post(client, "/queries/v1/abort-request", {"requestId": slow.request_id}, token=low_token),
            "000605", not_running)
    assert rows(run(client, low_token, f"SELECT SYSTEM$CANCEL_ALL_QUERIES({admin['sessionId']})")) == [
        ["0 queries were canceled."]]
    assert status_of(slow) == Statement.RUNNING
    assert post(client, f"/queries/{slow.pk}/abort-request", {}, token=admin["token"])["success"] is True


def test_a_chunk_url_is_its_own_capability_signed_for_one_chunk_of_one_statement(client, low, settings):
    from django.contrib.auth import get_user_model
    from django.core import signing

    settings.CLIENT_RESULT_CHUNK_ROWS = 1
    admin = login(client)["data"]
    data = run(client, admin["token"], "SELECT name FROM acc.s.t ORDER BY id")["data"]
    url = data["chunks"][0]["url"]
    path = url.split("?")[0]
    # The same claim, signed for another purpose (no salt, or the signer Django's sessions use), is not one.
    claim = {"q": data["queryId"], "n": 1, "r": [0, 2], "f": "json"}
    for forged in (signing.dumps(claim), signing.dumps(claim, salt="django.contrib.sessions.backends.signed_cookies"),
                   signing.dumps(claim, salt="client_protocol.chunks", key="not-the-secret-key")):
        answer = client.get(f"{path}?sig={forged}")
        assert (answer.status_code, answer.content.decode()) == (
            403, "This result chunk's URL is not valid: its signature does not match.")
    # The URL needs no token: a signed-out session's URLs still serve, as Snowflake's presigned ones do.
    assert post(client, "/session", {}, token=admin["token"], delete="true")["success"]
    assert SECRET in client.get(url).content.decode()
    get_user_model().objects.filter(username="admin").delete()
    gone = client.get(url)
    assert (gone.status_code, gone.content.decode()) == (404, f"Statement {data['queryId']} has no result to fetch.")


# --- the request itself ------------------------------------------------------------------------------------

def raw_post(client, body: bytes, authorization: str | None, **headers):
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    response = client.post("/queries/v1/query-request", body, content_type="application/json", **headers)
    assert response.status_code == 200
    return response.json()


GONE = "Session no longer exists.  New login required to access the service."


def test_a_query_without_a_session_token_in_snowflakes_header_is_session_gone(client, low):
    signed_in = login(client, user="low", password=LOW_PASSWORD)["data"]
    body = json.dumps({"sqlText": "SELECT COUNT(*) FROM pub.s.x"}).encode()
    for header in (None, "", f"Bearer {signed_in['token']}", f'Snowflake Token="{signed_in["masterToken"]}"',
                   'Snowflake Token="None"', 'Snowflake Token=""', f'Snowflake Master="{signed_in["token"]}"',
                   f'Snowflake Token="{signed_in["token"]}x"', f'Snowflake Token="{signed_in["token"][:-1]}"',
                   f"Snowflake Token='{signed_in['token']}'", 'Snowflake Token="sfc_' + "A" * 43 + '"'):
        refused(raw_post(client, body, header), "390111", GONE)
    for header in (f'Snowflake Token="{signed_in["token"]}"', f'snowflake token = "{signed_in["token"]}"',
                   f"Snowflake Token={signed_in['token']}"):  # the forms the clients send, and lenient spacing
        assert rows(raw_post(client, body, header)) == [["2"]]


def test_a_malformed_body_is_390400_naming_the_problem(client, low_token, settings):
    import gzip

    auth = f'Snowflake Token="{low_token}"'
    refused(raw_post(client, b"{nope", auth), "390400",
            "The request body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
            "(char 1).")
    refused(raw_post(client, b"[1]", auth), "390400", "The request body must be a JSON object, not an array.")
    refused(raw_post(client, b"\x1f\x8bnot gzip", auth, HTTP_CONTENT_ENCODING="gzip"), "390400",
            "The request body is not valid gzip: Error -3 while decompressing data: unknown compression method.")
    settings.CLIENT_MAX_REQUEST_BYTES = 1024 * 1024
    huge = json.dumps({"sqlText": "SELECT 1 -- " + "x" * 2 * 1024 * 1024}).encode()
    limit = "over the limit of 1048576 bytes (STUDIO_CLIENT_MAX_REQUEST_BYTES)."
    refused(raw_post(client, huge, auth), "390400", f"Request body too large: {limit}")
    refused(raw_post(client, gzip.compress(huge), auth, HTTP_CONTENT_ENCODING="gzip"), "390400",
            f"Request body too large once decompressed: {limit}")
    assert not Statement.objects.exists()


def test_each_field_of_the_wrong_type_is_refused_or_read_strictly(client, low_token):
    refused(run(client, low_token, 5), "000900", "sqlText must be the statement to run.")
    refused(run(client, low_token, "  "), "000900", "sqlText must be the statement to run.")
    refused(run(client, low_token, ["SELECT 1"]), "000900", "sqlText must be the statement to run.")
    for shape in ([{"type": "TEXT", "value": "x"}], "x", 7):
        refused(run(client, low_token, "SELECT ? AS v", bindings=shape), "002049",
                "Bind variable error: 'bindings' must be an object of {\"1\": {\"type\", \"value\"}, …}.")
    refused(run(client, low_token, "SELECT ? AS v", bindings={"1": "x"}), "002049",
            "Bind variable error: binding '1' must be numbered from 1 and be {\"type\", \"value\"}.")
    assert rows(run(client, low_token, "SELECT 1 AS one", parameters="MULTI_STATEMENT_COUNT=0")) == [["1"]]
    refused(run(client, low_token, "SELECT 1", parameters={"MULTI_STATEMENT_COUNT": "x"}), "002211",
            "MULTI_STATEMENT_COUNT must be an integer.")
    # Only JSON true describes or runs asynchronously: the string "false" is not true.
    assert rows(run(client, low_token, "SELECT 1 AS one", describeOnly="false")) == [["1"]]
    assert rows(run(client, low_token, "SELECT 1 AS one", asyncExec="yes")) == [["1"]]
    answer = post(client, "/queries/v1/query-request", {"sqlText": "SELECT 1"}, token=low_token, requestId="r" * 65)
    refused(answer, "390400", "requestId must be at most 64 characters (the clients send a UUID).")
    no_statement_left_running()


# --- signing in --------------------------------------------------------------------------------------------

BAD = "Incorrect username or password was specified."


class CountingHasher(PBKDF2PasswordHasher):
    """PBKDF2 that counts the hashes it computes: how long a sign-in takes is how many it computes."""

    algorithm = "counting_pbkdf2"
    iterations = 1000
    computed = 0

    def encode(self, password, salt, iterations=None):
        CountingHasher.computed += 1
        return super().encode(password, salt, iterations)


def sign_in_from(client, user, password, address="10.0.0.1"):
    response = client.post("/session/v1/login-request", json.dumps({"data": {
        "LOGIN_NAME": user, "PASSWORD": password, "ACCOUNT_NAME": "studio"}}), content_type="application/json",
        REMOTE_ADDR=address)
    return response.json()


def test_an_unknown_disabled_or_wrong_sign_in_answers_alike_and_takes_one_hash_as_long(client, low, settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher", "django.contrib.auth.hashers.MD5PasswordHasher"]
    users = get_user_model().objects
    users.create_user("timed", password="timed-password")
    users.create_user("benched", password="benched-password", is_active=False)
    answers = []
    for name, password in (("timed", "wrong"), ("nobody", "wrong"), ("benched", "benched-password"),
                           ({"LOGIN": "timed"}, ["timed-password"])):
        before = CountingHasher.computed
        answers.append(sign_in_from(client, name, password))
        assert CountingHasher.computed - before == 1, name
    assert all(a == answers[0] for a in answers)
    assert answers[0] == {"success": False, "code": "390100", "message": BAD, "data": {
        "sqlState": "08001", "errorCode": "390100", "internalError": False, "nextAction": None}}
    assert not ClientSession.objects.filter(user__username__in=["timed", "benched"]).exists()


def test_failures_count_against_the_user_whatever_the_spelling_or_address(client, low, settings):
    settings.CLIENT_LOGIN_MAX_FAILURES = 5
    for n, spelling in enumerate(["low", "LOW", " Low", "low\u00a0", "\tlOw\n"]):
        refused(sign_in_from(client, spelling, "guess", address=f"10.0.0.{n}"), "390100", BAD)
    locked = sign_in_from(client, "low", LOW_PASSWORD, address="10.9.9.9")
    refused(locked, "390102", "User temporarily locked: too many failed sign-in attempts. Try again in 15 minutes.")
    assert not ClientSession.objects.filter(user=low.user).exists()
    assert sign_in_from(client, "admin", "admin-test-password", address="10.9.9.9")["success"] is True


def test_a_lookalike_counts_against_the_user_exactly_when_the_database_signs_it_in_as_them(client, low, settings):
    settings.CLIENT_LOGIN_MAX_FAILURES = 2
    lookalike = "l\u043ew"  # Cyrillic o; SQLite folds ASCII case only, PostgreSQL's UPPER() Unicode's
    for _ in range(2):
        refused(sign_in_from(client, lookalike, "guess"), "390100", BAD)
    same_user = get_user_model().objects.filter(username__iexact=lookalike).exists()
    assert sign_in_from(client, "low", LOW_PASSWORD)["success"] is not same_user


def test_one_address_is_locked_after_four_times_the_failures_whatever_the_names(client, low, settings):
    settings.CLIENT_LOGIN_MAX_FAILURES = 2
    for n in range(8):
        refused(sign_in_from(client, f"user{n}", "guess"), "390100", BAD)
    refused(sign_in_from(client, "low", LOW_PASSWORD), "390102",
            "User temporarily locked: too many failed sign-in attempts. Try again in 15 minutes.")
    assert sign_in_from(client, "low", LOW_PASSWORD, address="10.0.0.2")["success"] is True


def test_failures_older_than_the_window_are_forgotten(client, low, settings):
    refused(sign_in_from(client, "made-up", "guess"), "390100", BAD)
    LoginAttempt.objects.update(at=timezone.now() - timedelta(seconds=settings.CLIENT_LOGIN_LOCKOUT_SECONDS + 1))
    refused(sign_in_from(client, "made-up-too", "guess"), "390100", BAD)
    assert list(LoginAttempt.objects.values_list("login_name", flat=True)) == ["made-up-too"]


def test_a_nul_in_the_login_name_is_a_wrong_name_not_a_database_error(client, low):
    refused(sign_in_from(client, "low\x00", LOW_PASSWORD), "390100", BAD)
    assert list(LoginAttempt.objects.values_list("login_name", flat=True)) == ["low"]


def test_a_sign_in_or_renewal_body_is_held_to_64_kib_before_any_credential_is_checked(client, low):
    import gzip

    bomb = gzip.compress(json.dumps({"data": {"LOGIN_NAME": "low", "PASSWORD": LOW_PASSWORD,
                                              "CLIENT_ENVIRONMENT": {"pad": "x" * 10_000_000}}}).encode())
    for path in ("/session/v1/login-request", "/session/token-request"):
        response = client.post(path, bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
        refused(response.json(), "390400", "Request body too large once decompressed: over the limit of 65536 "
                                           "bytes (before signing in).")
    assert not ClientSession.objects.exists() and not LoginAttempt.objects.exists()


# --- tokens ------------------------------------------------------------------------------------------------

def renew(client, master, old=""):
    return post(client, "/session/token-request", {"oldSessionToken": old, "requestType": "RENEW"}, token=master)


def test_a_master_token_is_no_session_token_nor_the_reverse_nor_another_sessions(client, low):
    mine = login(client, user="low", password=LOW_PASSWORD)["data"]
    theirs = login(client)["data"]
    refused(run(client, mine["masterToken"], "SELECT 1"), "390111", GONE)
    refused(post(client, "/session/heartbeat", token=mine["masterToken"]), "390111", GONE)
    refused(renew(client, mine["token"]), "390111", GONE)
    refused(renew(client, mine["masterToken"], old=theirs["token"]), "390111", GONE)
    refused(renew(client, theirs["masterToken"], old=mine["token"]), "390111", GONE)
    assert rows(run(client, mine["token"], "SELECT CURRENT_USER()")) == [["low"]]  # nothing rotated
    assert rows(run(client, theirs["token"], "SELECT CURRENT_USER()")) == [["admin"]]
    assert post(client, "/session", {}, token=mine["token"], delete="true")["success"] is True
    refused(run(client, mine["token"], "SELECT 1"), "390111", GONE)
    refused(renew(client, mine["masterToken"], mine["token"]), "390111", GONE)  # signed out: neither token works


def test_two_renewals_with_one_master_token_rotate_it_once(client, low, monkeypatch):
    import secrets
    import time

    from client_protocol import sessions

    signed_in = login(client, user="low", password=LOW_PASSWORD)["data"]
    # New tokens are made slowly, so every renewal has read the session before any rotates it: the
    # interleaving a busy server gives a thief racing the owner. (Without the wait the threads happen
    # to run one after another.)
    make = secrets.token_urlsafe
    monkeypatch.setattr(secrets, "token_urlsafe", lambda size: (time.sleep(0.2), make(size))[1])
    outcomes: list = []
    barrier = threading.Barrier(6)

    def race():
        barrier.wait()
        try:
            outcomes.append(sessions.renew(signed_in["masterToken"], signed_in["token"])[1])
        except UserError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tokens = [o for o in outcomes if isinstance(o, str)]
    assert len(tokens) == 1 and sorted(o for o in outcomes if not isinstance(o, str)) == [390111] * 5
    assert rows(run(client, tokens[0], "SELECT CURRENT_USER()")) == [["low"]]


@pytest.mark.parametrize("change", ["password", "no password", "disabled", "dropped"])
def test_a_password_change_disabling_or_dropping_the_user_ends_their_sessions(client, low, change):
    signed_in = login(client, user="low", password=LOW_PASSWORD)["data"]
    admin = login(client)["data"]["token"]
    statement = {"password": "ALTER USER low SET PASSWORD = 'another-password'",
                 "no password": "ALTER USER low UNSET PASSWORD", "disabled": "ALTER USER low SET DISABLED = TRUE",
                 "dropped": "DROP USER low"}[change]
    assert run(client, admin, statement)["success"], statement
    refused(run(client, signed_in["token"], "SELECT 1"), "390111", GONE)
    refused(renew(client, signed_in["masterToken"], signed_in["token"]), "390111", GONE)
    if change == "password":
        assert login(client, user="low", password="another-password")["success"] is True
    if change == "disabled":
        assert run(client, admin, "ALTER USER low SET DISABLED = FALSE")["success"]
        refused(run(client, signed_in["token"], "SELECT 1"), "390111", GONE)  # re-enabling revives nothing


def test_signing_in_again_or_a_rehashed_password_keeps_the_other_sessions(client, low, settings):
    first = login(client, user="low", password=LOW_PASSWORD)["data"]
    # Another hasher in front of the tests' MD5: Django rehashes low's password on the next sign-in (no password change).
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher", "django.contrib.auth.hashers.MD5PasswordHasher"]
    again = login(client, user="low", password=LOW_PASSWORD)
    assert again["success"] is True, again
    assert get_user_model().objects.get(username="low").password.startswith("counting_pbkdf2$")
    assert rows(run(client, first["token"], "SELECT CURRENT_USER()")) == [["low"]]


# --- the session's role, database and schema across requests ---------------------------------------------

@pytest.mark.parametrize("how", ["REVOKE ROLE low FROM USER low", "DROP ROLE low"])
def test_a_role_revoked_after_sign_in_runs_nothing_more(client, low, how):
    token = login(client, user="low", password=LOW_PASSWORD)["data"]["token"]
    assert rows(run(client, token, "SELECT COUNT(*) FROM pub.s.x")) == [["2"]]
    assert run(client, login(client)["data"]["token"], how)["success"]
    refused(run(client, token, "INSERT INTO pub.s.sink VALUES (1, 'as LOW')"), "003013",
            "Role 'LOW' is no longer granted to user 'low': the statement did not run. The session is now in "
            "role 'PUBLIC'; run USE ROLE to choose another.")
    answer = run(client, token, "SELECT CURRENT_ROLE(), CURRENT_DATABASE()")
    assert rows(answer) == [["PUBLIC", None]] and answer["data"]["finalRoleName"] == "PUBLIC"
    refused(run(client, token, "SELECT COUNT(*) FROM pub.s.x"), "002003",
            "Database 'PUB' does not exist or not authorized.")
    assert rows(run(client, login(client)["data"]["token"], "SELECT COUNT(*) FROM pub.s.sink")) == [["0"]]


def test_a_role_revoked_after_use_role_is_checked_again_too(client, low):
    admin = login(client)["data"]["token"]
    assert run(client, admin, "CREATE ROLE reader")["success"]
    assert run(client, admin, "GRANT ROLE reader TO USER low")["success"]
    token = login(client, user="low", password=LOW_PASSWORD)["data"]["token"]
    assert run(client, token, "USE ROLE reader")["data"]["finalRoleName"] == "READER"
    assert run(client, admin, "REVOKE ROLE reader FROM USER low")["success"]
    answer = run(client, token, "SELECT CURRENT_ROLE()")
    assert (answer["code"], answer["message"].split(":")[0]) == (
        "003013", "Role 'READER' is no longer granted to user 'low'")
    assert rows(run(client, token, "SELECT CURRENT_ROLE()")) == [["LOW"]]  # low's default role


def test_cortex_rest_with_a_session_token_checks_the_role_again(client, low):
    token = login(client, user="low", password=LOW_PASSWORD)["data"]["token"]
    assert run(client, login(client)["data"]["token"], "REVOKE ROLE low FROM USER low")["success"]
    response = client.post("/api/v2/cortex/inference:complete", json.dumps({
        "model": "tiny-llama", "messages": [{"content": "hi"}], "stream": False}), content_type="application/json",
        HTTP_AUTHORIZATION=f'Snowflake Token="{token}"')
    assert (response.status_code, response.json()["code"]) == (401, "003013")
    assert not CompletionUsage.objects.exists()
    bearer = client.post("/api/v2/cortex/inference:complete", json.dumps({
        "model": "tiny-llama", "messages": [{"content": "hi"}]}), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}")  # a session token is no API token
    assert (bearer.status_code, bearer.json()["code"]) == (401, "390303")


def test_polls_and_heartbeats_do_not_reset_a_revoked_roles_session_before_its_refusal(client, low):
    token = login(client, user="low", password=LOW_PASSWORD)["data"]["token"]
    assert run(client, login(client)["data"]["token"], "REVOKE ROLE low FROM USER low")["success"]
    assert post(client, "/session/heartbeat", token=token)["success"] is True
    refused(run(client, token, "SELECT 1"), "003013",
            "Role 'LOW' is no longer granted to user 'low': the statement did not run. The session is now in "
            "role 'PUBLIC'; run USE ROLE to choose another.")


def test_usage_on_the_current_database_revoked_after_use_is_checked_on_each_statement(client, low):
    token = login(client, user="low", password=LOW_PASSWORD, databaseName="pub", schemaName="s")["data"]["token"]
    assert rows(run(client, token, "SELECT COUNT(*) FROM x")) == [["2"]]
    assert run(client, login(client)["data"]["token"], "REVOKE USAGE ON DATABASE pub FROM ROLE low")["success"]
    refused(run(client, token, "SELECT COUNT(*) FROM x"), "002003", "Database 'PUB' does not exist or not authorized.")
    refused(run(client, token, "INSERT INTO sink VALUES (1, 'x')"), "002003",
            "Database 'PUB' does not exist or not authorized.")


def test_a_database_dropped_by_another_session_after_use_reads_as_missing(client, low):
    admin = login(client)["data"]["token"]
    other = login(client)["data"]["token"]
    assert run(client, admin, "CREATE DATABASE gone")["success"]
    assert run(client, other, "USE DATABASE gone")["data"]["finalDatabaseName"] == "GONE"
    assert run(client, other, "CREATE TABLE t (a INT)")["success"]
    assert run(client, admin, "DROP DATABASE gone")["success"]
    refused(run(client, other, "SELECT * FROM t"), "002003", "Database 'GONE' does not exist or not authorized.")
    refused(run(client, other, "CREATE TABLE t2 (a INT)"), "002003", "Database 'GONE' does not exist or not authorized.")
