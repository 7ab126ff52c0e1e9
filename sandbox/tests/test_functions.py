"""The function allowlist: every function sandbox/functions.py claims runs through the sandbox, and what it
does not list is refused with Snowflake's error before anything runs."""
from __future__ import annotations

import datetime

import pytest

from errors import UserError
from sandbox import allowlist
from sandbox.functions import SAMPLES


def test_every_supported_function_runs_for_a_role_without_privileges(low_account):
    failed = []
    for sample in SAMPLES:
        try:
            result = low_account.sql(f"SELECT {sample} AS v")[-1]
            assert result.columns == ["V"] and len(result.rows) == 1
        except UserError as error:
            failed.append(f"{sample}: {error.message}")
    assert not failed, "\n".join(failed)


def test_functions_answer_as_snowflakes_do(low_account):
    row = low_account.sql("SELECT IFF(1 = 1, 'yes', 'no'), NVL(NULL, 'x'), SPLIT_PART('a,b,c', ',', 2), "
                          "DATEADD(day, 1, '2024-02-28'::DATE), ARRAY_SIZE(ARRAY_CONSTRUCT(1, 2, 3)), "
                          "PARSE_JSON('{\"a\": {\"b\": 7}}'):a.b::INT, LISTAGG(v, '-') "
                          "FROM (SELECT 'p' AS v UNION ALL SELECT 'q')")[-1].rows[0]
    assert row[:3] == ("yes", "x", "b") and row[3].date() == datetime.date(2024, 2, 29) and row[4] == 3
    assert row[5] == 7 and sorted(row[6].split("-")) == ["p", "q"]


@pytest.mark.parametrize("sql, error", [
    ("SELECT soundex('x')", "SQL compilation error: Unknown function SOUNDEX"),
    ("SELECT my_udf(1)", "SQL compilation error: Unknown function MY_UDF"),
    ("SELECT db.s.my_udf(1)", "SQL compilation error: Unknown function DB.S.MY_UDF"),
    ("SELECT list_filter([1, 2], x -> x > 1)", "SQL compilation error: Unknown function"),
    ("SELECT * FROM TABLE(my_table_function(1))", "SQL compilation error: Unknown table function MY_TABLE_FUNCTION"),
    ("SELECT CAST('x' AS GEOGRAPHY)", "SQL compilation error: Type GEOGRAPHY is not supported."),
])
def test_what_is_not_listed_is_refused_with_snowflakes_error(low_account, sql, error):
    with pytest.raises(UserError) as caught:
        low_account.sql(sql, database="PUB", schema="S")
    assert caught.value.message.startswith(error)
    if "Unknown" in error:
        assert (caught.value.code, caught.value.sqlstate) == (2140, "42601")


def test_the_allowlist_is_what_the_samples_parse_to():
    classes, names = allowlist.functions()
    assert {"HASH", "COMPLETE", "FINETUNE"} <= names
    assert "QUERY" not in names and "QUERY_TABLE" not in names
    from sqlglot import exp

    assert exp.If in classes and exp.ReadCSV not in classes
