"""Deployments against a real embedded inference server process: pending -> loading -> ready | failed, COMPLETE
routing by deployment state (waiting, timing out, deploying on demand), DROP MODEL undeploying, refresh(),
and base models that are disabled."""
from __future__ import annotations

import itertools
import shutil
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from huggingface_hub import InferenceClient

from access.bootstrap import bootstrap
from catalog import accountdata
from catalog.models import BaseModel
from errors import UserError
from inference import deployment
from inference.credentials import auth_headers
from inference.errors import InferenceError
from inference.models import InferenceServer
from inference_server.tests import _support
from inference_server.tests.conftest import free_port, make_adapter, server_process
from jobs.models import FineTuneJob
from models_registry.models import Deployment, FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, sql_literal

BASE = "tiny-llama"
SERVER = "embedded-deployment-tests"
State = Deployment.State
QUESTION = "Where is my parcel?"
MAX_TOKENS = 6
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server_url(tiny_llama_dir):
    """The embedded server as `manage.py serve` runs it: over the studio's adapter store."""
    adapters = settings.MODEL_STORE / "adapters"
    adapters.mkdir(parents=True, exist_ok=True)
    log = settings.DATA_DIR / "logs" / "deployment-tests-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with server_process(["--base-model-dir", str(tiny_llama_dir), "--base-model-name", BASE,
                         "--adapters-dir", str(adapters), "--log-level", "warning"], log,
                        token=settings.INFERENCE_TOKEN) as url:
        yield url


@pytest.fixture
def session(db, settings, tmp_path, tiny_llama):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    settings.DEPLOYMENT_WAIT_S = 2
    bootstrap(password="pw-deploy-1234", demo=False)
    accountdata.create_database("DEPLOY")
    return admin_session(database="DEPLOY", schema="PUBLIC")


@pytest.fixture
def server(session, server_url) -> InferenceServer:
    return InferenceServer.objects.create(name=SERVER, url=server_url, base_model=BASE)


@pytest.fixture
def new_model(session, tiny_llama_dir):
    """new_model(name, broken=False): an adapter moved into the store and registered, as a job's last step."""
    made = []

    def make(name: str, *, broken: bool = False) -> FineTunedModel:
        number = next(_numbers)
        staging = settings.MODEL_STORE / "staging" / f"deployment-test-{number}"
        target = settings.MODEL_STORE / "adapters" / f"deployment-test-{number}"
        make_adapter(tiny_llama_dir, staging, f"DEPLOY.PUBLIC.{name}", BASE, seed=number)
        if broken:
            (staging / "adapter_model.safetensors").write_bytes(b"these are not adapter weights")
        staging.rename(target)
        made.append(target)
        return FineTunedModel.objects.create(schema=accountdata.get_schema("DEPLOY", "PUBLIC"), name=name,
                                             base_model=BASE, owner_role="ACCOUNTADMIN", adapter_path=str(target))

    yield make
    for path in made:  # the server shares the store with the rest of the run
        shutil.rmtree(path, ignore_errors=True)


def complete(session, model: str) -> str:
    statement = (f"SELECT SNOWFLAKE.CORTEX.COMPLETE({sql_literal(model)}, [{{'role': 'user', 'content': "
                 f"{sql_literal(QUESTION)}}}], {{'max_tokens': {MAX_TOKENS}}})")
    return Executor(session).execute(statement)[-1].rows[0][0]["choices"][0]["messages"]


def server_answer(url: str, model: str) -> str:
    """What the server itself answers for the adapter (or the base model), greedy as COMPLETE asks."""
    output = InferenceClient(base_url=url, api_key=settings.INFERENCE_TOKEN, timeout=60).chat_completion(
        messages=[{"role": "user", "content": QUESTION}], model=model, max_tokens=MAX_TOKENS, temperature=0)
    return output.choices[0].message.content


def get_json(url: str) -> tuple[int, object]:
    return _support.get_json(url, headers=auth_headers())  # the server here asks for the studio's own token


