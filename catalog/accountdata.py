"""Account data: databases, schemas and tables, one DuckDB file per database, attached under its own
name so that three-part names (db.schema.table) resolve as in Snowflake.

User SQL never runs here: it runs in a sandbox (sandbox/box.py) that attaches only what the statement
may read. connect() is for the studio's own listings (SHOW, GRANT … ON ALL), which read every
database's catalog and filter by privilege afterwards.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from django.conf import settings
from django.db import transaction
from sqlglot import exp

from catalog.identifiers import quote, quote_always, split_parts
from catalog.models import Database, Schema, SchemaObject
from errors import UserError, compilation_error

DEFAULT_SCHEMA = "PUBLIC"
LOADERS = {".csv": "read_csv_auto", ".jsonl": "read_json_auto", ".json": "read_json_auto",
           ".ndjson": "read_json_auto", ".parquet": "read_parquet"}


def _file_name(database: str) -> str:
    # Quoted database names may hold any character; keep file names portable.
    safe = re.sub(r"[^A-Za-z0-9_]", lambda m: f"%{ord(m.group()):02X}", database)
    return f"{safe}.duckdb"


def database_file(database: str) -> Path:
    return settings.DUCKDB_DIR / _file_name(database)


# DuckDB lets one process write a file and then excludes every other process, readers included, until it
# closes the file; in-process, a second attach of a file already open read-write is refused as well.
# Connections live for one statement, so waiting a little is enough.
LOCK_TIMEOUT = 10.0
_LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "Unique file handle conflict")


def _database_busy(database: str) -> UserError:
    return UserError(
        f"Database '{quote(database)}' is in use by another process that is writing to it; "
        f"gave up after {LOCK_TIMEOUT:g} s. Try the statement again.",
        code=625, sqlstate="57014",
    )


def _with_lock_retry(database: str, action):
    deadline = time.monotonic() + LOCK_TIMEOUT
    delay = 0.05
    while True:
        try:
            return action()
        except duckdb.Error as exc:
            if not any(marker in str(exc) for marker in _LOCK_ERRORS):
                raise
            if time.monotonic() + delay > deadline:
                raise _database_busy(database) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _open_file(database: str) -> duckdb.DuckDBPyConnection:
    """The database's own file, opened read-write (waiting while another process holds it)."""
    settings.DUCKDB_DIR.mkdir(parents=True, exist_ok=True)
    return _with_lock_retry(database, lambda: duckdb.connect(str(database_file(database))))


def attach(con: duckdb.DuckDBPyConnection, database: str, *, read_only: bool) -> None:
    path = str(database_file(database)).replace("'", "''")
    mode = " (READ_ONLY)" if read_only else ""
    _with_lock_retry(database, lambda: con.execute(f"ATTACH '{path}' AS {quote_always(database)}{mode}"))


# DuckDB's own catalogs, and the databases and schemas the studio answers itself (SNOWFLAKE, each
# database's INFORMATION_SCHEMA): no user object may take their names.
RESERVED_DATABASES = ("SNOWFLAKE", "SYSTEM", "TEMP", "MAIN", "MEMORY")
RESERVED_SCHEMAS = ("INFORMATION_SCHEMA", "PG_CATALOG")


def _refuse_reserved(name: str, reserved: tuple[str, ...], kind: str) -> None:
    if name.upper() in reserved:
        raise UserError(f"SQL compilation error: '{quote(name)}' is reserved and cannot name a {kind}.",
                          code=2003, sqlstate="42939")


def _refuse_case_twin(name: str, existing, kind: str) -> None:
    """DuckDB matches names regardless of case, so "sales" and SALES cannot both exist: the second
    would silently open the first."""
    twin = next((other for other in existing if other.upper() == name.upper() and other != name), None)
    if twin is not None:
        raise UserError(f"SQL compilation error: {kind.capitalize()} '{quote(name)}' would differ from the "
                          f"existing {kind} '{quote(twin)}' only in case, which this studio's storage cannot "
                          "tell apart. Choose another name.", code=2002, sqlstate="42710")


def create_database(name: str, owner_role: str = "ACCOUNTADMIN", *, if_not_exists: bool = False,
                    comment: str = "") -> Database:
    (db_name,) = split_parts(name)
    existing = Database.objects.filter(name=db_name).first()
    if existing:
        if if_not_exists:
            return existing
        raise UserError(f"Object '{quote(db_name)}' already exists.", code=2002, sqlstate="42710")
    _refuse_reserved(db_name, RESERVED_DATABASES, "database")
    _refuse_case_twin(db_name, Database.objects.values_list("name", flat=True), "database")
    settings.DUCKDB_DIR.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        database = Database.objects.create(name=db_name, owner_role=owner_role, comment=comment)
        Schema.objects.create(database=database, name=DEFAULT_SCHEMA, owner_role=owner_role)
        con = _open_file(db_name)
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_always(DEFAULT_SCHEMA)}")
        finally:
            con.close()
    return database


def create_schema(database: str, name: str, owner_role: str = "ACCOUNTADMIN", *, if_not_exists: bool = False) -> Schema:
    db = get_database(database)
    existing = Schema.objects.filter(database=db, name=name).first()
    if existing:
        if if_not_exists:
            return existing
        raise UserError(f"Object '{quote(db.name)}.{quote(name)}' already exists.", code=2002, sqlstate="42710")
    _refuse_reserved(name, RESERVED_SCHEMAS, "schema")
    _refuse_case_twin(name, Schema.objects.filter(database=db).values_list("name", flat=True), "schema")
    with transaction.atomic():
        schema = Schema.objects.create(database=db, name=name, owner_role=owner_role)
        con = _open_file(db.name)
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_always(name)}")
        finally:
            con.close()
    return schema


