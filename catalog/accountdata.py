"""Account data: databases, schemas and tables, one DuckDB file per database.

Statements arrive in Snowflake's dialect and are transpiled by sqlglot. Queries attach every database
file under its name, so three-part names (db.schema.table) resolve as in Snowflake.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from django.conf import settings
from django.db import transaction
from sqlglot import exp

from catalog.identifiers import quote, split_parts
from catalog.models import Database, Schema
from studio.errors import StudioError, compilation_error

DEFAULT_SCHEMA = "PUBLIC"
LOADERS = {".csv": "read_csv_auto", ".jsonl": "read_json_auto", ".json": "read_json_auto",
           ".ndjson": "read_json_auto", ".parquet": "read_parquet"}


def _file_name(database: str) -> str:
    # Quoted database names may hold any character; keep file names portable.
    safe = re.sub(r"[^A-Za-z0-9_]", lambda m: f"%{ord(m.group()):02X}", database)
    return f"{safe}.duckdb"


def database_file(database: str) -> Path:
    return settings.DUCKDB_DIR / _file_name(database)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(name: str, owner_role: str = "ACCOUNTADMIN", *, if_not_exists: bool = False) -> Database:
    (db_name,) = split_parts(name)
    existing = Database.objects.filter(name=db_name).first()
    if existing:
        if if_not_exists:
            return existing
        raise StudioError(f"Object '{quote(db_name)}' already exists.", code=2002, sqlstate="42710")
    settings.DUCKDB_DIR.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        database = Database.objects.create(name=db_name, owner_role=owner_role)
        Schema.objects.create(database=database, name=DEFAULT_SCHEMA, owner_role=owner_role)
        con = duckdb.connect(str(database_file(db_name)))
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(DEFAULT_SCHEMA)}")
        finally:
            con.close()
    return database


def create_schema(database: str, name: str, owner_role: str = "ACCOUNTADMIN", *, if_not_exists: bool = False) -> Schema:
    db = get_database(database)
    existing = Schema.objects.filter(database=db, name=name).first()
    if existing:
        if if_not_exists:
            return existing
        raise StudioError(f"Object '{quote(db.name)}.{quote(name)}' already exists.", code=2002, sqlstate="42710")
    with transaction.atomic():
        schema = Schema.objects.create(database=db, name=name, owner_role=owner_role)
        con = duckdb.connect(str(database_file(db.name)))
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(name)}")
        finally:
            con.close()
    return schema


def get_database(name: str) -> Database:
    database = Database.objects.filter(name=name).first()
    if database is None:
        raise StudioError(f"Database '{quote(name)}' does not exist or not authorized.", code=2003, sqlstate="02000")
    return database


def get_schema(database: str, schema: str) -> Schema:
    found = Schema.objects.filter(database__name=database, name=schema).select_related("database").first()
    if found is None:
        get_database(database)
        raise StudioError(f"Schema '{quote(database)}.{quote(schema)}' does not exist or not authorized.",
                          code=2003, sqlstate="02000")
    return found


def load_table(database: str, schema: str, table: str, source: Path, *, replace: bool = False) -> int:
    """Create (or replace) a table from a CSV, JSON lines or Parquet file; returns the row count."""
    get_schema(database, schema)
    loader = LOADERS.get(source.suffix.lower())
    if loader is None:
        raise StudioError(f"Cannot load {source.name}: supported file types are {', '.join(sorted(LOADERS))}.")
    if not source.exists():
        raise StudioError(f"File not found: {source}")
    target = f"{_ident(schema)}.{_ident(table)}"
    con = duckdb.connect(str(database_file(database)))
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
        if exists and not replace:
            raise StudioError(f"Object '{quote(database)}.{quote(schema)}.{quote(table)}' already exists. "
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
            raise StudioError(f"Could not load {source.name}: {exc}") from exc
    finally:
        con.close()
    return int(count)


@contextlib.contextmanager
def connect(database: str | None, schema: str | None, *, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB session with every account database attached under its own name."""
    con = duckdb.connect(":memory:")
    try:
        for db_name in Database.objects.values_list("name", flat=True):
            path = database_file(db_name)
            if path.exists():
                mode = " (READ_ONLY)" if read_only else ""
                con.execute(f"ATTACH '{path}' AS {_ident(db_name)}{mode}")
        if database and Database.objects.filter(name=database).exists():
            con.execute(f"USE {_ident(database)}.{_ident(schema or DEFAULT_SCHEMA)}")
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


def to_duckdb(statement: exp.Expression) -> str:
    return statement.sql(dialect="duckdb")


def run_query(sql: str, database: str | None, schema: str | None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a read-only SELECT in Snowflake's dialect; returns (column names, rows)."""
    statement = check_read_only_query(sql)
    with connect(database, schema) as con:
        try:
            cursor = con.execute(to_duckdb(statement))
        except duckdb.Error as exc:
            raise compilation_error(_duckdb_message(exc)) from exc
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()


def _duckdb_message(exc: duckdb.Error) -> str:
    text = str(exc).split("\n")[0]
    return re.sub(r"^[A-Za-z ]+Error: ", "", text)
