"""Server-side bindings (paramstyle qmark or numeric): {"1": {"type": "FIXED", "value": "42"}, …}.

Each `?` (in order) or `:n` placeholder in the parsed statement is replaced by a typed literal node, never
by text pasted into SQL, so a bound value is data whatever it holds (a number node's text is checked to
be one: DuckDB reads it back from the SQL the sandbox writes). The values come in the connectors'
binding encodings: DATE as epoch milliseconds, TIME as nanoseconds since midnight, TIMESTAMP_NTZ and _LTZ
as epoch nanoseconds, TIMESTAMP_TZ as "<epoch nanoseconds> <offset minutes + 1440>", BINARY as hex,
BOOLEAN as "true"/"false". A binding whose value is a list (executemany) binds one row each: an
INSERT … VALUES (?, …) gets one VALUES row per element.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from sqlglot import exp

from errors import UserError

EPOCH = dt.datetime(1970, 1, 1)
# What the connectors send, and nothing else: 1, 2, … in ASCII. "01" would alias "1", "²" passes isdigit()
# but not int(), and int() of a 5,000-digit key raises.
KEY = re.compile(r"[1-9][0-9]{0,8}")
# A bound number's text is pasted into the SQL DuckDB parses, so it must read as a number there and
# nowhere else: Decimal() also takes "NaN", "Infinity", "1_000" and "١٢", which DuckDB reads as a column's
# name or not at all.
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.I)  # a REAL's float('nan') / float('inf'), as data
HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


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
    _check_keys(statement, bindings)
    values = _values(bindings)
    rows = {len(v) for v in values.values() if isinstance(v, list)}
    if rows:
        return [_bind_rows(statement, values, rows)]
    return [_substitute(statement, values)]


def _values(bindings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, binding in bindings.items():
        kind, value = str(binding.get("type") or "TEXT").upper()[:40], binding.get("value")
        if isinstance(value, list):
            out[key] = [literal(kind, item, key) for item in value]
        else:
            out[key] = literal(kind, value, key)
    return out


def _check_keys(statement: exp.Expression, bindings: dict[str, Any]) -> None:
    """Refuse bindings the placeholders do not use before building any literal: a million bindings for
    one placeholder cost a dictionary, not a million syntax trees."""
    for key, binding in bindings.items():
        if not KEY.fullmatch(key) or not isinstance(binding, dict):
            raise binding_error(f"binding '{key[:20]}' must be numbered from 1 and be {{\"type\", \"value\"}}.")
    placeholders = list(statement.find_all(exp.Placeholder))
    numbered = {str(node.this) for node in placeholders if node.this is not None}
    used = numbered | {str(position) for position in range(1, 1 + sum(node.this is None for node in placeholders))}
    if not set(bindings) <= used:
        raise binding_error(f"{len(bindings)} values were bound but the statement has {len(used)} placeholders.")


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
            text = value.strip()
            if kind == "REAL" and NOT_FINITE.fullmatch(text):
                return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("DOUBLE"))
            if not NUMBER.fullmatch(text):
                raise ValueError(text)
            number = Decimal(text)
            if kind == "FIXED" and (number.adjusted() >= 38 or len(number.as_tuple().digits) > 38):
                # Snowflake's NUMBER(38); DuckDB would read a longer one as a BIGNUM, or a DOUBLE's inf.
                raise binding_error(f"value {text[:40]!r} of binding {key} is out of range for FIXED: NUMBER "
                                    "holds 38 digits.")
            return exp.Literal.number(text)
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
            if not HEX.fullmatch(value):  # bytes.fromhex() also takes spaces between the bytes
                raise ValueError(value)
            # TO_BINARY('…', 'HEX'), as a user writes it: the sandbox's allowlist has no X'…' literal.
            return exp.ToBinary(this=exp.Literal.string(value), format=exp.Literal.string("HEX"))
    except (ValueError, OverflowError):
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
