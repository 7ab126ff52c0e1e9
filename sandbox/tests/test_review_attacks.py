"""A security review of issue 13's sandbox, stage privileges and session opening, as an attacker who has
read DuckDB's, sqlglot's, Snowflake's and Django's documentation.

The cast is tests/support/security.py's: role LOW may use PUB, PUB.S, read PUB.S.X, insert into and read
PUB.S.SINK, and holds nothing on database ACC, whose rows, names and files carry the marker TOPSECRET.

The tests of sections 1-5 are the holes the review found: each asserted the secure behaviour and failed
until its fix landed; their comments say why each got through. Section 6 holds the attempts that were
already refused, kept as regression tests. Grouped by theme:

1. DML whose subqueries sqlglot's scope analysis does not place
2. Existence oracles: statements on names in a database the role may not use (and what already held)
3. Secure views' text
4. Table stages outlive their table
5. Endpoints that answered a 500
6. Attempts that held: SQL syntax and functions, CTE and view tricks, stages, jobs, the SQL API, the
   inference server's token
"""
from __future__ import annotations

import asyncio
import json
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from access.session import Session
from catalog import stage_files, stages
from errors import UserError
from jobs.models import FineTuneJob
from sqlengine.executor import Executor
from tests.support.security import PUBLIC_ROWS, SECRET_ROWS, STAGED_FILES, leaks
from tests.support.security import staged_files as admin_files

SESSION = {"database": "PUB", "schema": "S"}


def admin(account, sql: str):
    return Executor(account.admin).execute(sql)[-1]


def outcome(account, sql: str, **session) -> tuple:
    """("OK", rows) or (code, sqlstate, message): what LOW is told, to compare two answers."""
    try:
        return ("OK", account.sql(sql, **(session or SESSION))[-1].rows)
    except UserError as error:
        return (error.code, error.sqlstate, error.message)


def refusal(account, sql: str, **session) -> UserError:
    with pytest.raises(UserError) as caught:
        account.sql(sql, **(session or SESSION))
    assert not leaks(caught.value.message), caught.value.message
    return caught.value


def unchanged(account) -> None:
    assert admin(account, "SELECT * FROM acc.s.t ORDER BY id").rows == SECRET_ROWS
    assert admin(account, "SELECT * FROM pub.s.x ORDER BY id").rows == PUBLIC_ROWS


def hidden_objects(account) -> None:
    """What LOW must never learn of PUB: a schema it holds nothing on, and a secure view's definition. And
    a view LOW may read that reads ACC, which makes every statement reading it attach ACC's DuckDB file."""
    run = Executor(account.admin).execute
    run("CREATE SCHEMA pub.h")
    run("CREATE TABLE pub.h.topsecret_payroll (ssn VARCHAR)")
    run("CREATE SECURE VIEW pub.s.sv AS SELECT id, 'TOPSECRET-in-a-definition' AS a FROM pub.s.x")
    run("GRANT SELECT ON VIEW pub.s.sv TO ROLE low")
    run("CREATE VIEW pub.s.ids AS SELECT id FROM acc.s.t")
    run("GRANT SELECT ON VIEW pub.s.ids TO ROLE low")


def what_low_reads_back(account) -> list:
    return account.sql("SELECT * FROM pub.s.sink", **SESSION)[-1].rows


# 1. DML whose subqueries sqlglot's scope analysis does not place ------------------------------------
#
# sandbox/box.py references() returns every exp.Table that is a scope source (then resolved, checked and
# rewritten to its quoted "DB"."S"."NAME"); any other one is refused unless
#     elif table.args.get("db") or table.name not in cte_names: raise …
# lets it through as "a CTE reference", left as written, with cte_names every CTE name anywhere in the
# statement, not the CTEs in that reference's scope. sqlglot's traverse_scope (optimizer/scope.py,
# the exp.DML branch) does not scope subqueries inside INSERT … VALUES, nor the relations after a derived
# table in DELETE … USING, so a one-part name there that matches a CTE defined in some *other* subquery
# is taken for that CTE. DuckDB does not see the CTE there and binds the name through its search path,
# where its default catalog views live: duckdb_tables, duckdb_columns, duckdb_views, duckdb_databases,
# duckdb_schemas, duckdb_constraints, sqlite_master, pragma_database_list, and pg_catalog's pg_settings,
# pg_views, pg_class, pg_attribute … They list every database
# attached to the statement's connection, so: every schema's tables and columns (those the role holds
# nothing on too), every view's SQL (secure views too), the server's file paths, and, whenever the
# statement reads a view over ACC (the sandbox attaches the view's source database to check its owner),
# ACC's tables, columns and DDL. The allowlist still runs (the functions are Snowflake's), only the name
# check is skipped; sealing does not help, these views need no file access.

CATALOG_READS = [
    # (what LOW sends, what it reads back into PUB.S.SINK)
    ("INSERT INTO pub.s.sink VALUES ((WITH duckdb_tables AS (SELECT 1) SELECT 1), "
     "(SELECT LISTAGG(schema_name || '.' || table_name, ',') FROM duckdb_tables))", "H.TOPSECRET_PAYROLL"),
    ("INSERT INTO pub.s.sink VALUES ((WITH duckdb_views AS (SELECT 1) SELECT 2), "
     "(SELECT LISTAGG(sql, ';') FROM duckdb_views WHERE NOT internal))", "TOPSECRET-in-a-definition"),
    ("INSERT INTO pub.s.sink VALUES ((WITH duckdb_databases AS (SELECT 1) SELECT 3), "
     "(SELECT LISTAGG(path, ';') FROM duckdb_databases))", "PUB.duckdb"),
    # pg_catalog's views are on the search path too: every setting of the connection
    ("INSERT INTO pub.s.sink VALUES ((WITH pg_settings AS (SELECT 1) SELECT 4), "
     "(SELECT LISTAGG(name || '=' || setting, ';') FROM pg_settings WHERE name LIKE '%directory%'))", "directory="),
]


