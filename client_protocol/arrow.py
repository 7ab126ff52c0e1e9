"""A result as Snowflake's servers send it to the Python connectors in Arrow: `rowsetBase64`.

An Arrow IPC stream whose every field carries Snowflake's metadata (logicalType, precision, scale,
charLength, byteLength, physicalType), which the connectors' decoders (nanoarrow in 4.x, the Rust core
in 5.x) read instead of the Arrow type, in Snowflake's physical encodings:

    FIXED          int8 / int16 / int32 / int64 holding the value times 10**scale (the narrowest that
                   holds every value of the column), decimal128(38, scale) when int64 does not
    REAL           float64                  TEXT, VARIANT, OBJECT, ARRAY   utf8 (JSON text for the last three)
    BOOLEAN        bool                     BINARY         binary
    DATE           date32 (days)            TIME           int64, time of day times 10**scale
    TIMESTAMP_NTZ / _LTZ   struct {epoch: int64 seconds, fraction: int32 nanoseconds} (epoch floored)
    TIMESTAMP_TZ   struct {epoch, fraction, timezone: int32 offset minutes + 1440}

Built from the rowtype and rowset rowsets.encode_result stored, whose cells are the JSON encodings'
strings; they are decoded here by the column's type.
"""
from __future__ import annotations

import base64
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pyarrow as pa

# Narrowest first: a FIXED column is sent in the first that holds all of its (scaled) values.
_INTEGERS = [(pa.int8(), "SB1", 1), (pa.int16(), "SB2", 2), (pa.int32(), "SB4", 4), (pa.int64(), "SB8", 8)]
_WIDE = "SB16"
_NANOS = 10**9
_TIMESTAMPS = ("timestamp_ntz", "timestamp_ltz", "timestamp_tz")


def rowset_base64(rowtype: list[dict[str, Any]], rowset: list[list[str | None]],
                  widths: list[str | None] | None = None) -> str:
    return base64.b64encode(ipc_stream(rowtype, rowset, widths)).decode("ascii")


def ipc_stream(rowtype: list[dict[str, Any]], rows: list[list[str | None]],
               widths: list[str | None] | None = None) -> bytes:
    """The stream of `rows` (one record batch; none for no rows, the schema still sent). `widths` are the
    FIXED columns' physical types (fixed_widths); a result sent in chunks passes those of all its rows, so
    every chunk has the same schema and the client can put them in one table."""
    widths = widths if widths is not None else fixed_widths(rowtype, rows)
    fields, arrays = [], []
    for index, column in enumerate(rowtype):
        field, array = _column(column, [row[index] for row in rows], widths[index])
        fields.append(field)
        arrays.append(array)
    schema = pa.schema(fields)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        if rows:
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return sink.getvalue().to_pybytes()


def fixed_widths(rowtype: list[dict[str, Any]], rows: list[list[str | None]]) -> list[str | None]:
    """The physical type (SB1 … SB16) of each FIXED column over these rows; None for the other columns."""
    widths: list[str | None] = []
    for index, column in enumerate(rowtype):
        if column["type"] != "fixed":
            widths.append(None)
            continue
        scale = column.get("scale") or 0
        low = high = 0
        for row in rows:
            if row[index] is not None:
                value = _unscaled(row[index], scale)
                low, high = min(low, value), max(high, value)
        widths.append(next((name for _, name, size in _INTEGERS
                            if -(2 ** (size * 8 - 1)) <= low and high < 2 ** (size * 8 - 1)), _WIDE))
    return widths


def _unscaled(text: str, scale: int) -> int:
    if not scale and text.lstrip("-").isdigit():  # most columns: int() is several times faster than Decimal
        return int(text)
    return int(Decimal(text).scaleb(scale).to_integral_value(ROUND_HALF_UP))


def _metadata(column: dict[str, Any], logical: str, physical: str, **extra: Any) -> dict[str, str]:
    metadata = {"logicalType": logical, "precision": column.get("precision"), "scale": column.get("scale"),
                "charLength": column.get("length"), "byteLength": column.get("byteLength"),
                "physicalType": physical, **extra}
    return {key: str(value if value is not None else 0) for key, value in metadata.items()}


def _column(column: dict[str, Any], values: list[str | None], width: str | None) -> tuple[pa.Field, pa.Array]:
    kind, name = column["type"], column["name"]
    scale = column.get("scale") or 0
    if kind == "fixed":
        unscaled = [None if v is None else _unscaled(v, scale) for v in values]
        if width == _WIDE:
            decimals = [None if v is None else Decimal(v).scaleb(-scale) for v in unscaled]
            array = pa.array(decimals, pa.decimal128(38, scale))
        else:
            array = pa.array(unscaled, next(t for t, physical, _ in _INTEGERS if physical == width))
        return pa.field(name, array.type, metadata=_metadata(column, "FIXED", width or _WIDE)), array
    if kind == "real":
        array = pa.array([None if v is None else float(v) for v in values], pa.float64())
        return pa.field(name, pa.float64(), metadata=_metadata(column, "REAL", "DOUBLE")), array
    if kind == "boolean":
        array = pa.array([None if v is None else v == "1" for v in values], pa.bool_())
        return pa.field(name, pa.bool_(), metadata=_metadata(column, "BOOLEAN", "SB1")), array
    if kind == "date":
        array = pa.array([None if v is None else int(v) for v in values], pa.int32()).cast(pa.date32())
        return pa.field(name, pa.date32(), metadata=_metadata(column, "DATE", "SB4")), array
    if kind == "time":
        divisor = 10 ** (9 - min(scale, 9))
        array = pa.array([None if v is None else _nanoseconds(v) // divisor for v in values], pa.int64())
        return pa.field(name, pa.int64(), metadata=_metadata(column, "TIME", "SB8")), array
    if kind in _TIMESTAMPS:
        array = _timestamps(values, with_offset=kind == "timestamp_tz")
        metadata = _metadata(column, kind.upper(), "SB16", byteLength=16)
        return pa.field(name, array.type, metadata=metadata), array
    if kind == "binary":
        array = pa.array([None if v is None else bytes.fromhex(v) for v in values], pa.binary())
        return pa.field(name, pa.binary(), metadata=_metadata(column, "BINARY", "BINARY")), array
    logical = kind.upper() if kind in ("text", "variant", "object", "array") else "TEXT"
    return pa.field(name, pa.utf8(), metadata=_metadata(column, logical, "LOB")), pa.array(values, pa.utf8())


def _nanoseconds(text: str) -> int:
    """"<seconds>.<fraction>" (signed, as the JSON encodings write TIME and TIMESTAMP) in nanoseconds."""
    return int(Decimal(text).scaleb(9).to_integral_value(ROUND_HALF_UP))


def _timestamps(values: list[str | None], *, with_offset: bool) -> pa.StructArray:
    epochs, fractions, zones, missing = [], [], [], []
    for value in values:
        missing.append(value is None)
        instant, _, offset = (value or "0").partition(" ")
        seconds, fraction = divmod(_nanoseconds(instant), _NANOS)
        epochs.append(seconds)
        fractions.append(fraction)
        zones.append(int(offset) if offset else 1440)
    children = [pa.array(epochs, pa.int64()), pa.array(fractions, pa.int32())]
    fields = [pa.field("epoch", pa.int64(), nullable=False), pa.field("fraction", pa.int32(), nullable=False)]
    if with_offset:
        children.append(pa.array(zones, pa.int32()))
        fields.append(pa.field("timezone", pa.int32(), nullable=False))
    return pa.StructArray.from_arrays(children, fields=fields, mask=pa.array(missing, pa.bool_()))
