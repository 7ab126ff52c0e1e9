"""Query requests, their results and their cancelling, as Snowflake's clients send them.

Statements run through the SQL API's execution (sqlapi/execution.py): the same executor, privileges and
Statement rows, so any web process answers a poll for a statement another one runs. What is the
protocol's own: the bindings, describeOnly, the answer's encodings, and the session's names kept from
one request to the next.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from sqlglot import exp

from client_protocol import answers, bindings, describing, envelope, sessions
from client_protocol.models import ClientSession
from client_protocol.rowsets import encode_result
from errors import UserError
from sqlapi import execution
from sqlapi.models import Statement
from sqlengine.executor import internal_error
from sqlengine.results import Result, status
from sqlengine.statements.queries import cortex_column_types

IN_PROGRESS, QUEUED = "333333", "333334"
REQUEST_ID_LENGTH = Statement._meta.get_field("request_id").max_length  # a longer one PostgreSQL would refuse
# What the 4.x connector sends to fetch an asynchronous query's result, and what Snowpark sends on close.
RESULT_SCAN = re.compile(r"^\s*select\s+\*\s+from\s+table\s*\(\s*result_scan\s*\(\s*'([0-9a-f-]{36})'\s*\)\s*\)\s*;?\s*$", re.I)
# ASCII digits, as many as a session id has: \d also matches other scripts' digits, and int() of 5,000 raises.
CANCEL_ALL = re.compile(r"^\s*select\s+system\$cancel_all_queries\s*\(\s*([0-9]{1,19})\s*\)\s*;?\s*$", re.I)
RESULT_FORMAT = "PYTHON_CONNECTOR_QUERY_RESULT_FORMAT"
# The one session parameter kept here (the SQL engine has no ALTER SESSION): the format of the results.
SET_RESULT_FORMAT = re.compile(rf"^\s*alter\s+session\s+(?:set\s+{RESULT_FORMAT}\s*=\s*(['\"]?)(json|arrow)\1"
                               rf"|(unset)\s+{RESULT_FORMAT})\s*;?\s*$", re.I)


def _authenticated(request, *, to_run: bool = False) -> tuple[ClientSession, Any]:
    return sessions.session_for(sessions.token_from_header(request.headers.get("Authorization", "")), to_run=to_run)


def _origin(record: ClientSession) -> str:
    return f"client-session:{record.id}"


def _format(body: dict[str, Any], record: ClientSession) -> str:
    """The statement's PYTHON_CONNECTOR_QUERY_RESULT_FORMAT, else the session's (connect()'s
    session_parameters or ALTER SESSION: the clients send it once, not with each query), else the server's."""
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    wanted = str(parameters.get(RESULT_FORMAT) or record.result_format or settings.CLIENT_RESULT_FORMAT)
    return "arrow" if wanted.lower() == "arrow" else "json"


def _running(statement: Statement) -> dict[str, Any]:
    return {"queryId": str(statement.pk), "getResultUrl": f"/queries/{statement.pk}/result",
            "queryAbortsAfterSecs": 300, "progressDesc": None}


def _answer(request, statement: Statement, session, rowset_format: str, type_id: int | None = None):
    if statement.status == Statement.SUCCESS:
        return envelope.ok(answers.result_data(statement, session, rowset_format=rowset_format, type_id=type_id,
                                               absolute=request.build_absolute_uri))
    if statement.is_running:
        return envelope.ok(_running(statement), code=IN_PROGRESS, message="Query execution in progress.")
    error = statement.error or UserError("The statement failed.")
    return envelope.failure(error, queryId=str(statement.pk))


def _not_found(query_id: str) -> UserError:
    # Another user's query id is answered exactly as one nobody ran.
    return UserError(f"Statement {query_id} not found.", code=709, sqlstate="02000")


def _users_statement(user, query_id: str) -> Statement | None:
    try:
        pk = uuid.UUID(str(query_id))
    except ValueError:
        return None
    return Statement.objects.filter(pk=pk, user=user).first()


def _finished_statement(record: ClientSession, session, text: str, result: Result) -> Statement:
    """A statement the protocol answers itself (result_scan, cancel_all_queries), recorded like the others."""
    statement = Statement.objects.create(user=record.user, text=text, role=session.role, origin=_origin(record),
                                         warehouse=session.warehouse or "", database=session.database or "",
                                         schema=session.schema or "")
    statement.succeed(encode_result(result))
    return statement


