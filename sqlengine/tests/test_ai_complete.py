"""AI_COMPLETE, as snowflake-ml's complete() writes it for a Snowpark column, answers what COMPLETE answers,
through the same service and the real inference server (the tiny Llama): the completion as TEXT, with or
without model parameters, on constants and over the rows of a table. Also COMPLETE's own cell types."""
from __future__ import annotations

import json

import pytest

from inference.models import CompletionUsage
from sqlapi.resultsets import result_set
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table

PROMPTS = [(1, "Ticket: I was charged twice."), (2, "Ticket: My parcel never arrived."), (3, None),
           (4, "Ticket: I was charged twice.")]
# What Snowpark's functions.builtin("AI_COMPLETE") renders for complete("tiny-llama", col("P")) and for
# options={"max_tokens": 6, "temperature": 0.0, "guardrails": False} (snowflake-ml 2.6.0, Snowpark 1.56.0).
AS_SNOWPARK_WRITES_IT = 'AI_COMPLETE(\'tiny-llama\', "P")'
WITH_PARAMETERS = ('AI_COMPLETE(\'tiny-llama\', "P", PARSE_JSON(\'{"max_tokens": 6, "temperature": 0.0, '
                   '"guardrails": false}\') :: OBJECT)')


def run(session, sql):
    return Executor(session).execute(sql)[-1]


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture
def session(stack, tmp_path):
    make_table(tmp_path, "QAI", "TICKETS", [{"id": i, "prompt": p} for i, p in PROMPTS])
    return admin_session(database="QAI", schema="PUBLIC")


def complete_text(session, prompt: str) -> str:
    result = run(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', {literal(prompt)})")
    assert result.types == ["TEXT"]
    return result.rows[0][0]


def complete_object(session, prompt: str, max_tokens: int) -> dict:
    result = run(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', [{{'role': 'user', 'content': "
                          f"{literal(prompt)}}}], {{'max_tokens': {max_tokens}}})")
    assert result.types == ["OBJECT"]
    response = json.loads(result_set(result)["data"][0][0])  # a client's json.loads of the cell
    assert response == result.rows[0][0] and response["model"] == "tiny-llama"
    return response


def sql_usage() -> int:
    return CompletionUsage.objects.filter(entry_point=CompletionUsage.EntryPoint.SQL).count()


def test_ai_complete_on_constants_is_completes_text(session):
    prompt = PROMPTS[0][1]
    expected = complete_text(session, prompt)
    before = sql_usage()
    result = run(session, f"SELECT AI_COMPLETE('tiny-llama', {literal(prompt)})")
    assert result.types == ["TEXT"] and result.rows == [(expected,)]
    assert result_set(result)["data"] == [[expected]]
    qualified = run(session, f"SELECT SNOWFLAKE.CORTEX.AI_COMPLETE('tiny-llama', {literal(prompt)}, "
                             "{'max_tokens': 6, 'guardrails': false})")
    assert qualified.types == ["TEXT"]
    assert qualified.rows == [(complete_object(session, prompt, 6)["choices"][0]["messages"],)]
    assert sql_usage() == before + 3, "each call is metered like COMPLETE"


def test_ai_complete_over_rows_as_snowpark_writes_it(session):
    expected = {p: complete_text(session, p) for _, p in PROMPTS if p is not None}
    before = sql_usage()
    result = run(session, f'SELECT "ID", {AS_SNOWPARK_WRITES_IT} FROM (SELECT id AS "ID", prompt AS "P" '
                          'FROM tickets) ORDER BY "ID"')
    assert result.types == ["NUMBER", "TEXT"]
    assert result.rows == [(i, None if p is None else expected[p]) for i, p in PROMPTS]
    assert sql_usage() == before + 2, "two distinct prompts, each asked once; the NULL one not at all"


def test_ai_complete_with_model_parameters_over_rows_is_the_completion_text(session):
    expected = {p: complete_object(session, p, 6)["choices"][0]["messages"] for _, p in PROMPTS if p is not None}
    result = run(session, f'SELECT "ID", {WITH_PARAMETERS} AS answer FROM (SELECT id AS "ID", prompt AS "P" '
                          'FROM tickets) ORDER BY "ID"')
    assert result.types == ["NUMBER", "TEXT"]
    assert result.rows == [(i, None if p is None else expected[p]) for i, p in PROMPTS]
