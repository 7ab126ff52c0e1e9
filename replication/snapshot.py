"""What a primary database shows the accounts it replicates to, over the federation API (the secondary's
side is replication/refresh.py).

The manifest lists the database's schemas, its tables, each exported to a Parquet file named by a
fingerprint of the table's columns and rows, its views (DuckDB's own text of them) and its fine-tuned
models with their adapter files (sizes and SHA-256). A secondary copies only what its last refresh did
not already hold. An export is made once per fingerprint and kept, so a refresh of an unchanged table
costs the primary one scan and transfers nothing.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings

from catalog import accountdata
from catalog.identifiers import quote, quote_always
from catalog.models import Database, SchemaObject
from errors import UserError
from models_registry import adapter_files
from models_registry.models import FineTunedModel
from organization.models import Account
from replication.models import ReplicatedDatabase


def not_replicated(database: str, peer: Account) -> UserError:
    return UserError(f"Database '{quote(database)}' is not enabled for replication to account {peer.locator}. "
                     f"On its primary account: ALTER DATABASE {quote(database)} ENABLE REPLICATION TO ACCOUNTS "
                     f"{peer.locator}", code=3030, sqlstate="02000", refused=True)


def primary_for(peer: Account, database: str) -> Database:
    """The primary database `database` when it replicates to `peer`; asked afresh on every request."""
    replication = ReplicatedDatabase.objects.filter(database__name=database, is_primary=True) \
        .select_related("database").first()
    if replication is None or peer.locator not in replication.allowed_accounts:
        raise not_replicated(database, peer)
    return replication.database


def _exports_dir(database: Database) -> Path:
    return settings.DATA_DIR / "replication" / "exports" / accountdata.database_file(database.name).stem


def object_id(schema: str, name: str) -> str:
    """A short name for a schema's object in file names, whatever characters its name holds."""
    return hashlib.sha256(f"{schema}\0{name}".encode()).hexdigest()[:16]


def export_path(database: Database, schema: str, table: str, fingerprint: str) -> Path:
    return _exports_dir(database) / f"{object_id(schema, table)}-{fingerprint}.parquet"


def _export(con: duckdb.DuckDBPyConnection, source: str, target: Path) -> None:
    """The table into `target` whole or not at all (a request for the same export meanwhile finds the
    finished file or none)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".parquet")
    os.close(fd)
    try:
        con.execute(f"COPY (SELECT * FROM {source}) TO '{partial}' (FORMAT PARQUET)")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _tables(database: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tables (exported, with fingerprints) and views of the database's file, as DuckDB holds them."""
    objects = {(o.schema.name, o.name): o for o in SchemaObject.objects.filter(schema__database=database)
               .select_related("schema")}
    tables, views = [], []
    con = duckdb.connect(":memory:")
    try:
        accountdata.attach(con, database.name, read_only=True)
        catalog = database.name
        found = con.execute(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_catalog = ? "
            "ORDER BY table_schema, table_name", [catalog]).fetchall()
        for schema, name, kind in found:
            record = objects.get((schema, name))
            described = {"schema": schema, "name": name,
                         "comment": record.comment if record else "",
                         "column_types": record.column_types if record else {},
                         "text": record.text if record else ""}
            if kind == "VIEW":
                (sql,) = con.execute("SELECT sql FROM duckdb_views() WHERE database_name = ? AND schema_name = ? "
                                     "AND view_name = ?", [catalog, schema, name]).fetchone()
                views.append({**described, "sql": sql})
                continue
            source = quote_always(catalog, schema, name)
            columns = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                  "table_catalog = ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                                  [catalog, schema, name]).fetchall()
            rows, row_hash = con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {source} AS t").fetchone()
            fingerprint = hashlib.sha256(repr((columns, rows, str(row_hash))).encode()).hexdigest()[:24]
            path = export_path(database, schema, name, fingerprint)
            if not path.exists():
                for old in path.parent.glob(f"{object_id(schema, name)}-*.parquet"):
                    old.unlink(missing_ok=True)
                _export(con, source, path)
            tables.append({**described, "rows": rows, "fingerprint": fingerprint,
                           "file": {"size": path.stat().st_size, "sha256": adapter_files.sha256(path)}})
    finally:
        con.close()
    # A dropped table's rows are not kept in an export (nor served from one: table_file); a partial
    # export (.export-…) is another request's, still being written.
    listed = {export_path(database, t["schema"], t["name"], t["fingerprint"]) for t in tables}
    for stale in set(_exports_dir(database).glob("[!.]*.parquet")) - listed:
        stale.unlink(missing_ok=True)
    return tables, views


def manifest(database: Database, peer: Account | None = None) -> dict[str, Any]:
    """What the database holds; for `peer`, also whether it may promote its secondary (failover)."""
    tables, views = _tables(database)
    failover = peer is not None and peer.locator in database.replication.failover_accounts
    models = FineTunedModel.objects.filter(schema__database=database).select_related("schema__database")
    return {
        "database": database.name,
        "comment": database.comment,
        "failover_allowed": failover,
        "schemas": sorted(database.schemas.values_list("name", flat=True)),
        "tables": tables,
        "views": views,
        "models": [{"schema": m.schema.name, "name": m.name, "base_model": m.base_model, "metrics": m.metrics,
                    "files": adapter_files.listed(m)} for m in models],
    }


def table_file(database: Database, schema: str, table: str, fingerprint: str) -> Path:
    """A table's export that a manifest listed, and only such a file."""
    if not fingerprint.isalnum():
        raise UserError(f"Invalid table fingerprint '{fingerprint}'.", code=2003, sqlstate="02000", refused=True)
    path = export_path(database, schema, table, fingerprint)
    if not path.exists() or not _is_table(database, schema, table):
        raise UserError(f"Table '{quote(database.name)}.{quote(schema)}.{quote(table)}' changed since the manifest "
                        "was made (or does not exist); refresh again.", code=2003, sqlstate="02000", refused=True)
    return path


def _is_table(database: Database, schema: str, table: str) -> bool:
    con = duckdb.connect(":memory:")
    try:
        accountdata.attach(con, database.name, read_only=True)
        return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? "
                           "AND table_name = ? AND table_type = 'BASE TABLE'",
                           [database.name, schema, table]).fetchone()[0] > 0
    finally:
        con.close()


def model_file(database: Database, schema: str, model: str, path: str) -> Path:
    row = FineTunedModel.objects.filter(schema__database=database, schema__name=schema, name=model) \
        .select_related("schema__database").first()
    if row is None:
        raise UserError(f"Model '{quote(database.name)}.{quote(schema)}.{quote(model)}' does not exist.", code=2003,
                        sqlstate="02000", refused=True)
    return adapter_files.one(row, path)
