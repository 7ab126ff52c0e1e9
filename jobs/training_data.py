"""Checking and reading the prompt/completion rows a training or validation query returns.

The query runs in a sandbox as the role that asked for it (sandbox/box.py): when the job is created,
and again when a worker reads its rows, so a grant revoked in between stops the job from reading.
"""
from __future__ import annotations

import duckdb

from access.session import Session
from catalog import accountdata
from errors import UserError, compilation_error
from sandbox.box import Sandbox

REQUIRED_COLUMNS = ("prompt", "completion")
# DuckDB's names for text; JSON covers VARIANT values that hold strings.
TEXT_TYPES = {"VARCHAR", "JSON"}


def _wrapped(inner: str) -> str:
    return f"SELECT CAST(prompt AS VARCHAR), CAST(completion AS VARCHAR) FROM ({inner}) AS training_rows"


def _prepared(box: Sandbox, sql: str, purpose: str) -> str:
    """The query's DuckDB SQL, once the sandbox has checked it and attached what it reads; a refusal
    says which of the job's queries it concerns."""
    try:
        return box.prepare(accountdata.check_read_only_query(sql)).sql(dialect="duckdb")
    except UserError as error:
        reason = error.message.removeprefix("SQL compilation error: ")
        raise UserError(f"SQL compilation error: the {purpose} query failed: {reason}", code=error.code,
                          sqlstate=error.sqlstate, refused=error.refused, field=error.field) from None


def check_query(session: Session, sql: str, *, purpose: str) -> int:
    """Validate a training/validation query before a job exists; returns its row count. A missing or
    non-text PROMPT or COMPLETION column is refused naming that column (field "prompt" or "completion");
    the caller names the query its other refusals concern."""
    if not sql or not sql.strip():
        raise UserError(f"The {purpose} query is empty: give a SELECT that returns prompt and completion columns.",
                          code=100357, sqlstate="22023")
    with Sandbox(session) as box:
        inner = _prepared(box, sql, purpose)
        try:
            cursor = box.execute(f"SELECT * FROM ({inner}) AS q LIMIT 0")
        except duckdb.Error as exc:
            raise compilation_error(f"the {purpose} query failed: {accountdata.duckdb_message(exc)}") from exc
        columns = [d[0] for d in cursor.description]
        types = {d[0].lower(): str(d[1]) for d in cursor.description}
        lowered = {c.lower() for c in columns}
        missing = [c for c in REQUIRED_COLUMNS if c not in lowered]
        if missing:
            raise compilation_error(
                f"the {purpose} query result must have columns named PROMPT and COMPLETION; "
                f"missing {', '.join(c.upper() for c in missing)} (found {', '.join(columns) or 'no columns'}). "
                "Use column aliases, e.g. SELECT question AS prompt, answer AS completion FROM …",
                field=missing[0],
            )
        not_text = [c for c in REQUIRED_COLUMNS if types[c] not in TEXT_TYPES]
        if not_text:
            raise compilation_error(
                f"the {purpose} query's PROMPT and COMPLETION columns must be text; "
                f"{', '.join(f'{c.upper()} is {types[c]}' for c in not_text)}. "
                "Cast them, e.g. SELECT TO_VARCHAR(label) AS completion",
                field=not_text[0],
            )
        count = box.execute(f"SELECT count(*) FROM ({_wrapped(inner)}) AS c").fetchone()[0]
    if count == 0:
        raise UserError(f"The {purpose} query returned no rows: a fine-tuning job needs at least one "
                          "prompt/completion example.", code=100357, sqlstate="22023")
    return int(count)


def read_rows(session: Session, sql: str, *, purpose: str = "training") -> list[tuple[str | None, str | None]]:
    with Sandbox(session) as box:
        return [(p, c) for p, c in box.execute(_wrapped(_prepared(box, sql, purpose))).fetchall()]


def job_session(job) -> Session:
    """The session a job's queries run in: its creator, with the role and the database and schema the
    job was created in."""
    return Session(user=job.user, role=job.role, warehouse=job.warehouse, database=job.query_database or None,
                   schema=job.query_schema or None, entry_point="worker")
