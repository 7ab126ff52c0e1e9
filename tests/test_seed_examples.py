"""Every SQL example of the user guide (../shared/reference/cortex-fine-tuning.txt), run as written,
with `tiny-llama` in place of `mistral-7b` (no 7B weights on a CPU test machine)."""
from __future__ import annotations

import pytest

from access.models import Grant
from jobs.models import FineTuneJob
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, wait_for_status

SETUP = """
CREATE ROLE my_role;
CREATE DATABASE mydb;
CREATE SCHEMA mydb.my_schema;
CREATE SCHEMA mydb.myschema;
CREATE DATABASE mydb2;
CREATE SCHEMA mydb2.myschema2;
USE SCHEMA mydb.myschema;
CREATE TABLE train (a VARCHAR, b INT, c INT, d VARCHAR);
INSERT INTO train SELECT 'Ticket ' || SEQ4() || ': ' || IFF(SEQ4() % 2 = 0, 'refund please', 'parcel lost'),
                         SEQ4(), SEQ4(), 'Thank you for contacting ACME support.'
                  FROM TABLE(GENERATOR(ROWCOUNT => 12));
CREATE TABLE validation AS SELECT * FROM train WHERE b <= 2;
CREATE TABLE my_training_data AS SELECT a AS prompt, d AS completion FROM train;
CREATE TABLE my_validation_data AS SELECT a AS prompt, d AS completion FROM validation;
CREATE TABLE mydb2.myschema2.my_training_data AS SELECT * FROM my_training_data;
CREATE TABLE mydb2.myschema2.my_validation_data AS SELECT * FROM my_validation_data;
USE SCHEMA mydb.myschema;
"""

GUIDE_EXAMPLES = [
    # "uses the SELECT ... AS syntax to set two of the columns in the query result to prompt and completion"
    """SELECT SNOWFLAKE.CORTEX.FINETUNE(
  'CREATE',
  'my_tuned_model',
  'tiny-llama',
  'SELECT a AS prompt, d AS completion FROM train',
  'SELECT a AS prompt, d AS completion FROM validation'
);""",
    # "Use SQL"
    """USE DATABASE mydb;
USE SCHEMA myschema;

SELECT SNOWFLAKE.CORTEX.FINETUNE(
  'CREATE',
  'my_tuned_model',
  'tiny-llama',
  'SELECT prompt, completion FROM my_training_data',
  'SELECT prompt, completion FROM my_validation_data'
);""",
    # "absolute paths for each of the database objects"
    """SELECT SNOWFLAKE.CORTEX.FINETUNE(
  'CREATE',
  'mydb.myschema.my_tuned_model',
  'tiny-llama',
  'SELECT prompt, completion FROM mydb2.myschema2.my_training_data',
  'SELECT prompt, completion FROM mydb2.myschema2.my_validation_data'
);""",
]


def test_the_user_guides_examples_run_as_written(stack):
    session = admin_session()
    executor = Executor(session)
    executor.execute(SETUP)

    # "GRANT CREATE MODEL ON SCHEMA my_schema TO ROLE my_role;"
    executor.execute("GRANT CREATE MODEL ON SCHEMA my_schema TO ROLE my_role;")
    assert Grant.objects.filter(privilege="CREATE MODEL", object_type="SCHEMA", object_name="MYDB.MY_SCHEMA",
                                grantee_name="MY_ROLE").exists()
    executor.execute("GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE my_role;")

    job_ids = [executor.execute(example)[-1].rows[0][0] for example in GUIDE_EXAMPLES]
    assert all(job_id.startswith("ft_") for job_id in job_ids)
    finals = [wait_for_status(job_id, ("SUCCESS", "ERROR"), timeout=180, stack=stack) for job_id in job_ids]
    assert [d["status"] for d in finals] == ["SUCCESS"] * 3, finals
    # The same name three times in MYDB.MYSCHEMA: later models get a suffix.
    assert [d["model"] for d in finals] == [
        "MYDB.MYSCHEMA.MY_TUNED_MODEL", "MYDB.MYSCHEMA.MY_TUNED_MODEL_1", "MYDB.MYSCHEMA.MY_TUNED_MODEL_2"]
    assert finals[2]["validation_data"] == "SELECT prompt, completion FROM mydb2.myschema2.my_validation_data"

    # "Use the FINETUNE ('DESCRIBE') … to see the number of trained tokens"; SHOW lists the jobs.
    described = executor.execute(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('DESCRIBE', '{job_ids[0]}')")[-1].rows[0][0]
    assert described["trained_tokens"] > 0
    shown = executor.execute("SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')")[-1].rows[0][0]
    assert {j["id"] for j in shown} >= set(job_ids)

    # "Use your fine-tuned model for inference"
    answer = executor.execute("""SELECT SNOWFLAKE.CORTEX.COMPLETE(
  'my_tuned_model',
  'How to fine-tune mistral models'
);""")[-1].rows[0][0]
    assert answer.strip() == "Thank you for contacting ACME support."

    # "GRANT USAGE ON MODEL my_tuned_model TO ROLE other_role" (Model Privileges)
    executor.execute("CREATE ROLE other_role; GRANT USAGE ON MODEL my_tuned_model TO ROLE other_role;")
    assert Grant.objects.filter(privilege="USAGE", object_type="MODEL", object_name="MYDB.MYSCHEMA.MY_TUNED_MODEL",
                                grantee_name="OTHER_ROLE").exists()


def test_cancel_as_the_guide_describes(stack):
    session = admin_session()
    executor = Executor(session)
    executor.execute("CREATE DATABASE IF NOT EXISTS mydb; USE DATABASE mydb;"
                     "CREATE OR REPLACE TABLE many AS SELECT 'Ticket ' || SEQ4() AS prompt, 'ok' AS completion "
                     "FROM TABLE(GENERATOR(ROWCOUNT => 300))")
    job_id = executor.execute("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'cancelled_model', 'tiny-llama', "
                              "'SELECT prompt, completion FROM many', NULL, '{\"max_epochs\": 10}')")[-1].rows[0][0]
    message = executor.execute(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{job_id}')")[-1].rows[0][0]
    assert message == f"Canceled Cortex Fine-tuning job: {job_id}"
    assert wait_for_status(job_id, ("CANCELLED",), timeout=10, stack=stack)["status"] == "CANCELLED"
    assert FineTuneJob.objects.get(pk=job_id).final_model_name == ""
