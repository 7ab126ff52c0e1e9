"""FINETUNE's and COMPLETE's cells, typed as Snowflake's own clients decode them: snowflake-ml takes
FINETUNE CREATE's cell as the job id, json.loads() DESCRIBE's and SHOW's into FinetuneStatus (which
refuses any key it does not know), and checks CANCEL's text. A TEXT cell reaches a client as the string
itself, an OBJECT / ARRAY / VARIANT one as JSON text (sqlapi/resultsets.py encodes them so).

The SQL texts marked "as snowflake-ml writes it" are what snowflake-ml-python 2.6.0 sends
(snowflake/cortex/_util.py call_sql_function_literals, snowflake/ml/_internal/utils/formatting.py):
arguments joined by ",", strings quoted with \\' escapes, a None argument NULL, a dict OBJECT_CONSTRUCT
with sorted keys."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from datetime import timezone as tz
from typing import Any

import pytest

from access.bootstrap import bootstrap
from errors import UserError
from jobs.models import FineTuneJob
from sqlapi.resultsets import result_set
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table


@dataclasses.dataclass
class FinetuneStatus:
    """snowflake-ml 2.6.0's FinetuneStatus (snowflake/cortex/_finetune.py), field for field: the library is
    not one of the studio's dependencies, and constructing this is exactly what it does with the cell."""

    id: str | None = None
    status: str | None = None
    base_model: str | None = None
    created_on: int | None = None
    error: dict[str, Any] | None = None
    finished_on: int | None = None
    progress: float | None = None
    training_result: Any = None
    trained_tokens: int | None = None
    training_data: str | None = None
    validation_data: str | None = None
    model: str | None = None


STATUS_KEYS = {f.name for f in dataclasses.fields(FinetuneStatus)}
TRAINING_QUERY = "SELECT prompt, completion FROM sfml.public.examples WHERE completion <> 'it''s'"


def run(session, sql):
    return Executor(session).execute(sql)[-1]


def client_cell(result) -> Any:
    """The first cell as a Snowflake client receives it: the SQL API's text for the column's type."""
    encoded = result_set(result)
    assert encoded["rowType"][0]["type"] == result.types[0].lower()
    return encoded["data"][0][0]


def escaped(text: str) -> str:
    return "'" + text.replace("'", "\\'") + "'"  # formatting.format_value_for_select's quoting


@pytest.fixture
def session(db, tiny_llama, tmp_path):
    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "SFML", "EXAMPLES", [{"prompt": "Code for red?", "completion": "R-17"},
                                             {"prompt": "Code for blue?", "completion": "B-42"}])
    return admin_session(database="SFML", schema="PUBLIC")


def finished_job(status: str, **fields) -> FineTuneJob:
    finished_on = datetime(2025, 3, 1, 10, 5, tzinfo=tz.utc)
    return FineTuneJob.objects.create(**({
        "status": status, "base_model": "tiny-llama", "database": "SFML", "schema": "PUBLIC",
        "requested_name": "TUNED", "training_data": "SELECT prompt, completion FROM t",
        "validation_data": "SELECT prompt, completion FROM v", "warehouse": "COMPUTE_WH", "role": "ACCOUNTADMIN",
        "options": {"learning_rate": 0.01}, "epochs": 3, "progress": 1.0, "trained_tokens": 120,
        "training_loss": 0.5, "validation_loss": 0.75, "final_model_name": "SFML.PUBLIC.TUNED",
        "error_message": "out of memory", "started_on": finished_on - timedelta(minutes=5),
        "finished_on": finished_on} | fields))


# CREATE ------------------------------------------------------------------------------------------

def test_create_as_snowflake_ml_writes_it_returns_the_job_id_as_text(session):
    sql = ("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE','MY_MODEL','tiny-llama',"
           f"{escaped(TRAINING_QUERY)},NULL,OBJECT_CONSTRUCT('max_epochs',3))")
    assert "\\'it\\'\\'s\\'" in sql
    result = run(session, sql)
    assert result.types == ["TEXT"]
    job_id = client_cell(result)
    assert job_id == result.rows[0][0] and job_id.startswith("ft_") and len(job_id) == 39
    job = FineTuneJob.objects.get(pk=job_id)
    assert job.training_data == TRAINING_QUERY
    assert job.options == {"max_epochs": 3} and job.validation_data == ""


