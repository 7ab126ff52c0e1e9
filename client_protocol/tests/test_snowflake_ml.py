"""snowflake-ml-python's snowflake.cortex.Finetune and COMPLETE through SQL, unchanged, through a real worker
and a real inference server (conftest's stack), from Snowpark sessions over the client protocol."""
from __future__ import annotations

import uuid

from jobs.models import FineTuneJob
from tests.support.cortex import make_table

# The two-layer test model learns one reply to a dozen prompts in ten epochs (tests/test_end_to_end.py).
REPLY = "Thank you for contacting ACME support."
PROMPTS = [f"Ticket {i}: {text}" for i, text in enumerate([
    "I was charged twice.", "My parcel never arrived.", "The app crashes on start.", "I forgot my password.",
    "Please refund my order.", "The courier lost my box.", "Checkout shows error 500.", "Change my email, please.",
    "My invoice is wrong.", "Tracking has not moved.", "Videos do not play.", "Delete my account.",
])]
CORTEX_KEYS = {"id", "status", "base_model", "created_on", "error", "finished_on", "progress", "training_result",
               "trained_tokens", "training_data", "validation_data", "model"}


def _examples(tmp_path) -> str:
    database = f"ML_{uuid.uuid4().hex[:8].upper()}"
    make_table(tmp_path, database, "EXAMPLES", [{"prompt": p, "completion": REPLY} for p in PROMPTS])
    return database


def test_finetune_create_list_describe_and_complete_through_snowflake_ml(stack, studio, tmp_path):
    database = _examples(tmp_path)
    out = studio.run("connector4", "finetune_ml.py", database, "tiny-llama", "train", timeout=400)
    job_id = out["id"]
    assert job_id.startswith("ft_") and FineTuneJob.objects.filter(pk=job_id).exists()
    assert job_id in out["listed"]
    described = out["described"]
    assert set(described) == CORTEX_KEYS  # FinetuneStatus takes these and no others
    assert described["status"] == "SUCCESS", (described, stack.log("worker"))
    assert described["model"] == f"{database}.PUBLIC.TUNED_BY_ML"
    assert described["progress"] == 1.0 and described["trained_tokens"] > 0
    assert described["training_data"] == "SELECT prompt, completion FROM examples"
    first_loss = FineTuneJob.objects.get(pk=job_id).history[0]["loss"]
    assert described["training_result"]["training_loss"] < first_loss / 4, "the reply should be learnt"
    # COMPLETE over the table's rows with the fine-tuned model, read back as plain strings.
    assert out["answers"] == [REPLY, REPLY]


def test_finetune_cancel_through_snowflake_ml(stack, studio, tmp_path):
    database = _examples(tmp_path)
    out = studio.run("connector4", "finetune_ml.py", database, "tiny-llama", "cancel", MAX_EPOCHS="10")
    assert out["cancelled"] is True
    assert out["after_cancel"] == "CANCELLED"
    assert FineTuneJob.objects.get(pk=out["id"]).status == FineTuneJob.Status.CANCELLED
