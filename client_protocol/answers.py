"""The `data` of a query's answer: its id, the session's names after it, and its result or its error."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from access.session import Session
from client_protocol import chunks
from sqlapi.models import Statement
from sqlengine.parsing import parse

# Snowflake's statement type ids; the connectors take a DML's row count from its result when the id is
# in the DML range (0x3000-0x3fff), and treat everything else as a query.
SELECT, DML, INSERT, UPDATE, DELETE, MERGE, DDL, SESSION = 0x1000, 0x3000, 0x3100, 0x3200, 0x3300, 0x3400, 0x6000, 0x4000
_TYPES = ((exp.Insert, INSERT), (exp.Update, UPDATE), (exp.Delete, DELETE), (exp.Merge, MERGE),
          (exp.Query, SELECT), (exp.Use, SESSION), (exp.Set, SESSION))


def statement_type_id(node: exp.Expression | None) -> int:
    if node is None:
        return SELECT
    for kind, type_id in _TYPES:
        if isinstance(node, kind):
            return type_id
    return DDL


def statement_type_of(text: str) -> int:
    try:
        parsed = parse(text)
    except Exception:  # a stored text that no longer parses is answered as a query
        return SELECT
    return statement_type_id(parsed[0] if parsed else None)


def session_names(session: Session) -> dict[str, Any]:
    return {"finalDatabaseName": session.database, "finalSchemaName": session.schema,
            "finalWarehouseName": session.warehouse, "finalRoleName": session.role}


def result_data(statement: Statement, session: Session | None, *, rowset_format: str = "json",
                type_id: int | None = None, absolute: Callable[[str], str] | None = None) -> dict[str, Any]:
    """A finished, successful statement's `data`: its rows inline, or past the chunk size only the first
    chunk's, the others as `chunks` (absolute URLs, so only with `absolute`, request.build_absolute_uri)."""
    stored = statement.result or {"rowtype": [], "rowset": []}
    rowtype, rowset = stored["rowtype"], stored["rowset"]
    type_id = type_id if type_id is not None else statement_type_of(statement.text)
    if type_id != SELECT:
        # Snowflake answers only queries in Arrow: SHOW, DDL and DML in JSON, whose rowset the connectors
        # read a DML's row counts from.
        rowset_format = "json"
    parts = chunks.boundaries(rowset) if absolute is not None else [(0, len(rowset))]
    first = rowset[:parts[0][1]]
    data: dict[str, Any] = {
        "queryId": str(statement.pk), "rowtype": rowtype, "total": len(rowset), "returned": len(rowset),
        "statementTypeId": type_id,
        "queryResultFormat": rowset_format, "sqlState": "00000", "numberOfBinds": 0, "version": 1,
        "parameters": [], "queryContext": {"entries": []},
    }
    widths = None
    if rowset_format == "arrow":
        from client_protocol import arrow  # pyarrow is loaded by the first answer that needs it

        widths = arrow.fixed_widths(rowtype, rowset)  # of every row, so that every chunk has one schema
        data["rowsetBase64"] = arrow.rowset_base64(rowtype, first, widths) if first else ""
        data["rowset"] = []
    else:
        data["rowset"] = first
    if len(parts) > 1:
        data["chunks"] = chunks.remote(statement, rowset, parts, rowset_format, absolute, widths)
    if session is not None:
        data.update(session_names(session))
    return data
