"""SELECT beyond plain DuckDB: session functions, the fine-tuning usage history, and Cortex functions
anywhere a scalar may stand (over the rows of a table, through the real inference server)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from datetime import timezone as tz
from decimal import Decimal

import pytest

from access.bootstrap import bootstrap
from catalog.models import BaseModel
from errors import UserError
from jobs.models import FineTuneJob
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table


def run(session, sql):
    return Executor(session).execute(sql)[-1]


@pytest.fixture
def account(db, tmp_path):
    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "QDB", "PEOPLE", [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Alan"}])


# Session functions ---------------------------------------------------------------------------

def test_session_functions_answer_from_the_session(account):
    session = admin_session(database="QDB", schema="PUBLIC")
    result = run(session, "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE() AS wh, CURRENT_DATABASE(), CURRENT_SCHEMA(), "
                          "CURRENT_USER(), CURRENT_ACCOUNT(), CURRENT_VERSION()")
    assert result.columns == ["CURRENT_ROLE()", "WH", "CURRENT_DATABASE()", "CURRENT_SCHEMA()", "CURRENT_USER()",
                              "CURRENT_ACCOUNT()", "CURRENT_VERSION()"]
    assert result.rows == [("ACCOUNTADMIN", "COMPUTE_WH", "QDB", "PUBLIC", "admin", "STUDIO", "9.0.0")]


def test_session_functions_follow_use_statements_and_mix_with_table_rows(account):
    session = admin_session()
    # QDB belongs to ACCOUNTADMIN: SYSADMIN reads it only once granted, as in Snowflake.
    results = Executor(session).execute(
        "GRANT USAGE ON DATABASE qdb TO ROLE sysadmin; GRANT USAGE ON SCHEMA qdb.public TO ROLE sysadmin; "
        "GRANT SELECT ON TABLE qdb.public.people TO ROLE sysadmin; "
        "USE ROLE sysadmin; USE SCHEMA qdb.public; "
        "SELECT name || '@' || CURRENT_DATABASE() AS who, CURRENT_ROLE() AS role FROM people "
        "WHERE CURRENT_SCHEMA() = 'PUBLIC' ORDER BY id")
    assert results[-1].rows == [("Ada@QDB", "SYSADMIN"), ("Alan@QDB", "SYSADMIN")]
    assert results[-1].types == ["TEXT", "TEXT"]


def test_without_a_current_database_the_functions_are_null(account):
    result = run(admin_session(), "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA(), CURRENT_DATABASE() IS NULL")
    assert result.rows == [(None, None, True)]


def test_session_functions_work_in_ctes_and_subqueries(account):
    session = admin_session(database="QDB", schema="PUBLIC")
    result = run(session, "WITH r AS (SELECT CURRENT_ROLE() AS role) "
                          "SELECT (SELECT role FROM r) AS role, (SELECT COUNT(*) FROM people) AS n")
    assert result.rows == [("ACCOUNTADMIN", 2)]


# Usage history -------------------------------------------------------------------------------

def _job(base_model: str, tokens: int | None, finished_on: datetime | None, status=FineTuneJob.Status.SUCCESS):
    return FineTuneJob.objects.create(
        status=status, base_model=base_model, database="QDB", schema="PUBLIC", requested_name=f"m_{uuid.uuid4().hex[:6]}",
        training_data="SELECT prompt, completion FROM t", warehouse="COMPUTE_WH", role="ACCOUNTADMIN",
        trained_tokens=tokens, finished_on=finished_on, started_on=finished_on and finished_on - timedelta(minutes=5))


# Jobs the end-to-end tests train are committed and finish "now"; these tests look at March 2025 only.
MARCH_2025 = "start_time BETWEEN '2025-03-01' AND '2025-03-31'"


@pytest.fixture
def finished_jobs(account):
    BaseModel.objects.filter(name="mistral-7b").update(training_credits_per_million_tokens=2.5)
    BaseModel.objects.filter(name="smollm2-135m").update(training_credits_per_million_tokens=0)
    _job("mistral-7b", 1_000_000, datetime(2025, 3, 1, 10, 5, tzinfo=tz.utc))
    _job("mistral-7b", 200_000, datetime(2025, 3, 1, 10, 55, tzinfo=tz.utc))
    _job("mistral-7b", 30_000, datetime(2025, 3, 1, 11, 1, tzinfo=tz.utc))
    _job("smollm2-135m", 5_000, datetime(2025, 3, 1, 10, 30, tzinfo=tz.utc))
    # Not billed: still training, or failed before any token was trained.
    _job("mistral-7b", None, None, status=FineTuneJob.Status.IN_PROGRESS)
    _job("mistral-7b", None, datetime(2025, 3, 1, 10, 40, tzinfo=tz.utc), status=FineTuneJob.Status.ERROR)


def test_usage_history_has_one_row_per_base_model_and_hour_with_tokens_and_credits(finished_jobs):
    result = run(admin_session(), "SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.CORTEX_FINE_TUNING_USAGE_HISTORY "
                                  f"WHERE {MARCH_2025} ORDER BY start_time, model_name")
    assert result.columns == ["START_TIME", "END_TIME", "MODEL_NAME", "TOKEN_CREDITS", "TOKENS"]
    assert result.types == ["TIMESTAMP_NTZ", "TIMESTAMP_NTZ", "TEXT", "NUMBER(38,9)", "NUMBER"]
    assert result.rows == [
        (datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 11), "mistral-7b", Decimal("3.000000000"), 1_200_000),
        (datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 11), "smollm2-135m", Decimal("0E-9"), 5_000),
        (datetime(2025, 3, 1, 11), datetime(2025, 3, 1, 12), "mistral-7b", Decimal("0.075000000"), 30_000),
    ]


def test_usage_history_filters_and_aggregates_like_a_table(finished_jobs):
    session = admin_session()
    result = run(session, "SELECT model_name, SUM(tokens) AS tokens, SUM(token_credits) AS credits "
                          "FROM snowflake.account_usage.cortex_fine_tuning_usage_history "
                          f"WHERE model_name LIKE 'mistral%' AND {MARCH_2025} GROUP BY model_name")
    assert result.rows == [("mistral-7b", 1_230_000, Decimal("3.075000000"))]
    result = run(session, "SELECT COUNT(*) FROM snowflake.account_usage.cortex_fine_tuning_usage_history "
                          f"WHERE start_time >= '2025-03-01 11:00:00' AND {MARCH_2025}")
    assert result.rows == [(1,)]


def test_usage_history_joins_account_tables(finished_jobs):
    session = admin_session(database="QDB", schema="PUBLIC")
    result = run(session, "SELECT p.name, h.tokens FROM people p JOIN "
                          "snowflake.account_usage.cortex_fine_tuning_usage_history h ON h.tokens = 5000")
    assert sorted(result.rows) == [("Ada", 5000), ("Alan", 5000)]


def test_the_credit_rates_are_seeded(db):
    rates = dict(BaseModel.objects.values_list("name", "training_credits_per_million_tokens"))
    assert rates["smollm2-135m"] == 0
    assert all(rates[m] > 0 for m in ("llama3-8b", "llama3-70b", "llama3.1-8b", "llama3.1-70b", "mistral-7b",
                                      "mixtral-8x7b"))
    assert rates["llama3.1-70b"] > rates["llama3.1-8b"]


# Cortex calls that are not constants, without an inference server ---------------------------

def test_an_unknown_model_over_rows_fails_with_the_services_message(account):
    session = admin_session(database="QDB", schema="PUBLIC")
    with pytest.raises(UserError, match=r"^Model 'QDB\.PUBLIC\.NO_SUCH_MODEL' does not exist") as caught:
        run(session, "SELECT id, SNOWFLAKE.CORTEX.COMPLETE('no_such_model', name) FROM people")
    assert caught.value.code != 2003 or "does not exist" in caught.value.message


def test_an_unknown_cortex_function_is_a_compilation_error(account):
    with pytest.raises(UserError, match=r"Unknown function SNOWFLAKE\.CORTEX\.SENTIMENT"):
        run(admin_session(database="QDB", schema="PUBLIC"), "SELECT SNOWFLAKE.CORTEX.SENTIMENT(name) FROM people")


def test_null_prompts_give_null_without_asking_a_server(account):
    session = admin_session(database="QDB", schema="PUBLIC")
    result = run(session, "SELECT id, SNOWFLAKE.CORTEX.COMPLETE('no_such_model', NULLIF(name, name)) AS answer "
                          "FROM people ORDER BY id")
    assert result.rows == [(1, None), (2, None)]


def test_finetune_describe_over_rows_returns_objects(account):
    job = _job("mistral-7b", 10, datetime(2025, 3, 1, 10, 5, tzinfo=tz.utc))
    session = admin_session(database="QDB", schema="PUBLIC")
    result = run(session, f"SELECT d:status AS status, d:trained_tokens::int AS tokens FROM "
                          f"(SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', id) AS d FROM (SELECT '{job.id}' AS id))")
    assert result.rows == [("SUCCESS", 10)]
    shown = run(session, "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW') AS jobs, CURRENT_ROLE() AS role")
    assert shown.rows[0][0][0]["id"] == job.id and shown.rows[0][1] == "ACCOUNTADMIN"
    assert shown.types == ["ARRAY", "TEXT"]


# COMPLETE over the rows of a table, through Redis-free but real inference: the tiny Llama server ---

TICKETS = [  # id, prompt; one NULL prompt and one prompt asked twice
    (1, "Ticket: I was charged twice."),
    (2, "Ticket: My parcel never arrived."),
    (3, None),
    (4, "Ticket: The app crashes on start."),
    (5, "Ticket: I was charged twice."),
    (6, "Ticket: Please delete my account."),
]


@pytest.fixture
def tickets(stack, tmp_path):
    make_table(tmp_path, "QSTACK", "TICKETS", [{"id": i, "prompt": p} for i, p in TICKETS])
    return admin_session(database="QSTACK", schema="PUBLIC")


def _one_by_one(session, prompt: str, options: str | None = None) -> object:
    literal = "'" + prompt.replace("'", "''") + "'"
    if options is None:
        return run(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', {literal})").rows[0][0]
    return run(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', "
                        f"[{{'role': 'user', 'content': {literal}}}], {options})").rows[0][0]


@pytest.fixture
def in_flight(monkeypatch):
    """The most COMPLETE requests this process had in flight at once."""
    import threading

    from inference import complete as complete_service

    real, lock, state = complete_service.complete, threading.Lock(), {"now": 0, "max": 0, "calls": 0}

    def counting(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(complete_service, "complete", counting)
    return state


def test_complete_over_rows_keeps_row_order_and_equals_one_by_one_calls(tickets, in_flight):
    session = tickets
    expected = {p: _one_by_one(session, p) for _, p in TICKETS if p is not None}
    assert len(set(expected.values())) > 1, "the prompts should get different answers"
    in_flight.update(calls=0, max=0)

    result = run(session, "SELECT id, SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', prompt) FROM tickets ORDER BY id")

    assert result.columns == ["ID", "SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', prompt)"]
    assert result.types == ["NUMBER", "TEXT"]
    assert result.rows == [(i, None if p is None else expected[p]) for i, p in TICKETS]
    # Four distinct prompts, each asked once, at the same time; the NULL prompt is not asked.
    assert in_flight["calls"] == 4
    assert in_flight["max"] > 1


def test_complete_nested_in_expressions_ctes_and_filters(tickets):
    session = tickets
    classify = {p: _one_by_one(session, "Classify: " + p) for _, p in TICKETS if p is not None}
    result = run(session, """
        WITH labelled AS (
            SELECT id, UPPER(SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', 'Classify: ' || prompt)) AS label
            FROM tickets WHERE id <> 2)
        SELECT id, label FROM labelled WHERE id IN (SELECT id FROM tickets WHERE prompt IS NOT NULL)
        ORDER BY id DESC""")
    assert result.rows == [(i, classify[p].upper()) for i, p in reversed(TICKETS) if p is not None and i != 2]


def test_complete_with_messages_over_rows_returns_response_objects(tickets):
    session = tickets
    options = "{'max_tokens': 8}"
    result = run(session, f"""
        SELECT id, SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', [{{'role': 'user', 'content': prompt}}], {options}) AS r
        FROM tickets WHERE prompt IS NOT NULL ORDER BY id""")
    assert result.types == ["NUMBER", "OBJECT"]
    assert [row[0] for row in result.rows] == [1, 2, 4, 5, 6]
    for (i, response), (_, prompt) in zip(result.rows, [t for t in TICKETS if t[1] is not None]):
        alone = _one_by_one(session, prompt, options)
        assert response["model"] == "tiny-llama"
        assert response["choices"] == alone["choices"]
        usage = response["usage"]
        assert usage["completion_tokens"] <= 8
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_an_aggregate_over_complete_answers(tickets):
    session = tickets
    result = run(session, "SELECT COUNT(DISTINCT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', prompt)) AS answers, "
                          "COUNT(*) AS tickets FROM tickets")
    expected = len({_one_by_one(session, p) for _, p in TICKETS if p is not None})
    assert result.rows == [(expected, 6)]
