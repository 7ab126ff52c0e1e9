"""SHOW GRANTS shows a role only what it may know, as Snowflake does (access/grants.py shown_grants_*): its
own role's grants and those of the roles it inherits, its own user's, grants on objects it may see; all
of them to MANAGE GRANTS (SECURITYADMIN, ACCOUNTADMIN). Anything else reads like a missing name. GRANT and
REVOKE resolve objects the same way, so their refusals do not tell whether something exists in ACC
either. Tried as the security review's role LOW (tests/support/security.py)."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from access.session import Session
from errors import UserError
from sqlengine.executor import Executor
from tests.support.security import SECRET, leaks

# (statement, the refusal's exact message): each one as LOW reads like the missing name next to it.
REFUSED = [
    ("SHOW GRANTS TO ROLE accountadmin", "Role 'ACCOUNTADMIN' does not exist or not authorized."),
    ("SHOW GRANTS TO ROLE sysadmin", "Role 'SYSADMIN' does not exist or not authorized."),
    ("SHOW GRANTS OF ROLE accountadmin", "Role 'ACCOUNTADMIN' does not exist or not authorized."),
    ("SHOW GRANTS ON ROLE securityadmin", "Role 'SECURITYADMIN' does not exist or not authorized."),
    ("SHOW GRANTS TO USER admin", "User 'admin' does not exist or not authorized."),
    ("SHOW GRANTS ON DATABASE acc", "Database 'ACC' does not exist or not authorized."),
    ("SHOW GRANTS ON SCHEMA acc.s", "Database 'ACC' does not exist or not authorized."),
    ("SHOW GRANTS ON TABLE acc.s.t", "Database 'ACC' does not exist or not authorized."),
    ('SHOW GRANTS ON TABLE "ACC"."S"."T"', "Database 'ACC' does not exist or not authorized."),
    (f"SHOW GRANTS ON TABLE acc.s.{SECRET}_names", "Database 'ACC' does not exist or not authorized."),
    ("SHOW GRANTS ON TABLE pub.s.sealed", "Table 'PUB.S.SEALED' does not exist or not authorized."),
    ("SHOW GRANTS ON SCHEMA pub.hidden", "Schema 'PUB.HIDDEN' does not exist or not authorized."),
    ("SHOW GRANTS ON TABLE pub.hidden.t", "Schema 'PUB.HIDDEN' does not exist or not authorized."),
    ("SHOW GRANTS ON WAREHOUSE private_wh", "Warehouse 'PRIVATE_WH' does not exist or not authorized."),
]
MISSING = [
    ("SHOW GRANTS TO ROLE nosuch", "Role 'NOSUCH' does not exist or not authorized."),
    ("SHOW GRANTS TO USER nobody", "User 'nobody' does not exist or not authorized."),
    ("SHOW GRANTS ON DATABASE nodb", "Database 'NODB' does not exist or not authorized."),
    ("SHOW GRANTS ON TABLE nodb.s.t", "Database 'NODB' does not exist or not authorized."),
    ("SHOW GRANTS ON TABLE pub.s.nope", "Table 'PUB.S.NOPE' does not exist or not authorized."),
    ("SHOW GRANTS ON SCHEMA pub.nope", "Schema 'PUB.NOPE' does not exist or not authorized."),
    ("SHOW GRANTS ON WAREHOUSE nope_wh", "Warehouse 'NOPE_WH' does not exist or not authorized."),
]


@pytest.fixture
def low(low_account):
    """LOW's account, and next to it what LOW may not see in PUB: a table, a schema and a warehouse."""
    from warehouses.models import Warehouse

    Warehouse.objects.create(name="PRIVATE_WH")
    admin = Executor(low_account.admin)
    admin.execute("CREATE TABLE pub.s.sealed (id INT)")
    admin.execute("CREATE SCHEMA pub.hidden")
    admin.execute("CREATE TABLE pub.hidden.t (id INT)")
    admin.execute("GRANT SELECT ON TABLE acc.s.t TO ROLE sysadmin")  # a grant LOW must not learn of
    return low_account


def rows(account, statement: str) -> list[tuple]:
    """(privilege, granted_on, name, granted_to, grantee_name) of each row, or the row itself for OF / TO USER."""
    result = account.sql(statement)[-1]
    assert not leaks(result.rows)
    if "privilege" in result.columns:
        return [r[1:6] for r in result.rows]
    return [r[1:4] for r in result.rows]


def refusal(account, statement: str) -> UserError:
    with pytest.raises(UserError) as caught:
        account.sql(statement)
    assert not leaks(caught.value.message)
    return caught.value


@pytest.mark.parametrize("statement, message", REFUSED + MISSING)
def test_what_low_may_not_know_reads_like_a_missing_name(low, statement, message):
    error = refusal(low, statement)
    assert (error.message, error.code, error.sqlstate) == (message, 2003, "02000")


