"""CREATE / ALTER / DROP USER, SHOW USERS, DESCRIBE USER: the users and profiles each leaves behind."""
from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model

from access import users
from access.bootstrap import bootstrap
from access.models import AccessEvent, Role, UserProfile
from access.roles import default_role, default_warehouse
from access.session import Session
from errors import UserError
from sqlengine.executor import Executor
from sqlengine.redaction import redact
from sqlengine.statements.users import SHOW_COLUMNS
from tests.support.cortex import admin_session

User = get_user_model()


@pytest.fixture
def admin(db, settings, tmp_path):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)
    return admin_session()


def sql(session, text):
    return Executor(session).execute(text)[-1]


def rows_by_name(result) -> dict[str, dict]:
    return {row[0]: dict(zip(result.columns, row)) for row in result.rows}


def test_create_user_stores_a_lower_case_username_that_can_sign_in(admin):
    result = sql(admin, "CREATE USER Bob PASSWORD = 'correct horse' EMAIL = 'bob@example.com' "
                        "DISPLAY_NAME = 'Bob B' COMMENT = 'analyst'")
    assert result.rows == [("User BOB successfully created.",)]
    user = User.objects.get(username="bob")
    assert user.email == "bob@example.com" and user.first_name == "Bob B" and user.is_active
    assert user.profile.comment == "analyst" and user.profile.default_role == ""
    assert authenticate(username="bob", password="correct horse") == user
    assert authenticate(username="bob", password="wrong password") is None


def test_the_bootstrap_admin_keeps_signing_in_and_starts_as_accountadmin(admin):
    sql(admin, "ALTER USER admin SET COMMENT = 'the first user'")
    user = User.objects.get(username="admin")
    assert authenticate(username="admin", password="pw-for-tests") == user
    assert default_role(user) == "ACCOUNTADMIN"


def test_a_quoted_name_is_kept_as_written(admin):
    sql(admin, """CREATE USER "Mixed.Case" PASSWORD = 'long enough'""")
    assert User.objects.filter(username="Mixed.Case").exists()
    assert "Mixed.Case" in rows_by_name(sql(admin, "SHOW USERS"))


def test_a_short_password_is_refused_and_nothing_is_created(admin):
    with pytest.raises(UserError) as error:
        sql(admin, "CREATE USER carol PASSWORD = 'short'")
    assert error.value.message == "Password is too short: a password needs at least 8 characters."
    assert not User.objects.filter(username="carol").exists()
    sql(admin, "CREATE USER carol PASSWORD = 'long enough'")
    with pytest.raises(UserError, match="too short"):
        sql(admin, "ALTER USER carol SET PASSWORD = '1234567'")
    assert authenticate(username="carol", password="long enough") is not None


def test_default_role_must_name_an_existing_role_and_becomes_the_default(admin):
    with pytest.raises(UserError) as error:
        sql(admin, "CREATE USER dan PASSWORD = 'long enough' DEFAULT_ROLE = nosuchrole")
    assert error.value.message == "SQL compilation error:\nRole 'NOSUCHROLE' does not exist or not authorized."
    assert not User.objects.filter(username="dan").exists()
    sql(admin, "CREATE ROLE analyst")
    sql(admin, "CREATE USER dan PASSWORD = 'long enough' DEFAULT_ROLE = analyst DEFAULT_WAREHOUSE = compute_wh")
    dan = User.objects.get(username="dan")
    assert dan.profile.default_role == "ANALYST" and dan.profile.default_warehouse == "COMPUTE_WH"
    assert default_role(dan) == "PUBLIC"  # not granted yet: the default falls back
    sql(admin, "GRANT ROLE analyst TO USER dan")
    assert default_role(dan) == "ANALYST" and default_warehouse(dan) == "COMPUTE_WH"


