"""What the service layer offers the wizard's role: the roles, schemas and tables its pickers list
(catalog/listing.py, what SHOW lists), a table's columns and its first rows (catalog/contents.py, what
DESCRIBE and the Data page show)."""
from __future__ import annotations

from access import privileges
from access.roles import usable_roles
from access.session import Session
from catalog import contents, listing
from catalog.identifiers import qualify, quote
from errors import UserError

FIRST_ROWS = 8


def cortex_roles(user) -> list[str]:
    """The user's roles that are granted SNOWFLAKE.CORTEX_USER (directly, inherited, or through the user)."""
    return [role for role in usable_roles(user) if privileges.holds_cortex_user(Session(user, role=role))]


def model_locations(session: Session) -> list[str]:
    """`DB.SCHEMA` of each schema where the role may create a model (USAGE, and CREATE MODEL or OWNERSHIP)."""
    found = []
    for schema in listing.schemas(session):
        try:
            privileges.require_create_in_schema(session, "MODEL", schema.database, schema.name)
        except UserError:
            continue
        found.append(f"{quote(schema.database)}.{quote(schema.name)}")
    return found


def relations(session: Session) -> list[dict]:
    """The tables and views SHOW lists for the role, each with its qualified name and row count."""
    found = [{"name": r.name, "database_name": r.database, "schema_name": r.schema, "kind": r.kind, "rows": r.rows,
              "qualified": str(r.qualified), "location": f"{quote(r.database)}.{quote(r.schema)}"}
             for r in listing.relations(session)]
    return sorted(found, key=lambda r: r["qualified"])


def _name(session: Session, table: str):
    return qualify(table, session.database, session.schema, what="table")


def columns(session: Session, table: str) -> list[tuple[str, str]]:
    """(name, type) of the table's columns, as DESCRIBE TABLE gives them to the role."""
    return [(column.name, column.type) for column in contents.describe(session, _name(session, table))]


def first_rows(session: Session, table: str) -> contents.Preview:
    """The table's first rows (`header`, `rows`), refused without SELECT on it."""
    return contents.preview(session, _name(session, table), rows=FIRST_ROWS)
