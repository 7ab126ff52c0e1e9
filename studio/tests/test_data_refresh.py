"""The Data page's "Refresh now" against a primary that answers: account PROVIDER's web app, in its own
process (tests/support/federation.py), replicates its database to this account; the replica's owner
refreshes it from the page and is shown the refresh's summary, and the replica then holds the table."""
from __future__ import annotations

import html
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from access.session import Session
from catalog import accountdata
from catalog.models import Database
from organization.models import Account
from replication.models import ReplicatedDatabase
from sqlengine.executor import Executor
from tests.support.federation import other_web_app

KEY = "a-key-both-deployments-registered-for-each-other"


def sql(text: str):
    return Executor(Session(user=None, role="ACCOUNTADMIN")).execute(text)[-1]


@pytest.fixture
def replica(live_db):
    """PRIM_x, a primary of account PROVIDER replicating to this account (STUDIO), and REPL_x, this
    account's replica of it, owned by role OWNER_x of user olga_x; both accounts registered each other.
    Rows are committed (the provider's process reads them), so names are unique and removed after."""
    suffix = uuid.uuid4().hex[:8].upper()
    primary, name, role, user = f"PRIM_{suffix}", f"REPL_{suffix}", f"OWNER_{suffix}", f"olga_{suffix}"
    try:
        accountdata.create_database(primary)
        sql(f"CREATE TABLE {primary}.public.tickets (id INT, subject VARCHAR)")
        sql(f"INSERT INTO {primary}.public.tickets VALUES (1, 'parcel lost'), (2, 'charged twice')")
        ReplicatedDatabase.objects.create(database=Database.objects.get(name=primary), is_primary=True,
                                          allowed_accounts=["STUDIO_ORG.STUDIO"])
        sql(f"CREATE ROLE {role}")
        sql(f"CREATE USER {user} PASSWORD = 'unused-{suffix}' DEFAULT_ROLE = {role}")
        sql(f"GRANT ROLE {role} TO USER {user}")
        ReplicatedDatabase.objects.create(database=accountdata.create_database(name, role), is_primary=False,
                                          primary_account="STUDIO_ORG.PROVIDER", primary_database=primary)
        client = Client()
        client.force_login(get_user_model().objects.get(username__iexact=user))
        with other_web_app("PROVIDER") as url:
            Account.objects.create(organization="STUDIO_ORG", name="PROVIDER", url=url + "/", key=KEY)
            Account.objects.create(organization="STUDIO_ORG", name="STUDIO", url="http://127.0.0.1:1/", key=KEY)
            yield client, primary, name
    finally:
        Account.objects.filter(organization="STUDIO_ORG", name__in=["PROVIDER", "STUDIO"]).delete()
        for database in (name, primary):
            if Database.objects.filter(name=database).exists():
                accountdata.drop_database(database)
        sql(f"DROP USER IF EXISTS {user}")
        sql(f"DROP ROLE IF EXISTS {role}")


def test_the_owner_refreshes_from_the_page_and_sees_the_summary(replica):
    client, primary, name = replica
    page = client.get("/data/").content.decode()
    assert f'action="/data/databases/{name}/refresh"' in page
    assert f"Replica of STUDIO_ORG.PROVIDER.{primary} · never refreshed · no schedule" in html.unescape(page)

    response = client.post(f"/data/databases/{name}/refresh", follow=True)
    assert response.redirect_chain == [("/data/", 302)]
    page = html.unescape(response.content.decode())
    assert re.search(rf'<p class="message success">Database {name} refreshed from STUDIO_ORG.PROVIDER.{primary}: '
                     r"1 table\(s\) copied, 0 unchanged; 0 model\(s\) copied, 0 unchanged; "
                     r"[\d.]+ (bytes|KB) transferred\.", page), page
    assert f"Replica of STUDIO_ORG.PROVIDER.{primary} · last refreshed " in page and "never refreshed" not in page
    assert sql(f"SELECT id, subject FROM {name}.public.tickets ORDER BY id").rows == [
        (1, "parcel lost"), (2, "charged twice")]
