"""A shared fine-tuned model used by another account: CREATE DATABASE … FROM SHARE, IMPORTED PRIVILEGES,
and COMPLETE answering with the provider's adapter on this account's own inference server (the stack's
real server process), fetched from the provider's web app (its own process) and verified by checksum.
What the consumer cannot do, and what stops it, are asserted by their messages."""
from __future__ import annotations

import uuid

import pytest

from access.session import Session
from catalog import accountdata
from errors import UserError
from inference.tests.test_tgi import make_adapter
from models_registry import registry
from models_registry.models import FineTunedModel
from organization.models import Account
from sharing.models import Share
from sqlengine.executor import Executor
from tests.support.cortex import admin_session
from tests.support.federation import other_web_app

KEY = "a-key-both-deployments-registered-for-each-other"
PROMPT = "Ticket: my parcel never arrived."


def sql(session: Session, text: str):
    return Executor(session).execute(text)[-1]


def complete(session: Session, model: str) -> str:
    return sql(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('{model}', '{PROMPT}')").rows[0][0]


@pytest.fixture
def shared(stack, tiny_llama_dir, tmp_path):
    suffix = uuid.uuid4().hex[:6].upper()
    provider_db, consumer_db = f"PROV_{suffix}", f"CONS_{suffix}"
    accountdata.create_database(provider_db)
    adapter = make_adapter(tiny_llama_dir, registry.adapters_dir() / provider_db.lower(), f"{provider_db}.PUBLIC.TICKETS",
                           seed=7)
    FineTunedModel.objects.create(schema=accountdata.get_schema(provider_db, "PUBLIC"), name="TICKETS",
                                  base_model="tiny-llama", owner_role="ACCOUNTADMIN", adapter_path=str(adapter))
    admin = admin_session()
    with other_web_app("PROVIDER") as url:
        Account.objects.create(organization="STUDIO_ORG", name="PROVIDER", url=url + "/", key=KEY)
        Account.objects.create(organization="STUDIO_ORG", name="STUDIO", url="http://127.0.0.1:1/", key=KEY)
        for statement in ("CREATE OR REPLACE SHARE tickets_share",
                          f"GRANT USAGE ON DATABASE {provider_db} TO SHARE tickets_share",
                          f"GRANT USAGE ON SCHEMA {provider_db}.public TO SHARE tickets_share",
                          f"GRANT USAGE ON MODEL {provider_db}.public.tickets TO SHARE tickets_share",
                          "ALTER SHARE tickets_share ADD ACCOUNTS = studio_org.studio"):
            sql(admin, statement)
        yield admin, provider_db, consumer_db
    Share.objects.all().delete()
    for name in (consumer_db, provider_db):
        if accountdata.Database.objects.filter(name=name).exists():
            accountdata.drop_database(name)
    Account.objects.all().delete()


def test_a_consumer_role_with_imported_privileges_completes_with_the_providers_adapter(shared):
    admin, provider_db, consumer_db = shared
    assert sql(admin, f"CREATE DATABASE {consumer_db} FROM SHARE studio_org.provider.tickets_share").rows == [
        (f"Database {consumer_db} successfully created.",)]
    imported = FineTunedModel.objects.get(schema__database__name=consumer_db, name="TICKETS")
    assert imported.base_model == "tiny-llama" and imported.metrics["shared_from"] == "STUDIO_ORG.PROVIDER.TICKETS_SHARE"

    answer = complete(admin, f"{consumer_db}.public.tickets")
    assert answer == complete(admin, f"{provider_db}.public.tickets"), "the provider's adapter, token for token"
    assert answer != complete(admin, "tiny-llama")
    imported.refresh_from_db()
    assert imported.adapter_dir.name.startswith(f"shared-{imported.pk}-")
    assert (imported.adapter_dir / "adapter_model.safetensors").exists()

    sql(admin, "CREATE ROLE IF NOT EXISTS consumer_analyst")
    sql(admin, "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE consumer_analyst")
    analyst = Session(user=None, role="CONSUMER_ANALYST")
    with pytest.raises(UserError, match="Insufficient privileges|does not exist or not authorized"):
        complete(analyst, f"{consumer_db}.public.tickets")
    with pytest.raises(UserError, match="Granting individual privileges on imported database is not allowed"):
        sql(admin, f"GRANT USAGE ON MODEL {consumer_db}.public.tickets TO ROLE consumer_analyst")
    with pytest.raises(UserError, match="IMPORTED PRIVILEGES can only be granted on a database created from a share"):
        sql(admin, f"GRANT IMPORTED PRIVILEGES ON DATABASE {provider_db} TO ROLE consumer_analyst")
    sql(admin, f"GRANT IMPORTED PRIVILEGES ON DATABASE {consumer_db} TO ROLE consumer_analyst")
    assert complete(analyst, f"{consumer_db}.public.tickets") == answer


def test_the_consumer_cannot_write_reshare_or_read_the_providers_tables(shared):
    admin, provider_db, consumer_db = shared
    sql(admin, f"CREATE DATABASE {consumer_db} FROM SHARE studio_org.provider.tickets_share")
    with pytest.raises(UserError, match="was created from a share and is read-only"):
        sql(admin, f"CREATE TABLE {consumer_db}.public.copied (prompt TEXT)")
    with pytest.raises(UserError, match="was created from a share and is read-only"):
        sql(admin, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{consumer_db}.public.retrained', 'tiny-llama', "
                   "'SELECT ''a'' AS prompt, ''b'' AS completion')")
    sql(admin, "CREATE SHARE IF NOT EXISTS reshare")
    with pytest.raises(UserError, match="cannot be shared again"):
        sql(admin, f"GRANT USAGE ON DATABASE {consumer_db} TO SHARE reshare")
    with pytest.raises(UserError, match="does not exist or not authorized"):
        sql(admin, f"SELECT * FROM {consumer_db}.public.training_rows")


def test_revoking_removing_dropping_and_an_unreachable_provider_stop_the_next_complete(shared):
    admin, provider_db, consumer_db = shared
    sql(admin, f"CREATE DATABASE {consumer_db} FROM SHARE studio_org.provider.tickets_share")
    model = f"{consumer_db}.public.tickets"
    answer = complete(admin, model)
    sql(admin, f"REVOKE USAGE ON MODEL {provider_db}.public.tickets FROM SHARE tickets_share")
    with pytest.raises(UserError, match=f"Model '{consumer_db}.PUBLIC.TICKETS' does not exist or not authorized"):
        complete(admin, model)
    sql(admin, f"GRANT USAGE ON MODEL {provider_db}.public.tickets TO SHARE tickets_share")
    assert complete(admin, model) == answer
    sql(admin, "ALTER SHARE tickets_share REMOVE ACCOUNTS = studio_org.studio")
    with pytest.raises(UserError, match="Shared database is no longer available for use"):
        complete(admin, model)
    sql(admin, "ALTER SHARE tickets_share ADD ACCOUNTS = studio_org.studio")
    assert complete(admin, model) == answer
    Account.objects.filter(name="PROVIDER").update(url="http://127.0.0.1:9/")  # the provider went away
    with pytest.raises(UserError, match="Account STUDIO_ORG.PROVIDER is unreachable .*Nothing was answered in its place"):
        complete(admin, model)
    sql(admin, "DROP SHARE tickets_share")


def test_only_a_registered_provider_and_a_share_naming_this_account_can_be_imported(shared):
    admin, provider_db, consumer_db = shared
    with pytest.raises(UserError, match="is not registered in this deployment"):
        sql(admin, f"CREATE DATABASE {consumer_db} FROM SHARE studio_org.stranger.tickets_share")
    with pytest.raises(UserError, match="Shared database is no longer available"):
        sql(admin, f"CREATE DATABASE {consumer_db} FROM SHARE studio_org.provider.no_such_share")
    with pytest.raises(UserError, match="importing a share is ACCOUNTADMIN's"):
        sql(Session(user=None, role="SYSADMIN"), f"CREATE DATABASE {consumer_db} FROM SHARE studio_org.provider.tickets_share")
    assert not accountdata.Database.objects.filter(name=consumer_db).exists()
