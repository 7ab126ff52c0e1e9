"""Each database's INFORMATION_SCHEMA, as Snowflake has it: TABLES, COLUMNS, VIEWS, SCHEMATA and
DATABASES, listing only what the session's role may see.

Reading `db.INFORMATION_SCHEMA.<view>` needs USAGE on the database. A schema is listed when the role
owns it or holds a privilege on it; a table or view when the role also holds USAGE on its schema and
owns it or holds a privilege on it (its columns with it); a database when the role owns it or holds a
privilege on it. A secure view's definition shows to its owner only. DuckDB's own
information_schema and catalog functions are never reachable from user SQL (sandbox/allowlist.py);
this is what answers instead.
"""
from __future__ import annotations

import re
from datetime import timezone

import duckdb

from access import privileges
from catalog.identifiers import QualifiedName
from catalog.models import Database, Schema, SchemaObject
from sandbox.names import object_not_found
from sandbox.types import INTEGERS, snowflake_type

TABLES = (("TABLE_CATALOG", "VARCHAR"), ("TABLE_SCHEMA", "VARCHAR"), ("TABLE_NAME", "VARCHAR"),
          ("TABLE_OWNER", "VARCHAR"), ("TABLE_TYPE", "VARCHAR"), ("IS_TRANSIENT", "VARCHAR"),
          ("CLUSTERING_KEY", "VARCHAR"), ("ROW_COUNT", "BIGINT"), ("BYTES", "BIGINT"), ("RETENTION_TIME", "BIGINT"),
          ("CREATED", "TIMESTAMP"), ("LAST_ALTERED", "TIMESTAMP"), ("AUTO_CLUSTERING_ON", "VARCHAR"),
          ("COMMENT", "VARCHAR"))
COLUMNS = (("TABLE_CATALOG", "VARCHAR"), ("TABLE_SCHEMA", "VARCHAR"), ("TABLE_NAME", "VARCHAR"),
           ("COLUMN_NAME", "VARCHAR"), ("ORDINAL_POSITION", "BIGINT"), ("COLUMN_DEFAULT", "VARCHAR"),
           ("IS_NULLABLE", "VARCHAR"), ("DATA_TYPE", "VARCHAR"), ("CHARACTER_MAXIMUM_LENGTH", "BIGINT"),
           ("NUMERIC_PRECISION", "BIGINT"), ("NUMERIC_SCALE", "BIGINT"), ("COMMENT", "VARCHAR"))
VIEWS = (("TABLE_CATALOG", "VARCHAR"), ("TABLE_SCHEMA", "VARCHAR"), ("TABLE_NAME", "VARCHAR"),
         ("TABLE_OWNER", "VARCHAR"), ("VIEW_DEFINITION", "VARCHAR"), ("CHECK_OPTION", "VARCHAR"),
         ("IS_UPDATABLE", "VARCHAR"), ("INSERTABLE_INTO", "VARCHAR"), ("IS_SECURE", "VARCHAR"),
         ("CREATED", "TIMESTAMP"), ("LAST_ALTERED", "TIMESTAMP"), ("COMMENT", "VARCHAR"))
SCHEMATA = (("CATALOG_NAME", "VARCHAR"), ("SCHEMA_NAME", "VARCHAR"), ("SCHEMA_OWNER", "VARCHAR"),
            ("IS_TRANSIENT", "VARCHAR"), ("IS_MANAGED_ACCESS", "VARCHAR"), ("RETENTION_TIME", "BIGINT"),
            ("CREATED", "TIMESTAMP"), ("LAST_ALTERED", "TIMESTAMP"), ("COMMENT", "VARCHAR"))
DATABASES = (("DATABASE_NAME", "VARCHAR"), ("DATABASE_OWNER", "VARCHAR"), ("IS_TRANSIENT", "VARCHAR"),
             ("COMMENT", "VARCHAR"), ("CREATED", "TIMESTAMP"), ("LAST_ALTERED", "TIMESTAMP"),
             ("RETENTION_TIME", "BIGINT"), ("TYPE", "VARCHAR"))
TEXT_LENGTH = 16777216  # Snowflake's VARCHAR without a length


def _naive(moment):
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment else None