def test_create_of_an_existing_user_fails_unless_if_not_exists_or_or_replace(admin):
    sql(admin, "CREATE USER erin PASSWORD = 'first password'")
    with pytest.raises(UserError) as error:
        sql(admin, "CREATE USER ERIN")
    assert error.value.message == "SQL compilation error:\nObject 'ERIN' already exists."
    assert sql(admin, "CREATE USER IF NOT EXISTS erin").rows == [("ERIN already exists, statement succeeded.",)]
    sql(admin, "CREATE OR REPLACE USER erin PASSWORD = 'second password'")
    assert authenticate(username="erin", password="first password") is None
    assert authenticate(username="erin", password="second password") is not None


def test_alter_user_set_unset_and_rename(admin):
    sql(admin, "CREATE USER fay PASSWORD = 'long enough' EMAIL = 'f@example.com' COMMENT = 'x'")
    sql(admin, "ALTER USER fay SET PASSWORD = 'a new password' DISPLAY_NAME = 'Fay' DEFAULT_ROLE = sysadmin")
    fay = User.objects.get(username="fay")
    assert authenticate(username="fay", password="a new password") == fay
    assert fay.first_name == "Fay" and fay.profile.default_role == "SYSADMIN"
    sql(admin, "ALTER USER fay UNSET EMAIL, COMMENT, DEFAULT_ROLE")
    fay.refresh_from_db()
    assert fay.email == "" and fay.profile.comment == "" and fay.profile.default_role == ""
    assert sql(admin, "ALTER USER fay RENAME TO faye").rows == [("Statement executed successfully.",)]
    assert not User.objects.filter(username="fay").exists()
    assert authenticate(username="faye", password="a new password") is not None
    with pytest.raises(UserError) as error:
        sql(admin, "ALTER USER nobody SET COMMENT = 'x'")
    assert error.value.message == "SQL compilation error:\nUser 'NOBODY' does not exist or not authorized."
    assert sql(admin, "ALTER USER IF EXISTS nobody SET COMMENT = 'x'").rows == [("Statement executed successfully.",)]


def test_disabled_true_blocks_login_and_false_restores_it(admin):
    sql(admin, "CREATE USER gil PASSWORD = 'long enough' DISABLED = TRUE")
    assert authenticate(username="gil", password="long enough") is None
    assert rows_by_name(sql(admin, "SHOW USERS"))["GIL"]["disabled"] == "true"
    sql(admin, "ALTER USER gil SET DISABLED = FALSE")
    assert authenticate(username="gil", password="long enough") is not None


def test_drop_user_removes_it_and_its_grants(admin):
    sql(admin, "CREATE ROLE analyst")
    sql(admin, "CREATE USER hal PASSWORD = 'long enough'")
    sql(admin, "GRANT ROLE analyst TO USER hal")
    assert sql(admin, "DROP USER hal").rows == [("HAL successfully dropped.",)]
    assert not User.objects.filter(username="hal").exists()
    assert authenticate(username="hal", password="long enough") is None
    assert not Role.objects.get(name="ANALYST").users.exists()
    with pytest.raises(UserError, match="User 'HAL' does not exist or not authorized."):
        sql(admin, "DROP USER hal")
    assert sql(admin, "DROP USER IF EXISTS hal").rows == [("Drop statement executed successfully (USER already dropped).",)]


def test_you_cannot_drop_yourself(admin):
    with pytest.raises(UserError, match="cannot drop the user you are signed in as"):
        sql(admin, "DROP USER admin")


def test_show_users_has_snowflakes_columns_and_like(admin):
    sql(admin, "CREATE USER ivy PASSWORD = 'long enough' EMAIL = 'ivy@example.com' DEFAULT_ROLE = public "
               "COMMENT = 'hello'")
    result = sql(admin, "SHOW USERS")
    assert result.columns == SHOW_COLUMNS == [
        "name", "created_on", "login_name", "display_name", "email", "comment", "disabled", "must_change_password",
        "default_role", "default_warehouse", "owner", "last_success_login"]
    ivy = rows_by_name(result)["IVY"]
    assert ivy["login_name"] == "IVY" and ivy["display_name"] == "IVY" and ivy["email"] == "ivy@example.com"
    assert ivy["comment"] == "hello" and ivy["disabled"] == "false" and ivy["must_change_password"] == "false"
    assert ivy["default_role"] == "PUBLIC" and ivy["owner"] == "ACCOUNTADMIN" and ivy["last_success_login"] is None
    assert "ADMIN" in rows_by_name(result)
    assert list(rows_by_name(sql(admin, "SHOW USERS LIKE 'i%'"))) == ["IVY"]
    assert "long enough" not in repr(result.rows) and "pbkdf2" not in repr(result.rows)


