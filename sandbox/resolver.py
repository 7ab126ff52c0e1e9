"""Databases and schemas as a session's role may know them, for every statement that names one.

Snowflake answers a name the role may not use exactly as it answers a name that does not exist, so
that no statement tells a role what exists: "Database 'ACC' does not exist or not authorized." The
checks below come before any other (existence, kind, the statement's own privilege), in every
statement, and only then does a statement say "Insufficient privileges" about something the role can
see but may not change.

- A database is usable with USAGE on it (or owning it), visible with any privilege on it.
- A schema is usable with USAGE on it and its database, visible with USAGE on its database and any
  privilege on it.
"""
from __future__ import annotations

from access import privileges
from access.session import Session
from catalog.models import Database, Schema
from sandbox import names


class Resolver:
    """The session's roles, or others' (a view's owner's) when given."""

    def __init__(self, session: Session, roles: set[str] | None = None) -> None:
        self.session = session
        self.roles = privileges.session_roles(session) if roles is None else roles
        self.held = privileges.Held(session, self.roles)
        self._visibility: privileges.Visibility | None = None

    def visibility(self) -> privileges.Visibility:
        if self._visibility is None:
            self._visibility = privileges.Visibility(self.session, held=self.held)
        return self._visibility

    def sees(self, object_type: str, object_name: str, owner: str | None) -> bool:
        """Whether the role owns the object (stored key) or holds any privilege on it."""
        return self.visibility().sees(object_type, object_name, owner)

    def database(self, name: str, *, usage: bool = True) -> Database:
        """The database, when the role may use it (any privilege will do with usage=False)."""
        database = Database.objects.filter(name=name).first()
        if database is None:
            raise names.database_not_found(name)
        key = privileges.key(name)
        allowed = (self.held.has("USAGE", "DATABASE", key, database.owner_role) if usage
                   else self.sees("DATABASE", key, database.owner_role))
        if not allowed:
            raise names.database_not_found(name, refused=True)
        return database

    def schema(self, database: str, schema: str, *, usage: bool = True) -> Schema:
        """The schema, when the role may use its database and it (any privilege on the schema will do
        with usage=False)."""
        found = Schema.objects.filter(database=self.database(database), name=schema).select_related("database").first()
        if found is None:
            raise names.schema_not_found(database, schema)
        key = privileges.key(database, schema)
        allowed = (self.held.has("USAGE", "SCHEMA", key, found.owner_role) if usage
                   else self.sees("SCHEMA", key, found.owner_role))
        if not allowed:
            raise names.schema_not_found(database, schema, refused=True)
        return found