class _Catalog:
    """What one database holds and what the role may see of it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, database: str, visibility: privileges.Visibility,
                 held: privileges.Held) -> None:
        self.con, self.database, self.visibility, self.held = con, database, visibility, held
        self.schemas = {s.name: s for s in Schema.objects.filter(database__name=database)}
        self.records = {(o.schema.name, o.name): o for o in
                        SchemaObject.objects.filter(schema__database__name=database).select_related("schema")}

    def schema_visible(self, schema: str) -> bool:
        row = self.schemas.get(schema)
        return row is not None and self.visibility.sees("SCHEMA", privileges.key(self.database, schema),
                                                        row.owner_role)

    def owner(self, schema: str, name: str) -> str | None:
        record = self.records.get((schema, name))
        return record.owner_role if record else self.schemas[schema].owner_role

    def object_visible(self, kind: str, schema: str, name: str) -> bool:
        row = self.schemas.get(schema)
        if row is None or not self.held.has("USAGE", "SCHEMA", privileges.key(self.database, schema), row.owner_role):
            return False
        return self.visibility.sees(kind, privileges.key(self.database, schema, name), self.owner(schema, name))

    def relations(self) -> list[tuple[str, str, str, int | None, str | None, str | None]]:
        """(kind, schema, name, estimated rows, comment, DuckDB view SQL) of what the role may see."""
        listed = self.con.execute(
            "SELECT 'TABLE', schema_name, table_name, estimated_size, comment, NULL FROM duckdb_tables() "
            "WHERE database_name = ? AND NOT temporary UNION ALL "
            "SELECT 'VIEW', schema_name, view_name, NULL, comment, sql FROM duckdb_views() "
            "WHERE database_name = ? AND NOT internal AND NOT temporary ORDER BY 2, 3",
            [self.database, self.database]).fetchall()
        return [row for row in listed if self.object_visible(row[0], row[1], row[2])]


def _tables(catalog: _Catalog) -> list[tuple]:
    out = []
    for kind, schema, name, rows, comment, _sql in catalog.relations():
        record = catalog.records.get((schema, name))
        created = _naive(record.created_on) if record else None
        out.append((catalog.database, schema, name, catalog.owner(schema, name),
                    "BASE TABLE" if kind == "TABLE" else "VIEW", "NO", None, rows, None, 1, created, created,
                    "NO", (record.comment if record else None) or comment))
    return out


def _numeric(duckdb_type: str) -> tuple[int | None, int | None]:
    t = duckdb_type.upper()
    if t in INTEGERS:
        return 38, 0
    match = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t)
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def _columns(catalog: _Catalog) -> list[tuple]:
    visible = {(schema, name) for _kind, schema, name, *_ in catalog.relations()}
    listed = catalog.con.execute(
        "SELECT schema_name, table_name, column_name, column_index, column_default, is_nullable, data_type, comment "
        "FROM duckdb_columns() WHERE database_name = ? ORDER BY schema_name, table_name, column_index",
        [catalog.database]).fetchall()
    out = []
    for schema, table, column, position, default, nullable, duckdb_type, comment in listed:
        if (schema, table) not in visible:
            continue
        kind = snowflake_type(duckdb_type).split("(")[0]  # DATA_TYPE is NUMBER, its scale a column of its own
        precision, scale = _numeric(duckdb_type)
        out.append((catalog.database, schema, table, column, position, default, "YES" if nullable else "NO", kind,
                    TEXT_LENGTH if kind == "TEXT" else None, precision, scale, comment))
    return out


def _views(catalog: _Catalog) -> list[tuple]:
    out = []
    for kind, schema, name, _rows, comment, sql in catalog.relations():
        if kind != "VIEW":
            continue
        record = catalog.records.get((schema, name))
        text = record.text if record and record.text else sql
        secure = is_secure(text)
        owner = catalog.owner(schema, name)
        shown = view_definition(text, owner, catalog.visibility)
        created = _naive(record.created_on) if record else None
        out.append((catalog.database, schema, name, owner, shown, "NONE", "NO", "NO", "YES" if secure else "NO",
                    created, created, (record.comment if record else None) or comment))
    return out


def is_secure(view_text: str | None) -> bool:
    return bool(re.match(r"\s*CREATE\s+(OR\s+REPLACE\s+)?SECURE\s", view_text or "", re.IGNORECASE))


def view_definition(view_text: str | None, owner: str | None, visibility: privileges.Visibility) -> str | None:
    """A view's text as a role may read it: a secure view's only by its owner, as in Snowflake."""
    if is_secure(view_text) and not (visibility.all or owner in visibility.roles):
        return None
    return view_text


def _schemata(catalog: _Catalog) -> list[tuple]:
    out = [(catalog.database, name, row.owner_role, "NO", "NO", 1, _naive(row.created_on), _naive(row.created_on), None)
           for name, row in sorted(catalog.schemas.items()) if catalog.schema_visible(name)]
    # Snowflake lists the information schema itself, owned by no role.
    out.append((catalog.database, "INFORMATION_SCHEMA", None, "NO", "NO", 1, None, None,
                "Views describing the contents of schemas in this database"))
    return sorted(out, key=lambda row: row[1])


def _databases(catalog: _Catalog) -> list[tuple]:
    return [(d.name, d.owner_role, "NO", d.comment or None, _naive(d.created_on), _naive(d.created_on), 1, "STANDARD")
            for d in Database.objects.order_by("name")
            if catalog.visibility.sees("DATABASE", privileges.key(d.name), d.owner_role)]


VIEW_CONTENT = {"TABLES": (TABLES, _tables), "COLUMNS": (COLUMNS, _columns), "VIEWS": (VIEWS, _views),
                "SCHEMATA": (SCHEMATA, _schemata), "DATABASES": (DATABASES, _databases)}


def columns_and_rows(con: duckdb.DuckDBPyConnection, name: QualifiedName, visibility: privileges.Visibility,
                     held: privileges.Held):
    """The (column, DuckDB type) pairs and rows of `db.INFORMATION_SCHEMA.<view>`; the database is
    attached to `con` and the session holds USAGE on it."""
    if name.name not in VIEW_CONTENT:
        raise object_not_found(name)
    columns, rows = VIEW_CONTENT[name.name]
    return columns, rows(_Catalog(con, name.database, visibility, held))
