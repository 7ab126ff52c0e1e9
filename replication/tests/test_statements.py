"""Replication's statements and the primary's side of the federation API, in one deployment: who may
enable, create, refresh, schedule and promote; what a secondary refuses and to whom it says why; what the
manifest lists and which files it serves. The copy between two real deployments is in
test_two_deployments.py."""
from __future__ import annotations

import hashlib
import time

import pytest
from django.test import Client

from access.session import Session
from catalog import accountdata
from catalog.models import Database
from errors import UserError
from models_registry.models import FineTunedModel
from organization import signing
from organization.models import Account
from organization.names import current
from replication import promotion, snapshot
from replication.models import ReplicatedDatabase
from sqlengine.executor import Executor

pytestmark = pytest.mark.django_db
KEY = "a-key-both-deployments-registered-for-each-other"


def now() -> int:
    return int(time.time())


def sql(text: str, role: str = "ACCOUNTADMIN"):
    return Executor(Session(user=None, role=role, database="SALES", schema="PUBLIC")).execute(text)[-1]


def message(text: str, role: str = "ACCOUNTADMIN") -> str:
    with pytest.raises(UserError) as refused:
        sql(text, role)
    return refused.value.message


@pytest.fixture
def accounts(settings, tmp_path):
    settings.DUCKDB_DIR, settings.DATA_DIR = tmp_path / "duckdb", tmp_path
    for name in ("ACCT2", "ACCT3"):
        Account.objects.create(organization="STUDIO_ORG", name=name, url="http://127.0.0.1:1/", key=KEY)
    accountdata.create_database("SALES")
    sql("CREATE TABLE sales.public.orders (id INT, item VARCHAR)")
    sql("INSERT INTO sales.public.orders VALUES (1, 'book'), (2, 'lamp')")
    return Account.objects.get(name="ACCT2")


@pytest.fixture
def secondary(accounts):
    """What CREATE DATABASE REPLICA AS REPLICA OF makes, without asking a primary (that is the two-deployment
    test's): database MIRROR, a secondary of STUDIO_ORG.ACCT2.SALES, with a table its first refresh copied."""
    database = accountdata.create_database("MIRROR")
    ReplicatedDatabase.objects.create(database=database, is_primary=False, primary_account="STUDIO_ORG.ACCT2",
                                      primary_database="SALES")
    con = accountdata._open_file("MIRROR")
    con.execute('CREATE TABLE "PUBLIC"."ORDERS" AS SELECT 1 AS "ID"')
    con.close()
    return database


def test_only_accountadmin_enables_replication_and_only_to_registered_accounts(accounts):
    sql("CREATE ROLE IF NOT EXISTS builder")
    assert "only the ACCOUNTADMIN role can" in message(
        "ALTER DATABASE sales ENABLE REPLICATION TO ACCOUNTS studio_org.acct2", role="SYSADMIN")
    assert "does not exist or is not registered in this deployment" in message(
        "ALTER DATABASE sales ENABLE REPLICATION TO ACCOUNTS studio_org.nowhere")
    assert "is not in this organization" in message("ALTER DATABASE sales ENABLE REPLICATION TO ACCOUNTS other_org.acct2")
    sql("ALTER DATABASE sales ENABLE REPLICATION TO ACCOUNTS studio_org.acct2, acct3")
    result = sql("SHOW REPLICATION DATABASES")
    row = dict(zip(result.columns, result.rows[0]))
    assert (row["name"], row["is_primary"], row["primary"]) == ("SALES", True, f"{current()}.SALES")
    assert row["replication_allowed_to_accounts"] == "STUDIO_ORG.ACCT2, STUDIO_ORG.ACCT3"
    sql("ALTER DATABASE sales DISABLE REPLICATION TO ACCOUNTS studio_org.acct3")
    assert ReplicatedDatabase.objects.get(database__name="SALES").allowed_accounts == ["STUDIO_ORG.ACCT2"]
    sql("ALTER DATABASE sales DISABLE REPLICATION")
    assert sql("SHOW REPLICATION DATABASES").rows == []


