"""GRANT / REVOKE, SHOW GRANTS, SHOW ROLES, CREATE / DROP ROLE: the Grant rows each statement leaves."""
from __future__ import annotations

import duckdb
import pytest
from django.contrib.auth import get_user_model

from access import grants, role_graph
from access.bootstrap import bootstrap
from access.models import Grant, Role
from catalog import accountdata
from catalog.models import Schema
from errors import UserError
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table

DONE = [("Statement executed successfully.",)]


@pytest.fixture
def account(db, tmp_path):
    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "GDB", "T1", [{"a": 1}])
    make_table(tmp_path, "GDB", "T2", [{"a": 2}])
    con = duckdb.connect(str(accountdata.database_file("GDB")))
    try:
        con.execute('CREATE OR REPLACE VIEW "PUBLIC"."V1" AS SELECT * FROM "PUBLIC"."T1"')
    finally:
        con.close()
    FineTunedModel.objects.create(schema=Schema.objects.get(database__name="GDB", name="PUBLIC"), name="MY_MODEL",
                                  base_model="mistral-7b", owner_role="ACCOUNTADMIN", adapter_path="/nowhere")
    get_user_model().objects.create_user(username="bob", password="pw")
    session = admin_session(database="GDB", schema="PUBLIC")
    sql(session, "CREATE ROLE analyst")
    return session


def sql(session, text):
    return Executor(session).execute(text)[-1]


def stored(**filters) -> set[tuple]:
    """Every grant but the OWNERSHIP of created roles and bootstrap's USAGE on COMPUTE_WH to PUBLIC, as
    (privilege, type, name, to, grantee, option)."""
    rows = Grant.objects.exclude(privilege="OWNERSHIP").exclude(object_type="WAREHOUSE", grantee_name="PUBLIC") \
        .filter(**filters)
    return {(g.privilege, g.object_type, g.object_name, g.grantee_type, g.grantee_name, g.grant_option) for g in rows}


# GRANT and REVOKE of privileges ---------------------------------------------------------------

@pytest.mark.parametrize("statement, expected", [
    ("GRANT USAGE ON DATABASE gdb TO ROLE analyst", {("USAGE", "DATABASE", "GDB", "ROLE", "ANALYST", False)}),
    ("GRANT CREATE MODEL, USAGE ON SCHEMA public TO ROLE analyst WITH GRANT OPTION",
     {("CREATE MODEL", "SCHEMA", "GDB.PUBLIC", "ROLE", "ANALYST", True),
      ("USAGE", "SCHEMA", "GDB.PUBLIC", "ROLE", "ANALYST", True)}),
    ("GRANT MONITOR ON SCHEMA gdb.public TO analyst", {("MONITOR", "SCHEMA", "GDB.PUBLIC", "ROLE", "ANALYST", False)}),
    ("GRANT SELECT ON TABLE t1 TO ROLE analyst", {("SELECT", "TABLE", "GDB.PUBLIC.T1", "ROLE", "ANALYST", False)}),
    ("GRANT SELECT ON VIEW gdb.public.v1 TO ROLE analyst", {("SELECT", "VIEW", "GDB.PUBLIC.V1", "ROLE", "ANALYST", False)}),
    ("GRANT USAGE ON MODEL my_model TO ROLE analyst", {("USAGE", "MODEL", "GDB.PUBLIC.MY_MODEL", "ROLE", "ANALYST", False)}),
    ("GRANT USAGE, OPERATE ON WAREHOUSE compute_wh TO ROLE analyst",
     {("USAGE", "WAREHOUSE", "COMPUTE_WH", "ROLE", "ANALYST", False),
      ("OPERATE", "WAREHOUSE", "COMPUTE_WH", "ROLE", "ANALYST", False)}),
    ("GRANT ALL PRIVILEGES ON VIEW v1 TO ROLE analyst",
     {("SELECT", "VIEW", "GDB.PUBLIC.V1", "ROLE", "ANALYST", False),
      ("REFERENCES", "VIEW", "GDB.PUBLIC.V1", "ROLE", "ANALYST", False)}),
    ("GRANT SELECT ON ALL TABLES IN SCHEMA gdb.public TO ROLE analyst",
     {("SELECT", "TABLE", "GDB.PUBLIC.T1", "ROLE", "ANALYST", False),
      ("SELECT", "TABLE", "GDB.PUBLIC.T2", "ROLE", "ANALYST", False)}),
    ("GRANT USAGE ON ALL MODELS IN SCHEMA public TO ROLE analyst",
     {("USAGE", "MODEL", "GDB.PUBLIC.MY_MODEL", "ROLE", "ANALYST", False)}),
])
def test_each_grant_form_stores_exactly_its_rows_and_revoke_removes_them(account, statement, expected):
    assert sql(account, statement).rows == DONE
    assert stored() == expected
    assert {g.granted_by for g in Grant.objects.exclude(privilege="OWNERSHIP")} == {"ACCOUNTADMIN"}
    revoke = statement.replace("GRANT ", "REVOKE ", 1).replace(" TO ", " FROM ").replace(" WITH GRANT OPTION", "")
    assert sql(account, revoke).rows == DONE
    assert stored() == set()


