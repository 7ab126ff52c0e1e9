"""Checking and reading the prompt/completion rows a training or validation query returns."""
from __future__ import annotations

import duckdb

from catalog import accountdata
from studio.errors import StudioError, compilation_error

REQUIRED_COLUMNS = ("prompt", "completion")
# DuckDB's names for text; JSON covers VARIANT values that hold strings.
TEXT_TYPES = {"VARCHAR", "JSON"}


def _wrapped(sql: str) -> str:
    inner = accountdata.to_duckdb(accountdata.check_read_only_query(sql))
    return f"SELECT CAST(prompt AS VARCHAR), CAST(completion AS VARCHAR) FROM ({inner}) AS training_rows"


def check_query(sql: str, database: str | None, schema: str | None, *, purpose: str) -> int:
    """Validate a training/validation query before a job exists; returns its row count."""
    if not sql or not sql.strip():
        raise StudioError(f"The {purpose} query is empty: give a SELECT that returns prompt and completion columns.",
                          code=100357, sqlstate="22023")
    statement = accountdata.check_read_only_query(sql)
    with accountdata.connect(database, schema) as con:
        try:
            cursor = con.execute(f"SELECT * FROM ({accountdata.to_duckdb(statement)}) AS q LIMIT 0")
        except duckdb.Error as exc:
            error = accountdata.query_error(exc, statement, database, schema)
            raise compilation_error(f"the {purpose} query failed: {error.message.removeprefix('SQL compilation error: ')}") from exc
        columns = [d[0] for d in cursor.description]
        types = {d[0].lower(): str(d[1]) for d in cursor.description}
        lowered = {c.lower() for c in columns}
        missing = [c for c in REQUIRED_COLUMNS if c not in lowered]
        if missing:
            raise compilation_error(
                f"the {purpose} query result must have columns named PROMPT and COMPLETION; "
                f"missing {', '.join(c.upper() for c in missing)} (found {', '.join(columns) or 'no columns'}). "
                "Use column aliases, e.g. SELECT question AS prompt, answer AS completion FROM …"
            )
        not_text = [f"{c.upper()} is {types[c]}" for c in REQUIRED_COLUMNS if types[c] not in TEXT_TYPES]
        if not_text:
            raise compilation_error(
                f"the {purpose} query's PROMPT and COMPLETION columns must be text; {', '.join(not_text)}. "
                "Cast them, e.g. SELECT TO_VARCHAR(label) AS completion"
            )
        count = con.execute(f"SELECT count(*) FROM ({_wrapped(sql)}) AS c").fetchone()[0]
    if count == 0:
        raise StudioError(f"The {purpose} query returned no rows: a fine-tuning job needs at least one "
                          "prompt/completion example.", code=100357, sqlstate="22023")
    return int(count)


def read_rows(sql: str, database: str | None, schema: str | None) -> list[tuple[str | None, str | None]]:
    with accountdata.connect(database, schema) as con:
        return [(p, c) for p, c in con.execute(_wrapped(sql)).fetchall()]