def test_a_replica_is_of_another_registered_account_of_the_organization(accounts):
    assert "is a database of this account" in message(f"CREATE DATABASE copy AS REPLICA OF {current()}.sales")
    assert "does not exist or is not registered" in message("CREATE DATABASE copy AS REPLICA OF studio_org.nowhere.sales")
    assert "expected <organization>.<account>.<name>" in message("CREATE DATABASE copy AS REPLICA OF sales")
    assert "only the ACCOUNTADMIN role can" in message("CREATE DATABASE copy AS REPLICA OF studio_org.acct2.sales",
                                                       role="SYSADMIN")
    # ACCT2 does not answer (its URL is a closed port): nothing is created.
    assert "Account STUDIO_ORG.ACCT2 is unreachable" in message("CREATE DATABASE copy AS REPLICA OF studio_org.acct2.sales")
    assert not Database.objects.filter(name="COPY").exists()


def test_refresh_schedule_and_promotion_need_a_secondary(accounts):
    assert "is not a secondary database, so it cannot be refreshed" in message("ALTER DATABASE sales REFRESH")
    assert "cannot be refreshed on a schedule" in message("ALTER DATABASE sales SET REPLICATION_SCHEDULE = '5 MINUTE'")
    assert "is already a primary database" in message("ALTER DATABASE sales PRIMARY")
    assert "expected ENABLE REPLICATION | FAILOVER TO ACCOUNTS" in message("ALTER DATABASE sales REPLICATION")


def test_a_secondary_refuses_every_change_and_says_why_only_to_who_may_use_it(secondary):
    reason = "is a secondary database, a replica of STUDIO_ORG.ACCT2.SALES, and is read-only"
    for statement in ("INSERT INTO mirror.public.orders VALUES (3)", "UPDATE mirror.public.orders SET id = 4",
                      "DELETE FROM mirror.public.orders", "TRUNCATE TABLE mirror.public.orders",
                      "CREATE TABLE mirror.public.extra (a INT)", "CREATE VIEW mirror.public.v AS SELECT 1 AS a",
                      "DROP TABLE mirror.public.orders", "CREATE SCHEMA mirror.staging", "DROP SCHEMA mirror.public",
                      "CREATE STAGE mirror.public.files"):
        assert reason in message(statement), statement
    assert sql("SELECT id FROM mirror.public.orders").rows == [(1,)]
    # A role that cannot use MIRROR hears that it does not exist, not what kind of database it is.
    sql("CREATE ROLE IF NOT EXISTS outsider")
    refused = message("INSERT INTO mirror.public.orders VALUES (3)", role="OUTSIDER")
    assert "does not exist or not authorized" in refused and "secondary" not in refused
    assert sql("SHOW REPLICATION DATABASES", role="OUTSIDER").rows == []
    assert "is a secondary database" in message("ALTER DATABASE mirror ENABLE REPLICATION TO ACCOUNTS studio_org.acct3")


def test_a_secondary_is_promoted_only_when_its_primary_allowed_failover_to_this_account(secondary):
    refused = message("ALTER DATABASE mirror PRIMARY")
    assert "cannot be promoted: its primary, STUDIO_ORG.ACCT2.SALES, does not allow failover to account" in refused
    assert "ALTER DATABASE SALES ENABLE FAILOVER TO ACCOUNTS" in refused
    assert "is a secondary database" in message("INSERT INTO mirror.public.orders VALUES (2)")


def test_a_schedule_is_an_interval_in_minutes(secondary):
    sql("ALTER DATABASE mirror SET REPLICATION_SCHEDULE = '10 MINUTE'")
    result = sql("SHOW REPLICATION DATABASES LIKE 'mir%'")
    row = dict(zip(result.columns, result.rows[0]))
    assert (row["is_primary"], row["primary"], row["replication_schedule"]) == (False, "STUDIO_ORG.ACCT2.SALES",
                                                                               "10 MINUTE")
    assert (row["next_scheduled_refresh"] - secondary.replication.created_on).total_seconds() == pytest.approx(600, abs=5)
    for schedule, why in (("USING CRON 0 * * * * UTC", "a USING CRON schedule is not supported here"),
                          ("0 MINUTE", "between 1 and 11520 minutes"), ("20000 MINUTE", "between 1 and 11520 minutes"),
                          ("often", "give an interval in minutes")):
        assert why in message(f"ALTER DATABASE mirror SET REPLICATION_SCHEDULE = '{schedule}'")
    sql("ALTER DATABASE mirror UNSET REPLICATION_SCHEDULE")
    assert ReplicatedDatabase.objects.get(database=secondary).refresh_interval_minutes is None