@pytest.mark.parametrize("sql, read_back", CATALOG_READS)
def test_insert_values_cannot_read_duckdbs_catalog_views(low_account, sql, read_back):
    # Found by the attack review, fixed since: sandbox/box.py references(), `table.name not in cte_names`, with sqlglot not scoping VALUES under
    # INSERT: the one-part DUCKDB_TABLES is never resolved (it would be PUB.S.DUCKDB_TABLES, which does not
    # exist) and DuckDB binds it to its own catalog view.
    hidden_objects(low_account)
    try:
        low_account.sql(sql, **SESSION)
    except UserError as error:
        assert not leaks(error.message), error.message
    shown = str(what_low_reads_back(low_account))
    assert read_back not in shown and not leaks(shown), shown
    assert str(settings.DUCKDB_DIR) not in shown, shown


def test_delete_using_cannot_read_the_metadata_of_a_database_a_view_attaches(low_account):
    # Found by the attack review, fixed since: the same branch of references(), through DELETE … USING (<derived table>), <name>: sqlglot
    # scopes neither the name nor the derived table's CTE for it. The view PUB.S.IDS (ACCOUNTADMIN's, over
    # ACC.S.T, granted to LOW) is read in the WHERE clause, so the sandbox attaches ACC to check its owner;
    # DuckDB then lists ACC in duckdb_tables, and a failing CAST puts what it lists in the error message
    # (which only has the data directory scrubbed): here ACC.S.T's DDL and the name TOPSECRET_NAMES.
    hidden_objects(low_account)
    admin(low_account, "GRANT DELETE ON TABLE pub.s.sink TO ROLE low")
    low_account.sql("INSERT INTO pub.s.sink VALUES (1, 'mine')", **SESSION)
    for sql in [
        "DELETE FROM pub.s.sink USING (WITH duckdb_tables AS (SELECT 1) SELECT 1) z, duckdb_tables c "
        "WHERE sink.id IN (SELECT id FROM pub.s.ids) AND c.database_name = 'ACC' "
        "AND CAST(c.table_name || ': ' || c.sql AS INT) = 1",
        "DELETE FROM pub.s.sink USING (WITH duckdb_columns AS (SELECT 1) SELECT 1) z, duckdb_columns c "
        "WHERE sink.id IN (SELECT id FROM pub.s.ids) AND c.database_name = 'ACC' "
        "AND CAST(c.table_name || '.' || c.column_name AS INT) = 1",
    ]:
        error = refusal(low_account, sql)
        assert "DETAIL" not in error.message and "ACC.S.T" not in error.message, error.message
    # …nor, as a yes/no oracle, delete a row depending on what ACC holds.
    sql = ("DELETE FROM pub.s.sink USING (WITH duckdb_columns AS (SELECT 1) SELECT 1) z, duckdb_columns c "
           "WHERE sink.id IN (SELECT id FROM pub.s.ids) AND c.database_name = 'ACC' AND c.column_name = 'DETAIL'")
    with pytest.raises(UserError):
        low_account.sql(sql, **SESSION)
    assert admin(low_account, "SELECT * FROM pub.s.sink").rows == [(1, "mine")]
    unchanged(low_account)


# The same trick where sqlglot does scope the name: refused (the name resolves to PUB.S.DUCKDB_TABLES, or
# references() refuses a reference it cannot place).
SCOPED_CATALOG_READS = [
    "SELECT * FROM pub.s.x AS duckdb_tables, LATERAL (SELECT table_name FROM duckdb_tables) l, "
    "(WITH duckdb_tables AS (SELECT 1) SELECT 1) z",
    "SELECT (SELECT COUNT(*) FROM duckdb_tables), (WITH duckdb_tables AS (SELECT 1) SELECT 1)",
    "(WITH duckdb_tables AS (SELECT 1) SELECT 1) UNION ALL SELECT COUNT(*) FROM duckdb_tables",
    "SELECT * FROM VALUES ((WITH duckdb_tables AS (SELECT 1) SELECT 1)), ((SELECT COUNT(*) FROM duckdb_tables)) v",
    "SELECT 1 FROM (SELECT 1) z, (WITH duckdb_tables AS (SELECT 1) SELECT 1) y "
    "WHERE EXISTS (SELECT 1 FROM duckdb_tables)",
    "SELECT 1 FROM ((SELECT 1) z JOIN duckdb_tables ON TRUE), (WITH duckdb_tables AS (SELECT 1) SELECT 1) w",
    "WITH a AS (SELECT * FROM duckdb_tables), duckdb_tables AS (SELECT 1) SELECT * FROM a",
    "WITH duckdb_tables AS (SELECT * FROM duckdb_tables) SELECT * FROM duckdb_tables",
    "UPDATE pub.s.sink SET name = 'x' FROM (WITH duckdb_tables AS (SELECT 1) SELECT 1) z, duckdb_tables d",
    "UPDATE pub.s.sink SET name = (SELECT MIN(table_name) FROM duckdb_tables), "
    "id = (WITH duckdb_tables AS (SELECT 1) SELECT 1)",
    "DELETE FROM pub.s.sink USING pub.s.x i, (WITH duckdb_tables AS (SELECT 1) SELECT 1) z, duckdb_tables d",
    "DELETE FROM pub.s.sink WHERE EXISTS (WITH duckdb_tables AS (SELECT 1) SELECT 1) "
    "AND EXISTS (SELECT 1 FROM duckdb_tables)",
    "INSERT INTO pub.s.sink SELECT (SELECT COUNT(*) FROM duckdb_tables), "
    "(WITH duckdb_tables AS (SELECT 1) SELECT 'x')",
    "INSERT INTO pub.s.sink SELECT * FROM (VALUES ((WITH duckdb_tables AS (SELECT 1) SELECT 1), "
    "(SELECT MIN(table_name) FROM duckdb_tables)))",
    "INSERT INTO pub.s.sink VALUES ((SELECT COUNT(*) FROM duckdb_tables), 'no CTE of that name anywhere')",
    # A CTE on the INSERT is not scoped either, so what it reads is refused (fail-closed): this does not get
    # ACC attached for the VALUES trick above.
    "WITH shared AS (SELECT * FROM pub.s.ids) INSERT INTO pub.s.sink VALUES ((WITH duckdb_tables AS (SELECT 1) "
    "SELECT 4), (SELECT LISTAGG(table_name, ',') FROM duckdb_tables WHERE database_name = 'ACC'))",
    "CREATE TABLE pub.s.loot AS SELECT * FROM (SELECT 1) z, (WITH duckdb_tables AS (SELECT 1) SELECT 1) y, "
    "duckdb_tables",
    "CREATE VIEW pub.s.loot AS SELECT (SELECT COUNT(*) FROM duckdb_tables) AS n, "
    "(WITH duckdb_tables AS (SELECT 1) SELECT 1) AS m",
]


