"""The README's demo on the real smollm2-135m: fine-tune it on DEMO.PUBLIC.SUPPORT_TICKETS through
the worker, serve the adapter, and see the behaviour change. About a minute on a 2-core CPU."""
from __future__ import annotations

import pytest

from access.bootstrap import ensure_demo_data
from supervision import processes
from tests.support.cortex import admin_session, sql_literal, sql_value, wait_for_status

pytestmark = pytest.mark.slow

LABELS = {"BILLING", "SHIPPING", "TECHNICAL", "ACCOUNT"}
# Tickets that are not in the demo table.
NEW_TICKETS = [
    "Classify this support ticket: I need a copy of last month's receipt.",
    "Classify this support ticket: The login button does nothing on my phone.",
]


@pytest.fixture(scope="module")
def smollm2_server(stack_processes, smollm2_dir):
    from catalog.base_models import seed_catalog

    seed_catalog()  # `serve` looks the base model up when it starts
    port = processes.free_port()
    log = open(stack_processes.data_dir / "logs" / "inference-smollm2.log", "ab")
    server = processes.manage("serve", "--base-model", "smollm2-135m", "--port", str(port), stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_until(lambda: processes.http_ok(f"{url}/health"), 180, "smollm2 inference server", server)
        yield url
    finally:
        processes.stop(server)


def test_the_demo_fine_tune_teaches_smollm2_to_answer_with_a_category(stack, smollm2_server):
    ensure_demo_data()
    session = admin_session(database="DEMO", schema="PUBLIC")
    query = "SELECT prompt, completion FROM demo.public.support_tickets"
    job_id = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'ticket_classifier', 'smollm2-135m', {sql_literal(query)})")

    described = wait_for_status(job_id, ("SUCCESS", "ERROR", "CANCELLED"), timeout=420, stack=stack)
    assert described["status"] == "SUCCESS", described
    # 40 rows: 4 held out for validation, and 36 training rows give ceil(100 / 36) = 3 epochs.
    from jobs.models import FineTuneJob

    job = FineTuneJob.objects.get(pk=job_id)
    assert job.epochs == 3 and len(job.validation_history) == 3
    first_steps = sum(h["loss"] for h in job.history[:2]) / 2
    assert described["training_result"]["training_loss"] < first_steps / 2, (first_steps, described["training_result"])
    assert described["training_result"]["validation_loss"] < 1.0

    base_answers = [sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('smollm2-135m', {sql_literal(t)})") for t in NEW_TICKETS]
    tuned_answers = [sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('ticket_classifier', {sql_literal(t)})") for t in NEW_TICKETS]
    # The base model explains at length; the fine-tuned one answers with one of the trained categories.
    assert all(a.strip() not in LABELS for a in base_answers), base_answers
    assert all(a.strip() in LABELS for a in tuned_answers), tuned_answers