def test_the_former_primary_becomes_a_secondary_only_for_an_account_it_replicated_to(accounts):
    acct2, acct3 = accounts, Account.objects.get(name="ACCT3")
    with pytest.raises(UserError, match="is not enabled for replication to account STUDIO_ORG.ACCT2"):
        promotion.demote(acct2, "SALES", "SALES", now())
    sql("ALTER DATABASE sales ENABLE REPLICATION TO ACCOUNTS studio_org.acct2")
    with pytest.raises(UserError, match="not enabled for replication to account STUDIO_ORG.ACCT3"):
        promotion.demote(acct3, "SALES", "SALES", now())
    # Replicating to an account does not let it take the primary's place: failover is its own grant.
    with pytest.raises(UserError, match="does not allow failover to account STUDIO_ORG.ACCT2; it stays the primary"):
        promotion.demote(acct2, "SALES", "SALES_EU", now())
    assert "does not replicate to account STUDIO_ORG.ACCT3: ALTER DATABASE SALES ENABLE REPLICATION" in message(
        "ALTER DATABASE sales ENABLE FAILOVER TO ACCOUNTS studio_org.acct3")
    sql("ALTER DATABASE sales ENABLE FAILOVER TO ACCOUNTS studio_org.acct2")
    result = sql("SHOW REPLICATION DATABASES")
    assert dict(zip(result.columns, result.rows[0]))["failover_allowed_to_accounts"] == "STUDIO_ORG.ACCT2"
    signed_at = now()
    assert promotion.demote(acct2, "SALES", "SALES_EU", signed_at).endswith("is now a secondary database, a replica of "
                                                                 "STUDIO_ORG.ACCT2.SALES_EU.")
    # Told twice (a retry, a replayed request): nothing changes.
    assert "was a secondary of it already" in promotion.demote(acct2, "SALES", "SALES_EU", signed_at)
    assert "is a secondary database, a replica of STUDIO_ORG.ACCT2.SALES_EU" in message(
        "INSERT INTO sales.public.orders VALUES (3, 'pen')")
    # Failing back here (ACCT2 cannot be told: its URL is a closed port), then the first promotion's request
    # replayed: it was signed before SALES became the primary again, so it demotes nothing.
    assert "could not be told" in sql("ALTER DATABASE sales PRIMARY").rows[0][0]
    with pytest.raises(UserError, match="became the primary again after this promotion was signed"):
        promotion.demote(acct2, "SALES", "SALES_EU", signed_at)
    assert ReplicatedDatabase.objects.get(database__name="SALES").is_primary


def test_the_manifest_fingerprints_tables_and_serves_only_listed_files(accounts, tmp_path):
    database = Database.objects.get(name="SALES")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00weights" * 100)
    FineTunedModel.objects.create(schema=accountdata.get_schema("SALES", "PUBLIC"), name="HELPER",
                                  base_model="smollm2-135m", owner_role="ACCOUNTADMIN", adapter_path=str(adapter))
    sql("CREATE VIEW sales.public.books AS SELECT id FROM sales.public.orders WHERE item = 'book'")
    first = snapshot.manifest(database)
    [table] = first["tables"]
    assert (table["schema"], table["name"], table["rows"]) == ("PUBLIC", "ORDERS", 2)
    assert [v["name"] for v in first["views"]] == ["BOOKS"]
    export = snapshot.table_file(database, "PUBLIC", "ORDERS", table["fingerprint"])
    assert hashlib.sha256(export.read_bytes()).hexdigest() == table["file"]["sha256"]
    assert snapshot.manifest(database)["tables"][0]["fingerprint"] == table["fingerprint"], "unchanged, same export"
    sql("INSERT INTO sales.public.orders VALUES (3, 'pen')")
    changed = snapshot.manifest(database)["tables"][0]
    assert changed["fingerprint"] != table["fingerprint"] and changed["rows"] == 3
    with pytest.raises(UserError, match="changed since the manifest"):
        snapshot.table_file(database, "PUBLIC", "ORDERS", table["fingerprint"])
    with pytest.raises(UserError, match="Invalid table fingerprint"):
        snapshot.table_file(database, "PUBLIC", "ORDERS", "../../secret-key")
    [model] = first["models"]
    assert [f["path"] for f in model["files"]] == ["adapter_model.safetensors"]
    for path in ("../adapter/adapter_model.safetensors", "/etc/passwd", str(tmp_path / "secret-key.txt")):
        with pytest.raises(UserError, match="has no file"):
            snapshot.model_file(database, "PUBLIC", "HELPER", path)


