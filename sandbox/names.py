"""Snowflake's rules for the names in a statement: how a one-, two- or three-part name resolves against
the session's database and schema, and how a name that cannot be used is reported.

A database, schema or object the session's role may not use is reported exactly like one that does
not exist ("… does not exist or not authorized."), as Snowflake does, so that a refusal never tells
a role which objects exist.
"""
from __future__ import annotations

from catalog.accountdata import database_not_found, schema_not_found  # noqa: F401 (worded as everywhere)
from catalog.identifiers import QualifiedName, quote
from errors import UserError


def no_current(action: str, what: str) -> UserError:
    return UserError(
        f"Cannot perform {action}. This session does not have a current {what}. "
        f"Call 'USE {what.upper()}', or use a qualified name.",
        code=90105, sqlstate="22000",
    )


def qualify(parts: list[str], database: str | None, schema: str | None, action: str) -> QualifiedName:
    """db.schema.name of normalized name parts, against the session's current database and schema."""
    if not parts or len(parts) > 3:
        raise UserError(f"SQL compilation error: invalid object name '{'.'.join(quote(p) for p in parts)}': a "
                          "name has at most three parts, database.schema.name.", code=2003, sqlstate="42601")
    if len(parts) == 3:
        return QualifiedName(*parts)
    if not database:
        raise no_current(action, "database")
    if len(parts) == 2:
        return QualifiedName(database, *parts)
    if not schema:
        raise no_current(action, "schema")
    return QualifiedName(database, schema, parts[0])


def object_not_found(name: QualifiedName, *, refused: bool = False) -> UserError:
    return UserError(f"SQL compilation error: Object '{name}' does not exist or not authorized.", code=2003,
                       sqlstate="42S02", refused=refused)
