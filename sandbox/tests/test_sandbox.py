"""The sandbox's own rules: Snowflake's identifier rules against the catalog, CTE scoping by sqlglot's scope
analysis, views read with their owner's privileges, and a DuckDB session that holds only what the
statement may touch, so a check we forgot still reaches nothing."""
from __future__ import annotations

import duckdb
import pytest
from sqlglot import parse_one

from access.session import Session
from catalog import accountdata
from catalog.models import SchemaObject
from errors import UserError
from sandbox.box import Sandbox
from sqlengine.executor import Executor
from tests.support.security import PUBLIC_ROWS, SECRET_ROWS, leaks


def refusal(account, sql, **session) -> UserError:
    with pytest.raises(UserError) as caught:
        account.sql(sql, **session)
    assert not leaks(caught.value.message)
    return caught.value


def admin(account, sql):
    return Executor(account.admin).execute(sql)[-1]


# Names ------------------------------------------------------------------------------------------------

def test_a_quoted_name_is_exact_and_an_unquoted_one_is_upper_case(low_account):
    admin(low_account, 'CREATE TABLE pub.s."lower" (v VARCHAR)')
    admin(low_account, "INSERT INTO pub.s.\"lower\" VALUES ('quoted')")
    admin(low_account, 'GRANT SELECT ON TABLE pub.s."lower" TO ROLE low')
    assert low_account.sql('SELECT v FROM pub.s."lower"')[-1].rows == [("quoted",)]
    # Unquoted LOWER is LOWER, which does not exist; DuckDB alone would have matched "lower".
    assert refusal(low_account, "SELECT v FROM pub.s.lower").message == (
        "SQL compilation error: Object 'PUB.S.LOWER' does not exist or not authorized.")
    assert low_account.sql('SELECT * FROM "PUB"."S"."X" ORDER BY 1')[-1].rows == PUBLIC_ROWS
    assert low_account.sql("SELECT * FROM Pub.s.X ORDER BY 1")[-1].rows == PUBLIC_ROWS


def test_a_database_the_role_may_not_use_reads_like_one_that_does_not_exist(low_account):
    secret = refusal(low_account, "SELECT * FROM acc.s.t")
    missing = refusal(low_account, "SELECT * FROM nosuch.s.t")
    assert secret.message.replace("ACC", "NOSUCH") == missing.message
    assert (secret.code, secret.sqlstate) == (missing.code, missing.sqlstate) == (2003, "02000")
    # …and so does a table the role may not read, beside one that does not exist.
    admin(low_account, "CREATE TABLE pub.s.hidden (v INT)")
    assert refusal(low_account, "SELECT * FROM pub.s.hidden").message == (
        "SQL compilation error: Object 'PUB.S.HIDDEN' does not exist or not authorized.")
    assert refusal(low_account, "SELECT * FROM pub.s.nothing").message == (
        "SQL compilation error: Object 'PUB.S.NOTHING' does not exist or not authorized.")


def test_a_cte_is_not_visible_in_its_own_body(low_account):
    # The inner t is the table ACC.S.T (the session's schema), which LOW may not read.
    assert refusal(low_account, "WITH t AS (SELECT * FROM t) SELECT * FROM t", database="ACC", schema="S").message == (
        "Database 'ACC' does not exist or not authorized.")
    admin(low_account, "CREATE TABLE pub.s.t (id INT)")
    admin(low_account, "INSERT INTO pub.s.t VALUES (7)")
    admin(low_account, "GRANT SELECT ON TABLE pub.s.t TO ROLE low")
    # In PUB.S the inner t is PUB.S.T; the outer t is the CTE.
    assert low_account.sql("WITH t AS (SELECT id + 1 AS id FROM t) SELECT * FROM t", database="PUB",
                           schema="S")[-1].rows == [(8,)]


