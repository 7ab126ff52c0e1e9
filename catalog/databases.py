"""CREATE and DROP of databases and schemas, for a session's role: the privilege checks, then the
catalog's rows and DuckDB's files (catalog/accountdata.py), and the table stages that go with them.

A database or schema the role holds nothing on is one that does not exist (sandbox/resolver.py), so a
refusal never tells the role that it exists. Each operation answers whether it did anything: False is
IF [NOT] EXISTS finding nothing to do.
"""
from __future__ import annotations

from access import privileges
from access.session import Session
from catalog import accountdata, stages
from catalog.identifiers import quote
from catalog.models import Database, Schema
from errors import UserError
from sandbox.resolver import Resolver


def create_database(session: Session, name: str, *, replace: bool = False, if_not_exists: bool = False,
                    comment: str = "") -> bool:
    """The session's role owns the new database and its PUBLIC schema."""
    # CREATE DATABASE is an account privilege that SYSADMIN (and ACCOUNTADMIN above it) holds.
    if not privileges.has_any_role(session, "SYSADMIN", "ACCOUNTADMIN"):
        raise privileges.insufficient("database", quote(name))
    exists = Database.objects.filter(name=name).exists()
    if exists and if_not_exists:
        return False
    if exists and replace:
        privileges.require_ownership(session, "DATABASE", privileges.key(name))
        accountdata.drop_database(name)
    accountdata.create_database(quote(name), session.role, comment=comment)
    return True


def create_schema(session: Session, database: str, name: str, *, replace: bool = False,
                  if_not_exists: bool = False) -> bool:
    """CREATE SCHEMA on the database is needed; OR REPLACE needs the old schema's ownership too."""
    Resolver(session).database(database, usage=False)
    privileges.require_writable(database, "CREATE SCHEMA")
    privileges.require(session, "CREATE SCHEMA", "DATABASE", privileges.key(database))
    exists = Schema.objects.filter(database__name=database, name=name).exists()
    if exists and if_not_exists:
        return False
    if exists and replace:
        privileges.require_ownership(session, "SCHEMA", privileges.key(database, name))
        accountdata.drop_schema(database, name)
    accountdata.create_schema(database, name, session.role)
    return True


def drop_database(session: Session, name: str, *, if_exists: bool = False) -> bool:
    """Its owner only; its schemas, tables, views, models and table stages go with it."""
    try:
        Resolver(session).database(name, usage=False)
    except UserError:
        if if_exists:  # one the role may not see is as dropped as one that does not exist
            return False
        raise
    privileges.require_ownership(session, "DATABASE", privileges.key(name))
    accountdata.drop_database(name)
    stages.drop_table_stages(name)
    return True


def drop_schema(session: Session, database: str, name: str, *, if_exists: bool = False) -> bool:
    """Its owner only; its tables, views, models and table stages go with it."""
    try:
        Resolver(session).schema(database, name, usage=False)
    except UserError:
        if if_exists:
            return False
        raise
    privileges.require_ownership(session, "SCHEMA", privileges.key(database, name))
    privileges.require_writable(database, "DROP SCHEMA")
    accountdata.drop_schema(database, name)
    stages.drop_table_stages(database, name)
    return True
