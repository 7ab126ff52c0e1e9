"""Snowflake column types and the DuckDB types that store them, both ways.

DuckDB keeps only its own type, so DESCRIBE maps it back to Snowflake's name; a type declared in
CREATE TABLE is remembered (catalog.SchemaObject.column_types) and shown as written while DuckDB's
type still matches it.
"""
from __future__ import annotations

from sqlglot import exp

from errors import compilation_error

T = exp.DataType.Type

_TEXT = {T.VARCHAR, T.CHAR, T.NCHAR, T.NVARCHAR, T.TEXT, T.NAME}
_INTEGERS = {T.INT, T.BIGINT, T.SMALLINT, T.TINYINT, T.MEDIUMINT, T.INT128, T.UBIGINT, T.UINT, T.USMALLINT,
             T.UTINYINT}
_FLOATS = {T.FLOAT, T.DOUBLE}
_SEMI_STRUCTURED = {T.VARIANT, T.OBJECT, T.ARRAY, T.JSON, T.STRUCT, T.MAP}


def _params(datatype: exp.DataType) -> list[int]:
    values = []
    for param in datatype.expressions:
        node = param.this if isinstance(param, exp.DataTypeParam) else param
        try:
            values.append(int(node.name))
        except (TypeError, ValueError):
            raise compilation_error(f"invalid type parameter in {datatype.sql(dialect='snowflake')}") from None
    return values


def to_duckdb(datatype: exp.DataType) -> str:
    """The DuckDB type that stores a Snowflake column type."""
    kind = datatype.this
    if kind in _TEXT:
        return "VARCHAR"
    if kind in _INTEGERS:
        # Snowflake's INT is NUMBER(38,0); BIGINT keeps Python ints and covers every practical value.
        return "BIGINT"
    if kind == T.DECIMAL:
        precision, scale = (_params(datatype) + [38, 0])[:2] if datatype.expressions else (38, 0)
        if scale == 0:
            return "BIGINT" if precision <= 18 else "HUGEINT"
        return f"DECIMAL({precision},{scale})"
    if kind in _FLOATS:
        return "DOUBLE"
    if kind == T.BOOLEAN:
        return "BOOLEAN"
    if kind == T.DATE:
        return "DATE"
    if kind == T.TIME:
        return "TIME"
    if kind in (T.TIMESTAMP, T.TIMESTAMPNTZ, T.DATETIME):
        return "TIMESTAMP"
    if kind in (T.TIMESTAMPLTZ, T.TIMESTAMPTZ):
        return "TIMESTAMPTZ"
    if kind in (T.BINARY, T.VARBINARY, T.BLOB):
        return "BLOB"
    if kind in _SEMI_STRUCTURED:
        return "JSON"
    raise compilation_error(f"type {datatype.sql(dialect='snowflake')} is not supported in this account.")


def declared(datatype: exp.DataType) -> str:
    """How Snowflake's DESCRIBE shows a declared type (NUMBER(10,2), VARCHAR(20), OBJECT, …)."""
    kind = datatype.this
    params = _params(datatype) if datatype.expressions else []
    if kind in _TEXT:
        return f"VARCHAR({params[0] if params else 16777216})"
    if kind in _INTEGERS:
        return "NUMBER(38,0)"
    if kind == T.DECIMAL:
        precision, scale = (params + [38, 0])[:2] if params else (38, 0)
        return f"NUMBER({precision},{scale})"
    if kind in (T.VARIANT, T.JSON):
        return "VARIANT"
    if kind in (T.OBJECT, T.STRUCT, T.MAP):
        return "OBJECT"
    if kind == T.ARRAY:
        return "ARRAY"
    return from_duckdb(to_duckdb(datatype))


def from_duckdb(duckdb_type: str) -> str:
    """Snowflake's name for a DuckDB column type, as DESCRIBE TABLE shows it."""
    name = duckdb_type.upper()
    if name == "VARCHAR" or name.startswith("VARCHAR("):
        return "VARCHAR(16777216)"
    if name in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT",
                "UTINYINT", "UHUGEINT"):
        return "NUMBER(38,0)"
    if name.startswith("DECIMAL"):
        return "NUMBER" + name[len("DECIMAL"):].replace(" ", "")
    if name in ("DOUBLE", "FLOAT", "REAL"):
        return "FLOAT"
    if name == "TIMESTAMP":
        return "TIMESTAMP_NTZ(9)"
    if name == "TIMESTAMP WITH TIME ZONE":
        return "TIMESTAMP_LTZ(9)"
    if name == "TIME":
        return "TIME(9)"
    if name == "BLOB":
        return "BINARY(8388608)"
    if name == "JSON":
        return "VARIANT"
    if name.endswith("[]"):
        return "ARRAY"
    if name.startswith(("STRUCT", "MAP")):
        return "OBJECT"
    return name

