"""The session a SQL API request or a worksheet starts in: what the client named, else the user's
defaults (access/roles.py: the profile's DEFAULT_ROLE and DEFAULT_WAREHOUSE; no database)."""
from __future__ import annotations

from access.models import Role
from access.roles import default_role, default_warehouse, may_use_role
from access.session import Session
from catalog import accountdata
from studio.errors import StudioError
from warehouses.models import Warehouse


def identifier(name: str) -> str:
    """Snowflake's rule: unquoted names are upper-cased, "quoted" ones kept as written."""
    name = name.strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name.upper()


def open_session(user, *, role: str | None = None, warehouse: str | None = None, database: str | None = None,
                 schema: str | None = None) -> Session:
    """A session for `user`, refusing names that do not exist and roles the user does not hold."""
    role = identifier(role) if role else default_role(user)
    if not Role.objects.filter(name=role).exists() or not may_use_role(user, role):
        raise StudioError(f"Role '{role}' specified in the request does not exist or is not granted to this user.",
                          code=390189, sqlstate="08004")
    warehouse = identifier(warehouse) if warehouse else default_warehouse(user)
    if warehouse and not Warehouse.objects.filter(name=warehouse).exists():
        raise StudioError(f"Object does not exist, or operation cannot be performed: warehouse '{warehouse}'.",
                          code=2043, sqlstate="02000")
    database = identifier(database) if database else None
    schema = identifier(schema) if schema else None
    if schema and not database:
        raise StudioError("Cannot use schema: no database is named. Name the database too.", code=90105,
                          sqlstate="22000")
    if database:
        accountdata.get_database(database)
        schema = schema or accountdata.DEFAULT_SCHEMA
        accountdata.get_schema(database, schema)
    return Session(user=user, role=role, warehouse=warehouse, database=database, schema=schema)
