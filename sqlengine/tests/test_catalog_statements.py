import subprocess
import sys
import textwrap
import time

import pytest
import sqlglot

from access.bootstrap import bootstrap
from catalog import accountdata
from catalog.models import Database, Schema, SchemaObject
from errors import UserError
from jobs.training_data import check_query
from models_registry.models import FineTunedModel
from sandbox.box import Sandbox
from sqlengine.executor import Executor
from tests.support.cortex import admin_session


@pytest.fixture
def account(db, settings, tmp_path):
    # DuckDB files outlive the per-test rollback of the metadata database: give each test its own.
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)


@pytest.fixture
def session(account):
    session = admin_session()
    session.role = "SYSADMIN"
    return session


def run(session, sql):
    return Executor(session).execute(sql)[-1]


def rows(session, sql):
    return run(session, sql).rows


def error(session, sql) -> UserError:
    with pytest.raises(UserError) as caught:
        Executor(session).execute(sql)
    return caught.value


def column(result, name):
    at = result.columns.index(name)
    return [r[at] for r in result.rows]


@pytest.fixture
def mydb(session):
    Executor(session).execute("CREATE DATABASE mydb; CREATE TABLE t (name VARCHAR, n INT)")
    return session


# CREATE -----------------------------------------------------------------------------------------------

def test_create_database_and_schema_report_success_and_become_current(session):
    assert rows(session, "CREATE DATABASE mydb") == [("Database MYDB successfully created.",)]
    assert (session.database, session.schema) == ("MYDB", "PUBLIC")
    assert rows(session, "CREATE SCHEMA staging") == [("Schema STAGING successfully created.",)]
    assert (session.database, session.schema) == ("MYDB", "STAGING")
    assert rows(session, "CREATE DATABASE IF NOT EXISTS mydb") == [("MYDB already exists, statement succeeded.",)]
    assert rows(session, "CREATE SCHEMA IF NOT EXISTS mydb.staging") == [
        ("STAGING already exists, statement succeeded.",)]


def test_new_objects_are_owned_by_the_sessions_role(mydb):
    assert column(run(mydb, "SHOW DATABASES LIKE 'mydb'"), "owner") == ["SYSADMIN"]
    assert column(run(mydb, "SHOW SCHEMAS IN DATABASE mydb"), "owner") == ["SYSADMIN"]
    assert column(run(mydb, "SHOW TABLES"), "owner") == ["SYSADMIN"]


def test_a_second_create_of_the_same_object_is_refused(mydb):
    err = error(mydb, "CREATE TABLE t (x INT)")
    assert (err.message, err.code, err.sqlstate) == ("SQL compilation error: Object 'T' already exists.", 2002, "42710")
    err = error(mydb, "CREATE DATABASE mydb")
    assert (err.message, err.code, err.sqlstate) == ("Object 'MYDB' already exists.", 2002, "42710")
    assert rows(mydb, "CREATE TABLE IF NOT EXISTS t (x INT)") == [("T already exists, statement succeeded.",)]
    assert column(run(mydb, "DESCRIBE TABLE t"), "name") == ["NAME", "N"]


def test_create_table_maps_snowflake_types_and_describe_shows_them(mydb):
    assert rows(mydb, "CREATE TABLE typed (s STRING, v VARCHAR(20), price NUMBER(10,2), qty INTEGER, ratio FLOAT, "
                      "ok BOOLEAN NOT NULL DEFAULT TRUE, d DATE, ts TIMESTAMP_NTZ, tl TIMESTAMP_LTZ, "
                      "meta VARIANT COMMENT 'raw event', o OBJECT, a ARRAY)") == [
        ("Table TYPED successfully created.",)]
    described = run(mydb, "DESC TABLE mydb.public.typed")
    assert described.columns == ["name", "type", "kind", "null?", "default", "primary key", "unique key", "check",
                                 "expression", "comment", "policy name", "privacy domain"]
    assert [(r[0], r[1], r[2], r[3], r[9]) for r in described.rows] == [
        ("S", "VARCHAR(16777216)", "COLUMN", "Y", None),
        ("V", "VARCHAR(20)", "COLUMN", "Y", None),
        ("PRICE", "NUMBER(10,2)", "COLUMN", "Y", None),
        ("QTY", "NUMBER(38,0)", "COLUMN", "Y", None),
        ("RATIO", "FLOAT", "COLUMN", "Y", None),
        ("OK", "BOOLEAN", "COLUMN", "N", None),
        ("D", "DATE", "COLUMN", "Y", None),
        ("TS", "TIMESTAMP_NTZ(9)", "COLUMN", "Y", None),
        ("TL", "TIMESTAMP_LTZ(9)", "COLUMN", "Y", None),
        ("META", "VARIANT", "COLUMN", "Y", "raw event"),
        ("O", "OBJECT", "COLUMN", "Y", None),
        ("A", "ARRAY", "COLUMN", "Y", None),
    ]
    Executor(mydb).execute("INSERT INTO typed (s, price, qty, meta) VALUES ('x', 1.25, 3, PARSE_JSON('{\"k\": 1}'))")
    assert rows(mydb, "SELECT s, price * qty, ok, meta:k FROM typed")[0][0:3] == ("x", pytest.approx(3.75), True)


