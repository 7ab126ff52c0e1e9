"""A statement's Result in the shape of Snowflake's SQL API v2 (format jsonv2): rowType and string data.

jsonv2 encodes every non-null cell as a string: numbers as decimal text, booleans as "true"/"false",
DATE as days since the epoch, TIME and TIMESTAMP_* as epoch seconds with nine decimals, VARIANT /
OBJECT / ARRAY as JSON text (indented, as Snowflake prints them), BINARY as hex. NULL is null.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlengine.results import Result

TEXT_LENGTH = 16777216
BINARY_LENGTH = 8388608
EPOCH = dt.datetime(1970, 1, 1)

# Snowflake type names (and their synonyms) as the executor reports them -> rowType "type".
DECLARED = {
    **dict.fromkeys(("NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT",
                     "BYTEINT", "FIXED"), "fixed"),
    **dict.fromkeys(("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"), "real"),
    **dict.fromkeys(("TEXT", "VARCHAR", "STRING", "CHAR", "CHARACTER", "NCHAR", "NVARCHAR"), "text"),
    **dict.fromkeys(("BINARY", "VARBINARY"), "binary"),
    **dict.fromkeys(("TIMESTAMP_NTZ", "TIMESTAMP", "DATETIME"), "timestamp_ntz"),
    "BOOLEAN": "boolean", "VARIANT": "variant", "OBJECT": "object", "ARRAY": "array", "DATE": "date",
    "TIME": "time", "TIMESTAMP_LTZ": "timestamp_ltz", "TIMESTAMP_TZ": "timestamp_tz",
}


def result_set(result: Result) -> dict[str, Any]:
    """{"rowType": [...], "data": [[...]]}: what the API stores for a finished statement."""
    declared = result.types or [None] * len(result.columns)
    row_type, encoders = [], []
    for index, name in enumerate(result.columns):
        values = [row[index] for row in result.rows]
        kind = declared_type(declared[index]) or infer_type(values)
        row_type.append(column_type(str(name), kind, values))
        encoders.append(kind)
    data = [[encode(value, kind) for value, kind in zip(row, encoders)] for row in result.rows]
    return {"rowType": row_type, "data": data}


def declared_type(name: str | None) -> str | None:
    if not name:
        return None
    return DECLARED.get(name.upper().split("(")[0].strip())


def infer_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "text"
    first = present[0]
    if isinstance(first, bool):
        return "boolean"
    if isinstance(first, (int, Decimal)):
        return "real" if any(isinstance(v, float) for v in present) else "fixed"
    if isinstance(first, float):
        return "real"
    if isinstance(first, dict):
        return "object"
    if isinstance(first, (list, tuple)):
        return "array"
    if isinstance(first, dt.datetime):
        return "timestamp_ltz" if first.tzinfo is not None else "timestamp_ntz"
    if isinstance(first, dt.date):
        return "date"
    if isinstance(first, dt.time):
        return "time"
    if isinstance(first, (bytes, bytearray, memoryview)):
        return "binary"
    return "text"


def column_type(name: str, kind: str, values: list[Any]) -> dict[str, Any]:
    scale = None
    if kind == "fixed":
        scale = max((-v.as_tuple().exponent for v in values if isinstance(v, Decimal) and v.is_finite()), default=0)
        scale = max(scale, 0)
    elif kind in ("time", "timestamp_ntz", "timestamp_ltz", "timestamp_tz"):
        scale = 9
    length = {"text": TEXT_LENGTH, "binary": BINARY_LENGTH}.get(kind)
    return {
        "name": name, "database": "", "schema": "", "table": "", "type": kind, "nullable": True,
        "length": length, "precision": 38 if kind == "fixed" else (0 if scale == 9 else None), "scale": scale,
        "byteLength": length, "collation": None,
    }


def encode(value: Any, kind: str) -> str | None:
    if value is None:
        return None
    if kind in ("variant", "object", "array") or isinstance(value, (dict, list, tuple)):
        return json.dumps(value, indent=2, default=str)
    if kind == "boolean" or isinstance(value, bool):
        return "true" if value else "false"
    if kind == "date" and isinstance(value, dt.date):
        day = value.date() if isinstance(value, dt.datetime) else value
        return str((day - EPOCH.date()).days)
    if kind.startswith("timestamp") and isinstance(value, dt.datetime):
        return _epoch_seconds(value)
    if kind == "time" and isinstance(value, dt.time):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}000"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _epoch_seconds(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    delta = value - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds, rest = divmod(micros, 1_000_000)
    return f"{seconds}.{rest:06d}000"


MULTI_RESULT = result_set(Result(["multiple statement execution"], [("Multiple statements executed successfully.",)],
                                 ["TEXT"]))