def test_describe_user_lists_properties_without_the_password(admin):
    sql(admin, "CREATE USER jo PASSWORD = 'secret-password' DEFAULT_ROLE = sysadmin")
    result = sql(admin, "DESCRIBE USER jo")
    described = users.describe_user(admin, "jo")
    assert [row[:2] for row in result.rows] == [(p, "null" if v is None else str(v)) for p, v in described.items()]
    assert result.columns == ["property", "value", "default", "description"]
    values = {row[0]: row[1] for row in result.rows}
    assert values["NAME"] == "JO" and values["DEFAULT_ROLE"] == "SYSADMIN" and values["PASSWORD"] == "********"
    assert values["DISABLED"] == "false" and values["EMAIL"] == "null"
    assert "secret-password" not in repr(result.rows)


def test_the_password_stays_out_of_the_access_history(admin):
    sql(admin, "CREATE USER kim PASSWORD = 'kims-password'")
    with pytest.raises(UserError):
        sql(admin, "ALTER USER kim SET PASSWORD = 'short'")
    events = AccessEvent.objects.filter(object_type="USER", object_name="kim")
    assert {(e.action, e.outcome) for e in events} == {("CREATE USER", "SUCCESS"), ("ALTER USER", "FAILED")}
    assert not any("kims-password" in e.message or "short" == e.message for e in events)
    assert redact("CREATE USER kim PASSWORD = 'kims-password' COMMENT = 'x'") == \
        "CREATE USER kim PASSWORD = '***' COMMENT = 'x'"


@pytest.fixture
def outsider(admin):
    sql(admin, "CREATE ROLE analyst")
    sql(admin, "CREATE USER olga PASSWORD = 'long enough'")
    sql(admin, "CREATE USER victim PASSWORD = 'long enough'")
    sql(admin, "GRANT ROLE analyst TO USER olga")
    return Session(User.objects.get(username="olga"), role="ANALYST", warehouse="COMPUTE_WH")


@pytest.mark.parametrize("statement, message", [
    ("CREATE USER newbie PASSWORD = 'long enough'", "Insufficient privileges to operate on account 'STUDIO'"),
    ("ALTER USER victim SET DISABLED = TRUE", "Insufficient privileges to operate on user 'VICTIM'"),
    ("ALTER USER victim RENAME TO v2", "Insufficient privileges to operate on user 'VICTIM'"),
    ("DROP USER victim", "Insufficient privileges to operate on user 'VICTIM'"),
    ("SHOW USERS", "Insufficient privileges to operate on account 'STUDIO'"),
])
def test_only_useradmin_may_manage_users(outsider, statement, message):
    with pytest.raises(UserError) as error:
        sql(outsider, statement)
    assert (error.value.message, error.value.code, error.value.sqlstate) == (message, 3001, "42501")
    victim = User.objects.get(username="victim")
    assert victim.is_active and not User.objects.filter(username__in=["newbie", "v2"]).exists()
    assert AccessEvent.objects.filter(user_name="olga", outcome="REFUSED").exists() or statement == "SHOW USERS"


def test_a_role_inheriting_useradmin_may_manage_users(outsider, admin):
    sql(admin, "GRANT ROLE useradmin TO ROLE analyst")
    sql(outsider, "CREATE USER newbie PASSWORD = 'long enough'")
    sql(outsider, "ALTER USER victim SET DISABLED = TRUE")
    assert User.objects.filter(username="newbie").exists() and not User.objects.get(username="victim").is_active
    assert UserProfile.objects.filter(user__username="newbie").exists()
