"""Results as both connector generations read them: every type in Arrow and in JSON, large results in
chunks fetched from signed URLs, and fetch_pandas_all / fetch_arrow_all.

The clients run unchanged in their own environments (conftest.py); the chunk URLs' refusals and the
Arrow stream's own encodings are checked over Django's test client and with pyarrow.
"""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import threading
import time
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest
from django.contrib.auth import get_user_model

from access.bootstrap import bootstrap
from client_protocol import arrow
from client_protocol.rowsets import encode_result
from sqlengine.results import Result

GENERATIONS = ["connector4", "connector5"]
FORMATS = ["arrow", "json"]
PASSWORD = "admin-test-password"
# cursor.description's type codes (snowflake.connector.constants.FIELD_TYPES, the same in 4.x and 5.x).
FIXED, REAL, TEXT, DATE, VARIANT, LTZ, NTZ, OBJECT, ARRAY, BINARY, TIME, BOOLEAN = 0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13

ROW = [["str", "héllo"], ["int", "42"], ["Decimal", "12.34"], ["float", "1.5"], ["bool", "True"],
       ["date", "2024-02-29"], ["time", "13:45:06.123456"], ["datetime", "1969-07-20T20:17:40.500000"],
       ["datetime", "2024-01-02T03:04:05.123456+00:00"],
       # TIMESTAMP_TZ keeps the instant but not its offset (DuckDB stores an instant): 03:04:05+05:30 comes
       # back as 21:34:05 UTC the day before, typed TIMESTAMP_LTZ, in the session's time zone (UTC).
       ["datetime", "2024-01-01T21:34:05.123456+00:00"],
       ["str", json.dumps({"a": [1, 2.5, None]}, indent=2)], ["str", json.dumps({"k": "v"}, indent=2)],
       ["str", json.dumps([1, 2, 3], indent=2)], ["bytes", "00ff10"]]
TYPES = [["T", TEXT, None, None], ["I", FIXED, 38, 0], ["D", FIXED, 10, 2], ["F", REAL, None, None],
         ["B", BOOLEAN, None, None], ["DA", DATE, None, None], ["TI", TIME, 0, 9], ["NTZ", NTZ, 0, 9],
         ["LTZ", LTZ, 0, 9], ["TZ", LTZ, 0, 9], ["V", VARIANT, None, None], ["O", OBJECT, None, None],
         ["A", ARRAY, None, None], ["BIN", BINARY, None, None]]
# A table's OBJECT and ARRAY columns are stored as JSON: they read back as VARIANT, their text unchanged.
TABLE_TYPES = TYPES[:11] + [["O", VARIANT, None, None], ["A", VARIANT, None, None]] + TYPES[13:]


@pytest.mark.parametrize("result_format", FORMATS)
@pytest.mark.parametrize("generation", GENERATIONS)
def test_every_type_comes_back_as_the_same_python_value_in_arrow_and_json(studio, generation, result_format):
    out = studio.run(generation, "round_trips.py", result_format, f"TYPES_{uuid.uuid4().hex[:6].upper()}")
    assert out["literals"] == {"rows": [ROW], "types": TYPES, "format": result_format}
    # NULL::OBJECT is not a cast the SQL engine knows, so that column is left out of the NULLs.
    nulls = [column for column in TYPES if column[0] != "O"]
    assert out["nulls"] == {"rows": [[None] * len(nulls)], "types": nulls, "format": result_format}
    bound = ROW[:12] + [["str", json.dumps([1, "x"], indent=2)], ROW[13]]
    assert out["table"] == {"rows": [bound, [None] * len(ROW)], "types": TABLE_TYPES, "format": result_format}
    assert out["empty"] == {"rows": [], "types": TABLE_TYPES, "format": result_format}
    assert out["described"] == [["D", FIXED, 10, 2], ["NTZ", NTZ, 0, 9]]