def test_the_catalog_view_trick_is_refused_where_sqlglot_scopes_the_name(low_account):
    hidden_objects(low_account)
    admin(low_account, "GRANT UPDATE, DELETE ON TABLE pub.s.sink TO ROLE low")
    admin(low_account, "GRANT CREATE TABLE, CREATE VIEW ON SCHEMA pub.s TO ROLE low")
    low_account.sql("INSERT INTO pub.s.sink VALUES (1, 'mine')", **SESSION)
    problems = []
    for sql in SCOPED_CATALOG_READS:
        answer = outcome(low_account, sql)
        if answer[0] == "OK" or not answer[2].startswith("SQL compilation error: ") or leaks(answer):
            problems.append(f"{sql} -> {answer}")
    assert not problems, "\n".join(problems)
    assert admin(low_account, "SELECT * FROM pub.s.sink").rows == [(1, "mine")]
    assert admin(low_account, "SHOW TABLES LIKE 'LOOT' IN ACCOUNT").rows == []


# 2. Existence oracles ------------------------------------------------------------------------------
#
# Snowflake answers any statement naming an object in a database the role may not use with "Database
# 'ACC' does not exist or not authorized.", whatever ACC holds. Each template below runs twice, for
# ACC and for a database that does not exist (NOPE); with ACC written as NOPE, the two answers must be
# the same, or the first tells LOW that ACC (and its schema S, its table T, that T is a table) exists.

LEAKS_EXISTENCE = [
    # sqlengine/statements/catalog.py _drop: accountdata.get_schema() and _object_kind() answer before
    # require_ownership(); the Sandbox's _write even attaches ACC read-write for it.
    "DROP TABLE {db}.s.t",
    "DROP TABLE {db}.s.nope",
    "DROP VIEW {db}.s.t",
    "DROP TABLE IF EXISTS {db}.s.t",
    "DROP SCHEMA {db}.s",
    "DROP DATABASE {db}",
    # _create_schema: accountdata.get_database() before privileges.require(CREATE SCHEMA)
    "CREATE SCHEMA {db}.x",
    # _create_relation / _insert / _update_or_delete / _truncate: accountdata.get_schema() before the
    # privilege check, which then says "Insufficient privileges to operate on database 'ACC'" where a
    # missing database is "does not exist"
    "CREATE TABLE {db}.s.z (a INT)",
    "CREATE VIEW {db}.s.z AS SELECT 1 AS a",
    "INSERT INTO {db}.s.t VALUES (1, 'a', 'b')",
    "UPDATE {db}.s.t SET id = 1",
    "DELETE FROM {db}.s.t",
    "TRUNCATE TABLE {db}.s.t",
    # sqlengine/show.py: SHOW … IN a database or schema the role may not use lists nothing (an empty
    # result) where a missing one is an error
    "SHOW TABLES IN SCHEMA {db}.s",
    "SHOW TABLES IN DATABASE {db}",
    "SHOW SCHEMAS IN DATABASE {db}",
    "SHOW VIEWS IN SCHEMA {db}.s",
    "SHOW MODELS IN SCHEMA {db}.s",
]

HOLDS = [
    "SELECT * FROM {db}.s.t",
    "SELECT * FROM {db}.s.nope",
    "SELECT * FROM {db}.information_schema.tables",
    "DESCRIBE TABLE {db}.s.t",
    "USE SCHEMA {db}.s",
    "LIST @{db}.s.secretstage",
    "LIST @{db}.s.%t",
    "REMOVE @{db}.s.%t PATTERN = '.*'",
    "COPY INTO pub.s.sink FROM @{db}.s.%t",
    "COPY INTO pub.s.sink FROM @{db}.s.secretstage",
    "DROP STAGE {db}.s.secretstage",
    "DESCRIBE STAGE {db}.s.secretstage",
    "SHOW GRANTS ON TABLE {db}.s.t",
    "SHOW GRANTS ON SCHEMA {db}.s",
    "SHOW GRANTS ON DATABASE {db}",
    "SHOW GRANTS ON STAGE {db}.s.secretstage",
    "GRANT SELECT ON TABLE {db}.s.t TO ROLE low",
    "REVOKE SELECT ON TABLE {db}.s.t FROM ROLE low",
    "GRANT USAGE ON DATABASE {db} TO ROLE low",
    "DROP MODEL {db}.s.m",
    "SHOW STAGES IN SCHEMA {db}.s",
    "COPY INTO {db}.s.t FROM @~",  # "Insufficient privileges … database" for a missing database too
    "CREATE STAGE {db}.s.st2",
]