@csrf_exempt  # token-authenticated: no cookies, so no cross-site request forgery
@require_POST
def query(request):
    try:
        record, session = _authenticated(request, to_run=True)
        body = envelope.read_body(request)
    except UserError as error:
        return envelope.failure(error)
    text = body.get("sqlText")
    if not isinstance(text, str) or not text.strip():
        return envelope.failure(UserError("sqlText must be the statement to run.", code=900, sqlstate="42000"))
    rowset_format = _format(body, record)
    # Strictly true: "false" is a truthy string, and describing is what must never run anything.
    describe_only = body.get("describeOnly") is True
    result_format = SET_RESULT_FORMAT.match(text)
    if result_format:
        if describe_only:
            return _described(request, record, session, text, status(""), answers.SESSION)
        return _set_result_format(record, session, text, result_format)
    scanned = RESULT_SCAN.match(text)
    if scanned:
        earlier = _users_statement(record.user, scanned.group(1))
        if earlier is None:
            return envelope.failure(_not_found(scanned.group(1)))
        earlier.fail_if_abandoned()
        return _answer(request, earlier, session, rowset_format, type_id=answers.SELECT)
    cancel_all = CANCEL_ALL.match(text)
    if cancel_all:
        if describe_only:  # its column, and no query cancelled
            column = Result([f"SYSTEM$CANCEL_ALL_QUERIES({int(cancel_all.group(1))})"], [], ["TEXT"])
            return _described(request, record, session, text, column, answers.SELECT)
        return envelope.ok(answers.result_data(_cancel_all(record, session, text, int(cancel_all.group(1))),
                                               session, rowset_format="json", type_id=answers.SELECT))
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    try:
        desired = int(parameters.get("MULTI_STATEMENT_COUNT", 1))
    except (TypeError, ValueError):
        return envelope.failure(UserError("MULTI_STATEMENT_COUNT must be an integer.", code=2211, sqlstate="22023"))
    if desired != 1:
        return envelope.failure(UserError(
            "Multi-statement requests are not supported by this server: run one statement per execute() "
            "(or cursor.execute_string(), which splits them in the client).", code=8, sqlstate="0A000"))
    types: dict[str, int] = {}
    stood_in_for: list[exp.Expression] = []  # the statement a describeOnly's query stands in for

    def prepare(parsed):
        try:
            types["id"] = answers.statement_type_id(parsed[0] if parsed else None)
            parsed = bindings.bind(parsed, body.get("bindings"))
            if describe_only:
                stood_in_for.extend(parsed[:1])
                return [describing.describable(parsed)]
            return parsed
        except UserError:
            raise
        except Exception as exc:  # a bug of ours: the statement fails, rather than stay running behind a 500
            raise internal_error(exc) from exc

    def encode(result: Result) -> dict[str, Any]:
        if stood_in_for:  # its Cortex columns typed as the statement's own result would type them
            result = replace(result, types=cortex_column_types(stood_in_for[0], result.types))
        return encode_result(result)

    def finished(after) -> None:
        if not describe_only:
            sessions.remember(record, after)

    request_id = str(body.get("requestId") or request.GET.get("requestId") or uuid.uuid4())
    if len(request_id) > REQUEST_ID_LENGTH:
        return envelope.failure(envelope.bad_request(f"requestId must be at most {REQUEST_ID_LENGTH} characters "
                                                     "(the clients send a UUID)."))
    statement, done = execution.submit(record.user, text, session, request_id=request_id, prepare=prepare,
                                       encode=encode, finished=finished, origin=_origin(record))
    if body.get("asyncExec") is True and statement.is_running:
        return envelope.ok(_running(statement), code=QUEUED, message="Query submitted asynchronously.")
    done.wait(settings.CLIENT_QUERY_WAIT_SECONDS)
    statement.refresh_from_db()
    return _answer(request, statement, session, rowset_format, type_id=types.get("id"))


