"""AI_COMPLETE passes the allowlist only as the Cortex call the studio answers itself (COMPLETE's service):
bare or as SNOWFLAKE.CORTEX.AI_COMPLETE, never under another qualifier, never as the UDF it becomes, and
never as a function DuckDB could run."""
from __future__ import annotations

import duckdb
import pytest

from errors import UserError
from sandbox import allowlist

UNKNOWN = "SQL compilation error: Unknown function "


def outcome(account, sql: str, **session) -> tuple:
    """("OK", rows) or (code, sqlstate, message): what LOW is told."""
    try:
        return ("OK", account.sql(sql, **session)[-1].rows)
    except UserError as error:
        return (error.code, error.sqlstate, error.message)


def test_the_allowlist_names_ai_complete_among_the_cortex_functions():
    _classes, names = allowlist.functions()
    assert {"COMPLETE", "FINETUNE", "AI_COMPLETE"} <= names


def test_duckdb_has_no_function_of_that_name_to_fall_back_on():
    # A statement the SQL engine does not rewrite (INSERT … SELECT) hands AI_COMPLETE to DuckDB as written.
    con = duckdb.connect()
    found = con.execute("SELECT function_name FROM duckdb_functions() WHERE lower(function_name) IN "
                        "('ai_complete', 'complete', 'finetune')").fetchall()
    assert found == []


@pytest.mark.parametrize("sql, name", [
    ("SELECT pub.s.ai_complete('m', 'p')", "PUB.S.AI_COMPLETE"),
    ("SELECT x.ai_complete('m', 'p') FROM pub.s.x AS x", "X.AI_COMPLETE"),
    ("SELECT SNOWFLAKE.ML.AI_COMPLETE('m', 'p')", "SNOWFLAKE.ML.AI_COMPLETE"),
    ("SELECT studio_cortex_ai_complete('m', 'p', NULL, NULL)", "STUDIO_CORTEX_AI_COMPLETE"),
    ("SELECT studio_cortex_finetune_text_1('SHOW')", "STUDIO_CORTEX_FINETUNE_TEXT_1"),
])
def test_under_another_name_it_is_an_unknown_function(low_account, sql, name):
    with pytest.raises(UserError) as caught:
        low_account.sql(sql, database="PUB", schema="S")
    assert caught.value.message == UNKNOWN + name and caught.value.code == 2140


@pytest.mark.parametrize("ai_complete, complete", [
    ("SELECT ai_complete('acc.s.m', 'x')", "SELECT SNOWFLAKE.CORTEX.COMPLETE('acc.s.m', 'x')"),
    ("SELECT SNOWFLAKE.CORTEX.AI_COMPLETE('acc.s.m', 'x', {'max_tokens': 5})",
     "SELECT SNOWFLAKE.CORTEX.COMPLETE('acc.s.m', [{'role': 'user', 'content': 'x'}], {'max_tokens': 5})"),
    ("SELECT AI_COMPLETE('smollm2-135m', name) FROM acc.s.t", "SELECT COMPLETE('smollm2-135m', name) FROM acc.s.t"),
    ("SELECT AI_COMPLETE('smollm2-135m', (SELECT name FROM acc.s.t LIMIT 1))",
     "SELECT COMPLETE('smollm2-135m', (SELECT name FROM acc.s.t LIMIT 1))"),
    ("INSERT INTO pub.s.sink SELECT id, ai_complete('smollm2-135m', note) FROM pub.s.x",
     "INSERT INTO pub.s.sink SELECT id, complete('smollm2-135m', note) FROM pub.s.x"),
])
def test_it_is_refused_exactly_where_complete_is(low_account, ai_complete, complete):
    session = {"database": "PUB", "schema": "S"}
    refused = outcome(low_account, ai_complete, **session)
    assert refused[0] != "OK", refused
    expected = outcome(low_account, complete, **session)
    # DuckDB names the function it does not know in DML (the SQL engine answers Cortex calls in queries).
    assert refused[:2] == expected[:2] and refused[2].replace("ai_complete", "complete") == expected[2]
    assert low_account.sql("SELECT COUNT(*) FROM pub.s.sink", **session)[-1].rows == [(0,)]
