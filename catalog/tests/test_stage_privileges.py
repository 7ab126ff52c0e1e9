"""Stage privileges as Snowflake's, through SQL: READ and WRITE on named stages, a table stage for its
table's owner (and COPY INTO that table for its INSERT holders), the user stage @~ for its user only.

Every refusal is tried as the security review's low-privilege role LOW (tests/support/security.py) on
admin's files, and asserts what must not have happened: no name, size or MD5 of the secret file in
any answer, admin's files byte-for-byte as they were, PUB.S.SINK without a row.
"""
import hashlib

import pytest
from django.contrib.auth import get_user_model

from access.models import Grant
from access.session import Session
from catalog import stage_files, stages
from errors import UserError
from sqlengine.executor import Executor
from tests.support.security import SECRET, SECRET_FILE, SECRET_FILE_BODY, STAGED_FILES, leaks
from tests.support.security import staged_files as admin_files

SECRET_MD5 = hashlib.md5(SECRET_FILE_BODY.encode()).hexdigest()
SECRET_STAGE_GONE = "SQL compilation error: Stage 'ACC.S.SECRETSTAGE' does not exist or not authorized."
SECRET_TABLE_GONE = "SQL compilation error: Table 'ACC.S.T' does not exist or not authorized."
ORDER_ON_GRANT = ("SQL compilation error: Privilege order violation for the grants on stage. READ should be "
                  "granted before/simultaneously with WRITE.")
ORDER_ON_REVOKE = ("SQL compilation error: Privilege order violation for the grants on stage. WRITE should be "
                   "revoked before/simultaneously with READ.")


def admin_sql(account, text: str):
    return Executor(account.admin, local_files=True).execute(text)[-1]


def refused(account, text: str, **session) -> UserError:
    """The error LOW gets for `text`; it must name no secret."""
    with pytest.raises(UserError) as caught:
        account.sql(text, **session)
    assert not leaks(caught.value.message), caught.value.message
    return caught.value


def sink_rows(account) -> list:
    return admin_sql(account, "SELECT * FROM pub.s.sink").rows


# -- refused: admin's named stage and table stage ---------------------------------------------------

def test_list_of_a_stage_the_role_cannot_see_says_it_does_not_exist_like_a_missing_one(low_account):
    assert refused(low_account, "LIST @ACC.S.SECRETSTAGE").message == SECRET_STAGE_GONE
    assert refused(low_account, "LIST @acc.s.secretstage PATTERN = '.*'").message == SECRET_STAGE_GONE
    assert refused(low_account, "LIST @ACC.S.NOSUCH").message == \
        "SQL compilation error: Stage 'ACC.S.NOSUCH' does not exist or not authorized."
    assert refused(low_account, "LIST @s.secretstage", database="ACC").message == SECRET_STAGE_GONE


def test_list_of_a_table_stage_of_a_table_the_role_cannot_see_says_the_table_does_not_exist(low_account):
    assert refused(low_account, "LIST @ACC.S.%T").message == SECRET_TABLE_GONE
    assert refused(low_account, "LIST @%T", database="ACC", schema="S").message == SECRET_TABLE_GONE
    assert admin_files(low_account) == STAGED_FILES


def test_remove_of_another_owners_files_is_refused_and_every_file_stays(low_account):
    assert refused(low_account, "REMOVE @ACC.S.%T PATTERN = '.*'").message == SECRET_TABLE_GONE
    assert refused(low_account, f"REMOVE @ACC.S.SECRETSTAGE/{SECRET_FILE}").message == SECRET_STAGE_GONE
    assert refused(low_account, "RM @acc.s.secretstage").message == SECRET_STAGE_GONE
    assert admin_files(low_account) == STAGED_FILES


def test_put_over_another_owners_file_is_refused_and_the_file_is_unchanged(low_account, tmp_path):
    forged = tmp_path / SECRET_FILE
    forged.write_text("id,name\n1,forged\n")
    for target in ("@ACC.S.SECRETSTAGE", "@ACC.S.%T"):
        error = refused(low_account, f"PUT file://{forged} {target} AUTO_COMPRESS = FALSE OVERWRITE = TRUE")
        assert error.message == (SECRET_STAGE_GONE if target.endswith("STAGE") else SECRET_TABLE_GONE)
    assert admin_files(low_account) == STAGED_FILES