def test_low_sees_its_own_role_and_user_and_nothing_of_acc(low):
    assert rows(low, "SHOW GRANTS TO ROLE low") == [
        ("USAGE", "DATABASE", "PUB", "ROLE", "LOW"),
        ("USAGE", "SCHEMA", "PUB.S", "ROLE", "LOW"),
        ("SELECT", "TABLE", "PUB.S.X", "ROLE", "LOW"),
        ("INSERT", "TABLE", "PUB.S.SINK", "ROLE", "LOW"),
        ("SELECT", "TABLE", "PUB.S.SINK", "ROLE", "LOW"),
        ("CREATE MODEL", "SCHEMA", "PUB.S", "ROLE", "LOW"),
        ("USAGE", "DATABASE_ROLE", "SNOWFLAKE.CORTEX_USER", "ROLE", "LOW"),
    ]
    assert rows(low, "SHOW GRANTS") == [("LOW", "USER", "low")]
    assert rows(low, "SHOW GRANTS TO USER low") == [("LOW", "USER", "low")]
    assert rows(low, "SHOW GRANTS OF ROLE low") == [("LOW", "USER", "low")]
    # PUBLIC is inherited by every role: its grants are LOW's too.
    assert ("USAGE", "WAREHOUSE", "COMPUTE_WH", "ROLE", "PUBLIC") in rows(low, "SHOW GRANTS TO ROLE public")


def test_low_sees_the_grants_on_what_it_may_use(low):
    assert rows(low, "SHOW GRANTS ON TABLE pub.s.x") == [("SELECT", "TABLE", "PUB.S.X", "ROLE", "LOW")]
    assert rows(low, "SHOW GRANTS ON DATABASE pub") == [("USAGE", "DATABASE", "PUB", "ROLE", "LOW")]
    assert rows(low, "SHOW GRANTS ON WAREHOUSE compute_wh") == [("USAGE", "WAREHOUSE", "COMPUTE_WH", "ROLE", "PUBLIC")]
    assert rows(low, "SHOW GRANTS OF DATABASE ROLE SNOWFLAKE.CORTEX_USER") == [
        ("SNOWFLAKE.CORTEX_USER", "ROLE", "LOW")]


def test_a_grant_on_the_object_makes_its_grants_visible(low):
    admin = Executor(low.admin)
    admin.execute("GRANT MONITOR ON WAREHOUSE private_wh TO ROLE low")
    assert rows(low, "SHOW GRANTS ON WAREHOUSE private_wh") == [("MONITOR", "WAREHOUSE", "PRIVATE_WH", "ROLE", "LOW")]
    admin.execute("GRANT USAGE ON DATABASE acc TO ROLE low")
    admin.execute("GRANT USAGE ON SCHEMA acc.s TO ROLE low")
    # USAGE on the containers alone is not enough to see a table's grants: some privilege on it is.
    assert refusal(low, "SHOW GRANTS ON TABLE acc.s.t").message == "Table 'ACC.S.T' does not exist or not authorized."


def test_a_role_granted_to_low_shows_its_grants_to_low(low):
    admin = Executor(low.admin)
    admin.execute("CREATE ROLE reader")
    admin.execute("GRANT USAGE ON DATABASE acc TO ROLE reader")
    assert refusal(low, "SHOW GRANTS TO ROLE reader").message == "Role 'READER' does not exist or not authorized."
    admin.execute("GRANT ROLE reader TO ROLE low")
    assert rows(low, "SHOW GRANTS TO ROLE reader") == [("USAGE", "DATABASE", "ACC", "ROLE", "READER")]


def test_manage_grants_shows_everything(low):
    Executor(low.admin).execute("GRANT ROLE securityadmin TO USER low")
    get_user_model().objects.create_user(username="bob", password="bob-password")
    Executor(low.admin).execute("GRANT ROLE low TO USER bob")
    security = Executor(Session(user=low.user, role="SECURITYADMIN"))
    on_table = security.execute("SHOW GRANTS ON TABLE acc.s.t")[-1]
    assert [r[1:6] for r in on_table.rows] == [("SELECT", "TABLE", "ACC.S.T", "ROLE", "SYSADMIN")]
    assert [r[1:4] for r in security.execute("SHOW GRANTS TO USER bob")[-1].rows] == [("LOW", "USER", "bob")]
    assert ("SELECT", "TABLE", "ACC.S.T", "ROLE", "SYSADMIN") in [
        r[1:6] for r in security.execute("SHOW GRANTS TO ROLE sysadmin")[-1].rows]
    assert refusal(low, "SHOW GRANTS TO USER bob").message == "User 'bob' does not exist or not authorized."


@pytest.mark.parametrize("statement, message", [
    ("GRANT SELECT ON TABLE acc.s.t TO ROLE low", "Database 'ACC' does not exist or not authorized."),
    ("GRANT SELECT ON TABLE acc.s.nope TO ROLE low", "Database 'ACC' does not exist or not authorized."),
    ("REVOKE SELECT ON TABLE acc.s.t FROM ROLE sysadmin", "Database 'ACC' does not exist or not authorized."),
    ("GRANT SELECT ON ALL TABLES IN SCHEMA acc.s TO ROLE low", "Database 'ACC' does not exist or not authorized."),
    ("GRANT SELECT ON TABLE pub.s.sealed TO ROLE low", "Table 'PUB.S.SEALED' does not exist or not authorized."),
    ("GRANT SELECT ON TABLE pub.s.nope TO ROLE low", "Table 'PUB.S.NOPE' does not exist or not authorized."),
])
def test_grant_and_revoke_do_not_tell_whether_an_unseen_object_exists(low, statement, message):
    assert refusal(low, statement).message == message


def test_grant_on_an_object_low_sees_but_may_not_grant_is_refused_for_privileges(low):
    error = refusal(low, "GRANT SELECT ON TABLE pub.s.x TO ROLE public")
    assert (error.message, error.code) == ("Insufficient privileges to operate on table 'X'", 3001)