def database_not_found(database: str, *, refused: bool = False) -> UserError:
    """How a database that does not exist, or that the role may not use (refused), is reported."""
    return UserError(f"Database '{quote(database)}' does not exist or not authorized.", code=2003,
                       sqlstate="02000", refused=refused)


def schema_not_found(database: str, schema: str, *, refused: bool = False) -> UserError:
    return UserError(f"Schema '{quote(database)}.{quote(schema)}' does not exist or not authorized.", code=2003,
                       sqlstate="02000", refused=refused)


def get_database(name: str) -> Database:
    database = Database.objects.filter(name=name).first()
    if database is None:
        raise database_not_found(name)
    return database


def get_schema(database: str, schema: str) -> Schema:
    found = Schema.objects.filter(database__name=database, name=schema).select_related("database").first()
    if found is None:
        get_database(database)
        raise schema_not_found(database, schema)
    return found


def load_table(database: str, schema: str, table: str, source: Path, *, replace: bool = False,
               owner_role: str = "ACCOUNTADMIN") -> int:
    """Create (or replace) a table from a CSV, JSON lines or Parquet file; returns the row count."""
    schema_row = get_schema(database, schema)
    loader = LOADERS.get(source.suffix.lower())
    if loader is None:
        raise UserError(f"Cannot load {source.name}: supported file types are {', '.join(sorted(LOADERS))}.")
    if not source.exists():
        raise UserError(f"File not found: {source}")
    target = quote_always(schema, table)
    con = _open_file(database)
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
        if exists and not replace:
            raise UserError(f"Object '{quote(database)}.{quote(schema)}.{quote(table)}' already exists. "
                              "Use --replace to overwrite it.", code=2002, sqlstate="42710")
        verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
        # One transaction: a file that fails to parse half-way leaves the old table untouched.
        con.execute("BEGIN")
        try:
            con.execute(f"{verb} {target} AS SELECT * FROM {loader}(?)", [str(source)])
            count = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise UserError(f"Could not load {source.name}: {exc}") from exc
    finally:
        con.close()
    SchemaObject.objects.update_or_create(
        schema=schema_row, name=table,
        defaults={"kind": SchemaObject.Kind.TABLE, "owner_role": owner_role, "comment": "", "text": "",
                  "column_types": {}},
    )
    return int(count)


@contextlib.contextmanager
def connect(database: str | None, schema: str | None, *, read_only: bool = True,
            write: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB session with every account database attached under its own name, for the
    studio's own SQL only (never a user's: see the module's docstring).

    `write` names the one database a statement changes: only its file is attached read-write, so a
    statement locks out other processes from that database alone and only while it runs."""
    con = duckdb.connect(":memory:")
    try:
        for db_name in Database.objects.values_list("name", flat=True):
            path = database_file(db_name)
            if path.exists():
                attach(con, db_name, read_only=read_only and db_name != write)
        if database and Database.objects.filter(name=database).exists():
            con.execute(f"USE {quote_always(database, schema or DEFAULT_SCHEMA)}")
        if read_only:
            # Training queries must not read files or load extensions on the server's behalf.
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


def check_read_only_query(sql: str) -> exp.Expression:
    """A single SELECT (no DDL/DML, no multiple statements), parsed in Snowflake's dialect."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise compilation_error(f"syntax error in query '{sql}': {exc.errors[0]['description'] if exc.errors else exc}") from exc
    if len(statements) != 1:
        raise compilation_error(f"expected exactly one SELECT statement in '{sql}', found {len(statements)}.")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise compilation_error(f"only a SELECT query may provide training data, not '{sql}'.")
    return statement


def duckdb_message(exc: Exception) -> str:
    """DuckDB's error in one line, without its class prefix or any of the server's paths."""
    text = re.sub(r"^[A-Za-z ]+Error: ", "", str(exc).split("\n")[0])
    for directory in (settings.DUCKDB_DIR, settings.STAGE_DIR, settings.MODEL_STORE, settings.DATA_DIR):
        text = text.replace(str(directory), "<data>")
    return text


def drop_database(name: str) -> None:
    """Remove a database: its metadata (schemas, objects, models) and its DuckDB file."""
    database = get_database(name)
    # Taking the file's lock first means no other process is half-way through writing to it.
    _open_file(database.name).close()
    with transaction.atomic():
        adapters = _adapter_dirs(schema__database=database)
        database.delete()
        path = database_file(database.name)
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
    _remove_dirs(adapters)


def drop_schema(database: str, name: str) -> None:
    """Remove a schema with everything in it, in DuckDB and in the metadata."""
    schema = get_schema(database, name)
    with transaction.atomic():
        adapters = _adapter_dirs(schema=schema)
        schema.delete()
        con = _open_file(database)
        try:
            con.execute(f"DROP SCHEMA IF EXISTS {quote_always(name)} CASCADE")
        finally:
            con.close()
    _remove_dirs(adapters)


def _adapter_dirs(**where: Any) -> list[Path]:
    from models_registry.models import FineTunedModel  # the registry builds on the catalog, not the reverse

    return [Path(p) for p in FineTunedModel.objects.filter(**where).values_list("adapter_path", flat=True) if p]


def _remove_dirs(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