def test_cte_names_follow_snowflakes_case_rules_and_scope(low_account):
    session = {"database": "PUB", "schema": "S"}
    assert low_account.sql("WITH T AS (SELECT 1 AS a) SELECT * FROM t", **session)[-1].rows == [(1,)]
    # A quoted lower-case CTE name is not the unquoted T.
    assert refusal(low_account, 'WITH "t" AS (SELECT 1 AS a) SELECT * FROM t', **session).message == (
        "SQL compilation error: Object 'PUB.S.T' does not exist or not authorized.")
    # A CTE defined inside a subquery is not visible outside it.
    assert refusal(low_account, "SELECT * FROM (WITH q AS (SELECT 1 AS a) SELECT * FROM q), q", **session).message == (
        "SQL compilation error: Object 'PUB.S.Q' does not exist or not authorized.")
    assert low_account.sql("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
                           "SELECT * FROM r ORDER BY n", **session)[-1].rows == [(1,), (2,), (3,)]


def test_databases_that_differ_only_in_case_or_take_a_reserved_name_are_refused(low_account):
    for sql, message in [
        ('CREATE DATABASE "acc"', "SQL compilation error: Database '\"acc\"' would differ from the existing "
                                  "database 'ACC' only in case"),
        ("CREATE DATABASE system", "SQL compilation error: 'SYSTEM' is reserved and cannot name a database."),
        ("CREATE DATABASE snowflake", "SQL compilation error: 'SNOWFLAKE' is reserved and cannot name a database."),
        ('CREATE SCHEMA pub."s"', "SQL compilation error: Schema '\"s\"' would differ from the existing schema 'S'"),
        ("CREATE SCHEMA pub.information_schema",
         "SQL compilation error: 'INFORMATION_SCHEMA' is reserved and cannot name a schema."),
    ]:
        with pytest.raises(UserError) as caught:
            Executor(low_account.admin).execute(sql)
        assert caught.value.message.startswith(message), caught.value.message
    assert sorted(accountdata.Database.objects.values_list("name", flat=True)) == ["ACC", "PUB"]


# Views ------------------------------------------------------------------------------------------------

def test_a_view_reads_with_its_owners_privileges_as_in_snowflake(low_account):
    # ACCOUNTADMIN shares two columns of ACC.S.T with LOW through a view: LOW reads the view, not the table.
    admin(low_account, "CREATE VIEW pub.s.ids AS SELECT id FROM acc.s.t")
    admin(low_account, "GRANT SELECT ON VIEW pub.s.ids TO ROLE low")
    assert low_account.sql("SELECT * FROM pub.s.ids ORDER BY id")[-1].rows == [(1,), (2,)]
    refusal(low_account, "SELECT * FROM acc.s.t")


def test_a_view_whose_owner_lost_its_privilege_stops_working(low_account):
    run = Executor(low_account.admin).execute
    run("CREATE ROLE curator")
    run("GRANT ROLE curator TO USER low")
    run("GRANT USAGE ON DATABASE acc TO ROLE curator")
    run("GRANT USAGE ON SCHEMA acc.s TO ROLE curator")
    run("GRANT SELECT ON TABLE acc.s.t TO ROLE curator")
    run("GRANT USAGE ON DATABASE pub TO ROLE curator")
    run("GRANT USAGE ON SCHEMA pub.s TO ROLE curator")
    run("GRANT CREATE VIEW ON SCHEMA pub.s TO ROLE curator")
    curator = Session(user=low_account.user, role="CURATOR", warehouse="COMPUTE_WH")
    Executor(curator).execute("CREATE VIEW pub.s.names AS SELECT name FROM acc.s.t")
    assert Executor(curator).execute("SELECT COUNT(*) FROM pub.s.names")[-1].rows == [(2,)]
    run("REVOKE SELECT ON TABLE acc.s.t FROM ROLE curator")
    with pytest.raises(UserError) as caught:
        Executor(curator).execute("SELECT * FROM pub.s.names")
    assert caught.value.message == ("SQL compilation error: Failure during expansion of view 'PUB.S.NAMES': SQL "
                                    "compilation error: Object 'ACC.S.T' does not exist or not authorized.")
    assert caught.value.refused