def test_get_of_another_owners_files_is_refused_and_writes_nothing(low_account, tmp_path):
    out = tmp_path / "out"
    assert refused(low_account, f"GET @ACC.S.SECRETSTAGE file://{out}/").message == SECRET_STAGE_GONE
    assert refused(low_account, f"GET @ACC.S.%T file://{out}/").message == SECRET_TABLE_GONE
    assert not out.exists()


def test_copy_from_another_owners_stage_into_a_table_the_role_may_load_loads_nothing(low_account):
    error = refused(low_account, "COPY INTO pub.s.sink FROM @ACC.S.%T FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert error.message == SECRET_TABLE_GONE
    error = refused(low_account, "COPY INTO pub.s.sink FROM @ACC.S.SECRETSTAGE FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert error.message == SECRET_STAGE_GONE
    assert sink_rows(low_account) == []
    assert admin_files(low_account) == STAGED_FILES


def test_show_stages_lists_no_stage_the_role_cannot_see_in_any_scope(low_account):
    for text in ("SHOW STAGES IN ACCOUNT", "SHOW STAGES", "SHOW STAGES IN DATABASE acc", "SHOW STAGES IN SCHEMA acc.s",
                 "SHOW STAGES LIKE '%SECRET%' IN ACCOUNT"):
        result = low_account.sql(text)[-1]
        assert result.rows == [], text
        assert not leaks(result.rows)
    assert [r[1] for r in admin_sql(low_account, "SHOW STAGES IN ACCOUNT").rows] == ["SECRETSTAGE"]


def test_describe_and_drop_of_a_stage_the_role_cannot_see_say_it_does_not_exist(low_account):
    assert refused(low_account, "DESCRIBE STAGE acc.s.secretstage").message == SECRET_STAGE_GONE
    assert refused(low_account, "DROP STAGE acc.s.secretstage").message == SECRET_STAGE_GONE
    result = low_account.sql("DROP STAGE IF EXISTS acc.s.secretstage")[-1]
    assert result.rows == [("Drop statement executed successfully (SECRETSTAGE already dropped).",)]
    assert admin_files(low_account) == STAGED_FILES


def test_grant_and_show_grants_on_a_stage_the_role_cannot_see_answer_as_for_a_missing_one(low_account):
    for text in ("GRANT READ ON STAGE acc.s.{} TO ROLE low", "SHOW GRANTS ON STAGE acc.s.{}"):
        hidden = refused(low_account, text.format("secretstage")).message
        missing = refused(low_account, text.format("nosuch")).message
        assert hidden.endswith("does not exist or not authorized.")
        assert hidden.replace("SECRETSTAGE", "NOSUCH") == missing
    assert not Grant.objects.filter(object_type="STAGE").exists()


def test_create_or_replace_of_another_owners_stage_needs_its_ownership(low_account):
    for text in ("GRANT USAGE ON DATABASE acc TO ROLE low", "GRANT USAGE ON SCHEMA acc.s TO ROLE low",
                 "GRANT CREATE STAGE ON SCHEMA acc.s TO ROLE low"):
        admin_sql(low_account, text)
    assert refused(low_account, "CREATE OR REPLACE STAGE acc.s.secretstage").message == \
        "Insufficient privileges to operate on stage 'SECRETSTAGE'"
    assert admin_files(low_account) == STAGED_FILES
    assert low_account.sql("CREATE STAGE acc.s.mine")[-1].rows == [("Stage area MINE successfully created.",)]
    assert [r[1] for r in low_account.sql("SHOW STAGES IN SCHEMA acc.s")[-1].rows] == ["MINE"]


def test_a_stage_query_in_a_select_returns_no_secret(low_account):
    # Stages are no table source in a query here; whatever the engine answers carries no staged row.
    for text in ("SELECT $1 FROM @ACC.S.SECRETSTAGE", "SELECT $1 FROM @ACC.S.%T", "SELECT * FROM '@ACC.S.%T/*.csv'"):
        try:
            result = low_account.sql(text)[-1]
        except UserError as error:
            assert not leaks(error.message), error.message
        else:
            assert not leaks(result.rows), text


# -- READ and WRITE --------------------------------------------------------------------------------

def grant_usage_on_acc(account) -> None:
    admin_sql(account, "GRANT USAGE ON DATABASE acc TO ROLE low")
    admin_sql(account, "GRANT USAGE ON SCHEMA acc.s TO ROLE low")


def test_read_lets_the_role_list_get_describe_and_copy_but_not_change_the_stage(low_account, tmp_path):
    grant_usage_on_acc(low_account)
    admin_sql(low_account, "GRANT READ ON STAGE acc.s.secretstage TO ROLE low")
    (row,) = low_account.sql("LIST @acc.s.secretstage")[-1].rows
    assert row[:3] == (f"secretstage/{SECRET_FILE}", len(SECRET_FILE_BODY), SECRET_MD5)
    assert low_account.sql("DESCRIBE STAGE acc.s.secretstage")[-1].rows[0][:2] == ("STAGE_FILE_FORMAT", "TYPE")
    assert [r[1] for r in low_account.sql("SHOW STAGES IN ACCOUNT")[-1].rows] == ["SECRETSTAGE"]

    out = tmp_path / "downloaded"
    assert low_account.sql(f"GET @acc.s.secretstage file://{out}")[-1].rows == \
        [(SECRET_FILE, len(SECRET_FILE_BODY), "DOWNLOADED", "")]
    assert (out / SECRET_FILE).read_text() == SECRET_FILE_BODY
    assert low_account.sql(f"GET @acc.s.secretstage file://{tmp_path}/none PATTERN = '.*[.]json'")[-1].rows == []

    copied = low_account.sql("COPY INTO pub.s.sink FROM @acc.s.secretstage FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert copied[-1].rows[0][:4] == (f"secretstage/{SECRET_FILE}", "LOADED", 1, 1)
    assert sink_rows(low_account) == [(1, f"{SECRET}-in-a-file")]

    written = "Insufficient privileges to operate on stage 'SECRETSTAGE'"
    assert refused_as_reader(low_account, "REMOVE @acc.s.secretstage") == written
    forged = tmp_path / SECRET_FILE
    forged.write_text("forged\n")
    assert refused_as_reader(low_account, f"PUT file://{forged} @acc.s.secretstage OVERWRITE = TRUE") == written
    assert admin_files(low_account) == STAGED_FILES


def refused_as_reader(account, text: str) -> str:
    with pytest.raises(UserError) as caught:
        account.sql(text)
    assert caught.value.code == 3001 and caught.value.sqlstate == "42501"
    return caught.value.message


def test_read_without_usage_on_the_database_still_hides_the_stage(low_account):
    admin_sql(low_account, "GRANT READ ON STAGE acc.s.secretstage TO ROLE low")
    assert refused(low_account, "LIST @acc.s.secretstage").message == SECRET_STAGE_GONE
    admin_sql(low_account, "GRANT USAGE ON DATABASE acc TO ROLE low")
    assert refused(low_account, "LIST @acc.s.secretstage").message == SECRET_STAGE_GONE


def test_write_lets_the_role_put_and_remove(low_account, tmp_path):
    grant_usage_on_acc(low_account)
    admin_sql(low_account, "GRANT READ, WRITE ON STAGE acc.s.secretstage TO ROLE low")
    source = tmp_path / "mine.csv"
    source.write_text("id,name\n7,mine\n")
    (put,) = low_account.sql(f"PUT file://{source} @acc.s.secretstage/in AUTO_COMPRESS = FALSE")[-1].rows
    assert put[6] == "UPLOADED"
    assert [r[0] for r in low_account.sql("LIST @acc.s.secretstage")[-1].rows] == \
        [f"secretstage/{SECRET_FILE}", "secretstage/in/mine.csv"]
    assert low_account.sql("REMOVE @acc.s.secretstage/in")[-1].rows == [("secretstage/in/mine.csv", "removed")]
    assert admin_files(low_account) == STAGED_FILES


def test_write_needs_read_granted_before_or_with_it_as_snowflake_orders_them(low_account):
    grant_usage_on_acc(low_account)
    with pytest.raises(UserError) as caught:
        admin_sql(low_account, "GRANT WRITE ON STAGE acc.s.secretstage TO ROLE low")
    assert (caught.value.message, caught.value.code, caught.value.sqlstate) == (ORDER_ON_GRANT, 3511, "23001")
    assert not Grant.objects.filter(object_type="STAGE").exists()

    admin_sql(low_account, "GRANT WRITE, READ ON STAGE acc.s.secretstage TO ROLE low")
    shown = admin_sql(low_account, "SHOW GRANTS ON STAGE acc.s.secretstage")
    assert sorted((r[1], r[2], r[3], r[5]) for r in shown.rows) == [
        ("READ", "STAGE", "ACC.S.SECRETSTAGE", "LOW"), ("WRITE", "STAGE", "ACC.S.SECRETSTAGE", "LOW")]

    with pytest.raises(UserError) as caught:
        admin_sql(low_account, "REVOKE READ ON STAGE acc.s.secretstage FROM ROLE low")
    assert (caught.value.message, caught.value.code) == (ORDER_ON_REVOKE, 3512)
    assert set(Grant.objects.filter(object_type="STAGE").values_list("privilege", flat=True)) == {"READ", "WRITE"}

    admin_sql(low_account, "REVOKE READ, WRITE ON STAGE acc.s.secretstage FROM ROLE low")
    assert not Grant.objects.filter(object_type="STAGE").exists()
    admin_sql(low_account, "GRANT ALL PRIVILEGES ON STAGE acc.s.secretstage TO ROLE low")
    assert set(Grant.objects.filter(object_type="STAGE").values_list("privilege", flat=True)) == {"READ", "WRITE"}
    admin_sql(low_account, "REVOKE ALL ON STAGE acc.s.secretstage FROM ROLE low")
    assert refused(low_account, "LIST @acc.s.secretstage").message == SECRET_STAGE_GONE


def test_a_revoked_read_counts_from_the_next_statement(low_account):
    grant_usage_on_acc(low_account)
    admin_sql(low_account, "GRANT READ ON STAGE acc.s.secretstage TO ROLE low")
    assert len(low_account.sql("LIST @acc.s.secretstage")[-1].rows) == 1
    admin_sql(low_account, "REVOKE READ ON STAGE acc.s.secretstage FROM ROLE low")
    assert refused(low_account, "LIST @acc.s.secretstage").message == SECRET_STAGE_GONE


def test_a_stage_created_again_does_not_keep_the_old_ones_grants(low_account):
    grant_usage_on_acc(low_account)
    admin_sql(low_account, "GRANT READ ON STAGE acc.s.secretstage TO ROLE low")
    admin_sql(low_account, "CREATE OR REPLACE STAGE acc.s.secretstage")
    assert refused(low_account, "LIST @acc.s.secretstage").message == SECRET_STAGE_GONE
    assert not Grant.objects.filter(object_type="STAGE").exists()


# -- table stages ----------------------------------------------------------------------------------

def test_the_table_owner_uses_its_table_stage_for_everything(low_account, tmp_path):
    admin_sql(low_account, "GRANT CREATE TABLE ON SCHEMA pub.s TO ROLE low")
    low_account.sql("CREATE TABLE pub.s.mine (id INT, name VARCHAR)")
    source = tmp_path / "rows.csv"
    source.write_text("id,name\n1,one\n2,two\n")
    assert low_account.sql(f"PUT file://{source} @pub.s.%mine")[-1].rows[0][6] == "UPLOADED"
    assert [r[0] for r in low_account.sql("LIST @pub.s.%mine")[-1].rows] == ["rows.csv.gz"]
    loaded = low_account.sql("COPY INTO pub.s.mine FROM @pub.s.%mine FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert loaded[-1].rows[0][1:4] == ("LOADED", 2, 2)
    out = tmp_path / "back"
    assert low_account.sql(f"GET @pub.s.%mine file://{out}")[-1].rows[0][2] == "DOWNLOADED"
    assert low_account.sql("REMOVE @pub.s.%mine")[-1].rows == [("rows.csv.gz", "removed")]


def test_an_insert_holder_may_copy_a_table_stage_into_that_table_only(low_account, tmp_path):
    admin_stage = stages.resolve(stages.StageRef.parse("@pub.s.%sink"), low_account.admin, stages.WRITE)
    stage_files.store_stream(admin_stage, "admin.csv", [b"id,name\n5,five\n"])
    loaded = low_account.sql("COPY INTO pub.s.sink FROM @pub.s.%sink FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert loaded[-1].rows[0][:4] == ("admin.csv", "LOADED", 1, 1)
    assert sink_rows(low_account) == [(5, "five")]

    not_owner = "Insufficient privileges to operate on table stage 'SINK'"
    for text in ("LIST @pub.s.%sink", "REMOVE @pub.s.%sink", f"GET @pub.s.%sink file://{tmp_path}/out"):
        assert refused_as_reader(low_account, text) == not_owner
    admin_sql(low_account, "GRANT CREATE TABLE ON SCHEMA pub.s TO ROLE low")
    low_account.sql("CREATE TABLE pub.s.mine (id INT, name VARCHAR)")
    assert refused_as_reader(low_account, "COPY INTO pub.s.mine FROM @pub.s.%sink FILE_FORMAT = (TYPE = CSV "
                                          "SKIP_HEADER = 1)") == not_owner
    assert admin_sql(low_account, "SELECT COUNT(*) FROM pub.s.mine").rows == [(0,)]
    # A table the role may read but not load: its stage is neither listed nor copied from.
    assert refused_as_reader(low_account, "LIST @pub.s.%x") == "Insufficient privileges to operate on table stage 'X'"
    assert [f.relative for f in stage_files.list_files(admin_stage)] == ["admin.csv"]


# -- the user stage --------------------------------------------------------------------------------

def test_each_user_sees_only_its_own_user_stage(low_account, tmp_path):
    source = tmp_path / "low.csv"
    source.write_text("a\n")
    low_account.sql(f"PUT file://{source} @~/mine")
    admin_sql(low_account, f"PUT file://{source} @~/admins")
    assert [r[0] for r in low_account.sql("LIST @~")[-1].rows] == ["mine/low.csv.gz"]
    assert [r[0] for r in admin_sql(low_account, "LIST @~").rows] == ["admins/low.csv.gz"]
    # ACCOUNTADMIN is no way into another user's stage: @~ is always the session's own user's.
    other = Session(user=low_account.user, role="ACCOUNTADMIN")
    assert [r[0] for r in Executor(other).execute("LIST @~")[-1].rows] == ["mine/low.csv.gz"]
    assert low_account.sql("REMOVE @~")[-1].rows == [("mine/low.csv.gz", "removed")]
    assert [r[0] for r in admin_sql(low_account, "LIST @~").rows] == ["admins/low.csv.gz"]


def test_a_user_named_like_a_folder_reaches_no_other_users_stage(low_account, tmp_path):
    users = get_user_model().objects
    files_user, dot_user, dots_user = (users.create_user(username=n, password="pw") for n in ("files", ".", ".."))
    source = tmp_path / "private.csv"
    source.write_text(f"{SECRET}\n")
    Executor(Session(user=files_user, role="PUBLIC"), local_files=True).execute(f"PUT file://{source} @~")
    for user in (dot_user, dots_user):
        assert Executor(Session(user=user, role="PUBLIC")).execute("LIST @~")[-1].rows == []
    assert [r[0] for r in Executor(Session(user=files_user, role="PUBLIC")).execute("LIST @~")[-1].rows] == \
        ["private.csv.gz"]


def test_a_session_without_a_user_has_no_user_stage(low_account):
    with pytest.raises(UserError, match=r"^The user stage @~ belongs to a user, and this session has none\.$"):
        Executor(Session(user=None, role="ACCOUNTADMIN")).execute("LIST @~")


def test_get_runs_from_the_command_line_only(low_account, tmp_path):
    executor = Executor(low_account.session())  # as every entry point but manage.py sql makes one
    with pytest.raises(UserError, match=r"GET writes files on the machine that runs it"):
        executor.execute(f"GET @~ file://{tmp_path}/out")