def post_json(url: str, body: dict) -> tuple[int, object]:
    return _support.post_json(url, body, headers=auth_headers())


def state(model: FineTunedModel, server: InferenceServer) -> tuple[str, str]:
    row = Deployment.objects.get(model=model, server=server)
    return row.state, row.reason


def listed(url: str) -> dict[str, str]:
    return {m["id"]: m.get("status") for m in get_json(url + "/v1/models")[1]["data"] if m.get("parent") == BASE}


# pending -> ready, and COMPLETE -------------------------------------------------------------------------

def test_a_new_model_goes_from_pending_to_ready_and_complete_answers_with_its_adapter(session, server, new_model,
                                                                                      monkeypatch):
    model = new_model("SUPPORT")
    seen = []
    post = deployment._post

    def watching_post(srv, path, body):  # the state the row is in while the server loads the adapter
        seen.append(state(model, srv))
        return post(srv, path, body)

    monkeypatch.setattr(deployment, "_post", watching_post)
    rows = deployment.deploy(model)
    monkeypatch.undo()

    assert seen == [(State.LOADING, "")]
    assert [(r.server.name, r.state, r.reason) for r in rows] == [(SERVER, State.READY, "")]
    assert listed(server.url)["DEPLOY.PUBLIC.SUPPORT"] == "ready"
    answer = complete(session, "support")
    assert answer == server_answer(server.url, "DEPLOY.PUBLIC.SUPPORT")
    assert answer != server_answer(server.url, BASE)


def test_a_model_without_a_deployment_is_deployed_on_demand_by_complete(session, server, new_model):
    model = new_model("REGISTERED_EARLIER")  # e.g. trained before its server was started
    assert not Deployment.objects.filter(model=model).exists()

    assert complete(session, "registered_earlier") == server_answer(server.url, "DEPLOY.PUBLIC.REGISTERED_EARLIER")
    assert state(model, server) == (State.READY, "")


def test_a_pending_deployment_is_loaded_by_the_complete_that_finds_it(session, server, new_model):
    model = new_model("STILL_PENDING")
    Deployment.objects.create(model=model, server=server, state=State.PENDING)

    assert complete(session, "still_pending") == server_answer(server.url, "DEPLOY.PUBLIC.STILL_PENDING")
    assert state(model, server) == (State.READY, "")


# failed -------------------------------------------------------------------------------------------------

def test_a_broken_adapter_ends_failed_with_the_servers_reason_and_complete_says_so(session, server, new_model):
    model = new_model("BROKEN", broken=True)
    [row] = deployment.deploy(model)

    assert row.state == State.FAILED
    assert row.reason.startswith(f"Adapter 'DEPLOY.PUBLIC.BROKEN' at {Path(model.adapter_path).resolve()} could "
                                 "not be loaded: ")
    with pytest.raises(InferenceError) as refused:
        complete(session, "broken")
    assert refused.value.message == (
        f"Model 'DEPLOY.PUBLIC.BROKEN' could not be deployed on inference server '{SERVER}': "
        f"{row.reason.rstrip('. ')}. Once the cause is fixed, deploy it again with: "
        "python manage.py deploy DEPLOY.PUBLIC.BROKEN")
    assert state(model, server) == (State.FAILED, row.reason)  # COMPLETE does not retry a failure by itself

    # Fixed (good weights in place), `manage.py deploy` retries it, and COMPLETE answers.
    good = settings.MODEL_STORE / "staging" / "deployment-test-fixed"
    make_adapter(Path(settings.MODEL_STORE / "base" / BASE), good, "DEPLOY.PUBLIC.BROKEN", BASE, seed=99)
    shutil.copy(good / "adapter_model.safetensors", model.adapter_dir / "adapter_model.safetensors")
    out = StringIO()
    call_command("deploy", "DEPLOY.PUBLIC.BROKEN", stdout=out)
    assert out.getvalue() == f"DEPLOY.PUBLIC.BROKEN on {SERVER}: ready\n"
    assert complete(session, "broken") == server_answer(server.url, "DEPLOY.PUBLIC.BROKEN")


