"""What a role may read of a table or view: its columns as DESCRIBE gives them.

Any privilege on the object lets a role see its columns; without one it does not exist for the role.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlglot

from access.session import Session
from catalog import datatypes
from catalog.identifiers import QualifiedName
from catalog.models import SchemaObject
from sandbox import names
from sandbox.box import Sandbox


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Snowflake's: as declared, while DuckDB still stores that type
    nullable: bool
    default: str | None
    comment: str | None


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