def _as_if_missing(answer: tuple) -> str:
    return re.sub(r"\bACC\b", "NOPE", str(answer))


def _compare(account, templates) -> list[str]:
    problems = []
    for template in templates:
        forbidden = outcome(account, template.format(db="acc"))
        missing = outcome(account, template.format(db="nope"))
        if _as_if_missing(forbidden) != str(missing) or leaks(forbidden):
            problems.append(f"{template}:\n    ACC:  {forbidden}\n    NOPE: {missing}")
    return problems


def test_statements_on_a_forbidden_database_read_like_a_missing_one(low_account):
    # Found by the attack review, fixed since: see each template's comment; e.g. DROP TABLE acc.s.t says "Insufficient privileges to operate
    # on table 'T'" while DROP TABLE acc.s.nope says "Table 'ACC.S.NOPE' does not exist or not authorized."
    problems = _compare(low_account, LEAKS_EXISTENCE)
    assert not problems, "\n".join(problems)
    unchanged(low_account)


def test_what_already_reads_like_a_missing_database(low_account):
    problems = _compare(low_account, HOLDS)
    assert not problems, "\n".join(problems)
    unchanged(low_account)
    assert admin_files(low_account) == STAGED_FILES


def test_a_hidden_schema_of_a_usable_database_reads_like_a_missing_one(low_account):
    admin(low_account, "CREATE SCHEMA pub.h")
    admin(low_account, "CREATE TABLE pub.h.hidden (a INT)")
    for template in ("SELECT * FROM pub.{s}.hidden", "DESCRIBE TABLE pub.{s}.hidden", "SHOW GRANTS ON SCHEMA pub.{s}",
                     "SHOW GRANTS ON TABLE pub.{s}.hidden", "LIST @pub.{s}.%hidden", "USE SCHEMA pub.{s}"):
        hidden, missing = outcome(low_account, template.format(s="h")), outcome(low_account, template.format(s="nope"))
        assert str(hidden).replace("PUB.H", "PUB.NOPE") == str(missing), (template, hidden, missing)


# 3. Secure views ------------------------------------------------------------------------------------

def test_show_views_hides_a_secure_views_text_from_roles_that_do_not_own_it(low_account):
    # Found by the attack review, fixed since: sqlengine/show.py's SHOW VIEWS fills `text` from the stored definition for every view the role
    # sees; Snowflake (and this studio's own INFORMATION_SCHEMA.VIEWS, checked below) shows a secure view's
    # definition to its owner only.
    hidden_objects(low_account)
    views = low_account.sql("SHOW VIEWS IN SCHEMA pub.s", **SESSION)[-1]
    assert not leaks(views.rows), views.rows


def test_information_schema_views_hides_a_secure_views_text(low_account):
    hidden_objects(low_account)
    rows = low_account.sql("SELECT table_name, view_definition FROM pub.information_schema.views "
                           "WHERE table_name = 'SV'", **SESSION)[-1].rows
    assert rows == [("SV", None)]


# 4. Table stages outlive their table -----------------------------------------------------------------

def test_a_table_created_again_does_not_inherit_the_dropped_tables_staged_files(low_account):
    # Found by the attack review, fixed since: a table stage is the folder STAGE_DIR/table/<db>/<schema>/<table> (catalog/stages.py resolve),
    # and nothing removes it when the table goes (sqlengine/statements/catalog.py _drop, drop_schema,
    # drop_database). Snowflake drops a table's stage with the table. Whoever creates a table of that name
    # later owns the old owner's files: LIST shows them, COPY loads them.
    admin(low_account, "CREATE TABLE pub.s.payroll (id INT, name VARCHAR)")
    location = stages.resolve(stages.StageRef.parse("@pub.s.%payroll"), low_account.admin, stages.WRITE)
    stage_files.store_stream(location, "TOPSECRET_payroll.csv", [b"1,TOPSECRET-in-a-file\n"])
    admin(low_account, "DROP TABLE pub.s.payroll")
    admin(low_account, "GRANT CREATE TABLE ON SCHEMA pub.s TO ROLE low")
    low_account.sql("CREATE TABLE pub.s.payroll (id INT, name VARCHAR)", **SESSION)
    listed = low_account.sql("LIST @pub.s.%payroll", **SESSION)[-1].rows
    loaded = low_account.sql("COPY INTO pub.s.payroll FROM @pub.s.%payroll", **SESSION)[-1].rows
    assert not leaks(listed) and not leaks(loaded), (listed, loaded)
    assert not leaks(low_account.sql("SELECT * FROM pub.s.payroll", **SESSION)[-1].rows)


def test_a_user_created_again_under_a_dropped_users_name_does_not_get_its_stage(low_account):
    # Also from the review: user stages were folders named after the user, so a user created later under
    # the name (or a user renamed to it) read the earlier one's @~. They are kept by the user's id now,
    # and DROP USER removes its stage.
    run = Executor(low_account.admin).execute
    run("CREATE USER carol PASSWORD = 'carol-password-1'")
    carol = Session(user=get_user_model().objects.get(username="carol"), role="PUBLIC")
    stage_files.store_stream(stages.resolve(stages.StageRef.parse("@~"), carol, stages.WRITE), "TOPSECRET_notes.csv",
                        [b"1,TOPSECRET-notes\n"])
    run("ALTER USER carol RENAME TO carla")
    carla = Session(user=get_user_model().objects.get(username="carla"), role="PUBLIC")
    assert [r[0] for r in Executor(carla).execute("LIST @~")[-1].rows] == ["TOPSECRET_notes.csv"]
    run("CREATE USER carol PASSWORD = 'carol-password-2'")
    again = Session(user=get_user_model().objects.get(username="carol"), role="PUBLIC")
    assert Executor(again).execute("LIST @~")[-1].rows == []
    run("DROP USER carla")
    assert not any(p.is_file() for p in (settings.STAGE_DIR / "user").rglob("*TOPSECRET*"))


