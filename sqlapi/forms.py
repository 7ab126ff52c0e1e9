"""Validating the body of POST /api/v2/statements."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from web import request_body

DEFAULT_TIMEOUT = 45  # seconds a request waits before answering 202, as Snowflake does
MAX_WAIT = 45  # never hold a web worker thread longer than this, whatever "timeout" asks
SESSION_FIELDS = ("database", "schema", "warehouse", "role")


class BadRequest(Exception):
    def __init__(self, field: str, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = 413 if too_large else 400


@dataclass
class StatementRequest:
    statement: str
    timeout: int = DEFAULT_TIMEOUT
    database: str | None = None
    schema: str | None = None
    warehouse: str | None = None
    role: str | None = None
    statement_count: int = 1  # parameters.MULTI_STATEMENT_COUNT; 0 = any number

    @property
    def wait_seconds(self) -> float:
        return min(self.timeout or DEFAULT_TIMEOUT, MAX_WAIT)

    @classmethod
    def from_body(cls, request) -> StatementRequest:
        """The request's body, read within Django's DATA_UPLOAD_MAX_MEMORY_SIZE (as request.body would)."""
        try:
            body = request_body.read_object(request, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0,
                                            setting="DATA_UPLOAD_MAX_MEMORY_SIZE")
        except request_body.BadBody as exc:
            raise BadRequest(exc.field, exc.message, too_large=isinstance(exc, request_body.TooLarge)) from None
        statement = body.get("statement")
        if not isinstance(statement, str) or not statement.strip():
            raise BadRequest("statement", "Field 'statement' is required and must be a non-empty string.")
        request = cls(statement=statement)
        if body.get("timeout") is not None:
            timeout = body["timeout"]
            if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
                raise BadRequest("timeout", "Field 'timeout' must be a non-negative integer (seconds).")
            request.timeout = timeout
        for field in SESSION_FIELDS:
            value = body.get(field)
            if value is not None and not isinstance(value, str):
                raise BadRequest(field, f"Field '{field}' must be a string.")
            setattr(request, field, value or None)
        if body.get("bindings"):
            raise BadRequest("bindings", "Field 'bindings' is not supported yet: put the values in the statement.")
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise BadRequest("parameters", "Field 'parameters' must be an object.")
        count = parameters.get("MULTI_STATEMENT_COUNT", parameters.get("multi_statement_count"))
        if count is not None:
            try:
                request.statement_count = int(count)
                if request.statement_count < 0 or isinstance(count, bool):
                    raise ValueError
            except (TypeError, ValueError, OverflowError) as exc:  # 1e400 is infinity to json
                raise BadRequest("parameters.MULTI_STATEMENT_COUNT",
                                 "Parameter 'MULTI_STATEMENT_COUNT' must be a non-negative integer.") from exc
        return request