def _signed(client: Client, method: str, path: str, sender: str, body: bytes = b""):
    headers = signing.sign(KEY, method, path, sender, str(current()), body)
    call = client.get if method == "GET" else client.post
    kwargs = {"data": body, "content_type": "application/json"} if method == "POST" else {}
    return call(path, headers=headers, **kwargs)


def test_the_federation_api_answers_only_a_signed_request_of_an_account_the_database_replicates_to(accounts, caplog):
    client = Client()
    path = "/federation/v1/replication/databases/SALES"
    assert client.get(path).status_code == 401
    # Nothing is replicated to an account this deployment has not registered, whatever it signs with.
    stranger = _signed(client, "GET", path, "STUDIO_ORG.ACCT9")
    assert stranger.status_code == 401 and "does not trust the request" in stranger.json()["message"]
    refused = _signed(client, "GET", path, "STUDIO_ORG.ACCT2")
    assert refused.status_code == 403 and "is not enabled for replication" in refused.json()["message"]
    sql("ALTER DATABASE sales ENABLE REPLICATION TO ACCOUNTS studio_org.acct2")
    answered = _signed(client, "GET", path, "STUDIO_ORG.ACCT2")
    assert answered.status_code == 200 and answered.json()["tables"][0]["name"] == "ORDERS"
    assert _signed(client, "GET", path, "STUDIO_ORG.ACCT3").status_code == 403
    # The promotion is the one POST, and its body is signed too: another body fails the signature.
    headers = signing.sign(KEY, "POST", path + "/promoted", "STUDIO_ORG.ACCT2", str(current()), b'{"database": "A"}')
    with caplog.at_level("WARNING", logger="organization.inbound"):
        tampered = client.post(path + "/promoted", data=b'{"database": "B"}', content_type="application/json",
                               headers=headers)
    assert tampered.status_code == 401 and "does not trust the request" in tampered.json()["message"]
    assert "refused a request from STUDIO_ORG.ACCT2: the signature does not match" in caplog.text
    assert ReplicatedDatabase.objects.get(database__name="SALES").is_primary
    not_allowed = _signed(client, "POST", path + "/promoted", "STUDIO_ORG.ACCT2", b'{"database": "SALES"}')
    assert not_allowed.status_code == 403 and "does not allow failover" in not_allowed.json()["message"]
    sql("ALTER DATABASE sales ENABLE FAILOVER TO ACCOUNTS studio_org.acct2")
    told = _signed(client, "POST", path + "/promoted", "STUDIO_ORG.ACCT2", b'{"database": "SALES"}')
    assert told.status_code == 200 and "is now a secondary database" in told.json()["message"]


def test_a_refresh_from_an_account_no_longer_registered_leaves_the_replica_and_says_why(secondary):
    Account.objects.filter(name="ACCT2").delete()
    refused = message("ALTER DATABASE mirror REFRESH")
    assert "Refresh of database MIRROR from STUDIO_ORG.ACCT2.SALES failed; the replica is unchanged." in refused
    assert "Account 'STUDIO_ORG.ACCT2' does not exist or is not registered" in refused
    assert "not registered" in ReplicatedDatabase.objects.get(database=secondary).last_refresh_error
    assert sql("SELECT id FROM mirror.public.orders").rows == [(1,)]
