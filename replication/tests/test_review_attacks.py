"""Replication attacked, in one deployment: a local role that may not use a secondary database, and a
registered primary that answers whatever it likes. The primary is a real HTTP server on a port of this
machine, written by the test as a compromised deployment would answer (it ignores the signature); the
secondary is this deployment, refreshing over organization/peers.py as it always does."""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from access.session import Session
from catalog import accountdata
from errors import UserError
from organization import peers
from organization.models import Account
from replication import refresh
from replication.models import ReplicatedDatabase
from sqlengine.executor import Executor

pytestmark = pytest.mark.django_db
API = "/federation/v1/replication/databases/SALES"


def sql(text: str, role: str = "ACCOUNTADMIN"):
    return Executor(Session(user=None, role=role, database="MIRROR", schema="PUBLIC")).execute(text)[-1]


def message(text: str, role: str = "ACCOUNTADMIN") -> str:
    with pytest.raises(UserError) as refused:
        sql(text, role)
    return refused.value.message


class HostilePrimary:
    """Answers the manifest it is given at API and the bytes it is given per path; remembers what was asked."""

    def __init__(self) -> None:
        self.manifest: object = {}
        self.raw: bytes | None = None  # answered instead of the manifest's JSON
        self.files: dict[str, bytes] = {}
        self.asked: list[str] = []
        primary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                primary.asked.append(self.path)
                if self.path == API:
                    body = primary.raw if primary.raw is not None else json.dumps(primary.manifest).encode()
                else:
                    body = primary.files.get(self.path, b"")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def primary(settings, tmp_path):
    settings.DUCKDB_DIR, settings.DATA_DIR, settings.MODEL_STORE = tmp_path / "duckdb", tmp_path, tmp_path / "models"
    server = HostilePrimary()
    Account.objects.create(organization="STUDIO_ORG", name="ACCT2", url=server.url, key="k" * 40)
    yield server
    server.close()


@pytest.fixture
def mirror(primary):
    """MIRROR, a secondary of STUDIO_ORG.ACCT2.SALES holding one table from an earlier refresh."""
    database = accountdata.create_database("MIRROR")
    ReplicatedDatabase.objects.create(database=database, is_primary=False, primary_account="STUDIO_ORG.ACCT2",
                                      primary_database="SALES")
    con = accountdata._open_file("MIRROR")
    con.execute('CREATE TABLE "PUBLIC"."ORDERS" AS SELECT 1 AS "ID"')
    con.close()
    return database


