"""Two RQ workers and two web processes racing on the same jobs, against PostgreSQL (the PostgreSQL pass
only: STUDIO_TEST_DATABASE=postgres; on SQLite the writers queue behind one file lock instead).

Every job is on its warehouse's queue twice, its own RQ job and a duplicate right behind it (as when
the reconciler and CREATE both queue it), before the two workers start at once: the first two entries
are one job's, so both workers claim it at the same moment. CANCELs arrive through the other web
process while jobs are pending and while they train, and COMPLETE calls arrive through both web
processes at once while the workers write progress.
"""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from access.tokens import create_token
from inference.models import CompletionUsage
from jobs.models import FineTuneJob
from jobs.queues import queue_for
from models_registry.models import FineTunedModel
from models_registry import registry
from models_registry.registry import adapters_dir
from supervision import processes
from tests.support.cortex import make_table
from tests.support.workers import start_worker, stop_workers, wait_for, wait_for_workers
from warehouses.models import Warehouse

pytestmark = pytest.mark.postgres

WAREHOUSE = "RACE_WH"
JOBS = 4
COMPLETES = 16
ROWS = [{"prompt": f"Ticket {i}: where is my order?", "completion": "Thank you for contacting ACME support."}
        for i in range(24)]
QUERY = "SELECT prompt, completion FROM race.public.tickets"


class Web:
    """One `uvicorn project.asgi` process (one worker), spoken to through the SQL API."""

    def __init__(self, data_dir, name: str, token: str) -> None:
        self.port, self.token = processes.free_port(), token
        self.url = f"http://127.0.0.1:{self.port}/"
        out = open(data_dir / "logs" / f"{name}.log", "ab")
        self.process = subprocess.Popen(processes.web_command("127.0.0.1", self.port, workers=1),
                                        cwd=processes.BASE_DIR, stdout=out, stderr=subprocess.STDOUT)
        processes.wait_until(self._answers, 120, name, self.process)

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "api/v2/statements/none", timeout=2).close()
        except urllib.error.HTTPError:
            pass  # any answer from Django (401 without a token) means the app is loaded
        return True

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path.lstrip("/"), method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def value(self, statement: str) -> Any:
        """The one value a statement returns; a failed statement's message as an AssertionError."""
        status, answer = self._call("POST", "api/v2/statements", {"statement": statement, "timeout": 45,
                                                                  "warehouse": WAREHOUSE, "role": "ACCOUNTADMIN"})
        deadline = time.monotonic() + 120
        while status == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, answer = self._call("GET", answer["statementStatusUrl"])
        assert status == 200, (status, answer.get("message"), statement)
        return answer["data"][0][0]

    def stop(self) -> None:
        processes.stop(self.process)


@pytest.fixture(scope="module")
def race(stack_processes, tmp_path_factory):
    """The stack's Redis and inference server, a RACE_WH warehouse with two slots and nobody serving it
    yet, its training table, and two web processes (started once for both tests: rows are committed)."""
    from access.bootstrap import bootstrap
    from catalog.base_models import seed_catalog
    from conftest import register_tiny_llama

    seed_catalog()
    bootstrap(password="admin-test-password", demo=False)
    register_tiny_llama()
    make_table(tmp_path_factory.mktemp("race"), "RACE", "TICKETS", ROWS)
    Warehouse.objects.update_or_create(name=WAREHOUSE, defaults={"concurrency": 2})
    queue_for(WAREHOUSE).empty()
    _, token = create_token(get_user_model().objects.get(username="admin"), "race")
    with ThreadPoolExecutor(2) as pool:  # each mostly waits for its app to load
        starting = [pool.submit(Web, stack_processes.data_dir, f"race-web-{n}", token) for n in (1, 2)]
    webs = [future.result() for future in starting if future.exception() is None]
    try:
        for future in starting:
            future.result()  # the first failure
        yield webs
    finally:
        for web in webs:
            web.stop()


@pytest.fixture
def workers():
    started: list = []
    yield started
    stop_workers(started)


def create(web: Web) -> str:
    return web.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'race.public.support', 'tiny-llama', "
                     f"'{QUERY}', NULL, '{{\"max_epochs\": 1}}')")


