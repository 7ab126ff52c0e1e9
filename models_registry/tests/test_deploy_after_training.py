"""A real worker deploys the model its job registered, before anyone asks for it: the deployment is ready
on the stack's embedded server when the job reports SUCCESS."""
from __future__ import annotations

import time
import uuid

from inference.models import InferenceServer
from models_registry.models import Deployment, FineTunedModel
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value, wait_for_status

ROWS = [{"prompt": f"Ticket {i}: where is my order?", "completion": "It ships today."} for i in range(8)]


def test_the_worker_deploys_the_model_its_job_registered(stack, tmp_path):
    # `manage.py serve` registered the server when the stack started; a flushing test may have removed it since.
    server, _ = InferenceServer.objects.update_or_create(
        name="embedded-tiny-llama", defaults={"url": stack.inference_url, "base_model": "tiny-llama"})
    make_table(tmp_path, "DEPLOYED", "TICKETS", ROWS)
    session = admin_session(database="DEPLOYED", schema="PUBLIC")
    name = f"tickets_{uuid.uuid4().hex[:8]}"
    job_id = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{name}', 'tiny-llama', "
                                f"{sql_literal('SELECT prompt, completion FROM tickets')}, NULL, "
                                "'{\"max_epochs\": 1}')")
    assert wait_for_status(job_id, ("SUCCESS", "ERROR"), timeout=120, stack=stack)["status"] == "SUCCESS"

    model = FineTunedModel.objects.get(job_id=job_id)
    # SUCCESS is committed first; the worker deploys right after.
    deadline = time.monotonic() + 30
    while not Deployment.objects.filter(model=model, server=server).exclude(state__in=["pending", "loading"]).exists():
        assert time.monotonic() < deadline, stack.log("worker")
        time.sleep(0.2)
    row = Deployment.objects.get(model=model, server=server)
    assert (row.state, row.reason) == (Deployment.State.READY, ""), stack.log("worker")

    answer = sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE('{name}', 'Ticket 9: where is my order?')")
    assert isinstance(answer, str) and answer