def _file(content: bytes) -> dict:
    return {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


def _model(files: list) -> dict:
    return {"schema": "PUBLIC", "name": "HELPER", "base_model": "smollm2-135m", "metrics": {}, "files": files}


def test_a_role_that_cannot_use_a_secondary_is_not_told_what_it_is_when_it_creates_in_it(mirror):
    sql("CREATE ROLE IF NOT EXISTS outsider")
    refused = message("CREATE STAGE mirror.public.files", role="OUTSIDER")
    assert "does not exist or not authorized" in refused
    assert "secondary" not in refused and "STUDIO_ORG.ACCT2" not in refused
    # Its owner still hears why.
    assert "is a secondary database, a replica of STUDIO_ORG.ACCT2.SALES" in message("CREATE STAGE mirror.public.files")


ORDERS = {"schema": "PUBLIC", "name": "ORDERS", "fingerprint": "f1", "file": {"size": 10, "sha256": "0" * 64}}
ONE_FILE = [{"path": "adapter_model.safetensors", "size": 1, "sha256": "0"}]


def _of(**entries) -> dict:
    return {"database": "SALES", "schemas": ["PUBLIC"], **entries}


@pytest.mark.parametrize("manifest", [
    ["not", "a", "manifest"],
    _of(tables=[{"schema": "PUBLIC", "name": "ORDERS"}]),
    _of(tables=[{**ORDERS, "file": {"size": "lots", "sha256": "0"}}]),
    _of(tables=[{**ORDERS, "fingerprint": "../x"}]),
    _of(tables=[{**ORDERS, "column_types": ["ID"]}]),
    _of(models=[_model("adapter_model.safetensors")]),
    _of(models=[_model([{"path": 3, "size": 1, "sha256": "0"}])]),
    _of(models=[{**_model(ONE_FILE), "metrics": ["loss"]}]),
    _of(models=[_model([])]),
], ids=["not-a-dict", "no-file", "size-not-a-number", "fingerprint-a-path", "column-types-a-list", "files-not-a-list",
        "path-not-text", "metrics-a-list", "no-adapter-files"])
def test_a_manifest_of_the_wrong_shape_leaves_the_replica_and_says_why(primary, mirror, manifest):
    primary.manifest = manifest
    refused = message("ALTER DATABASE mirror REFRESH")
    assert "failed; the replica is unchanged" in refused and "answered a manifest this account cannot use" in refused
    assert "cannot use" in ReplicatedDatabase.objects.get(database=mirror).last_refresh_error
    assert sql("SELECT id FROM mirror.public.orders").rows == [(1,)]
    assert primary.asked == [API], "nothing but the manifest was fetched"


def test_a_scheduled_refresh_of_a_hostile_primary_is_that_replica_s_failure_only(primary, mirror):
    primary.manifest = {"database": "SALES", "schemas": ["PUBLIC"], "tables": [{"schema": "PUBLIC", "name": "ORDERS"}]}
    ReplicatedDatabase.objects.filter(database=mirror).update(refresh_interval_minutes=5)
    [line] = refresh.refresh_due()
    assert "the replica is unchanged" in line and "cannot use" in line


def test_an_adapter_whose_metadata_is_not_json_is_refused_not_crashed_on(primary, mirror):
    weights, metadata = b"\x00weights", b"{not json"
    primary.manifest = {"database": "SALES", "schemas": ["PUBLIC"], "models": [_model([
        {"path": "adapter_model.safetensors", **_file(weights)}, {"path": "studio_adapter.json", **_file(metadata)}])]}
    files = f"{API}/models/PUBLIC/HELPER/files/"
    primary.files = {files + "adapter_model.safetensors": weights, files + "studio_adapter.json": metadata}
    refused = message("ALTER DATABASE mirror REFRESH")
    assert "the replica is unchanged" in refused and "studio_adapter.json" in refused
    assert sql("SELECT id FROM mirror.public.orders").rows == [(1,)]


def test_a_primary_cannot_fill_the_replica_s_disk_by_announcing_a_huge_file(primary, mirror):
    primary.manifest = {"database": "SALES", "schemas": ["PUBLIC"],
                        "tables": [{**ORDERS, "file": {"size": 1 << 60, "sha256": "0" * 64}}]}
    refused = message("ALTER DATABASE mirror REFRESH")
    assert "the replica is unchanged" in refused and "more than the" in refused and "free" in refused
    assert primary.asked == [API], "the file was never asked for"
    assert sql("SELECT id FROM mirror.public.orders").rows == [(1,)]


def test_a_peer_s_answer_too_large_to_be_a_manifest_is_not_read_into_memory(primary, mirror, monkeypatch):
    monkeypatch.setattr(peers, "MAX_JSON_BYTES", 1000)
    primary.raw = json.dumps({"database": "SALES", "schemas": ["PUBLIC"], "comment": "x" * 5000}).encode()
    refused = message("ALTER DATABASE mirror REFRESH")
    assert "the replica is unchanged" in refused and "more than 1000 bytes" in refused


def test_a_dropped_table_s_export_is_no_longer_served_nor_kept(primary):
    """A peer that kept a fingerprint from an older manifest gets nothing of a table dropped since, and
    the primary does not keep the dropped table's rows in an export on its disk."""
    from replication import snapshot

    sales = accountdata.create_database("SALES")
    sql("CREATE TABLE sales.public.customers (email VARCHAR)")
    sql("INSERT INTO sales.public.customers VALUES ('someone@example.com')")
    [table] = snapshot.manifest(sales)["tables"]
    assert snapshot.table_file(sales, "PUBLIC", "CUSTOMERS", table["fingerprint"]).exists()
    sql("DROP TABLE sales.public.customers")
    with pytest.raises(UserError, match="or does not exist"):
        snapshot.table_file(sales, "PUBLIC", "CUSTOMERS", table["fingerprint"])
    assert snapshot.manifest(sales)["tables"] == []
    assert list(snapshot.export_path(sales, "PUBLIC", "CUSTOMERS", "x").parent.glob("*.parquet")) == []
