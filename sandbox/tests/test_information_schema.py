"""Each database's INFORMATION_SCHEMA lists only what the session's role may see, in Snowflake's columns;
DuckDB's own information_schema is never what answers."""
from __future__ import annotations

import pytest

from errors import UserError
from sqlengine.executor import Executor
from tests.support.security import leaks


def rows(account, sql, **session):
    return account.sql(sql, **session)[-1].rows


def grant_lower_view(account):
    run = Executor(account.admin).execute
    run("CREATE TABLE pub.s.hidden (secret_column VARCHAR)")
    run("CREATE VIEW pub.s.v AS SELECT id, note FROM pub.s.x")
    run("GRANT SELECT ON VIEW pub.s.v TO ROLE low")


def test_tables_lists_what_the_role_may_see_with_snowflakes_columns(low_account):
    grant_lower_view(low_account)
    result = low_account.sql("SELECT * FROM pub.information_schema.tables ORDER BY table_name")[-1]
    assert result.columns[:5] == ["TABLE_CATALOG", "TABLE_SCHEMA", "TABLE_NAME", "TABLE_OWNER", "TABLE_TYPE"]
    listed = [(r[0], r[1], r[2], r[4]) for r in result.rows]
    assert listed == [("PUB", "S", "SINK", "BASE TABLE"), ("PUB", "S", "V", "VIEW"), ("PUB", "S", "X", "BASE TABLE")]
    row_count = result.columns.index("ROW_COUNT")
    assert [r[row_count] for r in result.rows] == [0, None, 2]
    # The administrator sees the table LOW holds nothing on.
    everything = Executor(low_account.admin).execute("SELECT table_name FROM pub.information_schema.tables")[-1]
    assert ("HIDDEN",) in everything.rows


def test_columns_views_schemata_and_databases_hold_nothing_the_role_may_not_see(low_account):
    grant_lower_view(low_account)
    columns = rows(low_account, "SELECT table_name, column_name, ordinal_position, data_type, is_nullable "
                                "FROM pub.information_schema.columns WHERE table_name = 'X' ORDER BY 3")
    assert columns == [("X", "ID", 1, "NUMBER", "YES"), ("X", "NOTE", 2, "TEXT", "YES")]
    assert not rows(low_account, "SELECT * FROM pub.information_schema.columns WHERE column_name = 'SECRET_COLUMN'")
    views = rows(low_account, "SELECT table_name, view_definition, is_secure FROM pub.information_schema.views")
    assert views == [("V", "CREATE VIEW pub.s.v AS SELECT id, note FROM pub.s.x", "NO")]
    schemata = rows(low_account, "SELECT schema_name, schema_owner FROM pub.information_schema.schemata")
    assert schemata == [("INFORMATION_SCHEMA", None), ("S", "ACCOUNTADMIN")]
    databases = rows(low_account, "SELECT database_name FROM pub.information_schema.databases")
    assert databases == [("PUB",)]


def test_the_session_databases_information_schema_answers_unqualified_names(low_account):
    assert rows(low_account, "SELECT DISTINCT table_catalog FROM information_schema.tables",
                database="PUB", schema="S") == [("PUB",)]
    assert rows(low_account, "SELECT COUNT(*) FROM information_schema.tables WHERE table_catalog <> 'PUB'",
                database="PUB", schema="S") == [(0,)]


def test_another_databases_information_schema_needs_usage_on_it(low_account):
    for view in ("TABLES", "COLUMNS", "VIEWS", "SCHEMATA", "DATABASES"):
        with pytest.raises(UserError) as caught:
            rows(low_account, f"SELECT * FROM acc.information_schema.{view}")
        assert caught.value.message == "Database 'ACC' does not exist or not authorized."
    with pytest.raises(UserError) as caught:
        rows(low_account, "SELECT * FROM pub.information_schema.query_history")
    assert caught.value.message == ("SQL compilation error: Object 'PUB.INFORMATION_SCHEMA.QUERY_HISTORY' does not "
                                    "exist or not authorized.")


def test_information_schema_joins_and_filters_like_a_table(low_account):
    joined = rows(low_account, "SELECT t.table_name, COUNT(c.column_name) FROM pub.information_schema.tables t "
                               "JOIN pub.information_schema.columns c ON c.table_name = t.table_name "
                               "GROUP BY 1 ORDER BY 1")
    assert joined == [("SINK", 2), ("X", 2)]
    assert not leaks(joined)
