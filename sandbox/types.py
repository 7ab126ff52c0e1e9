"""Snowflake's name for the type of a DuckDB result column, as Snowflake's clients expect it."""
from __future__ import annotations

INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "UHUGEINT")


def snowflake_type(duckdb_type: str) -> str:
    t = duckdb_type.upper()
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
