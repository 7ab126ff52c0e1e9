"""Every type through the client and back: SELECT of literals and casts, and a table of those types filled
with qmark bindings of Python values. argv: the result format the session asks for (arrow or json), and
a database to create. Values are reported as [type name, canonical text] so that the test compares them
exactly, offsets and all."""
import datetime as dt
import sys
from decimal import Decimal

import snowflake.connector
from connect import connect, report

result_format, database = sys.argv[1], sys.argv[2]
COLUMNS = ("t TEXT, i INT, d NUMBER(10,2), f FLOAT, b BOOLEAN, da DATE, ti TIME, ntz TIMESTAMP_NTZ, "
           "ltz TIMESTAMP_LTZ, tz TIMESTAMP_TZ, v VARIANT, o OBJECT, a ARRAY, bin BINARY")
LITERALS = ("SELECT 'héllo' AS t, 42 AS i, 12.34::NUMBER(10,2) AS d, 1.5::FLOAT AS f, TRUE AS b, "
            "'2024-02-29'::DATE AS da, '13:45:06.123456'::TIME AS ti, "
            "'1969-07-20 20:17:40.5'::TIMESTAMP_NTZ AS ntz, '2024-01-02 03:04:05.123456+00:00'::TIMESTAMP_LTZ AS ltz, "
            "'2024-01-02 03:04:05.123456+05:30'::TIMESTAMP_TZ AS tz, PARSE_JSON('{\"a\": [1, 2.5, null]}') AS v, "
            "OBJECT_CONSTRUCT('k', 'v') AS o, ARRAY_CONSTRUCT(1, 2, 3) AS a, TO_BINARY('00FF10', 'HEX') AS bin")
NULLS = ("SELECT NULL::TEXT AS t, NULL::INT AS i, NULL::NUMBER(10,2) AS d, NULL::FLOAT AS f, NULL::BOOLEAN AS b, "
         "NULL::DATE AS da, NULL::TIME AS ti, NULL::TIMESTAMP_NTZ AS ntz, NULL::TIMESTAMP_LTZ AS ltz, "
         "NULL::TIMESTAMP_TZ AS tz, NULL::VARIANT AS v, TO_ARRAY(NULL) AS a, NULL::BINARY AS bin")
KOLKATA = dt.timezone(dt.timedelta(hours=5, minutes=30))
BOUND = ("héllo", 42, Decimal("12.34"), 1.5, True, dt.date(2024, 2, 29), dt.time(13, 45, 6, 123456),
         dt.datetime(1969, 7, 20, 20, 17, 40, 500000),
         ("TIMESTAMP_LTZ", dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc)),
         ("TIMESTAMP_TZ", dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=KOLKATA)),
         '{"a": [1, 2.5, null]}', '{"k": "v"}', '[1, "x"]', b"\x00\xff\x10")


def typed(value):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return ["bytes", bytes(value).hex()]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return [type(value).__name__, value.isoformat()]
    if isinstance(value, float):
        return ["float", repr(value)]
    return [type(value).__name__, str(value)]


def result_format_of(cursor):
    """The format the server answered in (no public API tells; 4.x and 5.x keep it under these names)."""
    query_result = getattr(cursor, "_query_result", None)
    return getattr(cursor, "_query_result_format", None) or getattr(query_result, "query_result_format", None)


def fetched(cursor):
    rows = [[typed(value) for value in row] for row in cursor.fetchall()]
    return {"rows": rows, "types": [[d.name, d.type_code, d.precision, d.scale] for d in cursor.description],
            "format": result_format_of(cursor)}


con = connect(paramstyle="qmark", session_parameters={"PYTHON_CONNECTOR_QUERY_RESULT_FORMAT": result_format})
cur = con.cursor()
out = {"version": snowflake.connector.__version__}
out["literals"] = fetched(cur.execute(LITERALS))
out["nulls"] = fetched(cur.execute(NULLS))
cur.execute(f"CREATE DATABASE {database}")
cur.execute(f"USE DATABASE {database}")
cur.execute(f"CREATE TABLE typed ({COLUMNS})")
placeholders = ", ".join("PARSE_JSON(?)" if index in (10, 11, 12) else "?" for index in range(len(BOUND)))
cur.execute(f"INSERT INTO typed SELECT {placeholders}", BOUND)
cur.execute(f"INSERT INTO typed SELECT {', '.join('?' * len(BOUND))}", [None] * len(BOUND))
out["table"] = fetched(cur.execute("SELECT * FROM typed ORDER BY t NULLS LAST"))
out["empty"] = fetched(cur.execute("SELECT * FROM typed WHERE FALSE"))
described = cur.describe("SELECT d, ntz FROM typed")
out["described"] = [[d.name, d.type_code, d.precision, d.scale] for d in described]
con.close()
report(**out)