def _described(request, record: ClientSession, session, text: str, result: Result, type_id: int):
    """describeOnly of a statement the protocol answers itself: its columns, recorded, nothing done."""
    statement = _finished_statement(record, session, text, Result(result.columns, [], result.types))
    return envelope.ok(answers.result_data(statement, session, rowset_format="json", type_id=type_id,
                                           absolute=request.build_absolute_uri))


def _set_result_format(record: ClientSession, session, text: str, matched: re.Match):
    record.result_format = "" if matched.group(3) else matched.group(2).lower()
    ClientSession.objects.filter(pk=record.pk).update(result_format=record.result_format)
    statement = _finished_statement(record, session, text, status("Statement executed successfully."))
    data = answers.result_data(statement, session, rowset_format="json", type_id=answers.SESSION)
    # The 4.x connector keeps the session parameters an answer lists.
    data["parameters"] = [{"name": RESULT_FORMAT, "value": (record.result_format or
                                                            settings.CLIENT_RESULT_FORMAT).upper()}]
    return envelope.ok(data)


def _cancel_all(record: ClientSession, session, text: str, session_id: int) -> Statement:
    cancelled = 0
    if session_id == record.id:
        for statement in Statement.objects.filter(origin=_origin(record), status=Statement.RUNNING, parent=None):
            cancelled += statement.cancel()
    return _finished_statement(record, session, text, Result(
        [f"SYSTEM$CANCEL_ALL_QUERIES({session_id})"], [(f"{cancelled} queries were canceled.",)], ["TEXT"]))


@require_GET
def result(request, query_id: str):
    """GET /queries/<id>/result: a statement's result once it has one (the client polls while 333333)."""
    try:
        record, session = _authenticated(request)
    except UserError as error:
        return envelope.failure(error)
    statement = _users_statement(record.user, query_id)
    if statement is None:
        return envelope.failure(_not_found(query_id))
    statement.fail_if_abandoned()
    return _answer(request, statement, session, _format({}, record))


_MONITORING_STATUS = {Statement.RUNNING: "RUNNING", Statement.SUCCESS: "SUCCESS", Statement.FAILED: "FAILED_WITH_ERROR",
                      Statement.CANCELLED: "ABORTED"}


@require_GET
def monitoring(request, query_id: str):
    """GET /monitoring/queries/<id> (the 5.x connector asks with a doubled slash; the URL map takes both)."""
    try:
        record, _ = _authenticated(request)
    except UserError as error:
        return envelope.failure(error)
    statement = _users_statement(record.user, query_id.strip("/"))
    if statement is None:
        return envelope.failure(_not_found(query_id))
    statement.fail_if_abandoned()
    entry = {"id": str(statement.pk), "status": _MONITORING_STATUS[statement.status], "sqlText": statement.text,
             "startTime": statement.created_on_ms, "endTime": int(statement.finished_on.timestamp() * 1000)
             if statement.finished_on else 0, "state": _MONITORING_STATUS[statement.status],
             "errorCode": statement.error_code or None, "errorMessage": statement.error_message or None,
             "sessionId": record.id, "totalDuration": 0}
    return envelope.ok({"queries": [entry]})


@csrf_exempt
@require_POST
def abort_query(request, query_id: str):
    """POST /queries/<id>/abort-request (cursor.abort_query): cancel the user's statement of that id."""
    try:
        record, _ = _authenticated(request)
    except UserError as error:
        return envelope.failure(error)
    statement = _users_statement(record.user, query_id)
    if statement is None or not (statement.parent or statement).cancel():
        return envelope.failure(UserError("Identified SQL statement is not currently executing.", code=605,
                                          sqlstate="57014"))
    return envelope.ok(None)


@csrf_exempt
@require_POST
def abort(request):
    """POST /queries/v1/abort-request {"requestId"}: cancel the user's running statement of that request."""
    try:
        record, _ = _authenticated(request)
        body = envelope.read_body(request, optional=True)
    except UserError as error:
        return envelope.failure(error)
    request_id = str(body.get("requestId") or "")
    statements = Statement.objects.filter(user=record.user, request_id=request_id, parent=None) if request_id else []
    cancelled = [s for s in statements if s.cancel()]
    if not cancelled:
        return envelope.failure(UserError("Identified SQL statement is not currently executing.", code=605,
                                          sqlstate="57014"))
    return envelope.ok(None)