def test_revoke_removes_only_the_named_privilege(account):
    sql(account, "GRANT SELECT, INSERT ON TABLE t1 TO ROLE analyst")
    sql(account, "GRANT SELECT ON TABLE t2 TO ROLE analyst")
    sql(account, "REVOKE INSERT ON TABLE gdb.public.t1 FROM ROLE analyst")
    assert stored() == {("SELECT", "TABLE", "GDB.PUBLIC.T1", "ROLE", "ANALYST", False),
                        ("SELECT", "TABLE", "GDB.PUBLIC.T2", "ROLE", "ANALYST", False)}


def test_granting_twice_keeps_one_row_and_with_grant_option_adds_the_option(account):
    sql(account, "GRANT USAGE ON DATABASE gdb TO ROLE analyst")
    sql(account, "GRANT USAGE ON DATABASE gdb TO ROLE analyst")
    assert stored() == {("USAGE", "DATABASE", "GDB", "ROLE", "ANALYST", False)}
    sql(account, "GRANT USAGE ON DATABASE gdb TO ROLE analyst WITH GRANT OPTION")
    assert stored() == {("USAGE", "DATABASE", "GDB", "ROLE", "ANALYST", True)}
    sql(account, "REVOKE GRANT OPTION FOR USAGE ON DATABASE gdb FROM ROLE analyst")
    assert stored() == {("USAGE", "DATABASE", "GDB", "ROLE", "ANALYST", False)}


def test_revoking_what_was_never_granted_succeeds_and_changes_nothing(account):
    sql(account, "GRANT USAGE ON DATABASE gdb TO ROLE analyst")
    assert sql(account, "REVOKE MONITOR ON DATABASE gdb FROM ROLE analyst").rows == DONE
    assert stored() == {("USAGE", "DATABASE", "GDB", "ROLE", "ANALYST", False)}


def test_quoted_names_keep_their_case(account):
    sql(account, 'CREATE ROLE "Mixed Case"')
    sql(account, 'GRANT USAGE ON DATABASE gdb TO ROLE "Mixed Case"')
    assert stored() == {("USAGE", "DATABASE", "GDB", "ROLE", "Mixed Case", False)}
    with pytest.raises(UserError, match=r"^Role 'MIXED' does not exist or not authorized\.$"):
        sql(account, "GRANT USAGE ON DATABASE gdb TO ROLE mixed")


# Roles and database roles ------------------------------------------------------------------------

def test_grant_role_to_role_and_user_and_revoke(account):
    bob = get_user_model().objects.get(username="bob")
    sql(account, "GRANT ROLE analyst TO ROLE sysadmin")
    sql(account, "GRANT ROLE analyst TO USER bob")
    assert stored() == {("USAGE", "ROLE", "ANALYST", "ROLE", "SYSADMIN", False),
                        ("USAGE", "ROLE", "ANALYST", "USER", "bob", False)}
    assert list(Role.objects.get(name="ANALYST").users.all()) == [bob]
    assert role_graph.inherited_roles("SYSADMIN") == {"ANALYST"}

    sql(account, "REVOKE ROLE analyst FROM USER BOB")
    assert stored() == {("USAGE", "ROLE", "ANALYST", "ROLE", "SYSADMIN", False)}
    assert not Role.objects.get(name="ANALYST").users.exists()
    sql(account, "REVOKE ROLE analyst FROM ROLE sysadmin")
    assert stored() == set()