def _expected_checksum(rows: int) -> str:
    digest = hashlib.sha256()
    for n in range(rows):
        at = dt.datetime(2024, 1, 1) + dt.timedelta(seconds=n)
        digest.update(f"{n}|row-{n}|{Decimal(n) / 100:.2f}|{at.isoformat()}\n".encode())
    return digest.hexdigest()


@pytest.mark.parametrize("result_format", FORMATS)
@pytest.mark.parametrize("generation", GENERATIONS)
def test_fifty_thousand_rows_come_in_chunks_to_fetchall_and_fetch_pandas_all(studio, generation, result_format):
    out = studio.run(generation, "pandas_fetch.py", result_format)
    assert out["format"] == result_format
    assert out["batches"] == 5  # the first 10,000 rows inline (STUDIO_CLIENT_RESULT_CHUNK_ROWS), four chunks
    assert out["count"] == 50_000
    assert out["first"] == ["0", "row-0", "0.00", "2024-01-01 00:00:00"]
    assert out["last"] == ["49999", "row-49999", "499.99", "2024-01-01 13:53:19"]
    assert out["sums"] == [sum(range(50_000)), "12499750.00"]
    assert out["checksum"] == _expected_checksum(50_000)
    frame = {"shape": [50_000, 4], "n_sum": sum(range(50_000)), "amount_sum": 12499750.0,
             "last_at": "2024-01-01 13:53:19", "labels": 50_000}
    if result_format == "json" and generation == "connector4":
        # As against Snowflake: the 4.x connector builds DataFrames from Arrow results only.
        assert out["pandas"]["error"] == out["arrow"]["error"] == "NotSupportedError"
    else:
        # Arrow sends N in the narrowest integer that holds it (int32 here), as Snowflake does; from JSON
        # the 5.x connector builds its own Arrow, with int64.
        integer = "int32" if result_format == "arrow" else "int64"
        text = "object" if generation == "connector4" else "str"  # pandas 2 and 3
        assert out["pandas"] == {**frame, "dtypes": [integer, text, "float64", "datetime64[ns]"]}
        assert out["arrow"] == {"rows": 50_000, "types": [integer, "string", "double", "timestamp[ns]"]}
    assert out["after_set_json"] == ["json", [[1]]]
    if generation == "connector4":
        assert out["pandas_after_set_json"]["error"] == "NotSupportedError"
    assert out["after_unset"] == ["arrow", [[1]]]


# Over Django's test client: the chunk URLs' capabilities and what the Arrow stream holds.

@pytest.fixture
def admin(transactional_db, settings, tmp_path):  # statements run on threads of their own: committed rows
    settings.DUCKDB_DIR, settings.STAGE_DIR = tmp_path / "duckdb", tmp_path / "stages"
    settings.CLIENT_RESULT_CHUNK_ROWS = 2
    bootstrap(password=PASSWORD, demo=False)
    yield get_user_model().objects.get(username="admin")
    for thread in threading.enumerate():  # let statements finish before the tables are flushed
        if thread.name.startswith("sqlapi-"):
            thread.join(60)


def _post(client, path, body, token="None", **query):
    url = path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    response = client.post(url, gzip.compress(json.dumps(body).encode()), content_type="application/json",
                           HTTP_AUTHORIZATION=f'Snowflake Token="{token}"', HTTP_CONTENT_ENCODING="gzip")
    return response.json()


@pytest.fixture
def token(client, admin):
    return _post(client, "/session/v1/login-request", {"data": {
        "LOGIN_NAME": "admin", "PASSWORD": PASSWORD, "ACCOUNT_NAME": "studio", "CLIENT_APP_ID": "PythonConnector",
        "CLIENT_APP_VERSION": "4.8.1"}})["data"]["token"]


def _query(client, token, sql, result_format="json", **body):
    return _post(client, "/queries/v1/query-request", {
        "sqlText": sql, "sequenceId": 1, "parameters": {"PYTHON_CONNECTOR_QUERY_RESULT_FORMAT": result_format},
        **body}, token=token, requestId=str(uuid.uuid4()))["data"]


