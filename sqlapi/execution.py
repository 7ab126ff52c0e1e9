"""Running SQL API statements: submit in the request, execute in a background thread of the receiving
process, record every state change on the Statement row so any web process can answer a poll."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection
from sqlglot import exp

from access.session import Session
from errors import UserError
from sqlapi.models import HEARTBEAT_SECONDS, Statement
from sqlapi.resultsets import MULTI_RESULT, result_set
from sqlengine.executor import Executor, internal_error
from sqlengine.parsing import parse
from sqlengine.results import Result
from sqlengine.redaction import redact  # stored statements must not keep passwords

log = logging.getLogger(__name__)


def count_mismatch(actual: int, desired: int) -> UserError:
    return UserError(f"Actual statement count {actual} did not match the desired statement count {desired}.",
                       code=8, sqlstate="0A000")


Encoder = Callable[[Result], dict[str, Any]]


def submit(user, text: str, session: Session, *, desired_count: int = 1, request_id: str = "",
           prepare: Callable[[list[exp.Expression]], list[exp.Expression]] | None = None,
           encode: Encoder = result_set, finished: Callable[[Session], None] | None = None,
           origin: str = "") -> tuple[Statement, threading.Event]:
    """Record the statement and start it. Returns the row (already failed if the text does not parse
    or has the wrong number of statements) and an event set once it stops running.

    Entry points other than the SQL API change three things: `prepare` rewrites the parsed statements
    before they run (the client protocol binds its parameters there), `encode` turns each Result into
    what Statement.result stores (the protocol's own cell encodings), and `finished` is called on the
    statement's thread with the session as the statements left it (USE ROLE / DATABASE …)."""
    statement = Statement.objects.create(
        user=user, text=redact(text), request_id=request_id, origin=origin, multi=desired_count != 1, role=session.role,
        warehouse=session.warehouse or "", database=session.database or "", schema=session.schema or "")
    done = threading.Event()
    try:
        parsed = parse(text)
        if not parsed:
            raise UserError("Empty SQL statement.", code=900, sqlstate="42000")
        if desired_count and len(parsed) != desired_count:
            raise count_mismatch(len(parsed), desired_count)
        if prepare is not None:
            parsed = prepare(parsed)
    except UserError as error:
        statement.fail(error)
        done.set()
        return statement, done
    worker = threading.Thread(target=_run_in_thread, args=(statement.pk, session, parsed, done, encode, finished),
                              name=f"sqlapi-{statement.pk}", daemon=True)
    worker.start()
    return statement, done


class _Heartbeat(threading.Thread):
    """Refreshes heartbeat_on of the statements in `handles` until stopped."""

    def __init__(self, handles: list) -> None:
        super().__init__(daemon=True, name="sqlapi-heartbeat")
        self.handles = handles
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(HEARTBEAT_SECONDS):
                Statement.beat(list(self.handles))
        except Exception:  # a missed heartbeat is survivable; a crashed poll loop must not kill the statement
            log.exception("heartbeat failed")
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()


def _run_in_thread(handle, session: Session, parsed: list[exp.Expression], done: threading.Event,
                   encode: Encoder = result_set, finished: Callable[[Session], None] | None = None) -> None:
    close_old_connections()
    heartbeat = _Heartbeat([handle])
    heartbeat.start()
    try:
        run(Statement.objects.get(pk=handle), session, parsed, heartbeat.handles, encode=encode)
        if finished is not None:
            _session_finished(handle, session, finished)
    finally:
        heartbeat.stop()
        connection.close()
        done.set()


def _session_finished(handle, session: Session, finished: Callable[[Session], None]) -> None:
    try:
        finished(session)
    except Exception:  # the statement has its outcome; keeping the session's names is second to it
        log.exception("statement %s: the session it left could not be kept", handle)


def run(statement: Statement, session: Session, parsed: list[exp.Expression], beating: list | None = None, *,
        encode: Encoder = result_set) -> None:
    """Execute the parsed statements and record the outcome on `statement` (and its children)."""
    beating = beating if beating is not None else []
    executor = Executor(session)
    try:
        if not statement.multi:
            statement.succeed(encode(executor.run(parsed[0])))
            return
        for position, node in enumerate(parsed):
            if statement.was_cancelled():
                return
            child = Statement.objects.create(
                user=statement.user, parent=statement, position=position, request_id=statement.request_id,
                text=redact(node.sql(dialect="snowflake")), role=session.role, warehouse=session.warehouse or "",
                database=session.database or "", schema=session.schema or "")
            beating.append(child.pk)
            try:
                child.succeed(encode(executor.run(node)))
            except UserError as error:
                child.fail(error)
                raise
        statement.succeed(MULTI_RESULT)
    except UserError as error:
        statement.fail(error)
    except Exception as exc:  # a bug of ours: the statement must still end, and say so without details
        error = internal_error(exc)
        for child in statement.children.filter(status=Statement.RUNNING):
            child.fail(error)
        statement.fail(error)