def test_grant_database_role_cortex_user_to_role_and_user(account):
    sql(account, "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE analyst")
    sql(account, "GRANT DATABASE ROLE snowflake.cortex_user TO USER bob")
    assert stored() == {("USAGE", "DATABASE ROLE", "SNOWFLAKE.CORTEX_USER", "ROLE", "ANALYST", False),
                        ("USAGE", "DATABASE ROLE", "SNOWFLAKE.CORTEX_USER", "USER", "bob", False)}
    sql(account, "REVOKE DATABASE ROLE SNOWFLAKE.CORTEX_USER FROM ROLE analyst")
    assert stored() == {("USAGE", "DATABASE ROLE", "SNOWFLAKE.CORTEX_USER", "USER", "bob", False)}
    sql(account, "REVOKE DATABASE ROLE SNOWFLAKE.CORTEX_USER FROM USER bob")
    assert stored() == set()


def test_a_role_cycle_is_refused(account):
    sql(account, "CREATE ROLE reader")
    sql(account, "GRANT ROLE reader TO ROLE analyst")
    sql(account, "GRANT ROLE analyst TO ROLE sysadmin")
    with pytest.raises(UserError, match=r"^Granting role 'SYSADMIN' to role 'READER' would create a cycle"):
        sql(account, "GRANT ROLE sysadmin TO ROLE reader")
    with pytest.raises(UserError, match=r"would create a cycle"):
        sql(account, "GRANT ROLE analyst TO ROLE analyst")
    assert len(stored()) == 2


# Errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("statement, message", [
    ("GRANT USAGE ON DATABASE nodb TO ROLE analyst", r"^Database 'NODB' does not exist or not authorized\.$"),
    ("GRANT USAGE ON SCHEMA nope TO ROLE analyst", r"^Schema 'GDB\.NOPE' does not exist or not authorized\.$"),
    ("GRANT SELECT ON TABLE nope TO ROLE analyst", r"^Table 'GDB\.PUBLIC\.NOPE' does not exist or not authorized\.$"),
    ("GRANT SELECT ON TABLE v1 TO ROLE analyst", r"^Table 'GDB\.PUBLIC\.V1' does not exist or not authorized\.$"),
    ("GRANT SELECT ON VIEW t1 TO ROLE analyst", r"^View 'GDB\.PUBLIC\.T1' does not exist or not authorized\.$"),
    ("GRANT USAGE ON MODEL nope TO ROLE analyst", r"^Model 'GDB\.PUBLIC\.NOPE' does not exist or not authorized\.$"),
    ("GRANT USAGE ON WAREHOUSE nope TO ROLE analyst", r"^Warehouse 'NOPE' does not exist or not authorized\.$"),
    ("GRANT USAGE ON DATABASE gdb TO ROLE nobody", r"^Role 'NOBODY' does not exist or not authorized\.$"),
    ("GRANT ROLE nobody TO ROLE analyst", r"^Role 'NOBODY' does not exist or not authorized\.$"),
    ("GRANT ROLE analyst TO USER nobody", r"^User 'nobody' does not exist or not authorized\.$"),
    ("GRANT DATABASE ROLE SNOWFLAKE.NOPE TO ROLE analyst",
     r"^Database role 'SNOWFLAKE\.NOPE' does not exist or not authorized\.$"),
    ("REVOKE USAGE ON DATABASE gdb FROM ROLE nobody", r"^Role 'NOBODY' does not exist or not authorized\.$"),
    ("GRANT CREATE MODEL ON DATABASE gdb TO ROLE analyst",
     r"^SQL compilation error: Invalid privilege CREATE MODEL on DATABASE\. Privileges on a DATABASE: USAGE, "
     r"MONITOR, MODIFY, CREATE SCHEMA, CREATE DATABASE ROLE, ALL\.$"),
    ("GRANT USAGE ON TABLE t1 TO ROLE analyst", r"^SQL compilation error: Invalid privilege USAGE on TABLE\."),
    ("GRANT SELECT ON MODEL my_model TO ROLE analyst",
     r"^SQL compilation error: Invalid privilege SELECT on MODEL\. Privileges on a MODEL: USAGE, ALL\.$"),
    ("GRANT USAGE, SELECT ON SCHEMA public TO ROLE analyst", r"Invalid privilege SELECT on SCHEMA"),
    ("GRANT OWNERSHIP ON DATABASE gdb TO ROLE analyst", r"GRANT OWNERSHIP is not supported"),
    ("GRANT USAGE ON DATABASE gdb TO USER bob", r"privileges are granted to roles, not users"),
    ("GRANT USAGE ON FILE FORMAT f TO ROLE analyst",
     r"expected DATABASE or SCHEMA or TABLE or VIEW or MODEL or STAGE or WAREHOUSE"),
    ("GRANT USAGE ON STAGE s TO ROLE analyst",
     r"^SQL compilation error: Invalid privilege USAGE on STAGE\. Privileges on a STAGE: READ, WRITE, ALL\.$"),
    ("GRANT USAGE ON DATABASE gdb", r"expected TO, found the end of the statement"),
    ("GRANT USAGE ON DATABASE gdb TO ROLE analyst extra", r"expected the end of the statement, found 'extra'"),
])
def test_bad_grants_fail_with_a_clear_message_and_store_nothing(account, statement, message):
    with pytest.raises(UserError, match=message):
        sql(account, statement)
    assert stored() == set()


