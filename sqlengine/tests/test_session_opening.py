"""Opening a session and changing it: `manage.py sql --user/--role/--warehouse/--database/--schema` and USE
apply the same checks (access/roles.py), as the low-privilege role LOW of the security review."""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from errors import UserError
from sqlengine.executor import Executor
from tests.support.security import leaks
from warehouses.models import Warehouse

ACC_REFUSAL = "Database 'ACC' does not exist or not authorized."


def cli(capsys, *args: str) -> list:
    """The rows `manage.py sql … --format json` prints for its last statement."""
    call_command("sql", *args, "--format", "json")
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("sql", *args)
    return str(caught.value)


def use_refused(low_account, statement: str, **session) -> UserError:
    with pytest.raises(UserError) as caught:
        low_account.sql(statement, **session)
    return caught.value


# manage.py sql -------------------------------------------------------------------------------------------

def test_a_role_the_user_does_not_hold_is_refused(low_account, capsys):
    message = refused("--user", "low", "--role", "accountadmin", "-e", "SELECT * FROM acc.s.t")
    assert message == ("390189 (08004): Role 'ACCOUNTADMIN' specified in the request does not exist or is not "
                       "granted to this user.")
    assert not leaks(message) and not leaks(capsys.readouterr().out)


def test_without_a_role_the_user_runs_as_their_default_role_not_accountadmin(low_account, capsys):
    assert cli(capsys, "--user", "low", "-e", "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()") == [["LOW", "COMPUTE_WH"]]


def test_a_database_the_role_may_not_use_reads_like_one_that_does_not_exist(low_account, capsys):
    hidden = refused("--user", "low", "--database", "acc", "--schema", "s", "-e", "SELECT * FROM t")
    missing = refused("--user", "low", "--database", "nodb", "-e", "SELECT 1")
    assert hidden == f"002003 (02000): {ACC_REFUSAL}"
    assert missing == "002003 (02000): Database 'NODB' does not exist or not authorized."
    assert refused("--user", "low", "--database", '"ACC"', "-e", "SELECT 1") == hidden
    assert not leaks(capsys.readouterr().out)


def test_a_schema_the_role_may_not_use_reads_like_one_that_does_not_exist(low_account):
    Executor(low_account.admin).execute("CREATE SCHEMA pub.hidden")
    assert refused("--user", "low", "--database", "pub", "--schema", "hidden", "-e", "SELECT 1") == \
        "002003 (02000): Schema 'PUB.HIDDEN' does not exist or not authorized."
    assert refused("--user", "low", "--database", "pub", "--schema", "nope", "-e", "SELECT 1") == \
        "002003 (02000): Schema 'PUB.NOPE' does not exist or not authorized."


def test_the_options_the_role_may_use_open_the_session(low_account, capsys):
    rows = cli(capsys, "--user", "low", "--role", "low", "--database", "pub", "--schema", "s", "-e",
               "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA(), note FROM x ORDER BY id")
    assert rows == [["PUB", "S", "public one"], ["PUB", "S", "public two"]]


def test_the_bootstrap_administrator_still_runs_as_accountadmin(low_account, capsys):
    assert cli(capsys, "-e", "SELECT CURRENT_ROLE(), COUNT(*) FROM acc.s.t") == [["ACCOUNTADMIN", 2]]


# USE -----------------------------------------------------------------------------------------------------

def test_use_database_and_schema_of_acc_are_refused_like_missing_ones_and_change_nothing(low_account):
    session = low_account.session(database="PUB", schema="S")
    run = Executor(session).execute
    for statement in ("USE DATABASE acc", 'USE DATABASE "ACC"', "USE SCHEMA acc.s"):
        with pytest.raises(UserError) as caught:
            run(statement)
        assert (caught.value.message, caught.value.code, caught.value.sqlstate) == (ACC_REFUSAL, 2003, "02000")
        assert (session.database, session.schema) == ("PUB", "S")
    with pytest.raises(UserError) as caught:
        run("USE DATABASE nodb")
    assert caught.value.message == "Database 'NODB' does not exist or not authorized."
    assert run("SELECT note FROM x ORDER BY id")[-1].rows == [("public one",), ("public two",)]


def test_use_role_refuses_a_role_not_granted(low_account):
    error = use_refused(low_account, "USE ROLE accountadmin")
    assert error.message == ("Requested role 'ACCOUNTADMIN' is not assigned to the executing user. Specify another "
                             "role to activate.")
    assert use_refused(low_account, "USE ROLE nosuch").message == "Role 'NOSUCH' does not exist or not authorized."


def test_use_warehouse_hides_a_warehouse_the_role_holds_nothing_on(low_account):
    Warehouse.objects.create(name="PRIVATE_WH")
    hidden = use_refused(low_account, "USE WAREHOUSE private_wh")
    missing = use_refused(low_account, "USE WAREHOUSE nope_wh")
    assert (hidden.code, hidden.message) == (
        2043, "Object does not exist, or operation cannot be performed: warehouse 'PRIVATE_WH'.")
    assert missing.message == "Object does not exist, or operation cannot be performed: warehouse 'NOPE_WH'."
    Executor(low_account.admin).execute("GRANT MONITOR ON WAREHOUSE private_wh TO ROLE low")
    monitored = use_refused(low_account, "USE WAREHOUSE private_wh")  # seen now, still not usable
    assert (monitored.code, monitored.message) == (3001, "Insufficient privileges to operate on warehouse 'PRIVATE_WH'")
    Executor(low_account.admin).execute("GRANT USAGE ON WAREHOUSE private_wh TO ROLE low")
    assert low_account.sql("USE WAREHOUSE private_wh; SELECT CURRENT_WAREHOUSE()")[-1].rows == [("PRIVATE_WH",)]
