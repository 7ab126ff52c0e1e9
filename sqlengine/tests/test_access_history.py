"""SNOWFLAKE.ACCOUNT_USAGE.CORTEX_ACCESS_HISTORY: the access history in SQL, for security administrators."""
from __future__ import annotations

from datetime import datetime
from datetime import timezone as tz

import pytest
from django.contrib.auth import get_user_model

from access import history
from access.bootstrap import bootstrap
from access.models import AccessEvent, Role
from access.session import Session
from errors import UserError
from sqlengine.executor import Executor
from tests.support.cortex import admin_session

VIEW = "SNOWFLAKE.ACCOUNT_USAGE.CORTEX_ACCESS_HISTORY"


def run(session, sql):
    return Executor(session).execute(sql)[-1]


@pytest.fixture
def account(db, settings, tmp_path):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)


@pytest.fixture
def events(account):
    ada = Session(get_user_model().objects.create_user("ada", password="pw"), role="SYSADMIN", entry_point="worksheet")
    history.record(ada, "FINETUNE CREATE", "MODEL", "DB.PUBLIC.TRIAGE")
    history.record(ada, "COMPLETE", "MODEL", "DB.PUBLIC.SECRET", outcome=AccessEvent.Outcome.REFUSED,
                   message="Insufficient privileges to operate on model 'DB.PUBLIC.SECRET'")
    history.record(admin_session(entry_point="cli"), "GRANT", "ROLE", "ANALYST", message="granted to USER ada")
    # A fixed time for the first event, so ordering and the time column are checked exactly.
    AccessEvent.objects.filter(action="FINETUNE CREATE").update(at=datetime(2025, 3, 1, 10, 5, tzinfo=tz.utc))


def test_it_lists_recorded_events_with_snowflakes_columns(events):
    result = run(admin_session(), f"SELECT * FROM {VIEW} ORDER BY event_time")
    assert result.columns == ["EVENT_TIME", "USER_NAME", "ROLE_NAME", "ACTION", "OBJECT_TYPE", "OBJECT_NAME",
                              "OUTCOME", "MESSAGE", "ENTRY_POINT"]
    assert len(result.rows) == 3
    assert result.rows[0] == (datetime(2025, 3, 1, 10, 5), "ada", "SYSADMIN", "FINETUNE CREATE", "MODEL",
                              "DB.PUBLIC.TRIAGE", "SUCCESS", "", "worksheet")


def test_it_filters_and_orders_like_any_table(events):
    result = run(admin_session(), f"SELECT user_name, action, outcome, message FROM {VIEW} "
                                  "WHERE outcome = 'REFUSED' OR action = 'GRANT' ORDER BY action DESC")
    assert result.rows == [
        ("admin", "GRANT", "SUCCESS", "granted to USER ada"),
        ("ada", "COMPLETE", "REFUSED", "Insufficient privileges to operate on model 'DB.PUBLIC.SECRET'"),
    ]
    counted = run(admin_session(), f"SELECT entry_point, COUNT(*) AS n FROM {VIEW} GROUP BY entry_point ORDER BY 1")
    assert counted.rows == [("cli", 1), ("worksheet", 2)]


def test_an_empty_history_is_an_empty_view(account):
    result = run(admin_session(), f"SELECT COUNT(*) FROM {VIEW}")
    assert result.rows == [(0,)]


def test_securityadmin_reads_it(events):
    user = get_user_model().objects.create_user("sec", password="pw")
    Role.objects.get(name="SECURITYADMIN").users.add(user)
    result = run(Session(user, role="SECURITYADMIN"), f"SELECT COUNT(*) FROM {VIEW} WHERE user_name = 'ada'")
    assert result.rows == [(2,)]


@pytest.mark.parametrize("role", ["PUBLIC", "SYSADMIN", "USERADMIN"])
def test_other_roles_are_refused_with_snowflakes_message(events, role):
    user = get_user_model().objects.create_user("bob", password="pw")
    Role.objects.get(name=role).users.add(user)
    with pytest.raises(UserError) as refused:
        run(Session(user, role=role), f"SELECT * FROM {VIEW}")
    assert refused.value.message == ("Insufficient privileges to operate on view "
                                     "'SNOWFLAKE.ACCOUNT_USAGE.CORTEX_ACCESS_HISTORY'")
    assert (refused.value.code, refused.value.sqlstate) == (3001, "42501")


def test_the_refusal_also_holds_inside_a_subquery(events):
    user = get_user_model().objects.create_user("bob", password="pw")
    with pytest.raises(UserError, match="Insufficient privileges"):
        run(Session(user, role="PUBLIC"), f"SELECT 1 WHERE EXISTS (SELECT 1 FROM {VIEW})")


def test_the_fine_tuning_usage_history_is_unaffected(account):
    result = run(admin_session(), "SELECT COUNT(*) FROM SNOWFLAKE.ACCOUNT_USAGE.CORTEX_FINE_TUNING_USAGE_HISTORY")
    assert result.rows == [(0,)]