# SHOW --------------------------------------------------------------------------------------------

def test_show_grants_to_role_on_object_of_role_and_to_user(account):
    sql(account, "GRANT USAGE ON DATABASE gdb TO ROLE analyst")
    sql(account, "GRANT CREATE MODEL ON SCHEMA public TO ROLE analyst WITH GRANT OPTION")
    sql(account, "GRANT ROLE analyst TO ROLE sysadmin")
    sql(account, "GRANT ROLE analyst TO USER bob")
    sql(account, "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO USER bob")

    to_role = sql(account, "SHOW GRANTS TO ROLE analyst")
    assert to_role.columns == ["created_on", "privilege", "granted_on", "name", "granted_to", "grantee_name",
                               "grant_option", "granted_by"]
    assert [r[1:] for r in to_role.rows] == [
        ("USAGE", "DATABASE", "GDB", "ROLE", "ANALYST", "false", "ACCOUNTADMIN"),
        ("CREATE MODEL", "SCHEMA", "GDB.PUBLIC", "ROLE", "ANALYST", "true", "ACCOUNTADMIN"),
    ]
    assert all(r[0] is not None for r in to_role.rows)

    on_schema = sql(account, "SHOW GRANTS ON SCHEMA gdb.public")
    assert [r[1:] for r in on_schema.rows] == [
        ("CREATE MODEL", "SCHEMA", "GDB.PUBLIC", "ROLE", "ANALYST", "true", "ACCOUNTADMIN")]

    of_role = sql(account, "SHOW GRANTS OF ROLE analyst")
    assert of_role.columns == ["created_on", "role", "granted_to", "grantee_name", "granted_by"]
    assert [r[1:] for r in of_role.rows] == [("ANALYST", "ROLE", "SYSADMIN", "ACCOUNTADMIN"),
                                             ("ANALYST", "USER", "bob", "ACCOUNTADMIN")]

    to_user = sql(account, "SHOW GRANTS TO USER bob")
    assert [r[1:] for r in to_user.rows] == [("ANALYST", "USER", "bob", "ACCOUNTADMIN"),
                                             ("SNOWFLAKE.CORTEX_USER", "USER", "bob", "ACCOUNTADMIN")]

    to_sysadmin = sql(account, "SHOW GRANTS TO ROLE sysadmin")
    assert [r[1:5] for r in to_sysadmin.rows] == [("USAGE", "ROLE", "ANALYST", "ROLE")]

    on_cortex_user = sql(account, "SHOW GRANTS OF DATABASE ROLE SNOWFLAKE.CORTEX_USER")
    assert [r[1:4] for r in on_cortex_user.rows] == [("SNOWFLAKE.CORTEX_USER", "USER", "bob")]


def test_show_grants_on_a_missing_object_names_it(account):
    with pytest.raises(UserError, match=r"^Table 'GDB\.PUBLIC\.NOPE' does not exist or not authorized\.$"):
        sql(account, "SHOW GRANTS ON TABLE nope")


