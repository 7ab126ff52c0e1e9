"""What a role may read of a table or view without writing SQL: its columns as DESCRIBE gives them,
its first rows and its row count, for DESCRIBE, the Data page's preview and the wizard's.

Any privilege on the object lets a role see its columns; without one it does not exist for the role.
Its rows need SELECT on it (and, for a view, its owner's SELECT on what the view reads), checked by
the sandbox as for any query the role runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from access.session import Session
from catalog import accountdata, datatypes
from catalog.identifiers import QualifiedName
from catalog.models import SchemaObject
from errors import compilation_error
from sandbox import names
from sandbox.box import Sandbox


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Snowflake's: as declared, while DuckDB still stores that type
    nullable: bool
    default: str | None
    comment: str | None


@dataclass(frozen=True)
class Preview:
    name: QualifiedName
    columns: list[Column]  # as DESCRIBE gives them
    header: list[str]  # the column names of `rows`
    rows: list[tuple[Any, ...]]
    row_count: int | None  # None unless asked for


def describe(session: Session, name: QualifiedName, kind: str = "TABLE") -> list[Column]:
    """The columns of the table or view `name` (kind VIEW: of a view only), in their order."""
    record = SchemaObject.objects.filter(schema__database__name=name.database, schema__name=name.schema,
                                         name=name.name).first()
    declared = record.column_types if record else {}
    with Sandbox(session, action=f"DESCRIBE {kind}") as box:
        found, _owner = box.relation(name, privilege=None)
        if kind == "VIEW" and found != "VIEW":
            raise names.object_not_found(name)
        rows = box.execute(
            "SELECT column_name, data_type, is_nullable, column_default, comment FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [name.database, name.schema, name.name]).fetchall()
    columns = []
    for column, duckdb_type, nullable, default, comment in rows:
        shown = declared.get(column)
        if shown is None or datatypes.from_duckdb(duckdb_type) != _stored_as(shown):
            shown = datatypes.from_duckdb(duckdb_type)
        columns.append(Column(column, shown, bool(nullable), default, comment))
    return columns


def _stored_as(declared_type: str) -> str:
    """What DESCRIBE would show for a declared type once DuckDB has stored it."""
    datatype = sqlglot.parse_one(f"CAST(NULL AS {declared_type})", read="snowflake").to
    return datatypes.from_duckdb(datatypes.to_duckdb(datatype))


def preview(session: Session, name: QualifiedName, *, rows: int = 0, count: bool = False) -> Preview:
    """The columns of the table or view `name`, its first `rows` rows (none by default: the columns need
    only some privilege on it) and, with `count`, its row count."""
    columns = describe(session, name)
    header: list[str] = []
    values: list[tuple[Any, ...]] = []
    row_count = None
    if rows or count:
        table = exp.table_(name.name, name.schema, name.database, quoted=True)
        with Sandbox(session) as box:
            # Both prepared before either runs: running seals the sandbox, which then attaches nothing.
            first = box.prepare(exp.select("*").from_(table).limit(rows)) if rows else None
            total = box.prepare(exp.select(exp.Count(this=exp.Star())).from_(table)) if count else None
            if first is not None:
                header, _types, values = _fetch(box, first)
            if total is not None:
                row_count = _fetch(box, total)[2][0][0]
    return Preview(name, columns, header, values, row_count)


def _fetch(box: Sandbox, tree: exp.Expression) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    try:
        return box.fetch(tree.sql(dialect="duckdb"))
    except duckdb.Error as exc:
        raise compilation_error(accountdata.duckdb_message(exc)) from exc