def test_insert_values_and_select_report_rows_inserted(mydb):
    result = run(mydb, "INSERT INTO t (name, n) VALUES ('a', 1), ('b', 2)")
    assert (result.columns, result.rows, result.types) == (["number of rows inserted"], [(2,)], ["NUMBER"])
    assert rows(mydb, "INSERT INTO mydb.public.t SELECT name || '2', n * 10 FROM t") == [(2,)]
    assert rows(mydb, "SELECT name, n FROM t ORDER BY n") == [("a", 1), ("b", 2), ("a2", 10), ("b2", 20)]


def test_update_delete_and_truncate(mydb):
    Executor(mydb).execute("INSERT INTO t VALUES ('a', 1), ('b', 2), ('c', 3)")
    result = run(mydb, "UPDATE t SET n = n + 100 WHERE n >= 2")
    assert (result.columns, result.rows) == (["number of rows updated", "number of multi-joined rows updated"],
                                             [(2, 0)])
    result = run(mydb, "DELETE FROM t WHERE name = 'a'")
    assert (result.columns, result.rows) == (["number of rows deleted"], [(1,)])
    assert rows(mydb, "SELECT name, n FROM t ORDER BY n") == [("b", 102), ("c", 103)]
    assert rows(mydb, "TRUNCATE TABLE t") == [("Statement executed successfully.",)]
    assert rows(mydb, "SELECT count(*) FROM t") == [(0,)]


def test_create_table_as_select(mydb):
    Executor(mydb).execute("INSERT INTO t VALUES ('a', 1), ('b', 2)")
    assert rows(mydb, "CREATE TABLE big AS SELECT name, IFF(n > 1, 'yes', 'no') AS flag FROM t") == [
        ("Table BIG successfully created.",)]
    assert rows(mydb, "SELECT name, flag FROM big ORDER BY name") == [("a", "no"), ("b", "yes")]


def test_a_failing_create_table_as_select_leaves_no_table(mydb):
    err = error(mydb, "CREATE TABLE copy AS SELECT * FROM missing")
    assert err.message == "SQL compilation error: Object 'MYDB.PUBLIC.MISSING' does not exist or not authorized."
    assert (err.code, err.sqlstate) == (2003, "42S02")
    # The column list is created, then the query fails half-way: still nothing is left behind.
    Executor(mydb).execute("INSERT INTO t VALUES ('a', 1)")
    error(mydb, "CREATE TABLE nums (n INT) AS SELECT name FROM t")
    assert column(run(mydb, "SHOW TABLES"), "name") == ["T"]
    assert not SchemaObject.objects.filter(name__in=["COPY", "NUMS"]).exists()


def test_a_failing_create_or_replace_keeps_the_old_table(mydb):
    Executor(mydb).execute("INSERT INTO t VALUES ('kept', 1)")
    error(mydb, "CREATE OR REPLACE TABLE t AS SELECT * FROM missing")
    assert rows(mydb, "SELECT name FROM t") == [("kept",)]
    assert column(run(mydb, "SHOW TABLES"), "owner") == ["SYSADMIN"]
    assert rows(mydb, "CREATE OR REPLACE TABLE t (other INT)") == [("Table T successfully created.",)]
    assert column(run(mydb, "DESCRIBE TABLE t"), "name") == ["OTHER"]


def test_a_failing_insert_changes_nothing(mydb):
    Executor(mydb).execute("INSERT INTO t VALUES ('a', 1)")
    error(mydb, "INSERT INTO t VALUES ('b', 2), ('c', 'not a number')")
    assert rows(mydb, "SELECT name FROM t") == [("a",)]