def test_the_deploy_command_fails_when_a_deployment_is_not_ready(session, server, new_model):
    new_model("NEVER_LOADS", broken=True)
    out = StringIO()
    with pytest.raises(CommandError, match="^1 deployment not ready.$"):
        call_command("deploy", "DEPLOY.PUBLIC.NEVER_LOADS", stdout=out)
    assert out.getvalue().startswith(f"DEPLOY.PUBLIC.NEVER_LOADS on {SERVER}: failed (Adapter 'DEPLOY.PUBLIC."
                                     "NEVER_LOADS' at ")
    with pytest.raises(CommandError, match="Model 'DEPLOY.PUBLIC.NO_SUCH' does not exist"):
        call_command("deploy", "DEPLOY.PUBLIC.NO_SUCH", stdout=out)


def test_the_deploy_command_without_names_deploys_every_model_not_ready(session, server, new_model):
    ready, waiting = new_model("ALREADY_READY"), new_model("NEVER_DEPLOYED")
    deployment.deploy(ready)
    down = InferenceServer.objects.create(name="embedded-elsewhere", url=f"http://127.0.0.1:{free_port()}",
                                          base_model="smollm2-135m")
    out, err = StringIO(), StringIO()
    call_command("deploy", stdout=out, stderr=err)
    assert out.getvalue() == f"DEPLOY.PUBLIC.NEVER_DEPLOYED on {SERVER}: ready\n"
    assert err.getvalue().startswith("embedded-elsewhere: Inference server 'embedded-elsewhere' is not reachable")
    assert down.url not in err.getvalue()
    assert state(waiting, server) == (State.READY, "")


# waiting on another caller's load -----------------------------------------------------------------------

def test_complete_waits_for_a_deployment_another_caller_is_loading_and_then_answers(session, server, new_model,
                                                                                    monkeypatch):
    model = new_model("LOADED_ELSEWHERE")
    row = Deployment.objects.create(model=model, server=server, state=State.LOADING)  # the worker claimed it
    polls = []

    def meanwhile() -> None:  # the worker's load finishes during COMPLETE's third pause
        polls.append(time.monotonic())
        if len(polls) == 3:
            assert post_json(server.url + "/adapters/load", {"adapter_id": "DEPLOY.PUBLIC.LOADED_ELSEWHERE"})[0] == 200
            Deployment.objects.filter(pk=row.pk).update(state=State.READY)

    monkeypatch.setattr(deployment, "_pause", meanwhile)
    answer = complete(session, "loaded_elsewhere")
    monkeypatch.undo()

    assert len(polls) == 3
    assert answer == server_answer(server.url, "DEPLOY.PUBLIC.LOADED_ELSEWHERE")


def test_complete_gives_up_after_the_wait_naming_the_model_the_server_and_the_state(session, server, new_model,
                                                                                   settings):
    settings.DEPLOYMENT_WAIT_S = 0.6
    model = new_model("SLOW")
    Deployment.objects.create(model=model, server=server, state=State.LOADING)

    started = time.monotonic()
    with pytest.raises(InferenceError) as waited:
        complete(session, "slow")
    assert 0.6 <= time.monotonic() - started < 5
    assert waited.value.message == (f"Model 'DEPLOY.PUBLIC.SLOW' is still loading on inference server '{SERVER}' "
                                    "after 0.6 s; try again shortly.")
    assert not waited.value.permanent


def test_a_load_whose_loader_died_is_taken_over(session, server, new_model):
    model = new_model("ORPHANED")
    row = Deployment.objects.create(model=model, server=server, state=State.LOADING)
    Deployment.objects.filter(pk=row.pk).update(updated_on=row.updated_on.replace(year=2000))  # long past any timeout

    assert complete(session, "orphaned") == server_answer(server.url, "DEPLOY.PUBLIC.ORPHANED")
    assert state(model, server) == (State.READY, "")


# undeploying and reconciling ----------------------------------------------------------------------------

