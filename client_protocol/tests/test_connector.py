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
    # close() signed out: the session is closed on the server, not left to expire.
    from client_protocol.models import ClientSession

    assert ClientSession.objects.get(pk=out["session_id"]).closed_on is not None


@pytest.mark.parametrize("generation", GENERATIONS)
def test_asynchronous_queries_are_polled_and_fetched(studio, generation):
    out = studio.run(generation, "async_queries.py")
    assert out["status"] == "SUCCESS"
    assert out["rows"] == [[42]]
    assert out["error"]["errno"] == 2003 and "NO_SUCH_DB" in out["error"]["msg"]


def test_snowpark_dataframes_run_their_generated_sql(studio):
    database = f"SNOWPARK_{uuid.uuid4().hex[:6].upper()}"
    out = studio.run("connector4", "snowpark_frames.py", database)
    assert out["current"] == [[database, "PUBLIC"]]
    assert out["schema"] == [["NAME", "StringType"], ["AGE", "LongType"], ["CITY", "StringType"]]
    assert out["older"] == [{"NAME": "Alan", "CITY": "Wilmslow"}, {"NAME": "Grace", "CITY": "Arlington"}]
    assert out["count"] == 3
    assert out["created"] == [[1, "x"], [2, "y"]]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_an_expired_token_is_renewed_and_a_revoked_session_refused(studio, generation):
    from datetime import timedelta

    from django.utils import timezone

    from client_protocol.models import ClientSession

    with studio.start(generation, "token_lifetimes.py") as script:
        first = script.read()
        assert first["first"] == 1
        session = ClientSession.objects.get(pk=first["session_id"])
        token_hash = session.token_hash
        ClientSession.objects.filter(pk=session.pk).update(token_expires_on=timezone.now() - timedelta(seconds=1))
        script.next()
        assert script.read() == {"after_expiry": 2}
        renewed = ClientSession.objects.get(pk=session.pk)
        assert renewed.token_hash != token_hash and renewed.token_expires_on > timezone.now()
        ClientSession.objects.filter(pk=session.pk).update(closed_on=timezone.now())
        script.next()
        refused = script.read()["after_revoke"]
        assert refused["errno"] == 390111 and "New login required" in refused["msg"]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_a_running_query_is_aborted(studio, generation):
    out = studio.run(generation, "abort.py")
    assert out["running"] == "RUNNING" and out["aborted"] is True
    assert out["status"] == "ABORTED"
    assert out["result"]["errno"] == 604
