"""Snowflake's SQL API v2: submit statements, poll them, cancel them. Authenticated by API token only."""
from __future__ import annotations

import uuid

from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from access.tokens import user_from_request
from errors import UserError
from sqlapi import execution, responses
from sqlapi.forms import BadRequest, StatementRequest
from sqlapi.models import Statement
from sqlapi.sessions import open_session


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def _statement_for(user, handle: str) -> Statement | None:
    """The user's own statement, or None: another user's handle is answered like an unknown one."""
    try:
        pk = uuid.UUID(handle)
    except ValueError:
        return None
    return Statement.objects.filter(pk=pk, user=user).select_related("parent").first()


@csrf_exempt  # token-authenticated: no cookies, so no cross-site request forgery
@require_POST
def submit(request):
    user = user_from_request(request)
    if user is None:
        return responses.unauthorized()
    try:
        body = StatementRequest.from_body(request)
    except BadRequest as exc:
        return responses.error(exc.status, "390142", exc.message, field=exc.field)
    request_id = request.GET.get("requestId") or str(uuid.uuid4())
    try:
        session = open_session(user, role=body.role, warehouse=body.warehouse, database=body.database,
                               schema=body.schema)
    except UserError as error:
        return responses.error(422, f"{error.code:06d}", error.message, sqlState=error.sqlstate, requestId=request_id)
    statement, done = execution.submit(user, body.statement, session, desired_count=body.statement_count,
                                       request_id=request_id)
    if _truthy(request.GET.get("async")) and statement.is_running:
        return responses.running(statement, request_id)
    done.wait(body.wait_seconds)
    statement.refresh_from_db()
    return responses.outcome(statement, request_id)


@require_GET
def status(request, handle: str):
    user = user_from_request(request)
    if user is None:
        return responses.unauthorized()
    statement = _statement_for(user, handle)
    if statement is None:
        return responses.not_found(handle)
    partition = request.GET.get("partition", "0")
    if partition != "0":
        return responses.error(422, "000709", f"Partition {partition} does not exist: every result has one partition.",
                               statementHandle=str(statement.pk))
    statement.fail_if_abandoned()
    return responses.outcome(statement, request.GET.get("requestId"))


@csrf_exempt
@require_POST
def cancel(request, handle: str):
    user = user_from_request(request)
    if user is None:
        return responses.unauthorized()
    statement = _statement_for(user, handle)
    if statement is None:
        return responses.not_found(handle)
    top = statement.parent or statement
    top.cancel()
    if top.status != Statement.CANCELLED:
        return responses.error(422, "000605", "Identified SQL statement is not currently executing.",
                               statementHandle=str(statement.pk))
    return responses.cancelled(statement)
