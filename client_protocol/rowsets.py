"""A statement's Result as Snowflake's client protocol carries it in JSON: `rowtype` and `rowset`.

Not the SQL API's jsonv2 (sqlapi/resultsets.py), though the column types are worked out the same way:
the connectors decode cells by the column's type, from strings only (the 5.x connector rejects JSON
numbers), and in their own encodings: BOOLEAN "1"/"0" (the 4.x connector reads "true" as False), DATE as
days since the epoch, TIME as seconds since midnight with nine decimals, TIMESTAMP_NTZ / _LTZ as epoch
seconds with nine decimals, TIMESTAMP_TZ as "<epoch seconds> <offset in minutes + 1440>", BINARY as hex,
VARIANT / OBJECT / ARRAY as JSON text. NUMBER with scale 0 as an integer, otherwise as a decimal.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

from sqlapi.resultsets import column_type, declared_type, infer_type
from sqlengine.results import Result

_NUMBER = re.compile(r"^\s*(?:NUMBER|DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*$", re.I)
EPOCH = dt.datetime(1970, 1, 1)


def encode_result(result: Result) -> dict[str, Any]:
    """{"rowtype": [...], "rowset": [[...]]}: what a finished statement stores for the clients."""
    declared = result.types or [None] * len(result.columns)
    rowtype, kinds = [], []
    for index, name in enumerate(result.columns):
        values = [row[index] for row in result.rows]
        kind = declared_type(declared[index]) or infer_type(values)
        column = column_type(str(name), kind, values)
        number = _NUMBER.match(declared[index] or "")
        if kind == "fixed" and number:
            column["precision"], column["scale"] = int(number.group(1)), int(number.group(2) or 0)
        rowtype.append(column)
        kinds.append((kind, column["scale"] or 0))
    rowset = [[encode(value, kind, scale) for value, (kind, scale) in zip(row, kinds)] for row in result.rows]
    return {"rowtype": rowtype, "rowset": rowset}


def encode(value: Any, kind: str, scale: int = 0) -> str | None:
    if value is None:
        return None
    if kind in ("variant", "object", "array"):
        return json.dumps(value, indent=2, default=str, ensure_ascii=False)
    if kind == "boolean":
        return "1" if value else "0"
    if kind == "fixed":
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float):
            value = Decimal(repr(value))
        if isinstance(value, Decimal):
            return format(value.quantize(Decimal(1).scaleb(-scale)) if scale and value.is_finite() else value, "f")
        return str(value)
    if kind == "real":
        return repr(float(value))
    if kind == "date" and isinstance(value, dt.date):
        day = value.date() if isinstance(value, dt.datetime) else value
        return str((day - EPOCH.date()).days)
    if kind == "time" and isinstance(value, dt.time):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}000"
    if kind.startswith("timestamp") and isinstance(value, dt.datetime):
        return _timestamp(value, with_offset=kind == "timestamp_tz")
    if kind == "binary" and isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex().upper()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _timestamp(value: dt.datetime, *, with_offset: bool) -> str:
    offset = value.utcoffset() if value.tzinfo is not None else None
    naive = (value - offset).replace(tzinfo=None) if offset is not None else value
    delta = naive - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    # A signed decimal, as the connectors read it: 1969-12-31 23:59:59.5 is "-0.500000000", not "-1.5…".
    seconds, rest = divmod(abs(micros), 1_000_000)
    text = f"{'-' if micros < 0 else ''}{seconds}.{rest:06d}000"
    if with_offset:
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        text += f" {minutes + 1440}"
    return text