def test_two_workers_claim_each_job_once_and_cancels_through_either_web_process_hold(race, workers,
                                                                                    stack_processes):
    stack = stack_processes
    web_a, web_b = race
    queue = queue_for(WAREHOUSE)
    job_ids = []
    for i in range(JOBS):  # CREATE alternately through each web process; each duplicate right behind its job
        job_ids.append(create(race[i % 2]))
        queue.enqueue("jobs.tasks.run_finetune_job", job_ids[-1], job_id=f"duplicate-{job_ids[-1]}")
    assert len(queue.job_ids) == 2 * JOBS
    cancelled_pending = job_ids[-1]
    assert web_b.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{cancelled_pending}')") == (
        f"Canceled Cortex Fine-tuning job: {cancelled_pending}")

    workers += [start_worker(stack, WAREHOUSE, "--name", f"race-{n}", log=f"race-worker-{n}") for n in (1, 2)]
    wait_for_workers(queue.name, 2, workers, timeout=120)
    # One job cancelled through the other web process while it trains; the others run to SUCCESS.
    training = job_ids[1]
    wait_for(lambda: FineTuneJob.objects.get(pk=training).status != "PENDING", 180, f"{training} claimed")
    cancel_answer = web_a.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CANCEL', '{training}')")

    final = wait_for(lambda: (lambda jobs: jobs if all(j.is_final for j in jobs) else None)(
        list(FineTuneJob.objects.filter(pk__in=job_ids))), 400, "every job finished", interval=0.5)
    statuses = {j.id: j.status for j in final}
    logs = "\n".join(stack.log(f"race-worker-{n}") for n in (1, 2))
    assert statuses[cancelled_pending] == "CANCELLED"
    assert statuses[job_ids[0]] == statuses[job_ids[2]] == "SUCCESS", (statuses, logs)
    if statuses[training] == "SUCCESS":  # it finished before the CANCEL reached its row
        assert cancel_answer == f"Fine-tuning job '{training}' finished with status SUCCESS before it could be cancelled."
    else:
        assert (statuses[training], cancel_answer) == ("CANCELLED", f"Canceled Cortex Fine-tuning job: {training}")

    # Each job was trained by one worker once; its other copy found it claimed (or cancelled) and did nothing.
    for job_id in job_ids:
        trained = logs.count(f"saved adapter to {registry.staging_dir(job_id)}")
        assert trained == (statuses[job_id] == "SUCCESS"), (job_id, trained, logs)
    for job in final:
        assert job.resumes == 0 and not job.interruption, (job.id, job.interruption)
    # Consistent: a model (and its adapter) for every SUCCESS and for nothing else, each under its own name.
    models = {m.job_id: m.name for m in FineTunedModel.objects.filter(job_id__in=job_ids)}
    succeeded = {j.id for j in final if j.status == "SUCCESS"}
    assert set(models) == succeeded
    assert sorted(models.values()) == ["SUPPORT", "SUPPORT_1", "SUPPORT_2"][:len(succeeded)]
    for job in final:
        assert (adapters_dir() / job.id).exists() == (job.status == "SUCCESS")
        if job.status == "SUCCESS":
            assert job.final_model_name == f"RACE.PUBLIC.{models[job.id]}"


def test_concurrent_complete_calls_through_two_web_processes_are_all_recorded(race):
    started = timezone.now()
    statements = [(race[i % 2], f"SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', 'Ticket {i}: hello?', "
                                "{'max_tokens': 4})") for i in range(COMPLETES)]
    with ThreadPoolExecutor(COMPLETES) as pool:
        answers = list(pool.map(lambda call: json.loads(call[0].value(call[1])), statements))

    assert all(answer["choices"][0]["messages"] is not None for answer in answers)
    rows = CompletionUsage.objects.filter(started_on__gte=started, user_name="admin", model_name="tiny-llama")
    assert rows.count() == COMPLETES
    assert sorted(set(rows.values_list("status", flat=True))) == ["SUCCESS"]
    assert all(row.input_tokens > 0 and 0 < row.output_tokens <= 4 for row in rows)
    assert sum(a["usage"]["total_tokens"] for a in answers) == sum(r.input_tokens + r.output_tokens for r in rows)