FIVE_ROWS = "SELECT SEQ4() * 100 AS n, 'r' || SEQ4() AS s FROM TABLE(GENERATOR(ROWCOUNT => 5)) ORDER BY n"


def test_a_chunk_url_is_fetched_without_a_token_and_holds_rows_without_the_outer_brackets(client, token):
    data = _query(client, token, FIVE_ROWS)
    assert data["total"] == 5 and data["rowset"] == [["0", "r0"], ["100", "r1"]]
    assert [(c["rowCount"], c["url"].split("?")[0]) for c in data["chunks"]] == [
        (2, f"http://testserver/queries/{data['queryId']}/chunks/1"),
        (1, f"http://testserver/queries/{data['queryId']}/chunks/2")]
    response = client.get(data["chunks"][0]["url"])  # no Authorization header, as the clients fetch it
    assert response.status_code == 200
    assert response.content.decode() == '["200","r2"],["300","r3"]'
    assert json.loads("[" + client.get(data["chunks"][1]["url"]).content.decode() + "]") == [["400", "r4"]]


def test_a_tampered_expired_or_borrowed_chunk_url_is_refused(client, token, admin, settings):
    data = _query(client, token, FIVE_ROWS)
    url = data["chunks"][0]["url"]
    path, _, signature = url.partition("?sig=")
    tampered = client.get(f"{path}?sig={signature[:-2]}{'AB' if signature[-2:] != 'AB' else 'CD'}")
    assert (tampered.status_code, tampered.content.decode()) == (
        403, "This result chunk's URL is not valid: its signature does not match.")
    assert client.get(path).status_code == 403  # no signature at all
    other = _query(client, token, FIVE_ROWS)
    borrowed = client.get(f"{other['chunks'][0]['url'].split('?')[0]}?sig={signature}")
    assert (borrowed.status_code, borrowed.content.decode()) == (
        403, "This result chunk's URL is not valid: it was signed for another chunk.")
    second_chunk = client.get(f"{path[:-1]}2?sig={signature}")
    assert second_chunk.status_code == 403
    admin.is_active = False
    admin.save(update_fields=["is_active"])
    assert client.get(url).status_code == 404  # a disabled user's results are no longer handed out
    admin.is_active = True
    admin.save(update_fields=["is_active"])
    settings.CLIENT_RESULT_CHUNK_SECONDS = 1
    time.sleep(2.1)  # the signature's timestamp counts whole seconds
    expired = client.get(url)
    assert (expired.status_code, expired.content.decode()) == (
        403, "This result chunk's URL has expired: run the query again (chunk URLs last 1 seconds).")


def _stream(raw: bytes) -> pa.Table:
    return pa.ipc.open_stream(raw).read_all()


def test_arrow_chunks_share_the_first_chunks_schema_so_the_narrowest_integer_holds_every_row(client, token):
    data = _query(client, token, FIVE_ROWS, result_format="arrow")
    assert data["queryResultFormat"] == "arrow" and data["rowset"] == []
    inline = _stream(base64.b64decode(data["rowsetBase64"]))
    chunk = _stream(client.get(data["chunks"][0]["url"]).content)
    assert inline.schema.equals(chunk.schema, check_metadata=True)
    # 0 and 100 alone fit int8, but 400 does not: every chunk sends N as int16 (SB2).
    assert inline.schema.field("N").type == pa.int16()
    assert inline.schema.field("N").metadata[b"physicalType"] == b"SB2"
    assert inline.column("N").to_pylist() + chunk.column("N").to_pylist() == [0, 100, 200, 300]