def test_transient_and_temporary_tables_are_refused_with_a_reason(mydb):
    err = error(mydb, "CREATE TRANSIENT TABLE tt (x INT)")
    assert err.message.startswith("CREATE TRANSIENT TABLE is not supported here")
    err = error(mydb, "CREATE TEMPORARY TABLE tt (x INT)")
    assert err.message.startswith("CREATE TEMPORARY TABLE is not supported here")
    assert column(run(mydb, "SHOW TABLES"), "name") == ["T"]


def test_unqualified_names_need_a_current_database(session):
    err = error(session, "CREATE TABLE t (x INT)")
    assert err.message == ("Cannot perform CREATE TABLE. This session does not have a current database. "
                           "Call 'USE DATABASE', or use a qualified name.")
    assert (err.code, err.sqlstate) == (90105, "22000")
    session.database = "NOPE"
    err = error(session, "CREATE TABLE nope.public.t (x INT)")
    assert err.message == "Database 'NOPE' does not exist or not authorized."


def test_missing_tables_and_schemas_are_named_in_full(mydb):
    for sql in ("INSERT INTO nope VALUES (1)", "DESCRIBE TABLE nope", "DELETE FROM mydb.public.nope"):
        err = error(mydb, sql)
        assert err.message == "SQL compilation error: Object 'MYDB.PUBLIC.NOPE' does not exist or not authorized."
        assert (err.code, err.sqlstate) == (2003, "42S02")
    err = error(mydb, "CREATE TABLE mydb.nope.t (x INT)")
    assert err.message == "Schema 'MYDB.NOPE' does not exist or not authorized."
    err = error(mydb, "DROP TABLE nope")
    assert err.message == "SQL compilation error: Table 'MYDB.PUBLIC.NOPE' does not exist or not authorized."


def test_quoted_names_keep_their_case(mydb):
    Executor(mydb).execute('CREATE TABLE "Mixed Case" ("Col" INT); INSERT INTO "Mixed Case" VALUES (7)')
    assert column(run(mydb, "SHOW TABLES LIKE 'mixed%'"), "name") == ["Mixed Case"]
    assert column(run(mydb, 'DESCRIBE TABLE "Mixed Case"'), "name") == ["Col"]
    assert rows(mydb, 'DROP TABLE mydb.public."Mixed Case"') == [('"Mixed Case" successfully dropped.',)]


# Views ------------------------------------------------------------------------------------------------

def test_views_resolve_names_in_their_own_schema_and_read_other_databases(mydb):
    Executor(mydb).execute("INSERT INTO t VALUES ('a', 1), ('b', 2); "
                           "CREATE DATABASE other; CREATE VIEW other.public.big_ones AS SELECT name FROM mydb.public.t "
                           "WHERE n > 1; CREATE VIEW mydb.public.v AS SELECT name FROM t")
    assert rows(mydb, "CREATE OR REPLACE VIEW mydb.public.v AS SELECT upper(name) AS name FROM t") == [
        ("View V successfully created.",)]
    # Read from a session in a third database, and from one with no database at all.
    Executor(mydb).execute("CREATE DATABASE third; CREATE TABLE t (name VARCHAR)")
    assert rows(mydb, "SELECT name FROM other.public.big_ones") == [("b",)]
    assert rows(mydb, "SELECT name FROM mydb.public.v ORDER BY name") == [("A",), ("B",)]
    fresh = admin_session()
    assert rows(fresh, "SELECT name FROM other.public.big_ones") == [("b",)]
    shown = run(fresh, "SHOW VIEWS IN ACCOUNT")
    assert [(r[1], r[3], r[5]) for r in shown.rows] == [("V", "MYDB", "SYSADMIN"), ("BIG_ONES", "OTHER", "SYSADMIN")]
    assert column(shown, "text")[1] == ("CREATE VIEW other.public.big_ones AS SELECT name FROM mydb.public.t "
                                        "WHERE n > 1")
    assert [(r[0], r[1]) for r in run(fresh, "DESCRIBE VIEW mydb.public.v").rows] == [("NAME", "VARCHAR(16777216)")]


def test_drop_view_and_drop_table_check_the_kind(mydb):
    Executor(mydb).execute("CREATE VIEW v AS SELECT * FROM t")
    err = error(mydb, "DROP TABLE v")
    assert err.message == "SQL compilation error: Object found is of type 'VIEW', not specified type 'TABLE'."
    assert rows(mydb, "DROP VIEW v") == [("V successfully dropped.",)]
    assert rows(mydb, "DROP VIEW IF EXISTS v") == [("Drop statement executed successfully (V already dropped.)",)]
    assert rows(mydb, "DROP TABLE t") == [("T successfully dropped.",)]
    assert run(mydb, "SHOW TABLES").rows == [] and run(mydb, "SHOW VIEWS").rows == []
    assert not SchemaObject.objects.exists()