def test_create_with_lowercase_null_and_no_options_returns_text(session):
    sql = (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE','MY_MODEL','tiny-llama',{escaped(TRAINING_QUERY)},"
           "null,null)")
    result = run(session, sql)
    assert result.types == ["TEXT"]
    assert FineTuneJob.objects.get(pk=client_cell(result)).options == {}


def test_create_over_rows_returns_plain_text_ids_not_json(session):
    result = run(session, "SELECT 'id: ' || SNOWFLAKE.CORTEX.FINETUNE('CREATE', name, 'tiny-llama', q, NULL, "
                          "OBJECT_CONSTRUCT('max_epochs', 2)) AS labelled, "
                          "SNOWFLAKE.CORTEX.FINETUNE('CREATE', name, 'tiny-llama', q, NULL, "
                          "OBJECT_CONSTRUCT('max_epochs', 2)) AS job "
                          f"FROM (SELECT 'ROW_MODEL' AS name, {escaped(TRAINING_QUERY)} AS q)")
    assert result.types == ["TEXT", "TEXT"]
    labelled, job_id = result.rows[0]
    # One call per distinct argument list in a statement: both columns name the same, single job.
    assert labelled == f"id: {job_id}" and job_id.startswith("ft_") and '"' not in job_id
    assert FineTuneJob.objects.get().options == {"max_epochs": 2}