def test_a_view_created_before_the_allowlist_is_held_to_it(low_account):
    # A view someone created when DuckDB's functions still reached user SQL, as the catalog records it.
    con = duckdb.connect(":memory:")
    for name in ("PUB", "ACC"):
        accountdata.attach(con, name, read_only=name != "PUB")
    con.execute("CREATE VIEW \"PUB\".\"S\".\"OLD\" AS SELECT * FROM query_table('\"ACC\".\"S\".\"T\"')")
    con.close()
    schema = accountdata.get_schema("PUB", "S")
    SchemaObject.objects.create(schema=schema, name="OLD", kind="VIEW", owner_role="LOW",
                                text="CREATE VIEW old AS SELECT * FROM query_table('acc.s.t')")
    assert refusal(low_account, "SELECT * FROM pub.s.old").message == (
        "SQL compilation error: Unknown table function QUERY_TABLE")
    # Without a record (made on the server's disk by an operator) it runs, but ACC is not attached.
    SchemaObject.objects.filter(name="OLD").delete()
    error = refusal(low_account, "SELECT * FROM pub.s.old")
    assert "TOPSECRET" not in error.message


def test_a_view_cannot_store_an_information_schema_read(low_account):
    admin(low_account, "GRANT CREATE VIEW ON SCHEMA pub.s TO ROLE low")
    assert refusal(low_account, "CREATE VIEW pub.s.meta AS SELECT * FROM pub.information_schema.tables").message \
        .startswith("SQL compilation error: a view cannot read INFORMATION_SCHEMA")


# The DuckDB session underneath ------------------------------------------------------------------------

def test_a_statement_attaches_only_the_databases_it_reads(low_account):
    with Sandbox(low_account.session()) as box:
        box.prepare(parse_one("SELECT * FROM pub.s.x", read="snowflake"))
        assert box.attached == {"PUB"}
        box.seal()
        databases = {row[0] for row in box.con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        assert databases == {"PUB", "memory", "system", "temp"}
        # Even a statement that skipped every check could not name ACC here.
        with pytest.raises(duckdb.CatalogException):
            box.con.execute('SELECT * FROM "ACC"."S"."T"')


def test_a_sealed_session_reads_no_file_and_changes_no_setting(low_account):
    with Sandbox(low_account.session()) as box:
        box.prepare(parse_one("SELECT 1", read="snowflake"))
        box.seal()
        for sql in ("SELECT * FROM read_csv('/etc/passwd')",
                    f"ATTACH '{accountdata.database_file('ACC')}' AS loot",
                    "SET enable_external_access = true", "SET lock_configuration = false", "INSTALL httpfs"):
            with pytest.raises(duckdb.Error):
                box.con.execute(sql)


def test_only_the_database_a_statement_writes_is_writable(low_account):
    with Sandbox(low_account.session(), write="PUB") as box:
        box.attach("PUB")
        box.attach("ACC")  # as a view in PUB reading ACC would need
        box.seal()
        box.con.execute('INSERT INTO "PUB"."S"."SINK" VALUES (1, \'mine\')')
        with pytest.raises(duckdb.Error, match="read-only"):
            box.con.execute('DELETE FROM "ACC"."S"."T"')
    assert admin(low_account, "SELECT * FROM acc.s.t ORDER BY id").rows == SECRET_ROWS


# VALUES -----------------------------------------------------------------------------------------------

def test_values_columns_are_column1_and_dollar_positions_as_snowpark_sends_them(low_account):
    # Snowpark's create_dataframe(): positional references over an unaliased VALUES list.
    result = low_account.sql("""SELECT $1 AS "N", $2 AS "S" FROM VALUES (1 :: INT, 'x' :: STRING),
                                (2 :: INT, 'y' :: STRING) WHERE $1 > 1""")[-1]
    assert result.columns == ["N", "S"] and result.rows == [(2, "y")]
    assert low_account.sql("SELECT column2, COLUMN1 FROM VALUES (1, 'a') ORDER BY 1")[-1].rows == [("a", 1)]
    # A nested query's $1 is its own source's; over a table, $n stays unsupported.
    assert low_account.sql("SELECT v FROM (SELECT $1 + 1 AS v FROM VALUES (41))")[-1].rows == [(42,)]
    assert "'$1' is not supported" in refusal(low_account, "SELECT $1 FROM pub.s.x").message
