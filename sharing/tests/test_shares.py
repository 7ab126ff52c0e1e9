"""The provider's side of sharing a fine-tuned model: who may create a share and put what into it, in
which order, and to which accounts (only registered ones)."""
from __future__ import annotations

import pytest

from access.session import Session
from catalog import accountdata
from errors import UserError
from models_registry.models import FineTunedModel
from organization.models import Account
from sharing.models import Share
from sqlengine.executor import Executor

pytestmark = pytest.mark.django_db
KEY = "a-key-both-deployments-registered-for-each-other"


def sql(text: str, role: str = "ACCOUNTADMIN"):
    return Executor(Session(user=None, role=role, database="ML", schema="PUBLIC")).execute(text)[-1]


@pytest.fixture
def model():
    accountdata.create_database("ML")
    accountdata.create_database("OTHER")
    schema = accountdata.get_schema("ML", "PUBLIC")
    Account.objects.create(organization="STUDIO_ORG", name="ACCT2", url="http://127.0.0.1:1/", key=KEY)
    return FineTunedModel.objects.create(schema=schema, name="TICKETS", base_model="smollm2-135m",
                                         owner_role="ACCOUNTADMIN", adapter_path="/nonexistent")


def test_a_model_is_shared_with_its_database_and_schema_to_a_registered_account(model):
    assert sql("CREATE SHARE models_share COMMENT = 'tickets model'").rows == [("Share MODELS_SHARE successfully created.",)]
    sql("GRANT USAGE ON DATABASE ml TO SHARE models_share")
    sql("GRANT USAGE ON SCHEMA ml.public TO SHARE models_share")
    sql("GRANT USAGE ON MODEL ml.public.tickets TO SHARE models_share")
    sql("ALTER SHARE models_share ADD ACCOUNTS = studio_org.acct2")
    shown = sql("SHOW SHARES")
    assert shown.columns[:6] == ["created_on", "kind", "owner_account", "name", "database_name", "to"]
    assert [r[1:8] for r in shown.rows] == [("OUTBOUND", "STUDIO_ORG.STUDIO", "MODELS_SHARE", "ML", "STUDIO_ORG.ACCT2",
                                             "ACCOUNTADMIN", "tickets model")]
    described = sql("DESCRIBE SHARE models_share")
    assert [r[:2] for r in described.rows] == [("DATABASE", "ML"), ("SCHEMA", "ML.PUBLIC"), ("MODEL", "ML.PUBLIC.TICKETS")]
    sql("ALTER SHARE models_share REMOVE ACCOUNTS = acct2")
    assert sql("SHOW SHARES").rows[0][5] == ""


def test_objects_go_into_a_share_database_first(model):
    sql("CREATE SHARE s")
    with pytest.raises(UserError, match="Grant USAGE on database ML to share S before granting objects inside it"):
        sql("GRANT USAGE ON MODEL ml.public.tickets TO SHARE s")
    sql("GRANT USAGE ON DATABASE ml TO SHARE s")
    with pytest.raises(UserError, match="Grant USAGE on schema ML.PUBLIC to share S before granting models"):
        sql("GRANT USAGE ON MODEL tickets TO SHARE s")
    assert [r[1] for r in sql("DESCRIBE SHARE s").rows] == ["ML"]


@pytest.mark.parametrize("statement, message", [
    ("GRANT SELECT ON TABLE ml.public.t TO SHARE s", "a share takes USAGE on a DATABASE, a SCHEMA or a MODEL"),
    ("GRANT USAGE ON MODEL ml.public.nope TO SHARE s", "Model 'ML.PUBLIC.NOPE' does not exist or not authorized"),
    ("GRANT USAGE ON DATABASE ml TO SHARE nope", "Share 'NOPE' does not exist or not authorized"),
    ("ALTER SHARE s ADD ACCOUNTS = studio_org.stranger", "is not registered in this deployment"),
    ("ALTER SHARE s ADD ACCOUNTS = otherorg.acct2", "is not in this organization"),
    ("CREATE SHARE s", "already exists"),
])
def test_what_cannot_go_into_a_share_says_why(model, statement, message):
    sql("CREATE SHARE s")
    with pytest.raises(UserError, match=message):
        sql(statement)
    assert not Share.objects.get(name="S").objects_granted.exists()
    assert not Share.objects.get(name="S").consumers.exists()


def test_only_accountadmin_creates_shares_and_other_roles_see_none(model):
    sql("CREATE ROLE analyst")
    with pytest.raises(UserError, match="CREATE SHARE is ACCOUNTADMIN's"):
        sql("CREATE SHARE mine", role="ANALYST")
    sql("CREATE SHARE s")
    assert sql("SHOW SHARES", role="ANALYST").rows == []
    for statement in ("GRANT USAGE ON DATABASE ml TO SHARE s", "ALTER SHARE s ADD ACCOUNTS = acct2", "DROP SHARE s",
                      "DESCRIBE SHARE s"):
        with pytest.raises(UserError, match="Share 'S' does not exist or not authorized"):
            sql(statement, role="ANALYST")
    assert Share.objects.filter(name="S").exists()


def test_a_role_shares_only_what_it_owns(model):
    sql("CREATE ROLE analyst")
    sql("CREATE SHARE s")
    sql("GRANT USAGE ON DATABASE ml TO SHARE s")
    # The model belongs to ACCOUNTADMIN: a role that neither owns it nor the share cannot put it in.
    Share.objects.filter(name="S").update(owner_role="ANALYST")
    with pytest.raises(UserError, match="Insufficient privileges to operate on schema|Insufficient privileges"):
        sql("GRANT USAGE ON SCHEMA ml.public TO SHARE s", role="ANALYST")


def test_revoking_the_database_takes_everything_inside_it_out(model):
    sql("CREATE SHARE s")
    for statement in ("GRANT USAGE ON DATABASE ml TO SHARE s", "GRANT USAGE ON SCHEMA ml.public TO SHARE s",
                      "GRANT USAGE ON MODEL ml.public.tickets TO SHARE s"):
        sql(statement)
    sql("REVOKE USAGE ON MODEL ml.public.tickets FROM SHARE s")
    assert [r[0] for r in sql("DESCRIBE SHARE s").rows] == ["DATABASE", "SCHEMA"]
    sql("GRANT USAGE ON MODEL ml.public.tickets TO SHARE s")
    sql("REVOKE USAGE ON DATABASE ml FROM SHARE s")
    assert sql("DESCRIBE SHARE s").rows == []
    assert sql("DROP SHARE s").rows == [("S successfully dropped.",)]
    assert sql("SHOW SHARES").rows == []
