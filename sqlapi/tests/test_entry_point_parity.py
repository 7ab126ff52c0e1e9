"""Every family of statements answers the same through `manage.py sql` and the SQL API."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from access import tokens
from access.bootstrap import bootstrap
from sqlapi.tests.test_statements_api import post

# (statement, expected rows as the command line's JSON prints them); run in order, one session each.
FAMILIES = [
    ("CREATE DATABASE parity", [["Database PARITY successfully created."]]),
    ("CREATE SCHEMA parity.raw", [["Schema RAW successfully created."]]),
    ("USE SCHEMA parity.raw", [["Statement executed successfully."]]),
    ("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA(), CURRENT_ROLE()", [["PARITY", "RAW", "ACCOUNTADMIN"]]),
    ("CREATE TABLE tickets (id INT, body VARCHAR, label VARCHAR)", [["Table TICKETS successfully created."]]),
    ("INSERT INTO tickets VALUES (1, 'Refund  me', 'billing'), (2, NULL, 'shipping')", [[2]]),
    ("SELECT id, CONCAT('#', id) AS tag, COALESCE(body, '(empty)') AS body, UPPER(label) AS label, "
     "SPLIT_PART('a-b-c', '-', 2) AS part, IFF(id > 1, 'late', 'early') AS phase FROM tickets ORDER BY id LIMIT 5",
     [[1, "#1", "Refund  me", "BILLING", "b", "early"], [2, "#2", "(empty)", "SHIPPING", "b", "late"]]),
    ("SELECT COUNT(*) FROM tickets SAMPLE (100 ROWS)", [[2]]),
    ("CREATE VIEW examples AS SELECT body AS prompt, label AS completion FROM tickets", [["View EXAMPLES successfully created."]]),
    ("SHOW TABLES LIKE 'TICK%' IN SCHEMA parity.raw", None),
    ("DESCRIBE TABLE tickets", None),
    ("CREATE ROLE parity_role", [["Role PARITY_ROLE successfully created."]]),
    ("GRANT SELECT ON TABLE tickets TO ROLE parity_role", [["Statement executed successfully."]]),
    ("SHOW GRANTS TO ROLE parity_role", None),
    ("CREATE STAGE raw_files", [["Stage area RAW_FILES successfully created."]]),
    ("LIST @raw_files", []),
    ("SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')", [[[]]]),
    ("SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.CORTEX_FINE_TUNING_USAGE_HISTORY", []),
    ("DROP DATABASE parity", [["PARITY successfully dropped."]]),
    ("DROP ROLE parity_role", [["PARITY_ROLE successfully dropped."]]),
]


def where(statement: str) -> dict:
    """Each call is a new session: it names the schema, once the schema exists."""
    before_or_after = ("CREATE DATABASE", "CREATE SCHEMA", "DROP ROLE")
    return {} if statement.startswith(before_or_after) else {"database": "PARITY", "schema": "RAW"}


def run_cli(statement: str, capsys) -> list:
    options = [arg for key, value in where(statement).items() for arg in (f"--{key}", value)]
    call_command("sql", "-e", statement, "--format", "json", *options)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]


def run_api(client, token: str, statement: str) -> list:
    response = post(client, token, {"statement": statement, **where(statement)})
    assert response.status_code == 200, response.content
    return response.json()["data"]


def as_api_text(rows: list) -> list:
    """The SQL API sends every value as a string (objects and arrays as JSON), NULL as null."""
    def text(value):
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"))
        return str(value)
    return [[text(v) for v in row] for row in rows]


@pytest.fixture
def token(transactional_db, tmp_path, settings):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    settings.STAGE_DIR = tmp_path / "stages"
    bootstrap(password="pw-for-tests", demo=False)
    return tokens.create_token(get_user_model().objects.get(username="admin"), "parity")[1]


def test_each_statement_family_gives_the_same_rows_from_the_command_line_and_the_api(client, token, capsys):
    cli_rows = []
    for statement, expected in FAMILIES:
        rows = run_cli(statement, capsys)
        if expected is not None:
            assert rows == expected, statement
        cli_rows.append(rows)
    # The same statements again, through the API, on a fresh database.
    for (statement, _), rows in zip(FAMILIES, cli_rows):
        api_rows = run_api(client, token, statement)
        if statement.startswith(("SHOW", "DESCRIBE")):  # created_on differs between the two runs
            assert len(api_rows) == len(rows) and [r[1] for r in api_rows] == [str(r[1]) for r in rows], statement
        else:
            assert api_rows == as_api_text(rows), statement
