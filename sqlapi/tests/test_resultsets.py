import datetime as dt
from decimal import Decimal

from sqlapi.resultsets import result_set
from sqlengine.results import Result


def test_values_are_encoded_as_snowflake_jsonv2_strings():
    result = Result(["i", "f", "d", "b", "day", "ts", "obj", "arr", "s", "none"], [
        (7, 2.5, Decimal("1.50"), True, dt.date(1970, 1, 11), dt.datetime(1970, 1, 1, 0, 0, 1, 500000),
         {"a": 1}, [1, 2], "x", None),
    ])
    encoded = result_set(result)
    assert [c["type"] for c in encoded["rowType"]] == [
        "fixed", "real", "fixed", "boolean", "date", "timestamp_ntz", "object", "array", "text", "text"]
    assert encoded["data"] == [["7", "2.5", "1.50", "true", "10", "1.500000000", '{\n  "a": 1\n}', "[\n  1,\n  2\n]",
                                "x", None]]
    assert encoded["rowType"][2]["scale"] == 2 and encoded["rowType"][5]["scale"] == 9


def test_declared_types_win_over_inference():
    encoded = result_set(Result(["v", "n"], [("42", 3)], ["VARIANT", "NUMBER(38,0)"]))
    assert [c["type"] for c in encoded["rowType"]] == ["variant", "fixed"]
    assert encoded["data"] == [['"42"', "3"]]


def test_a_column_of_ints_and_floats_is_real():
    encoded = result_set(Result(["x"], [(1,), (2.5,), (None,)]))
    assert encoded["rowType"][0]["type"] == "real" and encoded["data"] == [["1"], ["2.5"], [None]]