def test_describe_only_keeps_a_numbers_precision_and_scale(client, token):
    data = _query(client, token, "SELECT 12.34::NUMBER(10,2) AS d, 7 AS i", describeOnly=True)
    assert [(c["name"], c["type"], c["precision"], c["scale"]) for c in data["rowtype"]] == [
        ("D", "fixed", 10, 2), ("I", "fixed", 38, 0)]
    assert data["total"] == 0


def test_a_result_within_the_chunk_size_has_no_chunks(client, token, settings):
    settings.CLIENT_RESULT_CHUNK_ROWS = 10
    data = _query(client, token, FIVE_ROWS, result_format="arrow")
    assert "chunks" not in data and _stream(base64.b64decode(data["rowsetBase64"])).num_rows == 5


def test_the_arrow_stream_carries_snowflakes_metadata_and_physical_encodings():
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    result = Result(
        ["SMALL", "PRICE", "HUGE", "NTZ", "TZ", "DAY", "AT", "BIN"],
        [(-3, Decimal("-1.50"), 10**30, dt.datetime(1969, 12, 31, 23, 59, 59, 250000),
          dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=kolkata), dt.date(1970, 1, 2), dt.time(0, 0, 1, 5), b"\x01"),
         (None,) * 8],
        ["NUMBER", "NUMBER(10,2)", "NUMBER", "TIMESTAMP_NTZ", "TIMESTAMP_TZ", "DATE", "TIME", "BINARY"])
    stored = encode_result(result)
    table = _stream(arrow.ipc_stream(stored["rowtype"], stored["rowset"]))
    fields = {field.name: field for field in table.schema}
    assert {name: (str(f.type), f.metadata[b"logicalType"].decode(), f.metadata[b"physicalType"].decode())
            for name, f in fields.items()} == {
        "SMALL": ("int8", "FIXED", "SB1"), "PRICE": ("int16", "FIXED", "SB2"),
        "HUGE": ("decimal128(38, 0)", "FIXED", "SB16"),
        "NTZ": ("struct<epoch: int64 not null, fraction: int32 not null>", "TIMESTAMP_NTZ", "SB16"),
        "TZ": ("struct<epoch: int64 not null, fraction: int32 not null, timezone: int32 not null>",
               "TIMESTAMP_TZ", "SB16"),
        "DAY": ("date32[day]", "DATE", "SB4"), "AT": ("int64", "TIME", "SB8"), "BIN": ("binary", "BINARY", "BINARY")}
    assert fields["PRICE"].metadata[b"precision"] == b"10" and fields["PRICE"].metadata[b"scale"] == b"2"
    assert fields["TZ"].metadata[b"byteLength"] == b"16"
    assert table.to_pylist() == [
        {"SMALL": -3, "PRICE": -150, "HUGE": Decimal(10**30),
         # Seconds floored and a positive fraction: 23:59:59.25 the day before 1970 is -1 s + 0.25 s.
         "NTZ": {"epoch": -1, "fraction": 250_000_000},
         "TZ": {"epoch": 1704144845, "fraction": 6000, "timezone": 1440 + 330},
         "DAY": dt.date(1970, 1, 2), "AT": 1_000_005_000, "BIN": b"\x01"},
        {name: None for name in fields}]



def test_only_queries_are_answered_in_arrow_as_snowflake_answers_them(client, token):
    assert _query(client, token, "SELECT 1 AS one", result_format="arrow")["queryResultFormat"] == "arrow"
    shown = _query(client, token, "SHOW DATABASES", result_format="arrow")
    assert shown["queryResultFormat"] == "json" and "rowsetBase64" not in shown
    _query(client, token, "CREATE DATABASE ARROWLESS")
    _query(client, token, "CREATE TABLE ARROWLESS.PUBLIC.T (n INT)")
    inserted = _query(client, token, "INSERT INTO ARROWLESS.PUBLIC.T VALUES (1), (2)", result_format="arrow")
    # The connectors read a DML's row count from the JSON rowset only.
    assert (inserted["queryResultFormat"], inserted["rowset"]) == ("json", [["2"]])
