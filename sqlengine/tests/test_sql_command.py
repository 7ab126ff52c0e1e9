import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from access.bootstrap import bootstrap
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table


@pytest.fixture
def account(db, tmp_path):
    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "SQLDB", "PEOPLE", [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}])


def test_use_statements_carry_over_to_the_next_statement(account):
    session = admin_session()
    results = Executor(session).execute("USE DATABASE sqldb; USE SCHEMA public; SELECT name FROM people ORDER BY name")
    assert results[-1].rows == [("Ada",), ("Alan",)]
    assert (session.database, session.schema) == ("SQLDB", "PUBLIC")


def test_snowflake_functions_are_transpiled_for_duckdb(account):
    session = admin_session(database="SQLDB", schema="PUBLIC")
    result = Executor(session).execute("SELECT IFF(age > 40, 'senior', 'junior') || ':' || UPPER(name) AS label "
                                       "FROM people ORDER BY age")[-1]
    assert result.columns == ["LABEL"] and result.rows == [("junior:ADA",), ("senior:ALAN",)]


def test_use_of_a_missing_warehouse_names_it(account):
    with pytest.raises(Exception, match="warehouse 'NOPE'"):
        Executor(admin_session()).execute("USE WAREHOUSE nope")


def test_the_sql_command_prints_a_table_and_json(account, capsys):
    call_command("sql", "-e", "SELECT name, age FROM sqldb.public.people ORDER BY age")
    out = capsys.readouterr().out
    assert "| NAME | AGE |" in out and "| Ada  | 36  |" in out
    call_command("sql", "-e", "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW') AS jobs", "--format", "json")
    assert json.loads(capsys.readouterr().out) == {"columns": ["JOBS"], "rows": [[[]]]}


def test_the_sql_command_reports_errors_with_code_and_sqlstate(account):
    with pytest.raises(CommandError, match=r"^100357 \(22023\): Unknown base model 'gpt-9'"):
        call_command("sql", "-e", "SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'sqldb.public.m', 'gpt-9', 'SELECT 1')")


def test_a_syntax_error_says_where(account):
    with pytest.raises(Exception, match="syntax error line 1"):
        Executor(admin_session()).execute("SELEC 1 FROM")


def test_an_unterminated_string_is_a_compilation_error_not_a_crash(account):
    with pytest.raises(CommandError, match=r"^001003 \(42000\): SQL compilation error: .*Is a quote missing or not doubled"):
        call_command("sql", "-e", "SELECT SNOWFLAKE.CORTEX.COMPLETE('m', 'last month's receipt')")


def test_result_columns_are_named_as_snowflake_names_them(account):
    session = admin_session(database="SQLDB", schema="PUBLIC")
    result = Executor(session).execute('SELECT name AS "Mixed", age AS years, UPPER(name), age FROM people LIMIT 1')[-1]
    assert result.columns == ["Mixed", "YEARS", "UPPER(NAME)", "AGE"]
