"""Each privilege FINETUNE, COMPLETE, DESCRIBE, CANCEL, SHOW and DROP MODEL need, taken away in turn."""
from __future__ import annotations

import pytest

from access.session import Session
from access.tests.conftest import ANALYST_GRANTS, finetune_sql, make_model, sql
from errors import UserError
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel

CORTEX_USER_REFUSAL = ("Insufficient privileges to operate on function '{f}': the SNOWFLAKE.CORTEX_USER database "
                       "role is required; ask an ACCOUNTADMIN to run GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO "
                       "ROLE ANALYST.")
FINETUNE_REFUSALS = [
    CORTEX_USER_REFUSAL.format(f="FINETUNE"),
    "Insufficient privileges to operate on warehouse 'COMPUTE_WH'",
    "Insufficient privileges to operate on database 'MDB'",
    "Insufficient privileges to operate on schema 'PUBLIC'",
    # Reading a table the role may not read is refused as Snowflake does, without saying it exists.
    "SQL compilation error: the training query failed: Object 'MDB.PUBLIC.TRAINING' does not exist or not "
    "authorized.",
    "Insufficient privileges to operate on schema 'PUBLIC'",
]


def revoke_statement(grant: str) -> str:
    return grant.replace("GRANT ", "REVOKE ", 1).replace(" TO ROLE ", " FROM ROLE ")


def refusal(session: Session, statement: str) -> UserError:
    with pytest.raises(UserError) as caught:
        sql(session, statement)
    assert caught.value.refused
    assert (caught.value.code, caught.value.sqlstate) in ((3001, "42501"), (2003, "42S02"))
    return caught.value


@pytest.mark.parametrize("grant, message", list(zip(ANALYST_GRANTS, FINETUNE_REFUSALS)))
def test_finetune_create_is_refused_without_each_privilege_and_allowed_once_granted_back(
        admin, analyst, grant, message):
    sql(admin, revoke_statement(grant))
    assert refusal(analyst, finetune_sql()).message == message
    assert not FineTuneJob.objects.exists()

    sql(admin, grant)
    job_id = sql(analyst, finetune_sql()).rows[0][0]
    job = FineTuneJob.objects.get(pk=job_id)
    assert (job.status, job.role, job.requested_name) == (FineTuneJob.Status.PENDING, "ANALYST", "TUNED_BY_ANA")


COMPLETE_GRANTS = [
    ("GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE analyst", CORTEX_USER_REFUSAL.format(f="COMPLETE")),
    ("GRANT USAGE ON DATABASE mdb TO ROLE analyst", "Insufficient privileges to operate on database 'MDB'"),
    ("GRANT USAGE ON SCHEMA mdb.public TO ROLE analyst", "Insufficient privileges to operate on schema 'PUBLIC'"),
    ("GRANT USAGE ON MODEL mdb.public.support_model TO ROLE analyst",
     "Insufficient privileges to operate on model 'SUPPORT_MODEL'"),
]
COMPLETE = "SELECT SNOWFLAKE.CORTEX.COMPLETE('mdb.public.support_model', 'Where is my invoice?')"


@pytest.mark.parametrize("grant, message", COMPLETE_GRANTS)
def test_complete_on_a_fine_tuned_model_needs_cortex_user_and_usage_on_model_schema_and_database(
        admin, analyst, tmp_path, grant, message):
    make_model("SUPPORT_MODEL", "ACCOUNTADMIN", tmp_path)
    sql(admin, "GRANT USAGE ON MODEL mdb.public.support_model TO ROLE analyst")
    sql(admin, revoke_statement(grant))
    assert refusal(analyst, COMPLETE).message == message

    sql(admin, grant)
    # Past every privilege check, the request reaches the inference client; no server runs in this
    # test, so the client's own error is what proves the privileges passed.
    with pytest.raises(UserError, match=r"^No inference server serves base model 'tiny-llama'"):
        sql(analyst, COMPLETE)


def test_complete_on_a_model_the_role_owns_needs_no_usage_grant(admin, analyst, tmp_path):
    make_model("ANAS_MODEL", "ANALYST", tmp_path)
    with pytest.raises(UserError, match=r"^No inference server serves base model"):
        sql(analyst, "SELECT SNOWFLAKE.CORTEX.COMPLETE('anas_model', 'hi')")


def _admins_job(admin) -> str:
    return sql(admin, finetune_sql("mdb.public.admins_model")).rows[0][0]


def test_describe_of_another_roles_job_is_refused_like_a_missing_job(admin, analyst):
    other = _admins_job(admin)
    with pytest.raises(UserError) as caught:
        sql(analyst, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{other}')")
    assert caught.value.message == f"Fine-tuning job '{other}' does not exist or not authorized."
    own = sql(analyst, finetune_sql()).rows[0][0]
    assert sql(analyst, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{own}')").rows[0][0]["id"] == own
    assert sql(admin, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{own}')").rows[0][0]["id"] == own


def test_cancel_of_another_roles_job_is_refused_and_leaves_it_pending(admin, analyst):
    other = _admins_job(admin)
    with pytest.raises(UserError) as caught:
        sql(analyst, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{other}')")
    assert caught.value.message == f"Fine-tuning job '{other}' does not exist or not authorized."
    assert FineTuneJob.objects.get(pk=other).status == FineTuneJob.Status.PENDING
    own = sql(analyst, finetune_sql()).rows[0][0]
    assert sql(analyst, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{own}')").rows[0][0] == \
        f"Canceled Cortex Fine-tuning job: {own}"
    assert FineTuneJob.objects.get(pk=own).status == FineTuneJob.Status.CANCELLED


def test_show_lists_only_the_jobs_of_the_sessions_roles(admin, analyst):
    other = _admins_job(admin)
    own = sql(analyst, finetune_sql()).rows[0][0]
    assert [j["id"] for j in sql(analyst, "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')").rows[0][0]] == [own]
    assert {j["id"] for j in sql(admin, "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')").rows[0][0]} == {own, other}


def test_show_without_cortex_user_is_refused(admin, analyst):
    sql(admin, "REVOKE DATABASE ROLE SNOWFLAKE.CORTEX_USER FROM ROLE analyst")
    assert refusal(analyst, "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')").message == \
        CORTEX_USER_REFUSAL.format(f="FINETUNE")


def test_drop_model_needs_ownership_not_usage(admin, analyst, tmp_path):
    make_model("SUPPORT_MODEL", "ACCOUNTADMIN", tmp_path)
    make_model("ANAS_MODEL", "ANALYST", tmp_path)
    sql(admin, "GRANT USAGE ON MODEL mdb.public.support_model TO ROLE analyst")
    assert refusal(analyst, "DROP MODEL support_model").message == \
        "Insufficient privileges to operate on model 'SUPPORT_MODEL'"
    assert FineTunedModel.objects.filter(name="SUPPORT_MODEL").exists()
    assert sql(analyst, "DROP MODEL anas_model").rows == [("ANAS_MODEL successfully dropped.",)]
    assert not FineTunedModel.objects.filter(name="ANAS_MODEL").exists()
