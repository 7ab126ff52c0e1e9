"""SHOW OBJECTS and SHOW USER FUNCTIONS, as dbt-snowflake lists a schema's relations before it builds
anything (client_protocol/tests/test_dbt.py runs dbt itself): tables and views in one listing with their
kind, what the role may see only, and the statements as dbt sends them, its query comment included."""
from __future__ import annotations

import pytest

from errors import UserError
from sqlengine.executor import Executor

# What dbt appends to each statement (its query-comment), before the final semicolon.
DBT_COMMENT = '\n/* {"app": "dbt", "dbt_version": "1.11.16", "connection_name": "list_PUB_S"} */;'


def listed(session, statement: str) -> list[tuple]:
    result = Executor(session).execute(statement)[-1]
    at = {c: i for i, c in enumerate(result.columns)}
    return [tuple(r[at[c]] for c in ("database_name", "schema_name", "name", "kind", "is_dynamic", "is_iceberg"))
            for r in result.rows]


@pytest.fixture
def objects(low_account):
    Executor(low_account.admin).execute("CREATE VIEW pub.s.x_view AS SELECT id FROM pub.s.x")
    return low_account


def test_tables_and_views_are_listed_together_with_their_kind(objects):
    assert listed(objects.admin, "SHOW OBJECTS IN pub.s LIMIT 10000" + DBT_COMMENT) == [
        ("PUB", "S", "SINK", "TABLE", "N", "N"), ("PUB", "S", "X", "TABLE", "N", "N"),
        ("PUB", "S", "X_VIEW", "VIEW", "N", "N")]
    assert listed(objects.admin, "SHOW OBJECTS IN SCHEMA pub.s STARTS WITH 'X' LIMIT 1") == [
        ("PUB", "S", "X", "TABLE", "N", "N")]
    terse = Executor(objects.admin).execute("SHOW TERSE OBJECTS LIKE 'x%' IN DATABASE pub")[-1]
    assert terse.columns == ["created_on", "name", "kind", "database_name", "schema_name"]
    assert [row[1:] for row in terse.rows] == [("X", "TABLE", "PUB", "S"), ("X_VIEW", "VIEW", "PUB", "S")]


def test_a_role_lists_only_the_objects_it_holds_a_privilege_on(objects):
    assert listed(objects.session(), "SHOW OBJECTS IN pub.s") == [
        ("PUB", "S", "SINK", "TABLE", "N", "N"), ("PUB", "S", "X", "TABLE", "N", "N")]
    with pytest.raises(UserError) as caught:
        Executor(objects.session()).execute("SHOW OBJECTS IN acc.s")
    assert caught.value.message == "Database 'ACC' does not exist or not authorized."


def test_user_functions_are_an_empty_listing_with_snowflakes_columns(objects):
    result = Executor(objects.admin).execute("show user functions in pub.s" + DBT_COMMENT)[-1]
    assert result.rows == []
    assert {"catalog_name", "schema_name", "name", "is_builtin"} <= set(result.columns)
    with pytest.raises(UserError) as caught:
        Executor(objects.session()).execute("SHOW USER FUNCTIONS IN acc.s")
    assert caught.value.message == "Database 'ACC' does not exist or not authorized."
