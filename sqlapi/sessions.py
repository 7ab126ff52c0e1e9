"""The session a SQL API request starts in: the names the request body sent, else the user's defaults,
opened through access/roles.py with USE's checks (a body naming a database its role may not use is
refused as USE DATABASE refuses it)."""
from __future__ import annotations

from access import roles
from access.session import Session
from catalog.identifiers import normalize


def open_session(user, *, role: str | None = None, warehouse: str | None = None, database: str | None = None,
                 schema: str | None = None) -> Session:
    def name(text: str | None) -> str | None:
        return normalize(text) if text else None

    return roles.open_session(user, role=name(role), warehouse=name(warehouse), database=name(database),
                              schema=name(schema), entry_point="api")