def test_show_roles_lists_system_and_custom_roles(account):
    sql(account, "GRANT ROLE analyst TO ROLE sysadmin")
    sql(account, "GRANT ROLE analyst TO USER bob")
    result = sql(account, "SHOW ROLES")
    assert result.columns == ["created_on", "name", "is_default", "is_current", "is_inherited", "assigned_to_users",
                              "granted_to_roles", "granted_roles", "owner", "comment"]
    by_name = {r[1]: r for r in result.rows}
    assert set(by_name) == {"ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "PUBLIC", "ORGADMIN", "ANALYST"}
    assert by_name["ACCOUNTADMIN"][3] == "Y" and by_name["ANALYST"][3] == "N"
    assert by_name["ANALYST"][5:9] == (1, 1, 0, "ACCOUNTADMIN")
    assert by_name["SYSADMIN"][5:8] == (0, 0, 1)
    assert [r[1] for r in sql(account, "SHOW ROLES LIKE '%admin'").rows] == [
        "ACCOUNTADMIN", "ORGADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN"]


def test_show_roles_like_reads_the_pattern_as_every_show_does(account):
    """One LIKE for every SHOW (sqlengine.show.like_matches): case-insensitive, _ one character."""
    sql(admin_session(), 'CREATE ROLE "ETL_JOB"')
    sql(admin_session(), "CREATE ROLE etlxjob")
    assert [r[1] for r in sql(admin_session(), "SHOW ROLES LIKE 'etl_job'").rows] == ["ETLXJOB", "ETL_JOB"]
    assert [r[1] for r in sql(admin_session(), "SHOW ROLES LIKE 'ETL%'").rows] == ["ETLXJOB", "ETL_JOB"]


# CREATE / DROP ROLE ------------------------------------------------------------------------------

def test_create_role_records_its_owner(account):
    assert sql(account, "CREATE ROLE reviewer").rows == [("Role REVIEWER successfully created.",)]
    assert Role.objects.filter(name="REVIEWER").exists()
    owner = Grant.objects.get(privilege="OWNERSHIP", object_type="ROLE", object_name="REVIEWER")
    assert (owner.grantee_type, owner.grantee_name) == ("ROLE", "ACCOUNTADMIN")
    with pytest.raises(UserError, match=r"^Object 'REVIEWER' already exists\.$"):
        sql(account, "CREATE ROLE reviewer")
    assert sql(account, "CREATE ROLE IF NOT EXISTS reviewer").rows == [("REVIEWER already exists, statement succeeded.",)]
    assert Role.objects.filter(name="REVIEWER").count() == 1


def test_drop_role_removes_it_with_its_grants(account):
    sql(account, "GRANT USAGE ON DATABASE gdb TO ROLE analyst")
    sql(account, "GRANT ROLE analyst TO ROLE sysadmin")
    sql(account, "GRANT ROLE analyst TO USER bob")
    assert sql(account, "DROP ROLE analyst").rows == [("ANALYST successfully dropped.",)]
    assert not Role.objects.filter(name="ANALYST").exists()
    assert not Grant.objects.filter(grantee_name="ANALYST").exists()
    assert not Grant.objects.filter(object_name="ANALYST").exists()
    with pytest.raises(UserError, match=r"^Role 'ANALYST' does not exist or not authorized\.$"):
        sql(account, "DROP ROLE analyst")
    assert sql(account, "DROP ROLE IF EXISTS analyst").rows == [
        ("Drop statement executed successfully (role already dropped).",)]


def test_system_roles_cannot_be_dropped(account):
    with pytest.raises(UserError, match=r"^System role 'SYSADMIN' cannot be dropped\.$"):
        sql(account, "DROP ROLE sysadmin")
    assert Role.objects.filter(name="SYSADMIN").exists()


def test_the_service_api_reads_grants_by_stored_names(account):
    grants.grant(account, "USAGE", "MODEL", "my_model", "ROLE", "analyst")
    (held,) = grants.grants_to("ROLE", "ANALYST")
    assert (held.privilege, held.object_type, held.object_name) == ("USAGE", "MODEL", "GDB.PUBLIC.MY_MODEL")
    assert [g.grantee_name for g in grants.grants_on("MODEL", "GDB.PUBLIC.MY_MODEL")] == ["ANALYST"]
    assert grants.revoke(account, "USAGE", "MODEL", "gdb.public.my_model", "ROLE", "analyst") == 1
    assert grants.grants_to("ROLE", "ANALYST") == [
        g for g in grants.grants_to("ROLE", "ANALYST") if g.privilege == "OWNERSHIP"]
