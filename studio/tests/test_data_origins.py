"""The Data page says where a database comes from when it is not an ordinary one: a replica of another
account's primary (its last refresh, schedule and last error), a primary replicated to other accounts, a
database from a share; replicas and shared databases are marked read-only. A replica's owner gets
"Refresh now", which runs ALTER DATABASE … REFRESH's service: a role that does not own the replica is
refused by it, and a primary that cannot be reached leaves the replica unchanged and says so."""
import datetime
import html
import re

import pytest
from django.test import Client
from django.utils import timezone

from access.bootstrap import bootstrap
from catalog import accountdata
from organization.models import Account
from replication.models import ReplicatedDatabase
from sharing.models import ImportedDatabase
from tests.support.cortex import admin_session, sql_value

URL = "/data/"
REFRESH = "/data/databases/SUPPORT/refresh"
PASSWORD = "pw-for-tests"
KEY = "a-key-both-deployments-registered-for-each-other"
REFRESHED = datetime.datetime(2025, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)


@pytest.fixture
def account(db, tmp_path, settings):
    # DuckDB files and the refreshes' locks outlive the test's database rollback.
    settings.DUCKDB_DIR, settings.STAGE_DIR, settings.DATA_DIR = tmp_path / "duckdb", tmp_path / "stages", tmp_path
    settings.MODEL_STORE, settings.TIME_ZONE = tmp_path / "models", "UTC"
    bootstrap(password=PASSWORD, demo=False)
    # Neither answers: a closed port.
    provider = Account.objects.create(organization="STUDIO_ORG", name="PROVIDER", url="http://127.0.0.1:1/", key=KEY)
    Account.objects.create(organization="STUDIO_ORG", name="CONSUMER", url="http://127.0.0.1:1/", key=KEY)
    for statement in ("CREATE ROLE replica_owner", "CREATE ROLE reader",
                      f"CREATE USER olga PASSWORD = '{PASSWORD}' DEFAULT_ROLE = replica_owner",
                      "GRANT ROLE replica_owner TO USER olga",
                      f"CREATE USER rita PASSWORD = '{PASSWORD}' DEFAULT_ROLE = reader",
                      "GRANT ROLE reader TO USER rita"):
        sql_value(admin_session(), statement)
    # What CREATE DATABASE … AS REPLICA OF and a first refresh leave, without a primary to ask.
    support = accountdata.create_database("SUPPORT", "REPLICA_OWNER")
    ReplicatedDatabase.objects.create(database=support, is_primary=False, primary_account="STUDIO_ORG.PROVIDER",
                                      primary_database="SUPPORT", refresh_interval_minutes=10,
                                      last_refreshed_on=REFRESHED)
    ml = accountdata.create_database("ML")
    ReplicatedDatabase.objects.create(database=ml, is_primary=True, allowed_accounts=["STUDIO_ORG.CONSUMER"])
    shared = accountdata.create_database("SHARED_ML")
    ImportedDatabase.objects.create(database=shared, provider=provider, share_name="TICKETS_SHARE")
    accountdata.create_database("PLAIN")
    for statement in ("GRANT USAGE ON DATABASE support TO ROLE reader",
                      "GRANT IMPORTED PRIVILEGES ON DATABASE shared_ml TO ROLE reader"):
        sql_value(admin_session(), statement)


def client_for(username: str) -> Client:
    client = Client()
    client.login(username=username, password=PASSWORD)
    return client


def text(response) -> str:
    """The page as its reader sees it: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


def section(page: str, database: str) -> str:
    """What the page says about one database: from its name to the next database's."""
    start = page.index(f" {database} owner ")
    following = [page.index(f" {name} owner ", start + 1) for name in ("ML", "PLAIN", "SHARED_ML", "SUPPORT")
                 if f" {name} owner " in page[start + 1:]]
    return page[start:min(following, default=len(page))]


def test_each_kind_of_database_says_where_it_comes_from(account):
    page = text(client_for("admin").get(URL))
    assert "Replica of STUDIO_ORG.PROVIDER.SUPPORT · last refreshed 2025-03-04 05:06 · schedule 10 MINUTE" in page
    assert "Primary, replicated to STUDIO_ORG.CONSUMER" in page
    assert "From share STUDIO_ORG.PROVIDER.TICKETS_SHARE" in page
    # An ordinary database says nothing of the kind.
    plain = section(page, "PLAIN")
    assert not any(word in plain for word in ("Replica", "Primary", "share", "read-only"))


def test_replicas_and_databases_from_a_share_are_marked_read_only(account):
    page = text(client_for("admin").get(URL))
    assert "read-only" in section(page, "SUPPORT") and "read-only" in section(page, "SHARED_ML")
    assert "read-only" not in section(page, "ML")
    # Nor does the upload form offer them: a load there would only be refused.
    form = client_for("admin").get(URL).content.decode()
    assert "<option>ML.PUBLIC</option>" in form and "<option>PLAIN.PUBLIC</option>" in form
    assert "SUPPORT.PUBLIC</option>" not in form and "SHARED_ML.PUBLIC</option>" not in form


