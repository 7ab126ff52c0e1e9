"""The `data` of a query's answer: its id, the session's names after it, and its result or its error."""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from access.session import Session
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
                type_id: int | None = None) -> dict[str, Any]:
    """A finished, successful statement's `data` (rows inline)."""
    stored = statement.result or {"rowtype": [], "rowset": []}
    rowtype, rowset = stored["rowtype"], stored["rowset"]
    data: dict[str, Any] = {
        "queryId": str(statement.pk), "rowtype": rowtype, "total": len(rowset), "returned": len(rowset),
        "statementTypeId": type_id if type_id is not None else statement_type_of(statement.text),
        "queryResultFormat": rowset_format, "sqlState": "00000", "numberOfBinds": 0, "version": 1,
        "parameters": [], "queryContext": {"entries": []},
    }
    if rowset_format == "arrow":
        from client_protocol import arrow  # pyarrow is loaded by the first answer that needs it

        data["rowsetBase64"] = arrow.rowset_base64(rowtype, rowset)
        data["rowset"] = []
    else:
        data["rowset"] = rowset
    if session is not None:
        data.update(session_names(session))
    return data
