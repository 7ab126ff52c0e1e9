"""What a statement returns, and how the command line prints it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    # Snowflake type names per column (TEXT, NUMBER, FLOAT, BOOLEAN, VARIANT, ARRAY, OBJECT, DATE,
    # TIMESTAMP_NTZ, …) for the SQL API's rowType; None when not known: the API then infers them.
    types: list[str] | None = None


def status(message: str) -> Result:
    """The one-cell result of DDL and session statements, like Snowflake's `status` column."""
    return Result(["status"], [(message,)], ["TEXT"])


def format_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return "NULL" if value is None else str(value)


def format_table(result: Result) -> str:
    header = [str(c) for c in result.columns]
    body = [[format_value(v) for v in row] for row in result.rows]
    widths = [max([len(header[i])] + [len(r[i]) for r in body]) for i in range(len(header))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |", line]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in body]
    out.append(line)
    return "\n".join(out)


def to_json(result: Result) -> dict[str, Any]:
    return {"columns": result.columns, "rows": [list(r) for r in result.rows]}
