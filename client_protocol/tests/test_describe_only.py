"""describeOnly (Snowpark's schema requests): the columns and types a statement would return, with
nothing run: no fine-tuning job started, no row inserted."""
from __future__ import annotations

import pytest

from client_protocol.tests.test_sessions import admin, login, run  # noqa: F401  (the fixture and helpers)
from jobs.models import FineTuneJob


@pytest.fixture
def token(client, admin):  # noqa: F811
    token = login(client)["data"]["token"]
    for sql in ("CREATE DATABASE DESCRIBED", "USE DATABASE DESCRIBED",
                "CREATE TABLE t (id NUMBER(10, 2), name TEXT, seen TIMESTAMP_NTZ)"):
        assert run(client, token, sql)["success"], sql
    return token


def test_a_query_is_described_with_its_types_and_no_rows(client, token):
    answer = run(client, token, "SELECT id, name, seen, id > 1 AS big FROM t", describeOnly=True)
    data = answer["data"]
    assert data["rowset"] == [] and data["total"] == 0
    assert [(c["name"], c["type"]) for c in data["rowtype"]] == [
        ("ID", "fixed"), ("NAME", "text"), ("SEEN", "timestamp_ntz"), ("BIG", "boolean")]


def test_describing_a_cortex_call_starts_no_job(client, token):
    before = FineTuneJob.objects.count()
    answer = run(client, token, "SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', "
                                "'SELECT 1 AS prompt, 2 AS completion', NULL, NULL) AS id, "
                                "SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', 'ft_x') AS d", describeOnly=True)
    assert answer["success"], answer
    assert [(c["name"], c["type"]) for c in answer["data"]["rowtype"]] == [("ID", "text"), ("D", "object")]
    assert FineTuneJob.objects.count() == before


def test_describing_an_insert_runs_nothing(client, token):
    answer = run(client, token, "INSERT INTO t VALUES (1, 'x', NULL)", describeOnly=True)
    assert answer["success"] is True and answer["data"]["rowset"] == []
    assert run(client, token, "SELECT COUNT(*) FROM t")["data"]["rowset"] == [["0"]]