# 5. Endpoints that answer a 500 ----------------------------------------------------------------------

def _upload(client, account, url: str, body: bytes = b"id,name\n1,x\n"):
    return client.post(url, data=body, content_type="text/csv", HTTP_AUTHORIZATION=f"Bearer {account.token}")


def test_odd_file_names_in_an_upload_are_a_400_not_a_500(low_account):
    # Found by the attack review, fixed since: catalog/stage_views.py _from_body -> stage_files.store_stream -> publish: clean_relative() lets
    # through a NUL byte (ValueError from os.replace), a name over the file system's limit (OSError
    # ENAMETOOLONG), and a name whose folder is a file already, or that is a folder already
    # (FileExistsError, IsADirectoryError); none is a UserError, so each is a 500. All in LOW's own @~.
    client = Client(raise_request_exception=False)
    assert _upload(client, low_account, "/api/v2/stages/~/files?name=f").status_code == 201
    assert _upload(client, low_account, "/api/v2/stages/~/files?name=d/e").status_code == 201
    answers = {}
    for name in ("a%00b", "a" * 300, "f/g", "d"):
        response = _upload(client, low_account, f"/api/v2/stages/~/files?name={name}&overwrite=true")
        answers[name[:20]] = (response.status_code, response.content[:120])
    assert all(status < 500 for status, _ in answers.values()), answers


def test_the_sql_api_answers_a_huge_statement_count_and_deep_nesting_with_a_json_error(low_account):
    # Found by the attack review, fixed since: sqlapi/forms.py int(count) raises OverflowError for 1e400 (json reads it as infinity; only
    # TypeError and ValueError are caught). sqlengine/parsing.parse catches ParseError and TokenError but
    # not the RecursionError sqlglot's parser raises from about 50 nested parentheses or function calls
    # (sqlapi/execution.submit calls it on the request's thread).
    client = Client(raise_request_exception=False)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {low_account.token}"}
    bodies = {
        "count 1e400": '{"statement": "SELECT 1", "parameters": {"MULTI_STATEMENT_COUNT": 1e400}}',
        "50 parentheses": json.dumps({"statement": "SELECT " + "(" * 50 + "1" + ")" * 50}),
        "60 nested calls": json.dumps({"statement": "SELECT " + "ABS(" * 60 + "1" + ")" * 60}),
    }
    answers = {}
    for what, body in bodies.items():
        response = client.post("/api/v2/statements", body, content_type="application/json", **headers)
        answers[what] = (response.status_code, response["Content-Type"])
    assert all(status in (400, 422) and "json" in kind for status, kind in answers.values()), answers


def test_the_worksheet_answers_statements_that_crash_the_executor_with_an_error(low_account):
    # Found by the attack review, fixed since: studio/worksheet.py run_statements catches UserError only. These raise something else:
    # USE SECONDARY ROLES (AttributeError in the USE handler), DROP DATABASE a.b (ValueError unpacking
    # the name in _drop), COPY … SKIP_HEADER = 'a' / 1e400 (int() in loading._file_format), and deep
    # nesting (RecursionError in sqlglot). The SQL API answers the first four as 422 "Internal error …
    # AttributeError: 'str' object has no attribute 'name'", the worksheet with a 500.
    browser = Client(raise_request_exception=False)
    assert browser.login(username="low", password="low-password")
    answers = {}
    for sql in ("USE SECONDARY ROLES ALL", "DROP DATABASE a.b",
                "COPY INTO pub.s.sink FROM @~ FILE_FORMAT = (SKIP_HEADER = 'a')",
                "COPY INTO pub.s.sink FROM @~ FILE_FORMAT = (SKIP_HEADER = 1e400)",
                "SELECT " + "(" * 60 + "1" + ")" * 60):
        response = browser.post("/worksheets/", {"sql": sql}, headers={"HX-Request": "true"})
        answers[sql[:40]] = response.status_code
    assert all(status < 500 for status in answers.values()), answers


# 6. Attempts that held -------------------------------------------------------------------------------

