"""Attacks on Snowflake's client protocol, as someone who has read Snowflake's, DuckDB's and Django's docs
would try them: tokens, sign-in, bindings, describeOnly, other users' statements, request bodies and a
session's role. Each refusal is asserted by its code and message, and what it must not leak or change
is read back afterwards.

The cast is the security review's (tests/support/security.py): user `low` in role LOW may read PUB.S.X
and write PUB.S.SINK, never database ACC, whose rows carry SECRET; `admin` is ACCOUNTADMIN. Django's
test client, in process; statements run on their own threads, hence the committed rows.
"""
from __future__ import annotations

import pytest

from client_protocol.tests.test_sessions import login, post, run
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
