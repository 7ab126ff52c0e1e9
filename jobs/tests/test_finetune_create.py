"""FINETUNE('CREATE') refuses bad input with a message that names the problem, and creates no job."""
from __future__ import annotations

import pytest

from errors import UserError
from jobs.models import FineTuneJob
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value

GOOD_QUERY = "SELECT prompt, completion FROM checks.public.examples"


@pytest.fixture
def examples(db, tiny_llama, tmp_path):
    from access.bootstrap import bootstrap

    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "CHECKS", "EXAMPLES",
               [{"prompt": "Code for red?", "completion": "R-17"}, {"prompt": "Code for blue?", "completion": "B-42"}])
    make_table(tmp_path, "CHECKS", "NOTHING", [{"prompt": "x", "completion": "y"}])
    return admin_session(database="CHECKS", schema="PUBLIC")


def create(session, *args: str | None) -> str:
    rendered = ", ".join("NULL" if a is None else sql_literal(a) for a in args)
    return sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', {rendered})")


def refused(session, *args: str | None) -> str:
    with pytest.raises(UserError) as caught:
        create(session, *args)
    assert FineTuneJob.objects.count() == 0, "a refused CREATE must not leave a job behind"
    return caught.value.message


def test_it_creates_a_pending_job_with_a_valid_request(examples):
    job_id = create(examples, "my_model", "tiny-llama", GOOD_QUERY, None, '{"max_epochs": 2}')
    job = FineTuneJob.objects.get(pk=job_id)
    assert job.status == "PENDING"
    assert (job.database, job.schema, job.requested_name) == ("CHECKS", "PUBLIC", "MY_MODEL")
    assert job.options == {"max_epochs": 2}
    assert job.warehouse == "COMPUTE_WH" and job.role == "ACCOUNTADMIN"


def test_it_refuses_an_unknown_base_model(examples):
    message = refused(examples, "my_model", "gpt-9", GOOD_QUERY)
    assert "Unknown base model 'gpt-9'" in message and "smollm2-135m" in message


def test_it_refuses_a_base_model_that_is_not_installed_and_names_the_install_command(examples):
    message = refused(examples, "my_model", "mistral-7b", GOOD_QUERY)
    assert message == ("Base model 'mistral-7b' is not installed in this studio's model store. "
                       "Install it with: python manage.py basemodels install mistral-7b")


@pytest.mark.parametrize("query, missing", [
    ("SELECT prompt AS question, completion FROM examples", "PROMPT"),
    ("SELECT prompt FROM examples", "COMPLETION"),
    ("SELECT 1 AS a", "PROMPT, COMPLETION"),
])
def test_it_names_the_missing_prompt_or_completion_column(examples, query, missing):
    message = refused(examples, "my_model", "tiny-llama", query)
    assert f"missing {missing}" in message
    assert "must have columns named PROMPT and COMPLETION" in message


@pytest.mark.parametrize("epochs", ["0", "11", "-1", "2.5", '"3"'])
def test_it_refuses_max_epochs_outside_1_to_10(examples, epochs):
    message = refused(examples, "my_model", "tiny-llama", GOOD_QUERY, None, f'{{"max_epochs": {epochs}}}')
    assert "max_epochs" in message


def test_it_refuses_max_epochs_of_zero_with_the_range(examples):
    message = refused(examples, "my_model", "tiny-llama", GOOD_QUERY, None, '{"max_epochs": 0}')
    assert message == "Invalid options argument: max_epochs must be an integer from 1 to 10, got 0."


def test_it_refuses_malformed_options_json(examples):
    message = refused(examples, "my_model", "tiny-llama", GOOD_QUERY, None, "{max_epochs: 3")
    assert message.startswith("Invalid options argument: not valid JSON")


def test_it_refuses_an_unknown_option(examples):
    message = refused(examples, "my_model", "tiny-llama", GOOD_QUERY, None, '{"epochs": 3}')
    assert "unknown option 'epochs'" in message


@pytest.mark.parametrize("name", ["9lives", "my-model", "db.schema.name.extra", '"unclosed', "a..b"])
def test_it_refuses_an_invalid_model_identifier(examples, name):
    message = refused(examples, name, "tiny-llama", GOOD_QUERY)
    assert message.startswith("Invalid identifier")


def test_it_accepts_a_quoted_identifier_and_keeps_its_case(examples):
    job_id = create(examples, 'checks.public."My Model"', "tiny-llama", GOOD_QUERY)
    assert FineTuneJob.objects.get(pk=job_id).requested_name == "My Model"


def test_it_refuses_an_empty_training_table(examples):
    message = refused(examples, "my_model", "tiny-llama", "SELECT prompt, completion FROM nothing WHERE 1 = 0")
    assert message == ("The training query returned no rows: a fine-tuning job needs at least one "
                       "prompt/completion example.")


def test_it_refuses_a_table_that_does_not_exist(examples):
    message = refused(examples, "my_model", "tiny-llama", "SELECT prompt, completion FROM missing_table")
    assert message == ("SQL compilation error: the training query failed: "
                       "Object 'CHECKS.PUBLIC.MISSING_TABLE' does not exist or not authorized.")