# DESCRIBE and SHOW ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["PENDING", "IN_PROGRESS", "SUCCESS", "ERROR", "CANCELLED"])
def test_describe_is_an_object_that_snowflake_ml_reads_in_every_status(session, status):
    job = finished_job(status)
    result = run(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE',{escaped(job.id)})")
    assert result.types == ["OBJECT"]
    described = json.loads(client_cell(result))
    assert set(described) <= STATUS_KEYS and "options" not in described
    parsed = FinetuneStatus(**described)
    assert (parsed.id, parsed.status, parsed.base_model) == (job.id, status, "tiny-llama")
    assert parsed.training_data == "SELECT prompt, completion FROM t"
    assert parsed.validation_data == "SELECT prompt, completion FROM v"
    if status == "SUCCESS":
        assert parsed.model == "SFML.PUBLIC.TUNED" and parsed.trained_tokens == 120
        assert parsed.training_result == {"training_loss": 0.5, "validation_loss": 0.75}
        assert parsed.finished_on == 1740823500000
    if status == "ERROR":
        assert parsed.error == {"message": "out of memory"} and parsed.model is None


def test_describe_over_rows_is_an_object_too(session):
    job = finished_job("SUCCESS")
    result = run(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', id) AS d FROM (SELECT '{job.id}' AS id)")
    assert result.types == ["OBJECT"]
    assert FinetuneStatus(**json.loads(client_cell(result))).model == "SFML.PUBLIC.TUNED"


def test_the_job_page_still_shows_the_options_describe_leaves_out(session):
    from studio.jobs_views import live_context

    job = finished_job("SUCCESS")
    assert live_context(job)["options"] == {"learning_rate": 0.01, "max_epochs": 3}
    assert "options" not in json.loads(live_context(job)["describe_json"])


def test_show_is_an_array_of_rows_snowflake_ml_reads(session):
    jobs = {finished_job("SUCCESS").id, finished_job("ERROR").id}
    for sql in ("SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')",  # as snowflake-ml writes it
                "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW') AS jobs FROM (SELECT 1)"):
        result = run(session, sql)
        assert result.types == ["ARRAY"], sql
        shown = [FinetuneStatus(**row) for row in json.loads(client_cell(result))]
        assert {s.id for s in shown} == jobs and {s.status for s in shown} == {"SUCCESS", "ERROR"}


def test_an_action_read_from_a_column_is_a_variant(session):
    job = finished_job("SUCCESS")
    result = run(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE(a, '{job.id}') FROM (SELECT 'DESCRIBE' AS a)")
    assert result.types == ["VARIANT"] and result.rows[0][0]["id"] == job.id


# CANCEL ------------------------------------------------------------------------------------------

def test_cancel_as_snowflake_ml_writes_it_returns_its_message_as_text(session):
    job = finished_job("PENDING", finished_on=None)
    result = run(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL',{escaped(job.id)})")
    assert result.types == ["TEXT"]
    assert client_cell(result) == f"Canceled Cortex Fine-tuning job: {job.id}"
    job.refresh_from_db()
    assert job.status == "CANCELLED"


def test_cancel_over_rows_returns_its_message_as_text(session):
    job = finished_job("PENDING", finished_on=None)
    result = run(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', id) FROM (SELECT '{job.id}' AS id)")
    assert result.types == ["TEXT"]
    assert result.rows == [(f"Canceled Cortex Fine-tuning job: {job.id}",)]


# AI_COMPLETE's refusals (no inference server: they come before any request) --------------------------

@pytest.mark.parametrize("sql, message, field", [
    ("SELECT AI_COMPLETE('tiny-llama', 'Hi', PARSE_JSON('{\"max_tokens\": 10}') :: OBJECT, "
     "PARSE_JSON('{\"type\": \"json\", \"schema\": {\"type\": \"object\"}}') :: OBJECT)",
     "AI_COMPLETE's response_format argument (structured output) is not supported here", "response_format"),
    ("SELECT ai_complete('tiny-llama', p, PARSE_JSON('{\"guardrails\": true}') :: OBJECT) FROM (SELECT 'Hi' AS p)",
     "AI_COMPLETE's model_parameters: guardrails (Cortex Guard) is not supported here", "model_parameters"),
    ("SELECT SNOWFLAKE.CORTEX.AI_COMPLETE('tiny-llama', 'Hi', {'guardrails': true})",
     "AI_COMPLETE's model_parameters: guardrails (Cortex Guard) is not supported here", "model_parameters"),
    ("SELECT AI_COMPLETE('tiny-llama', p, {'stop': ['x']}) FROM (SELECT 'Hi' AS p)",
     "AI_COMPLETE's model_parameters has an unknown parameter 'stop'", "model_parameters"),
    ("SELECT AI_COMPLETE('tiny-llama', p, {}, r) FROM (SELECT 'Hi' AS p, PARSE_JSON('{\"type\": \"json\"}') AS r)",
     "AI_COMPLETE's response_format argument (structured output) is not supported here", "response_format"),
])
def test_ai_complete_refuses_structured_output_and_guardrails_naming_the_argument(session, sql, message, field):
    with pytest.raises(UserError) as caught:
        run(session, sql)
    assert caught.value.message.startswith(message) and caught.value.field == field


def test_ai_complete_takes_two_to_four_arguments(session):
    with pytest.raises(UserError, match=r"AI_COMPLETE\(model, prompt \[, model_parameters \[, response_format\]\]\) "
                                        r"takes 2 to 4 arguments, got 5"):
        run(session, "SELECT AI_COMPLETE('tiny-llama', 'Hi', {}, NULL, TRUE)")


def test_ai_complete_meets_completes_limits_with_completes_error(session, settings):
    settings.GATEWAY_MAX_TOKENS = 64
    errors = []
    for sql in ("SELECT AI_COMPLETE('tiny-llama', 'Hi', {'max_tokens': 65})",
                "SELECT AI_COMPLETE('tiny-llama', p, {'max_tokens': 65}) FROM (SELECT 'Hi' AS p)",
                "SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', [{'role': 'user', 'content': 'Hi'}], {'max_tokens': 65})"):
        with pytest.raises(UserError) as caught:
            run(session, sql)
        errors.append(caught.value.message)
    assert errors == ["COMPLETE option max_tokens 65 is over the limit of 64 tokens (STUDIO_GATEWAY_MAX_TOKENS)."] * 3