# DROP DATABASE / SCHEMA / MODEL -----------------------------------------------------------------------

def test_drop_database_removes_its_file_and_metadata(mydb):
    path = accountdata.database_file("MYDB")
    assert path.exists()
    assert rows(mydb, "DROP DATABASE mydb") == [("MYDB successfully dropped.",)]
    assert not path.exists() and not Database.objects.filter(name="MYDB").exists()
    assert mydb.database is None
    assert error(mydb, "USE DATABASE mydb").message == "Database 'MYDB' does not exist or not authorized."
    assert rows(mydb, "DROP DATABASE IF EXISTS mydb") == [
        ("Drop statement executed successfully (MYDB already dropped.)",)]
    # A database created again under the name starts empty.
    Executor(mydb).execute("CREATE DATABASE mydb")
    assert run(mydb, "SHOW TABLES").rows == []


def test_drop_schema_removes_its_tables(mydb):
    Executor(mydb).execute("CREATE SCHEMA s; CREATE TABLE s.x (a INT)")
    assert rows(mydb, "DROP SCHEMA mydb.s") == [("S successfully dropped.",)]
    assert column(run(mydb, "SHOW SCHEMAS"), "name") == ["PUBLIC"]
    Executor(mydb).execute("CREATE SCHEMA mydb.s")
    assert run(mydb, "SHOW TABLES IN SCHEMA mydb.s").rows == []


@pytest.fixture
def model(mydb, tmp_path):
    adapter = tmp_path / "adapters" / "ft_1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    return FineTunedModel.objects.create(schema=Schema.objects.get(database__name="MYDB", name="PUBLIC"),
                                         name="TRIAGE", base_model="smollm2-135m", owner_role="SYSADMIN",
                                         adapter_path=str(adapter))


def test_show_models_lists_fine_tuned_models(model, mydb):
    result = run(mydb, "SHOW MODELS LIKE 'tri%' IN SCHEMA mydb.public")
    assert result.columns == ["created_on", "name", "database_name", "schema_name", "owner", "base_model", "comment",
                              "deployment"]
    assert [r[1:] for r in result.rows] == [("TRIAGE", "MYDB", "PUBLIC", "SYSADMIN", "smollm2-135m", "",
                                             "not deployed")]
    assert run(mydb, "SHOW MODELS LIKE 'other%'").rows == []
    assert len(run(admin_session(), "show models in account").rows) == 1


def test_drop_model_deletes_the_model_and_its_adapter(model, mydb):
    assert rows(mydb, "DROP MODEL triage") == [("TRIAGE successfully dropped.",)]
    assert not FineTunedModel.objects.exists() and not model.adapter_dir.exists()
    assert rows(mydb, "DROP MODEL IF EXISTS mydb.public.triage") == [
        ("Drop statement executed successfully (TRIAGE already dropped.)",)]
    err = error(mydb, "DROP MODEL mydb.public.triage")
    assert err.message == "SQL compilation error: Model 'MYDB.PUBLIC.TRIAGE' does not exist or not authorized."


# SHOW -------------------------------------------------------------------------------------------------

def test_show_tables_scopes_and_like(mydb):
    Executor(mydb).execute("INSERT INTO t VALUES ('a', 1), ('b', 2); CREATE TABLE t_2 (x INT); "
                           "CREATE TABLE tx (x INT); CREATE SCHEMA s; CREATE TABLE s.t (x INT); "
                           "CREATE DATABASE other; CREATE TABLE other.public.t (x INT)")
    mydb.database, mydb.schema = "MYDB", "PUBLIC"
    result = run(mydb, "SHOW TABLES")
    assert result.columns[:10] == ["created_on", "name", "database_name", "schema_name", "kind", "comment",
                                   "cluster_by", "rows", "bytes", "owner"]
    assert [(r[1], r[2], r[3], r[7]) for r in result.rows] == [
        ("T", "MYDB", "PUBLIC", 2), ("TX", "MYDB", "PUBLIC", 0), ("T_2", "MYDB", "PUBLIC", 0), ("T", "MYDB", "S", 0)]
    # LIKE is case-insensitive, and _ matches any one character.
    assert column(run(mydb, "SHOW TABLES LIKE 't_2' IN SCHEMA public"), "name") == ["T_2"]
    assert column(run(mydb, "SHOW TABLES LIKE 't__' IN SCHEMA public"), "name") == ["T_2"]
    assert column(run(mydb, "SHOW TABLES LIKE 'T_' IN SCHEMA mydb.public"), "name") == ["TX"]
    assert column(run(mydb, "SHOW TABLES IN DATABASE other"), "database_name") == ["OTHER"]
    assert len(run(mydb, "SHOW TABLES IN ACCOUNT").rows) == 5
    # Without a current database SHOW covers the account.
    assert len(run(admin_session(), "SHOW TABLES LIKE 't'").rows) == 3
    err = error(mydb, "SHOW TABLES IN SCHEMA mydb.nope")
    assert err.message == "Schema 'MYDB.NOPE' does not exist or not authorized."