def test_a_failed_refresh_shows_its_error_and_a_replica_never_refreshed_says_so(account):
    ReplicatedDatabase.objects.filter(database__name="SUPPORT").update(
        last_refreshed_on=None, refresh_interval_minutes=None,
        last_refresh_error="Account STUDIO_ORG.PROVIDER is unreachable at http://127.0.0.1:1/ (refused).")
    response = client_for("admin").get(URL)
    assert re.search(r'<p class="error">Last refresh failed: Account STUDIO_ORG.PROVIDER is unreachable',
                     response.content.decode())
    assert "Replica of STUDIO_ORG.PROVIDER.SUPPORT · never refreshed · no schedule" in text(response)


def test_a_promoted_primary_whose_former_primary_was_not_told_says_so(account):
    ReplicatedDatabase.objects.filter(database__name="ML").update(allowed_accounts=["STUDIO_ORG.PROVIDER"],
                                                                  demotion_pending="STUDIO_ORG.PROVIDER.ML")
    ml = section(text(client_for("admin").get(URL)), "ML")
    assert "Primary, replicated to STUDIO_ORG.PROVIDER" in ml
    assert "its former primary, STUDIO_ORG.PROVIDER.ML, has not been told yet" in ml


def test_only_what_the_role_may_see_is_described(account):
    page = text(client_for("rita").get(URL))
    assert "Replica of STUDIO_ORG.PROVIDER.SUPPORT" in page and "From share STUDIO_ORG.PROVIDER.TICKETS_SHARE" in page
    # ML is not the reader's: neither it nor where it replicates to is on its page.
    assert "ML owner" not in page.replace("SHARED_ML owner", "") and "STUDIO_ORG.CONSUMER" not in page


def test_refresh_now_is_offered_to_the_replicas_owner_only(account):
    def offered(username: str) -> bool:
        return 'action="/data/databases/SUPPORT/refresh"' in client_for(username).get(URL).content.decode()

    assert offered("olga") and offered("admin")  # ACCOUNTADMIN may refresh any replica, as in SQL
    assert not offered("rita")
    assert "Refresh now" not in text(client_for("rita").get(URL))


def test_a_role_that_does_not_own_the_replica_is_refused_and_nothing_changes(account):
    response = client_for("rita").post(REFRESH, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert re.search(r'<p class="message error">Insufficient privileges to operate on database &#x27;SUPPORT&#x27;',
                     response.content.decode())
    replica = ReplicatedDatabase.objects.get(database__name="SUPPORT")
    assert (replica.last_refresh_started_on, replica.last_refreshed_on, replica.last_refresh_error) == (
        None, REFRESHED, "")


def test_a_role_that_cannot_use_the_replica_hears_that_it_does_not_exist(account):
    sql_value(admin_session(), "REVOKE USAGE ON DATABASE support FROM ROLE reader")
    page = text(client_for("rita").post(REFRESH, follow=True))
    assert "Database 'SUPPORT' does not exist or not authorized." in page and "secondary" not in page
    assert ReplicatedDatabase.objects.get(database__name="SUPPORT").last_refresh_started_on is None


def test_the_owners_refresh_from_an_unreachable_primary_leaves_the_replica_unchanged_and_says_why(account):
    before = timezone.now()
    response = client_for("olga").post(REFRESH, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    page = text(response)
    assert ("Refresh of database SUPPORT from STUDIO_ORG.PROVIDER.SUPPORT failed; the replica is unchanged. "
            "Account STUDIO_ORG.PROVIDER is unreachable") in page
    assert re.search(r'<p class="message error">Refresh of database SUPPORT', response.content.decode())
    # The page keeps showing the last good refresh, and now the error under it.
    assert "last refreshed 2025-03-04 05:06" in page
    assert "Last refresh failed: Account STUDIO_ORG.PROVIDER is unreachable" in page
    replica = ReplicatedDatabase.objects.get(database__name="SUPPORT")
    assert replica.last_refreshed_on == REFRESHED and replica.last_refresh_started_on >= before


def test_refreshing_needs_a_post_a_login_and_the_csrf_token(account):
    assert client_for("olga").get(REFRESH).status_code == 405
    assert Client().post(REFRESH)["Location"].startswith("/accounts/login/")
    client = Client(enforce_csrf_checks=True)
    client.login(username="olga", password=PASSWORD)
    assert client.post(REFRESH).status_code == 403
    assert ReplicatedDatabase.objects.get(database__name="SUPPORT").last_refresh_started_on is None
