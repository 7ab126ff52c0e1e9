"""Statements a user (or an attacker) might send that must fail: each gets a clear error naming the
problem, and nothing in the account changes."""
from __future__ import annotations

import pytest

from access.models import Grant, Role
from catalog import accountdata
from catalog.models import Database, Schema
from errors import UserError
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table

Q = "SELECT prompt, completion FROM examples"

BAD_STATEMENTS = [
    # syntax
    ("SELEC 1", r"syntax error line 1"),
    ("SELECT 'unterminated", r"Is a quote missing"),
    ('CREATE TABLE "unclosed (a INT)', r"Is a quote missing|syntax error"),
    ("SELECT * FROM", r"syntax error"),
    # unknown objects
    ("SELECT * FROM nope", r"'BAD\.PUBLIC\.NOPE' does not exist or not authorized"),
    ("SELECT * FROM nodb.public.t", r"does not exist or not authorized"),
    ("USE DATABASE nope", r"Database 'NOPE' does not exist or not authorized"),
    ("USE SCHEMA nope", r"Schema 'BAD\.NOPE' does not exist or not authorized"),
    ("USE WAREHOUSE nope", r"warehouse 'NOPE'"),
    ("USE ROLE nope", r"Role 'NOPE' does not exist"),
    ("DROP TABLE nope", r"'BAD\.PUBLIC\.NOPE' does not exist or not authorized"),
    ("DROP DATABASE nope", r"'NOPE' does not exist or not authorized"),
    ("INSERT INTO nope VALUES (1)", r"'BAD\.PUBLIC\.NOPE' does not exist or not authorized"),
    ("DESCRIBE TABLE nope", r"'BAD\.PUBLIC\.NOPE' does not exist or not authorized"),
    ("CREATE TABLE examples (a INT)", r"'EXAMPLES' already exists"),
    ("INSERT INTO examples VALUES ('a', 'b', 'c', 'd', 'e')", r"(?i)column|values"),
    # Cortex argument counts and types
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama')", r"takes 3 to 5 arguments"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', 42)", r"training query must be a string"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('EXPLODE')", r"not one of CREATE, SHOW, DESCRIBE, CANCEL"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE')", r"takes one job id"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', 'ft_nope')", r"ft_nope"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', 'ft_nope')", r"ft_nope"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW', 'extra')", r"takes no further arguments"),
    ("SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama')", r"COMPLETE takes"),
    ("SELECT SNOWFLAKE.CORTEX.COMPLETE('no_such_model', 'hi')", r"'BAD\.PUBLIC\.NO_SUCH_MODEL' does not exist"),
    (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'gpt-9', '{Q}')", r"Unknown base model 'gpt-9'"),
    (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', '{Q}', NULL, '{{\"max_epochs\": 0}}')",
     r"max_epochs must be an integer from 1 to 10"),
    (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', '{Q}', NULL, '{{\"max_epochs\": 11}}')",
     r"max_epochs must be an integer from 1 to 10"),
    (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', '{Q}', NULL, 'not json')", r"(?i)options.*JSON"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', 'SELECT prompt FROM examples')", r"missing COMPLETION"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', 'SELECT prompt, 1 AS completion FROM examples')",
     r"COMPLETION is INTEGER"),
    # injection through names and the training query
    (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm; DROP TABLE examples', 'tiny-llama', '{Q}')", r"Invalid identifier"),
    (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'x\"\"); DROP TABLE examples; --', 'tiny-llama', '{Q}')", r"Invalid identifier"),
    (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', '{Q}; DROP TABLE examples')", r"exactly one SELECT"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', 'DELETE FROM examples')", r"only a SELECT query"),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', "
     "'SELECT column0 AS prompt, column0 AS completion FROM read_csv(''/etc/passwd'')')",
     r"^SQL compilation error: the training query failed: Unknown table function READ_CSV$"),
    # DuckDB's own escape hatches: files, extensions, other database files
    ("SELECT * FROM read_csv('/etc/passwd')", r"^SQL compilation error: Unknown table function READ_CSV$"),
    ("SELECT * FROM read_text('/etc/hostname')", r"^SQL compilation error: Unknown table function READ_TEXT$"),
    ("ATTACH '/tmp/other.duckdb' AS other", r"not supported|syntax error"),
    ("INSTALL httpfs", r"not supported|syntax error"),
    ("COPY examples TO '/tmp/stolen.csv'", r"(?i)not supported|syntax error|stage"),
    ("PRAGMA database_list", r"not supported|syntax error"),
    # grants naming things that do not exist
    ("GRANT USAGE ON DATABASE nope TO ROLE PUBLIC", r"'NOPE' does not exist"),
    ("GRANT USAGE ON DATABASE bad TO ROLE nope_role", r"Role 'NOPE_ROLE' does not exist"),
    ("GRANT FLY ON SCHEMA bad.public TO ROLE PUBLIC", r"(?i)privilege"),
]


@pytest.fixture
def account(db, tiny_llama, tmp_path, settings):
    from access.bootstrap import bootstrap

    settings.DUCKDB_DIR = tmp_path / "duckdb"  # DuckDB files outlive the test's database rollback

    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "BAD", "EXAMPLES", [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}])
    return admin_session(database="BAD", schema="PUBLIC")


def snapshot() -> dict:
    rows = Executor(admin_session()).execute("SELECT prompt, completion FROM bad.public.examples ORDER BY prompt")[-1].rows
    with accountdata.connect(None, None) as con:
        tables = con.execute("SELECT database_name, schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
    return {
        "rows": rows, "tables": tables,
        "databases": list(Database.objects.values_list("name", flat=True)),
        "schemas": list(Schema.objects.values_list("database__name", "name")),
        "jobs": FineTuneJob.objects.count(), "models": FineTunedModel.objects.count(),
        "roles": list(Role.objects.values_list("name", flat=True)), "grants": Grant.objects.count(),
    }


def test_the_bad_input_list_is_long_enough():
    assert len(BAD_STATEMENTS) >= 30


@pytest.mark.parametrize(("statement", "error"), BAD_STATEMENTS, ids=[s[:60] for s, _ in BAD_STATEMENTS])
def test_a_bad_statement_gets_a_clear_error_and_changes_nothing(account, statement, error):
    before = snapshot()
    with pytest.raises(UserError, match=error) as caught:
        Executor(account).execute(statement)
    assert caught.value.code and caught.value.sqlstate
    assert snapshot() == before
