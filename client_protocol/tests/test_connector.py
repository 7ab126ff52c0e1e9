"""snowflake-connector-python 4.x and 5.x against the studio: sign-in, statements, bindings, errors."""
from __future__ import annotations

import uuid

import pytest

GENERATIONS = ["connector4", "connector5"]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_connect_ddl_inserts_bindings_and_errors(studio, generation):
    database = f"CLIENT_{generation.upper()}_{uuid.uuid4().hex[:6].upper()}"
    out = studio.run(generation, "basics.py", database)
    assert out["version"].startswith("4." if generation == "connector4" else "5.")
    assert out["current"] == ["admin", "ACCOUNTADMIN", "COMPUTE_WH"]
    assert out["database_after_use"] == [database, "PUBLIC"]
    assert out["inserted_rowcount"] == 2
    assert out["bound_select"] == [[3, "it's three; DROP TABLE t"], [4, "four"], [5, None]]
    assert out["rows"] == [[1, "one"], [2, "two"], [3, "it's three; DROP TABLE t"], [4, "four"], [5, None]]
    assert out["error"]["errno"] == 2003 and out["error"]["sqlstate"] == "42S02"
    assert "NO_SUCH_TABLE" in out["error"]["msg"]
