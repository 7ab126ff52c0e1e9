"""The SQL API opens a request's session with USE's checks (access/roles.py): a body naming a database,
schema, warehouse or role that USE would refuse is answered with Snowflake's JSON error and runs
nothing. Tried over HTTP with the API token of the security review's user `low` (role LOW)."""
from __future__ import annotations

import threading

import pytest

from sqlapi.models import Statement
from sqlapi.tests.test_statements_api import post
from sqlengine.executor import Executor
from tests.support.security import leaks
from warehouses.models import Warehouse

# tables_read skips a one-part name equal to a CTE's, while DuckDB binds the inner `t` to ACC.S.T.
CTE_ESCAPE = "WITH t AS (SELECT * FROM t) SELECT * FROM t"


@pytest.fixture
def low(transactional_db, low_account):
    """Committed rows: an accepted statement runs on a background thread with its own connection."""
    yield low_account
    for thread in threading.enumerate():
        if thread.name.startswith("sqlapi-"):
            thread.join(60)


def refusal(response) -> dict:
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/json"
    assert not leaks(response.content.decode())
    return response.json()


@pytest.mark.parametrize("database", ["ACC", "acc", '"ACC"'])
def test_a_database_the_role_may_not_use_is_refused_like_a_missing_one(client, low, database):
    body = refusal(post(client, low.token, {"statement": CTE_ESCAPE, "database": database, "schema": "S"}))
    assert (body["code"], body["sqlState"], body["message"]) == (
        "002003", "02000", "Database 'ACC' does not exist or not authorized.")
    missing = refusal(post(client, low.token, {"statement": "SELECT 1", "database": "NODB", "schema": "S"}))
    assert missing["message"] == "Database 'NODB' does not exist or not authorized."
    assert not Statement.objects.exists()  # refused before anything was recorded or run


def test_a_schema_the_role_may_not_use_is_refused_like_a_missing_one(client, low):
    Executor(low.admin).execute("CREATE SCHEMA pub.hidden")
    hidden = refusal(post(client, low.token, {"statement": "SELECT 1", "database": "PUB", "schema": "HIDDEN"}))
    missing = refusal(post(client, low.token, {"statement": "SELECT 1", "database": "PUB", "schema": "NOPE"}))
    assert hidden["message"] == "Schema 'PUB.HIDDEN' does not exist or not authorized."
    assert missing["message"] == "Schema 'PUB.NOPE' does not exist or not authorized."
    assert hidden["code"] == missing["code"] == "002003"


def test_a_role_the_user_does_not_hold_is_refused(client, low):
    body = refusal(post(client, low.token, {"statement": "SELECT * FROM acc.s.t", "role": "ACCOUNTADMIN"}))
    assert (body["code"], body["message"]) == (
        "390189", "Role 'ACCOUNTADMIN' specified in the request does not exist or is not granted to this user.")


def test_a_warehouse_the_role_holds_nothing_on_is_refused_like_a_missing_one(client, low):
    Warehouse.objects.create(name="PRIVATE_WH")
    body = refusal(post(client, low.token, {"statement": "SELECT 1", "warehouse": "private_wh"}))
    assert (body["code"], body["message"]) == (
        "002043", "Object does not exist, or operation cannot be performed: warehouse 'PRIVATE_WH'.")


def test_a_database_and_schema_the_role_may_use_open_the_session(client, low):
    response = post(client, low.token, {"statement": "SELECT CURRENT_ROLE(), note FROM x ORDER BY id",
                                        "database": "pub", "schema": "s"})
    assert response.status_code == 200, response.content
    assert response.json()["data"] == [["LOW", "public one"], ["LOW", "public two"]]
