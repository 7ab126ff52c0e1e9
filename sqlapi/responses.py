"""The JSON bodies of Snowflake's SQL API v2: ResultSet, QueryStatus (202), QueryFailureStatus (422)."""
from __future__ import annotations

import json
import uuid

from django.http import JsonResponse
from django.urls import reverse

from sqlapi.models import Statement

SUCCESS_MESSAGE = "Statement executed successfully."
ASYNC_MESSAGE = ("Asynchronous execution in progress. Use provided query id to perform query monitoring and "
                 "management.")


def status_url(statement: Statement) -> str:
    return reverse("sqlapi:status", args=[statement.pk])


def _common(statement: Statement, request_id: str | None = None) -> dict:
    return {"statementHandle": str(statement.pk), "statementStatusUrl": status_url(statement),
            "requestId": request_id or statement.request_id or str(uuid.uuid4()), "createdOn": statement.created_on_ms}


def result(statement: Statement, request_id: str | None = None) -> JsonResponse:
    data = statement.result["data"]
    body = {
        "resultSetMetaData": {
            "numRows": len(data),
            "format": "jsonv2",
            # One partition holds every row, however many: clients that follow partitionInfo work unchanged.
            "partitionInfo": [{"rowCount": len(data), "uncompressedSize": len(json.dumps(data))}],
            "rowType": statement.result["rowType"],
        },
        "data": data,
        "code": "090001",
        "sqlState": "00000",
        "message": SUCCESS_MESSAGE,
        **_common(statement, request_id),
    }
    if statement.multi:
        body["statementHandles"] = [str(pk) for pk in statement.children.order_by("position").values_list("pk", flat=True)]
    return JsonResponse(body)


def running(statement: Statement, request_id: str | None = None) -> JsonResponse:
    return JsonResponse({"code": "333334", "message": ASYNC_MESSAGE, **_common(statement, request_id)}, status=202)


def failure(statement: Statement, request_id: str | None = None) -> JsonResponse:
    error = statement.error
    body = {"code": f"{error.code:06d}", "sqlState": error.sqlstate, "message": error.message,
            **_common(statement, request_id)}
    if statement.multi:
        body["statementHandles"] = [str(pk) for pk in statement.children.order_by("position").values_list("pk", flat=True)]
    return JsonResponse(body, status=422)


def outcome(statement: Statement, request_id: str | None = None) -> JsonResponse:
    if statement.status == Statement.RUNNING:
        return running(statement, request_id)
    if statement.status == Statement.SUCCESS:
        return result(statement, request_id)
    return failure(statement, request_id)


def cancelled(statement: Statement) -> JsonResponse:
    return JsonResponse({"code": "000604", "sqlState": "57014", "message": "SQL execution canceled",
                         "statementHandle": str(statement.pk), "statementStatusUrl": status_url(statement)})


def error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def unauthorized() -> JsonResponse:
    response = error(401, "390303", "Invalid or missing API token. Send 'Authorization: Bearer <token>'; "
                                    "create one with 'manage.py apitoken create'.")
    response["WWW-Authenticate"] = 'Bearer realm="sqlapi"'
    return response


def not_found(handle: str) -> JsonResponse:
    return error(404, "000709", f"Statement {handle} not found.", statementHandle=handle)
