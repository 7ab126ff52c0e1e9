"""Checking and reading the prompt/completion rows a training or validation query returns.

The query runs in a sandbox as the role that asked for it (sandbox/box.py): when the job is created,
and again when a worker reads its rows, so a grant revoked in between stops the job from reading.
A worker reads them in Arrow batches and tokenises them batch by batch into a token store on disk
(prepare_tokens), so a job's memory does not grow with its data.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import duckdb

from access.session import Session
from catalog import accountdata
from errors import UserError, compilation_error
from sandbox.box import Sandbox

if TYPE_CHECKING:
    from trainer.token_store import TokenStore

REQUIRED_COLUMNS = ("prompt", "completion")
# Rows per Arrow batch read from DuckDB and tokenised at once: big enough for the fast tokenizer's threads
# to pay off, small enough that one batch of text and ids stays in the tens of MB.
READ_BATCH_ROWS = 2048
# DuckDB's buffer pool while a job reads its data. Its default, 80% of the machine, lets a scan cache the
# whole table (RSS grew with the table's size); a plain scan streams within far less. A query that must
# hold more at once (ORDER BY over a big table) fails with DuckDB's out-of-memory message.
READ_MEMORY_LIMIT = "512MB"
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
    """Every row at once: for a few rows only (the data preview's); a job reads read_batches."""
    with Sandbox(session) as box:
        return [(p, c) for p, c in box.execute(_wrapped(_prepared(box, sql, purpose))).fetchall()]


def read_batches(session: Session, sql: str, *, purpose: str = "training",
                 batch_rows: int | None = None) -> Iterator[list[tuple[str | None, str | None]]]:
    """The query's rows in order, batch_rows (READ_BATCH_ROWS) at a time, streamed from DuckDB as they are
    consumed."""
    with Sandbox(session, memory_limit=READ_MEMORY_LIMIT) as box:
        reader = box.stream(_wrapped(_prepared(box, sql, purpose)), batch_rows or READ_BATCH_ROWS)
        for batch in reader:
            yield list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()))


def count_rows(session: Session, sql: str, *, purpose: str = "training") -> int:
    with Sandbox(session, memory_limit=READ_MEMORY_LIMIT) as box:
        return int(box.execute(f"SELECT count(*) FROM ({_wrapped(_prepared(box, sql, purpose))}) AS c").fetchall()[0][0])


def prepare_tokens(job: Any, directory: Path, tokenizer: Any, *, max_training_bytes: int | None,
                   max_prompt_tokens: int | None, max_completion_tokens: int | None, validation_fraction: float,
                   should_cancel: Callable[[], bool]) -> TokenStore:
    """Read the job's training (and validation) query batch by batch, check its rows as check_rows does,
    hold out split_validation's rows when it has no validation query, and tokenise every row into a
    token store in `directory`: the rows in query order, split as they are read. Data no training could
    use raises DataError with check_rows', split_validation's and encode_rows' messages (in that order,
    row numbers as they count them); a cancelled job raises TrainingCancelled between batches."""
    from trainer.prepare import DataError, RowCheck, held_out_rows
    from trainer.token_store import TokenStoreWriter
    from trainer import TrainingCancelled

    session = job_session(job)
    writer = TokenStoreWriter(directory, tokenizer)
    held_out: set[int] = set()
    split_error: DataError | None = None
    if not job.validation_data:
        try:  # the held-out rows depend on the count alone, so they are known before the first batch
            held_out = held_out_rows(count_rows(session, job.training_data), validation_fraction, seed=0)
        except DataError as error:  # fewer than 2 rows: said once the rows themselves were checked
            split_error = error

    def read(sql: str, purpose: str, check: Any, validation: bool) -> None:
        for rows in read_batches(session, sql, purpose=purpose):
            if should_cancel():
                raise TrainingCancelled("Training was cancelled.")
            first = check.rows
            check.add(rows)
            if check.usable:  # once a row is unusable the job fails: the rest is only counted for the message
                writer.add(rows, validation or [first + i in held_out for i in range(len(rows))])

    check = RowCheck(max_training_bytes)
    read(job.training_data, "training", check, validation=False)
    check.raise_if_unusable()
    if split_error is not None:
        raise split_error
    if job.validation_data:
        validation_check = RowCheck()
        read(job.validation_data, "validation", validation_check, validation=True)
        try:
            validation_check.raise_if_unusable()
        except DataError as exc:
            raise DataError(f"Validation data: {exc}") from None
    return writer.finish(max_prompt_tokens, max_completion_tokens)


def job_session(job) -> Session:
    """The session a job's queries run in: its creator, with the role and the database and schema the
    job was created in."""
    return Session(user=job.user, role=job.role, warehouse=job.warehouse, database=job.query_database or None,
                   schema=job.query_schema or None, entry_point="worker")