def test_drop_model_unloads_the_adapter_and_the_server_then_refuses_it(session, server, new_model):
    model = new_model("DROPPED")
    assert deployment.deploy(model)[0].state == State.READY
    assert "DEPLOY.PUBLIC.DROPPED" in get_json(server.url + "/info")[1]["adapters"]

    assert Executor(session).execute("DROP MODEL dropped")[-1].rows == [("DROPPED successfully dropped.",)]

    assert not model.adapter_dir.exists() and not Deployment.objects.exists()
    assert "DEPLOY.PUBLIC.DROPPED" not in get_json(server.url + "/info")[1]["adapters"]
    assert "DEPLOY.PUBLIC.DROPPED" not in listed(server.url)
    status, body = post_json(server.url + "/v1/chat/completions", {
        "model": "DEPLOY.PUBLIC.DROPPED", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 2})
    assert status == 404 and body["error"].startswith("Adapter 'DEPLOY.PUBLIC.DROPPED' not found on this server")
    with pytest.raises(UserError, match="Model 'DEPLOY.PUBLIC.DROPPED' does not exist or not authorized."):
        complete(session, "dropped")


def test_refresh_takes_the_servers_word(session, server, new_model):
    loaded, unloaded, missing, unknown = (new_model(n) for n in ("LOADED", "UNLOADED", "MISSING", "UNKNOWN"))
    for model in (loaded, unloaded, missing):
        deployment.deploy(model)
    # As after a restart: one adapter not loaded yet, one whose directory is gone.
    for model in (unloaded, missing):
        post_json(server.url + "/adapters/unload", {"adapter_id": model.qualified_name})
    shutil.rmtree(missing.adapter_dir)
    post_json(server.url + "/adapters/load", {"adapter_id": "DEPLOY.PUBLIC.UNKNOWN"})  # loaded, never recorded

    rows = {row.model.name: (row.state, row.reason) for row in deployment.refresh(server)}
    assert rows == {
        "LOADED": (State.READY, ""),
        "UNLOADED": (State.PENDING, ""),  # loaded again by the next COMPLETE
        "MISSING": (State.FAILED, "The server does not have adapter 'DEPLOY.PUBLIC.MISSING': its directory is not "
                                  "in the server's adapters dir."),
        "UNKNOWN": (State.READY, ""),
    }
    assert complete(session, "unloaded") == server_answer(server.url, "DEPLOY.PUBLIC.UNLOADED")


# disabled base models -----------------------------------------------------------------------------------

def test_a_disabled_base_model_refuses_complete_on_itself_and_its_fine_tuned_models(session, server, new_model):
    new_model("TUNED")
    tuned_answer = complete(session, "tuned")
    call_command("basemodels", "disable", BASE, stdout=StringIO())
    assert not BaseModel.objects.get(name=BASE).enabled

    with pytest.raises(UserError) as refused:
        complete(session, "tuned")
    assert refused.value.message == (
        "Base model 'tiny-llama' is disabled, so fine-tuned model 'DEPLOY.PUBLIC.TUNED' no longer works. An "
        "administrator can enable it again: python manage.py basemodels enable tiny-llama")
    with pytest.raises(UserError) as refused:
        complete(session, BASE)
    assert refused.value.message == ("Base model 'tiny-llama' is disabled. An administrator can enable it again: "
                                     "python manage.py basemodels enable tiny-llama")

    call_command("basemodels", "enable", BASE, stdout=StringIO())
    assert complete(session, "tuned") == tuned_answer


def test_finetune_create_refuses_a_disabled_base_model(session):
    BaseModel.objects.filter(name=BASE).update(enabled=False)
    with pytest.raises(UserError) as refused:
        Executor(session).execute("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'new_model', 'tiny-llama', "
                                  "'SELECT 1 AS prompt, 2 AS completion')")
    assert refused.value.message == (
        "Base model 'tiny-llama' is disabled, so no model can be fine-tuned from it. An administrator can enable "
        "it again: python manage.py basemodels enable tiny-llama")
    assert not FineTuneJob.objects.exists()
