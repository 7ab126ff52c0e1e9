"""USE ROLE / WAREHOUSE / DATABASE / SCHEMA: they change the session the next statements run in."""
from __future__ import annotations

from sqlglot import exp

from access import privileges
from access.models import Role
from catalog import accountdata
from sqlengine.parsing import name_parts
from sqlengine.results import Result, status
from studio.errors import StudioError, compilation_error
from warehouses.models import Warehouse


def handles(statement: exp.Expression) -> bool:
    return isinstance(statement, exp.Use)


def run(executor, statement: exp.Use) -> Result:
    session = executor.session
    kind = (statement.args.get("kind").name if statement.args.get("kind") else "DATABASE").upper()
    parts = name_parts(statement.this)
    if not parts:
        raise compilation_error(f"USE {kind} needs a name.")
    if kind == "ROLE":
        if not Role.objects.filter(name=parts[-1]).exists():
            raise StudioError(f"Role '{parts[-1]}' does not exist or not authorized.", code=2003, sqlstate="02000")
        if not privileges.may_use_role(session.user, parts[-1]):
            raise StudioError(f"Requested role '{parts[-1]}' is not assigned to the executing user. Specify "
                              "another role to activate.", code=3013, sqlstate="42501")
        session.role = parts[-1]
    elif kind == "WAREHOUSE":
        if not Warehouse.objects.filter(name=parts[-1]).exists():
            raise StudioError(f"Object does not exist, or operation cannot be performed: warehouse '{parts[-1]}'.",
                              code=2043, sqlstate="02000")
        privileges.require_warehouse_usage(session, parts[-1])
        session.warehouse = parts[-1]
    elif kind == "DATABASE":
        accountdata.get_database(parts[-1])
        privileges.require(session, "USAGE", "DATABASE", privileges.key(parts[-1]))
        session.database, session.schema = parts[-1], accountdata.DEFAULT_SCHEMA
    elif kind == "SCHEMA":
        database = parts[0] if len(parts) == 2 else session.database
        if not database:
            raise StudioError("Cannot use schema: this session has no current database. Run USE DATABASE first, "
                              "or name it: USE SCHEMA db.schema.", code=90105, sqlstate="22000")
        accountdata.get_schema(database, parts[-1])
        privileges.require_schema_usage(session, database, parts[-1])
        session.database, session.schema = database, parts[-1]
    else:
        raise compilation_error(f"USE {kind} is not supported.")
    return status("Statement executed successfully.")
