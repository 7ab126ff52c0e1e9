"""What the service layer offers the wizard's role: the roles, schemas and tables its pickers list, a
table's columns and its first rows. The DESCRIBE and SELECT text the wizard runs is built here only."""
from __future__ import annotations

from access import privileges
from access.roles import usable_roles
from access.session import Session
from catalog.identifiers import QualifiedName, quote
from errors import UserError
from sqlengine import show
from sqlengine.executor import Executor

FIRST_ROWS = 8


def cortex_roles(user) -> list[str]:
    """The user's roles that are granted SNOWFLAKE.CORTEX_USER (directly, inherited, or through the user)."""
    return [role for role in usable_roles(user) if privileges.holds_cortex_user(Session(user, role=role))]


def _show(session: Session, kind: str) -> list[dict]:
    result = show.run(session, show.ShowSpec(kind=kind, scope_kind="ACCOUNT"))
    return [dict(zip(result.columns, row)) for row in result.rows]


def model_locations(session: Session) -> list[str]:
    """`DB.SCHEMA` of each schema where the role may create a model (USAGE, and CREATE MODEL or OWNERSHIP)."""
    found = []
    for schema in _show(session, "SCHEMAS"):
        try:
            privileges.require_create_in_schema(session, "MODEL", schema["database_name"], schema["name"])
        except UserError:
            continue
        found.append(f"{quote(schema['database_name'])}.{quote(schema['name'])}")
    return found


def relations(session: Session) -> list[dict]:
    """The tables and views SHOW lists for the role, each with its qualified name and row count."""
    found = [t | {"kind": "TABLE"} for t in _show(session, "TABLES")]
    found += [v | {"kind": "VIEW", "rows": None} for v in _show(session, "VIEWS")]
    for item in found:
        item["qualified"] = str(QualifiedName(item["database_name"], item["schema_name"], item["name"]))
        item["location"] = f"{quote(item['database_name'])}.{quote(item['schema_name'])}"
    return sorted(found, key=lambda r: r["qualified"])


def columns(session: Session, table: str) -> list[tuple[str, str]]:
    """(name, type) of the table's columns, as DESCRIBE TABLE gives them to the role."""
    result = Executor(session).execute(f"DESCRIBE TABLE {table}")[-1]
    return [(row[0], row[1]) for row in result.rows]


def first_rows(session: Session, table: str):
    return Executor(session).execute(f"SELECT * FROM {table} LIMIT {FIRST_ROWS}")[-1]
