"""From a table of examples to a fine-tuned adapter answering over the TGI protocol, through a real
Redis, a real worker process and a real inference server process."""
from __future__ import annotations

import json
import time

import pytest
from transformers import AutoTokenizer

from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value, wait_for_status

# A reply the base model never gives on its own, to twelve different tickets. The two-layer test model
# learns it in the twenty steps of this job; tests/test_learning.py has smollm2-135m learn per-row answers.
REPLY = "Thank you for contacting ACME support."
EXAMPLES = [(f"Ticket {i}: {text}", REPLY) for i, text in enumerate([
    "I was charged twice.", "My parcel never arrived.", "The app crashes on start.", "I forgot my password.",
    "Please refund my order.", "The courier lost my box.", "Checkout shows error 500.", "Change my email, please.",
    "My invoice is wrong.", "Tracking has not moved.", "Videos do not play.", "Delete my account.",
])]


@pytest.fixture
def training_table(stack, tmp_path):
    make_table(tmp_path, "E2E", "SUPPORT_REPLIES",
               [{"id": i, "question": p, "answer": c} for i, (p, c) in enumerate(EXAMPLES)])
    return "SELECT question AS prompt, answer AS completion FROM e2e.public.support_replies"


def test_a_fine_tuned_adapter_answers_its_training_prompts(stack, training_table, tiny_llama_dir):
    session = admin_session(database="E2E", schema="PUBLIC")
    job_id = sql_value(session, f"""
        SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'support_replies_model', 'tiny-llama',
                                         {sql_literal(training_table)}, NULL, '{{"max_epochs": 10}}')""")
    assert job_id.startswith("ft_") and len(job_id) == 39

    described = wait_for_status(job_id, ("SUCCESS", "ERROR", "CANCELLED"), timeout=240, stack=stack)
    assert described["status"] == "SUCCESS", described

    # Every DESCRIBE field of a successful job, with values that make sense.
    assert described["id"] == job_id
    assert described["progress"] == 1.0
    assert described["base_model"] == "tiny-llama"
    assert described["model"] == "E2E.PUBLIC.SUPPORT_REPLIES_MODEL"
    assert described["training_data"] == training_table
    now_ms = time.time() * 1000
    assert now_ms - 300_000 < described["created_on"] < described["finished_on"] <= now_ms
    result = described["training_result"]
    job = FineTuneJob.objects.get(pk=job_id)
    # DESCRIBE has no options (snowflake-ml refuses a key it does not know); the job page shows them.
    assert "options" not in described and job.options_used() == {"max_epochs": 10}
    assert result["training_loss"] < job.history[0]["loss"] / 4, "the reply should be learnt"
    assert isinstance(result["validation_loss"], float)
    assert len(job.validation_history) == 10
    # The adapter answers its validation prompt differently from the base model.
    assert job.adapter_check["live"] and job.adapter_check["examples"][0]["adapter"] == REPLY

    # trained_tokens = input tokens x epochs, over the 11 rows left after the automatic validation split.
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    assert described["trained_tokens"] % 10 == 0
    per_epoch = described["trained_tokens"] // 10
    def chat_tokens(prompt: str, completion: str) -> int:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": completion}], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    counts = [chat_tokens(p, c) for p, c in EXAMPLES]
    # One row of twelve went to validation; the template's trailing newline may or may not be trained.
    assert sum(counts) - max(counts) - 11 <= per_epoch <= sum(counts) - min(counts)

    # The adapter is registered and stored with everything serving needs.
    model = FineTunedModel.objects.get(job_id=job_id)
    files = {p.name for p in model.adapter_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
            "studio_adapter.json"} <= files
    metadata = json.loads((model.adapter_dir / "studio_adapter.json").read_text())
    assert metadata["model"] == "E2E.PUBLIC.SUPPORT_REPLIES_MODEL" and metadata["job_id"] == job_id

    # COMPLETE with the fine-tuned model answers as trained, also to a ticket it never saw; the base does not.
    for prompt in [EXAMPLES[0][0], EXAMPLES[5][0], "Ticket 99: The discount code is rejected."]:
        answer = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('support_replies_model', {sql_literal(prompt)})")
        assert answer.strip() == REPLY
    base_answer = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', {sql_literal(EXAMPLES[0][0])})")
    assert REPLY not in base_answer

    # The messages form returns Snowflake's response object, with token usage.
    response = sql_value(session, """SELECT SNOWFLAKE.CORTEX.COMPLETE('e2e.public.support_replies_model',
        [{'role': 'user', 'content': 'Ticket 7: Where is my refund?'}], {'max_tokens': 20})""")
    assert response["choices"][0]["messages"].strip() == REPLY
    assert response["model"] == "E2E.PUBLIC.SUPPORT_REPLIES_MODEL"
    assert response["usage"]["total_tokens"] == response["usage"]["prompt_tokens"] + response["usage"]["completion_tokens"]

    # SHOW lists the job.
    shown = sql_value(session, "SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW')")
    assert {"id": job_id, "status": "SUCCESS", "base_model": "tiny-llama",
            "created_on": described["created_on"]} in shown