def test_show_databases_schemas_and_warehouses(mydb):
    Executor(mydb).execute("CREATE DATABASE other COMMENT = 'scratch'; USE DATABASE mydb")
    result = run(mydb, "SHOW DATABASES")
    assert result.columns == ["created_on", "name", "is_default", "is_current", "origin", "owner", "comment",
                              "options", "retention_time", "kind"]
    assert [(r[1], r[3], r[6]) for r in result.rows] == [("MYDB", "Y", ""), ("OTHER", "N", "scratch")]
    assert column(run(mydb, "SHOW DATABASES LIKE '%TH%'"), "name") == ["OTHER"]
    assert [(r[1], r[4]) for r in run(mydb, "SHOW SCHEMAS").rows] == [("PUBLIC", "MYDB")]
    assert len(run(admin_session(), "SHOW SCHEMAS").rows) == 2
    result = run(mydb, "SHOW WAREHOUSES LIKE 'compute%'")
    assert result.columns[:4] == ["name", "state", "type", "size"]
    assert column(result, "name") == ["COMPUTE_WH"] and column(result, "is_current") == ["Y"]
    assert run(mydb, "SHOW TERSE DATABASES LIKE 'mydb'").rows[0][1:] == ("MYDB", "STANDARD", "MYDB", None)


# Locks ------------------------------------------------------------------------------------------------

def _hold(path, seconds):
    script = textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(path)!r})
        print("held", flush=True)
        time.sleep({seconds})
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_statement_waits_for_another_process_to_release_the_database(mydb):
    holder = _hold(accountdata.database_file("MYDB"), 1.5)
    try:
        started = time.monotonic()
        assert rows(mydb, "INSERT INTO t VALUES ('a', 1)") == [(1,)]
        assert time.monotonic() - started > 0.5
    finally:
        holder.wait()


def test_a_database_locked_too_long_is_named_in_the_error(mydb, monkeypatch):
    monkeypatch.setattr(accountdata, "LOCK_TIMEOUT", 0.5)
    holder = _hold(accountdata.database_file("MYDB"), 30)
    try:
        err = error(mydb, "INSERT INTO t VALUES ('a', 1)")
        assert err.message.startswith("Database 'MYDB' is in use by another process")
    finally:
        holder.kill()
        holder.wait()
    assert rows(mydb, "SELECT count(*) FROM t") == [(0,)]


def test_training_queries_stay_read_only(mydb):
    with Sandbox(mydb) as box:
        box.prepare(sqlglot.parse_one("SELECT * FROM t", read="snowflake"))
        box.seal()
        with pytest.raises(Exception, match="read-only"):
            box.con.execute('INSERT INTO "MYDB"."PUBLIC"."T" VALUES (\'x\', 1)')
    with pytest.raises(UserError, match="only a SELECT query"):
        check_query(mydb, "DELETE FROM t", purpose="training")


def test_views_with_common_table_expressions_and_insert_overwrite(mydb):
    Executor(mydb).execute("INSERT INTO t VALUES ('a', 1), ('b', 2)")
    Executor(mydb).execute("CREATE VIEW doubled AS WITH d AS (SELECT name, n * 2 AS twice FROM t) "
                           "SELECT name, twice FROM d")
    assert rows(admin_session(), "SELECT name, twice FROM mydb.public.doubled ORDER BY name") == [("a", 2), ("b", 4)]
    assert rows(mydb, "INSERT OVERWRITE INTO t VALUES ('z', 26)") == [(1,)]
    assert rows(mydb, "SELECT name FROM t") == [("z",)]
    err = error(mydb, "INSERT INTO doubled VALUES ('x', 1)")
    assert err.message == "SQL compilation error: 'MYDB.PUBLIC.DOUBLED' is a view; only tables can be changed."