def test_it_refuses_a_statement_that_is_not_a_select(examples):
    message = refused(examples, "my_model", "tiny-llama", "DROP TABLE examples")
    assert "only a SELECT query may provide training data" in message


def test_it_refuses_several_statements(examples):
    message = refused(examples, "my_model", "tiny-llama", "SELECT prompt, completion FROM examples; SELECT 1")
    assert "expected exactly one SELECT statement" in message


def test_it_refuses_a_query_that_reads_files(examples, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("prompt,completion\na,b\n")
    message = refused(examples, "my_model", "tiny-llama", f"SELECT * FROM read_csv_auto('{secret}')")
    assert message == "SQL compilation error: the training query failed: Unknown table function READ_CSV_AUTO"


def test_it_checks_the_validation_query_too(examples):
    message = refused(examples, "my_model", "tiny-llama", GOOD_QUERY, "SELECT prompt FROM examples")
    assert "the validation query result must have columns" in message


def test_it_refuses_a_schema_that_does_not_exist(examples):
    message = refused(examples, "checks.nowhere.my_model", "tiny-llama", GOOD_QUERY)
    assert message == "Schema 'CHECKS.NOWHERE' does not exist or not authorized."


def test_describe_and_cancel_of_an_unknown_job_are_refused(examples):
    with pytest.raises(UserError, match="Fine-tuning job 'ft_nope' does not exist"):
        sql_value(examples, "SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', 'ft_nope')")
    with pytest.raises(UserError, match="Fine-tuning job 'ft_nope' does not exist"):
        sql_value(examples, "SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', 'ft_nope')")


def test_a_pending_job_describes_itself_and_can_be_cancelled(examples):
    job_id = create(examples, "my_model", "tiny-llama", GOOD_QUERY)
    described = sql_value(examples, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{job_id}')")
    assert described["status"] == "PENDING" and described["progress"] == 0.0
    assert set(described) >= {"id", "status", "progress", "base_model", "created_on"}
    assert "model" not in described and "training_result" not in described
    message = sql_value(examples, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{job_id}')")
    assert message == f"Canceled Cortex Fine-tuning job: {job_id}"
    assert FineTuneJob.objects.get(pk=job_id).status == "CANCELLED"
    with pytest.raises(UserError, match="already finished with status CANCELLED"):
        sql_value(examples, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{job_id}')")


def test_it_refuses_prompt_or_completion_columns_that_are_not_text(examples):
    message = refused(examples, "my_model", "tiny-llama", "SELECT prompt, 42 AS completion FROM examples")
    assert message == ("SQL compilation error: the training query's PROMPT and COMPLETION columns must be text; "
                       "COMPLETION is INTEGER. Cast them, e.g. SELECT TO_VARCHAR(label) AS completion")


def test_it_refuses_arguments_of_the_wrong_type(examples):
    with pytest.raises(UserError, match=r"the training query must be a string, got 42\."):
        sql_value(examples, "SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'm', 'tiny-llama', 42)")
    with pytest.raises(UserError, match=r"the model name must be a string, got null\."):
        sql_value(examples, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', NULL, 'tiny-llama', {sql_literal(GOOD_QUERY)})")
    assert FineTuneJob.objects.count() == 0


def test_it_refuses_an_eval_steps_option_below_one(examples):
    message = refused(examples, "my_model", "tiny-llama", GOOD_QUERY, None, '{"eval_steps": 0}')
    assert message == "Invalid options argument: eval_steps must be a positive number of training steps, got 0."


@pytest.mark.parametrize("args, field", [
    ((None, "tiny-llama", GOOD_QUERY), "name"),
    (("9lives", "tiny-llama", GOOD_QUERY), "name"),
    (("my_model", "gpt-9", GOOD_QUERY), "base_model"),
    (("checks.nowhere.my_model", "tiny-llama", GOOD_QUERY), "schema"),
    (("my_model", "tiny-llama", GOOD_QUERY, None, '{"epochs": 3}'), "options"),
    (("my_model", "tiny-llama", "SELECT prompt, completion FROM missing_table"), "training_data"),
    (("my_model", "tiny-llama", "SELECT prompt FROM examples"), "completion"),
    (("my_model", "tiny-llama", "SELECT prompt, 42 AS completion FROM examples"), "completion"),
    (("my_model", "tiny-llama", "SELECT 1 AS prompt, completion FROM examples"), "prompt"),
    (("my_model", "tiny-llama", GOOD_QUERY, "SELECT prompt FROM examples"), "validation_data"),
    (("my_model", "tiny-llama", GOOD_QUERY, "SELECT prompt, completion FROM nothing WHERE 1 = 0"), "validation_data"),
])
def test_a_refusal_names_the_argument_it_concerns(examples, args, field):
    with pytest.raises(UserError) as caught:
        create(examples, *args)
    assert caught.value.field == field, caught.value.message


def test_a_session_without_a_warehouse_is_refused_naming_the_warehouse(examples):
    with pytest.raises(UserError, match="No active warehouse selected") as caught:
        create(admin_session(database="CHECKS", schema="PUBLIC", warehouse=None), "my_model", "tiny-llama", GOOD_QUERY)
    assert caught.value.field == "warehouse"