# (SQL as LOW sends it in PUB.S, the start of the error it gets)
REFUSED = [
    # dot-call syntax: DuckDB would run 'x'.f() as f('x'); sqlglot reads a qualified call
    ("SELECT 'abc'.upper()", "SQL compilation error: Unknown function"),
    ("SELECT note.query_table() FROM pub.s.x", "SQL compilation error: Unknown function"),
    ("SELECT x.note.length() FROM pub.s.x x", "SQL compilation error: Unknown function"),
    # variables, parameters and dollar quoting
    ("SELECT $abc", "SQL compilation error: '$abc' is not supported."),
    ("SELECT $1", "SQL compilation error: '$1' is not supported."),
    ("SELECT :secret", "SQL compilation error: Values were not provided"),
    ("SELECT ?", "SQL compilation error: Values were not provided"),
    ("SELECT $$hello$$", "SQL compilation error: "),
    ("SELECT * FROM IDENTIFIER($t)", "SQL compilation error: Unknown table function IDENTIFIER"),
    # Snowflake clauses sqlglot renders differently or not at all for DuckDB
    ("SELECT * FROM acc.s.t CONNECT BY PRIOR id = id", "SQL compilation error: "),
    ("SELECT * FROM pub.s.x START WITH id = 1 CONNECT BY PRIOR id = id", "SQL compilation error: "),
    ("SELECT * FROM pub.s.x PIVOT (MAX(note) FOR id IN (1, 2))", "SQL compilation error: PIVOTS on a table"),
    ("SELECT * FROM (SELECT * FROM acc.s.t) PIVOT (MAX(name) FOR id IN (1, 2))", "SQL compilation error: "),
    ("SELECT * FROM pub.s.x UNPIVOT (v FOR k IN (note))", "SQL compilation error: PIVOTS on a table"),
    ("SELECT * FROM pub.s.x MATCH_RECOGNIZE (ORDER BY id PATTERN (a) DEFINE a AS TRUE)", "SQL compilation error: "),
    ("SELECT * FROM pub.s.x CHANGES (INFORMATION => DEFAULT) AT (OFFSET => -1)", "SQL compilation error: CHANGES"),
    ("SELECT * FROM pub.s.x BEFORE (STATEMENT => 'x')", "SQL compilation error: WHEN on a table"),
    ("SELECT COLUMNS('.*') FROM pub.s.x", "SQL compilation error: Unknown function COLUMNS"),
    ("SELECT OBJECT_CONSTRUCT(*) FROM acc.s.t", "SQL compilation error: "),
    ("SELECT GET_DDL('TABLE', 'acc.s.t')", "SQL compilation error: Unknown function GET_DDL"),
    ("SELECT SYSTEM$TYPEOF(1)", "SQL compilation error: Unknown function SYSTEM$TYPEOF"),
    ("SELECT COLLATE(note, 'icu_de') FROM pub.s.x", "SQL compilation error: Collation"),
    ("SELECT note::STRUCT(a INT) FROM pub.s.x", "SQL compilation error: "),
    ("SELECT 1 FROM pub.s.x, LATERAL FLATTEN(input => ARRAY_CONSTRUCT(1))", "SQL compilation error: Unknown table"),
    ("SELECT * FROM TABLE(GENERATOR(ROWCOUNT => (SELECT COUNT(*) FROM acc.s.t)))",
     "SQL compilation error: GENERATOR's ROWCOUNT must be a constant."),
    ("SELECT * FROM pub.s.x SAMPLE ((SELECT COUNT(*) FROM acc.s.t))", "Database 'ACC' does not exist"),
    # the Cortex functions' own names in other places
    ("SELECT studio_cortex_complete('smollm2-135m', 'x')", "SQL compilation error: Unknown function"),
    ("SELECT studio_cortex_finetune_2('DESCRIBE', 'x')", "SQL compilation error: Unknown function"),
    ("SELECT pub.s.finetune('SHOW')", "SQL compilation error: Unknown function PUB.S.FINETUNE"),
    ("SELECT SNOWFLAKE.CORTEX.SENTIMENT('x')", "SQL compilation error: Unknown function SNOWFLAKE.CORTEX.SENTIMENT"),
    ("SELECT SNOWFLAKE.CORTEX.COMPLETE('acc.s.m', 'x')", "Model 'ACC.S.M' does not exist or not authorized."),
    # CTE names that shadow catalogs, schemas and tables
    ("WITH acc AS (SELECT 1 AS id) SELECT * FROM acc", None),  # the CTE: runs, reads nothing of ACC
    ("WITH s AS (SELECT 1 AS id) SELECT * FROM acc.s.t", "Database 'ACC' does not exist"),
    ("WITH t AS (SELECT 1 AS id) SELECT * FROM s.t", "SQL compilation error: Object 'PUB.S.T' does not exist"),
    ("WITH x AS (SELECT * FROM acc.s.t) SELECT * FROM pub.s.x WHERE EXISTS (SELECT * FROM x)",
     "Database 'ACC' does not exist"),
    ("WITH RECURSIVE t AS (SELECT * FROM t) SELECT * FROM t", "SQL compilation error: "),
    ("SELECT * FROM (WITH q AS (SELECT 1 AS a) SELECT * FROM q) JOIN q ON TRUE",
     "SQL compilation error: Object 'PUB.S.Q' does not exist"),
    # statements that are not supported, whatever they name
    ("MERGE INTO pub.s.sink USING acc.s.t ON sink.id = t.id WHEN NOT MATCHED THEN INSERT VALUES (t.id, t.name)",
     "SQL compilation error: statement 'MERGE"),
    ("INSERT ALL INTO pub.s.sink SELECT id, name FROM acc.s.t", "SQL compilation error: statement 'INSERT ALL"),
    ("CREATE TABLE pub.s.c CLONE acc.s.t", "CREATE TABLE … CLONE is not supported"),
    ("CREATE TABLE pub.s.c LIKE acc.s.t", "CREATE TABLE … LIKE is not supported"),
    ("EXPLAIN SELECT * FROM acc.s.t", "SQL compilation error: statement 'EXPLAIN"),
    ("EXECUTE IMMEDIATE 'SELECT * FROM acc.s.t'", "SQL compilation error: statement 'EXECUTE"),
    ("CALL system$x()", "SQL compilation error: statement 'CALL"),
    ("SET x = 'acc.s.t'", "SQL compilation error: statement 'SET"),
    ("ALTER TABLE acc.s.t RENAME TO pub.s.loot", "SQL compilation error: statement 'ALTER TABLE"),
    ("UNDROP TABLE acc.s.t", "SQL compilation error: statement 'UNDROP"),
    ("INSERT INTO pub.s.sink VALUES (1, 'a') ON CONFLICT DO NOTHING", "SQL compilation error: "),
    ("CREATE OR REPLACE TABLE pub.s.x (a INT)", "Insufficient privileges to operate on schema 'S'"),
    ("UPDATE pub.s.x SET note = 'pwned'", "Insufficient privileges to operate on table 'X'"),
    ("GRANT SELECT ON TABLE pub.s.x TO ROLE public", "Insufficient privileges to operate on table 'X'"),
    ("GRANT ROLE low TO ROLE public", "Insufficient privileges to operate on role 'LOW'"),
    ("GRANT ROLE accountadmin TO USER low", "Insufficient privileges to operate on role 'ACCOUNTADMIN'"),
    ("ALTER USER low SET DEFAULT_ROLE = accountadmin", "Insufficient privileges to operate on user 'LOW'"),
    ("USE ROLE accountadmin", "Requested role 'ACCOUNTADMIN' is not assigned"),
    ("SHOW GRANTS TO USER admin", "User 'admin' does not exist or not authorized."),
    ("SHOW GRANTS TO ROLE accountadmin", "Role 'ACCOUNTADMIN' does not exist or not authorized."),
    ("SHOW GRANTS OF ROLE accountadmin", "Role 'ACCOUNTADMIN' does not exist or not authorized."),
]


