"""Snowflake's name for the type of a DuckDB result column, as Snowflake's clients expect it."""
from __future__ import annotations

import re

INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "UHUGEINT")


_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def snowflake_type(duckdb_type: str) -> str:
    """NUMBER keeps a DECIMAL's precision and scale ("NUMBER(10,2)"), so that a result without rows still
    tells the clients its scale; bare NUMBER is NUMBER(38,0), as in Snowflake."""
    t = duckdb_type.upper()
    decimal = _DECIMAL.match(t)
    if decimal and (decimal.group(1), decimal.group(2)) != ("38", "0"):
        return f"NUMBER({decimal.group(1)},{decimal.group(2)})"
    if t == "JSON":
        return "VARIANT"
    if t.endswith("[]") or t.startswith("LIST"):
        return "ARRAY"
    if t.startswith(("STRUCT", "MAP")):
        return "OBJECT"
    if t in ("VARCHAR", "TEXT", "STRING", "UUID") or t.startswith("VARCHAR("):
        return "TEXT"
    if t in ("BOOLEAN", "DATE", "TIME"):
        return t
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return "TIMESTAMP_LTZ"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP_NTZ"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return "FLOAT"
    if t.startswith("DECIMAL") or t in INTEGERS:
        return "NUMBER"
    if t == "BLOB":
        return "BINARY"
    return "VARIANT"