def test_a_second_model_with_a_taken_name_gets_a_suffix(stack, training_table):
    session = admin_session(database="E2E", schema="PUBLIC")
    ids = [sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'twin', 'tiny-llama', "
                              f"{sql_literal(training_table)}, NULL, '{{\"max_epochs\": 1}}')") for _ in range(2)]
    names = [wait_for_status(i, ("SUCCESS", "ERROR"), timeout=120, stack=stack)["model"] for i in ids]
    assert names == ["E2E.PUBLIC.TWIN", "E2E.PUBLIC.TWIN_1"]


def test_an_unknown_model_is_an_error_not_a_base_model_answer(stack, training_table):
    session = admin_session(database="E2E", schema="PUBLIC")
    with pytest.raises(Exception, match="E2E.PUBLIC.NO_SUCH_MODEL' does not exist"):
        sql_value(session, "SELECT SNOWFLAKE.CORTEX.COMPLETE('no_such_model', 'Hello?')")


def test_cancel_stops_a_running_job_and_frees_the_worker(stack, tmp_path):
    make_table(tmp_path, "E2E", "MANY_CODES",
               [{"prompt": f"Code for colour number {i}?", "completion": f"N-{i:04d}"} for i in range(400)])
    session = admin_session(database="E2E", schema="PUBLIC")
    query = sql_literal("SELECT prompt, completion FROM many_codes")
    job_id = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'long_run', 'tiny-llama', {query}, "
                                "NULL, '{\"max_epochs\": 10}')")
    deadline = time.monotonic() + 60
    while not FineTuneJob.objects.get(pk=job_id).history:
        assert time.monotonic() < deadline, stack.log("worker")
        time.sleep(0.2)

    message = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{job_id}')")
    assert message == f"Canceled Cortex Fine-tuning job: {job_id}"
    cancelled_at = time.monotonic()
    described = wait_for_status(job_id, ("CANCELLED",), timeout=5, stack=stack)
    assert described["progress"] < 1.0 and "model" not in described

    # The work horse is gone within seconds: the row stops changing and no model is registered.
    time.sleep(max(0.0, 3 - (time.monotonic() - cancelled_at)))
    steps = len(FineTuneJob.objects.get(pk=job_id).history)
    time.sleep(2)
    assert len(FineTuneJob.objects.get(pk=job_id).history) == steps
    assert not FineTunedModel.objects.filter(job_id=job_id).exists()

    # The same worker takes the next job.
    next_id = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'after_cancel', 'tiny-llama', "
                                 f"'SELECT prompt, completion FROM many_codes LIMIT 8', NULL, '{{\"max_epochs\": 1}}')")
    assert wait_for_status(next_id, ("SUCCESS", "ERROR"), timeout=60, stack=stack)["status"] == "SUCCESS"


def test_rows_the_trainer_cannot_use_fail_the_job_with_their_row_numbers(stack, tmp_path):
    rows = [{"prompt": p, "completion": c} for p, c in EXAMPLES[:6]]
    rows[2]["completion"] = "   "
    rows[4]["prompt"] = ""
    make_table(tmp_path, "E2E", "GAPPY", rows)
    session = admin_session(database="E2E", schema="PUBLIC")
    job_id = sql_value(session, "SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'gappy_model', 'tiny-llama', "
                                "'SELECT prompt, completion FROM gappy')")
    described = wait_for_status(job_id, ("SUCCESS", "ERROR"), timeout=60, stack=stack)
    assert described["status"] == "ERROR"
    assert described["error"]["message"] == "1 row has an empty prompt (row 5); 1 row has an empty completion (row 3)."
    assert not FineTunedModel.objects.filter(job_id=job_id).exists()
