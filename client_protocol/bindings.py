"""Server-side bindings (paramstyle qmark or numeric): {"1": {"type": "FIXED", "value": "42"}, …}.

Each `?` (in order) or `:n` placeholder in the parsed statement is replaced by a typed literal node, never
by text pasted into SQL, so a bound value is data whatever it holds. The values come in the connectors'
binding encodings: DATE as epoch milliseconds, TIME as nanoseconds since midnight, TIMESTAMP_NTZ and _LTZ
as epoch nanoseconds, TIMESTAMP_TZ as "<epoch nanoseconds> <offset minutes + 1440>", BINARY as hex,
BOOLEAN as "true"/"false". A binding whose value is a list (executemany) binds one row each: an
INSERT … VALUES (?, …) gets one VALUES row per element.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlglot import exp

from errors import UserError

EPOCH = dt.datetime(1970, 1, 1)


def binding_error(message: str) -> UserError:
    return UserError(f"Bind variable error: {message}", code=2049, sqlstate="22000")


def bind(statements: list[exp.Expression], bindings: dict[str, Any] | None) -> list[exp.Expression]:
    if not bindings:
        return statements
    if not isinstance(bindings, dict):
        raise binding_error("'bindings' must be an object of {\"1\": {\"type\", \"value\"}, …}.")
    if len(statements) != 1:
        raise binding_error("bindings apply to a single statement.")
    statement = statements[0]
    values = _values(bindings)
    rows = {len(v) for v in values.values() if isinstance(v, list)}
    if rows:
        return [_bind_rows(statement, values, rows)]
    return [_substitute(statement, values)]


def _values(bindings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, binding in bindings.items():
        if not str(key).isdigit() or not isinstance(binding, dict):
            raise binding_error(f"binding '{key}' must be numbered from 1 and be {{\"type\", \"value\"}}.")
        kind, value = str(binding.get("type") or "TEXT").upper(), binding.get("value")
        if isinstance(value, list):
            out[str(int(key))] = [literal(kind, item, key) for item in value]
        else:
            out[str(int(key))] = literal(kind, value, key)
    return out


def _substitute(statement: exp.Expression, values: dict[str, Any], row: int | None = None) -> exp.Expression:
    tree = statement.copy()
    position = 0
    used: set[str] = set()

    def replace(node: exp.Expression) -> exp.Expression:
        nonlocal position
        if not isinstance(node, exp.Placeholder):
            return node
        if node.this is None:
            position += 1
            key = str(position)
        else:
            key = str(node.this)
        if key not in values:
            raise binding_error(f"no value was bound for placeholder {'?' if node.this is None else ':' + key} "
                                f"(number {key}).")
        used.add(key)
        value = values[key]
        return (value[row] if row is not None else value).copy() if isinstance(value, list) else value.copy()

    tree = tree.transform(replace, copy=False)
    unused = set(values) - used
    if unused:
        raise binding_error(f"{len(values)} values were bound but the statement has {len(used)} placeholders.")
    return tree


def _bind_rows(statement: exp.Expression, values: dict[str, Any], sizes: set[int]) -> exp.Expression:
    if len(sizes) != 1 or any(not isinstance(v, list) for v in values.values()):
        raise binding_error("every bound array must have the same number of values.")
    values_node = statement.expression if isinstance(statement, exp.Insert) else None
    if not isinstance(values_node, exp.Values) or len(values_node.expressions) != 1:
        raise binding_error("arrays of values bind only INSERT INTO … VALUES (?, …) with one row of placeholders.")
    row_count = sizes.pop()
    template = values_node.expressions[0]
    tuples = [_substitute(template, values, row) for row in range(row_count)]
    bound = statement.copy()
    bound.set("expression", exp.Values(expressions=tuples))
    return bound


def literal(kind: str, value: Any, key: str = "?") -> exp.Expression:
    """The literal node for one bound value of Snowflake type `kind`."""
    if value is None:
        return exp.Null()
    if not isinstance(value, str):
        value = str(value).lower() if isinstance(value, bool) else str(value)
    try:
        if kind in ("FIXED", "REAL"):
            Decimal(value)  # refuses anything but a number
            return exp.Literal.number(value)
        if kind in ("TEXT", "ANY"):
            return exp.Literal.string(value)
        if kind == "BOOLEAN":
            return exp.Boolean(this=value.strip().lower() in ("true", "1", "t", "yes", "y", "on"))
        if kind == "DATE":
            day = EPOCH + dt.timedelta(milliseconds=int(value))
            return _cast(day.date().isoformat(), "DATE")
        if kind == "TIME":
            nanos = int(value)
            clock = (EPOCH + dt.timedelta(microseconds=nanos // 1000)).time()
            return _cast(clock.isoformat(), "TIME")
        if kind in ("TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"):
            return _timestamp(kind, value)
        if kind == "BINARY":
            bytes.fromhex(value)
            # TO_BINARY('…', 'HEX'), as a user writes it: the sandbox's allowlist has no X'…' literal.
            return exp.ToBinary(this=exp.Literal.string(value), format=exp.Literal.string("HEX"))
    except (ValueError, InvalidOperation, OverflowError):
        raise binding_error(f"value {value[:40]!r} of binding {key} is not a valid {kind}.") from None
    raise binding_error(f"binding {key} has type {kind}, which is not supported here: use FIXED, REAL, TEXT, "
                        "BOOLEAN, DATE, TIME, TIMESTAMP_NTZ, TIMESTAMP_LTZ, TIMESTAMP_TZ or BINARY.")


def _cast(text: str, kind: str) -> exp.Expression:
    return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build(kind, dialect="snowflake"))


def _timestamp(kind: str, value: str) -> exp.Expression:
    nanos, _, offset = value.strip().partition(" ")
    instant = EPOCH + dt.timedelta(microseconds=int(nanos) // 1000)
    if kind == "TIMESTAMP_NTZ":
        return _cast(instant.isoformat(sep=" "), kind)
    minutes = int(offset) - 1440 if offset else 0
    zone = dt.timezone(dt.timedelta(minutes=minutes))
    local = instant.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    return _cast(local.isoformat(sep=" "), kind)
