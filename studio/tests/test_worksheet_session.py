"""The worksheet's session cannot be pointed at a database its role may not use: not by USE, not by a
session kept from before a REVOKE, not by a Django session edited by hand. Tried as the security
review's user `low` (role LOW, tests/support/security.py), signed in with a browser's form posts."""
from __future__ import annotations

import pytest
from django.test import Client

from sqlengine.executor import Executor
from studio.worksheet import SESSION_KEY
from tests.support.security import leaks

URL = "/worksheets/"
ACC_REFUSAL = "Database &#x27;ACC&#x27; does not exist or not authorized."


@pytest.fixture
def low(low_account) -> Client:
    client = Client()
    assert client.login(username="low", password="low-password")
    return client


def run(client: Client, sql: str) -> str:
    response = client.post(URL, {"sql": sql})
    assert response.status_code == 200
    page = response.content.decode()
    assert not leaks(page)
    return page


def kept(client: Client) -> tuple:
    state = client.session[SESSION_KEY]
    return state["role"], state["database"], state["schema"]


def test_use_database_acc_is_refused_like_a_missing_database(low):
    page = run(low, "USE DATABASE acc")
    assert ACC_REFUSAL in page
    assert "Database &#x27;NODB&#x27; does not exist or not authorized." in run(low, "USE DATABASE nodb")
    assert kept(low) == ("LOW", None, None)
    assert "public one" in run(low, "USE SCHEMA pub.s; SELECT note FROM x ORDER BY id")
    assert kept(low) == ("LOW", "PUB", "S")


def test_a_session_edited_to_name_acc_is_refused_and_reset(low):
    run(low, "SELECT 1")  # the worksheet's state exists now
    session = low.session
    session[SESSION_KEY] = {**session[SESSION_KEY], "database": "ACC", "schema": "S"}
    session.save()
    page = run(low, "WITH t AS (SELECT * FROM t) SELECT * FROM t")
    assert ACC_REFUSAL in page
    assert kept(low) == ("LOW", None, None)


def test_a_database_whose_usage_was_revoked_since_is_refused_on_the_next_run(low, low_account):
    admin = Executor(low_account.admin)
    admin.execute("GRANT USAGE ON DATABASE acc TO ROLE low")
    admin.execute("GRANT USAGE ON SCHEMA acc.s TO ROLE low")
    run(low, "USE SCHEMA acc.s")
    assert kept(low) == ("LOW", "ACC", "S")
    admin.execute("REVOKE USAGE ON DATABASE acc FROM ROLE low")
    assert ACC_REFUSAL in run(low, "SELECT COUNT(*) FROM t")
    assert kept(low) == ("LOW", None, None)