def test_sql_tricks_are_refused_with_snowflakes_errors(low_account):
    problems = []
    for sql, expected in REFUSED:
        answer = outcome(low_account, sql)
        if answer[0] == "OK" and expected is not None:
            problems.append(f"ran: {sql} -> {str(answer)[:200]}")
        elif expected is not None and not str(answer[2]).startswith(expected):
            problems.append(f"wrong error: {sql} -> {answer}")
        if leaks(answer):
            problems.append(f"LEAK: {sql} -> {answer}")
    assert not problems, "\n".join(problems)
    unchanged(low_account)
    assert admin(low_account, "SELECT COUNT(*) FROM pub.s.sink").rows == [(0,)]


def test_dollar_quoted_strings_and_star_modifiers_read_nothing_more(low_account):
    # Accepted DuckDB-isms that stay inside what LOW may read.
    for sql in ("SELECT * EXCLUDE (note) FROM pub.s.x", "SELECT * REPLACE ('a' AS note) FROM pub.s.x",
                "SELECT * ILIKE '%o%' FROM pub.s.x", "SELECT x FROM pub.s.x x", "SELECT TO_JSON(x) FROM pub.s.x x",
                "FROM pub.s.x SELECT *", "SELECT id, COUNT(*) FROM pub.s.x GROUP BY ALL",
                "SELECT 1 FROM pub.s.x POSITIONAL JOIN pub.s.sink", "SELECT note COLLATE 'nocase' FROM pub.s.x"):
        rows = low_account.sql(sql, **SESSION)[-1].rows
        assert not leaks(rows), (sql, rows)


def test_views_cannot_reach_what_their_creator_may_not_read_nor_replace_anothers_view(low_account):
    hidden_objects(low_account)
    admin(low_account, "CREATE TABLE pub.s.hidden (v VARCHAR)")
    admin(low_account, "INSERT INTO pub.s.hidden VALUES ('TOPSECRET-hidden')")
    admin(low_account, "GRANT CREATE VIEW ON SCHEMA pub.s TO ROLE low")
    for sql, expected in [
        ("CREATE VIEW pub.s.v1 AS SELECT * FROM acc.s.t", "Database 'ACC'"),
        ("CREATE VIEW pub.s.v1 AS SELECT * FROM pub.s.hidden", "SQL compilation error: Object 'PUB.S.HIDDEN'"),
        ("CREATE VIEW pub.s.v1 AS SELECT * FROM hidden", "SQL compilation error: Object 'PUB.S.HIDDEN'"),
        ("CREATE VIEW pub.s.v1 AS WITH hidden AS (SELECT 1 AS v) SELECT * FROM pub.s.hidden",
         "SQL compilation error: Object 'PUB.S.HIDDEN'"),
        ("CREATE OR REPLACE VIEW pub.s.ids AS SELECT 1 AS id", "Insufficient privileges to operate on view"),
        ("CREATE OR REPLACE VIEW pub.s.hidden AS SELECT 1 AS v", "SQL compilation error: Object found is of type"),
        ("CREATE VIEW pub.s.v1 AS SELECT * FROM pub.information_schema.tables", "SQL compilation error: a view"),
        ("CREATE VIEW pub.s.v1 AS SELECT * FROM snowflake.account_usage.cortex_fine_tuning_usage_history",
         "SQL compilation error: a view"),
    ]:
        answer = outcome(low_account, sql)
        assert answer[0] != "OK" and str(answer[2]).startswith(expected), (sql, answer)
    assert admin(low_account, "SELECT COUNT(*) FROM pub.s.ids").rows == [(2,)]
    # A view of LOW's own over the view it was granted reads with each owner's rights, as in Snowflake.
    low_account.sql("CREATE VIEW pub.s.mine AS SELECT id FROM pub.s.ids", **SESSION)
    assert low_account.sql("SELECT COUNT(*) FROM pub.s.mine", **SESSION)[-1].rows == [(2,)]
    admin(low_account, "REVOKE SELECT ON VIEW pub.s.ids FROM ROLE low")
    error = refusal(low_account, "SELECT * FROM pub.s.mine")
    assert "Failure during expansion of view 'PUB.S.MINE'" in error.message


def test_stage_paths_cannot_leave_the_stage(low_account, client):
    admin(low_account, "GRANT CREATE TABLE ON SCHEMA pub.s TO ROLE low")
    low_account.sql("CREATE TABLE pub.s.mine (id INT, name VARCHAR)", **SESSION)
    for sql in ("LIST @~/..", "LIST @~/../..", "LIST @pub.s.%mine/../../../ACC", "REMOVE @~/..",
                "COPY INTO pub.s.mine FROM @pub.s.%mine/../../ACC/S/T",
                "COPY INTO pub.s.mine FROM @pub.s.%mine FILES = ('../../ACC/S/T/files/payroll.csv')",
                "COPY INTO pub.s.mine FROM @pub.s.%mine PATTERN = '.*TOPSECRET.*'",
                "COPY INTO pub.s.mine FROM @~ FILES = ('/etc/passwd')"):
        answer = outcome(low_account, sql)
        assert not leaks(answer), (sql, answer)
    for url in ("/api/v2/stages/~/files?name=../x", "/api/v2/stages/~/files?name=..%2F..%2Fx",
                "/api/v2/stages/~/files?name=%2Fetc%2Fx", "/api/v2/stages/ACC.S.%25T/files?name=x",
                "/api/v2/stages/%22ACC%22.S.SECRETSTAGE/files?name=x",
                "/api/v2/stages/~/files?name=x&role=accountadmin",
                "/api/v2/stages/s.secretstage/files?name=x&database=acc&schema=s"):
        response = _upload(client, low_account, url)
        assert response.status_code in (201, 400, 403, 404), (url, response.status_code)
        assert not leaks(response.content.decode()), (url, response.content)
    assert admin(low_account, "SELECT COUNT(*) FROM pub.s.mine").rows == [(0,)]
    assert admin_files(low_account) == STAGED_FILES
    assert not (settings.STAGE_DIR / "x").exists() and not (settings.STAGE_DIR / "user" / "x").exists()


def test_put_and_get_reach_the_servers_files_from_the_command_line_only(low_account, client):
    browser = Client()
    assert browser.login(username="low", password="low-password")
    for sql in ("PUT file:///etc/passwd @~", "GET @~ file:///tmp/loot"):
        fragment = browser.post("/worksheets/", {"sql": sql}, headers={"HX-Request": "true"}).content.decode()
        assert "command line" in fragment and "root:" not in fragment, fragment[-300:]
    assert not list(stage_files.list_files(stages.resolve(stages.StageRef.parse("@~"), low_account.session(), stages.READ)))


def test_another_roles_finetune_job_reads_like_a_missing_one(low_account):
    job = FineTuneJob.objects.create(base_model="smollm2-135m", database="ACC", schema="S",
                                     requested_name="TOPSECRET_MODEL", training_data="SELECT * FROM acc.s.t",
                                     warehouse="COMPUTE_WH", role="ACCOUNTADMIN")
    for action in ("DESCRIBE", "CANCEL"):
        forbidden = outcome(low_account, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('{action}', '{job.id}')")
        missing = outcome(low_account, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('{action}', 'ft_nope')")
        assert str(forbidden).replace(job.id, "ft_nope") == str(missing), (forbidden, missing)
    assert "TOPSECRET" not in str(outcome(low_account, "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')"))
    rows = outcome(low_account, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', id) FROM (SELECT '{job.id}' AS id)")
    assert not leaks(rows) and "acc.s.t" not in str(rows), rows
    job.refresh_from_db()
    assert job.status == FineTuneJob.Status.PENDING


def test_the_inference_apis_name_a_forbidden_model_like_a_missing_one(low_account):
    client = Client(raise_request_exception=False)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {low_account.token}"}
    admin(low_account, "CREATE SCHEMA pub.h")
    for url, extra in (("/v1/chat/completions", {}), ("/api/v2/cortex/inference:complete", {"stream": False})):
        answers = []
        for model in ("acc.s.m", "nope.s.m", "pub.h.m", "../../etc/passwd", "x\u0000", "a" * 5000, '"'):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
            response = client.post(url, json.dumps(body), content_type="application/json", **headers)
            assert response.status_code in (400, 404), (url, model[:40], response.status_code)
            assert not leaks(response.content.decode()), response.content
            answers.append(response.json())
        assert str(answers[0]).replace("ACC", "NOPE").split("request_id")[0] == str(answers[1]).split("request_id")[0]


def test_the_sql_api_opens_no_session_the_role_may_not_use(low_account, client):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {low_account.token}"}
    for extra in ({"database": "ACC"}, {"database": "acc", "schema": "s"}, {"database": '"ACC"'},
                  {"role": "ACCOUNTADMIN"}, {"role": '"low"'}, {"warehouse": "NOPE"},
                  {"database": "PUB", "schema": "H"},
                  {"bindings": {"1": {"type": "TEXT", "value": "acc.s.t"}}}):
        body = {"statement": "SELECT * FROM t", **extra}
        response = client.post("/api/v2/statements", json.dumps(body), content_type="application/json", **headers)
        assert response.status_code in (400, 422), (extra, response.status_code, response.content)
        assert not leaks(response.content.decode()), (extra, response.content)


def _asgi(path: str, headers: list[tuple[bytes, bytes]], kind: str = "http") -> tuple[int | None, bool]:
    """(status sent, whether the wrapped app was called) for one request through BearerAuth."""
    called, sent = [], []

    async def inner(scope, receive, send):
        called.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    from inference_server.auth import BearerAuth

    scope = {"type": kind, "path": path, "headers": headers, "method": "POST"}
    asyncio.run(BearerAuth(inner, token="the-token")(scope, receive, send))
    status = next((m.get("status") for m in sent if m["type"] == "http.response.start"), None)
    return status, bool(called)


def test_the_inference_server_wants_its_token_on_every_route_but_health():
    for path in ("/v1/chat/completions", "/generate", "/info", "/adapters/unload", "/metrics", "/health/",
                 "//health", "/health/../info", "/HEALTH", "/health%2F..%2Finfo"):
        for headers in ([], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"Basic the-token")],
                        [(b"authorization", b"Bearer the-token-and-more")], [(b"authorization", b"Bearer ")]):
            assert _asgi(path, headers) == (401, False), (path, headers)
    assert _asgi("/info", [(b"authorization", b"Bearer the-token")]) == (200, True)
    assert _asgi("/health", []) == (200, True)
    assert _asgi("/v1/chat/completions", [(b"authorization", b"Bearer the-token")], kind="websocket")[1] is False

