"""Deployment rows without a live embedded server: the TGI branch (inference.tgi.redeploy replaced by a
stand-in that records its calls, since restarting TGI needs Docker and a GPU), a server that is down, what
SHOW MODELS and the console show, and a deploy failure after training never failing the job."""
from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from access.bootstrap import bootstrap
from catalog import accountdata
from inference import deployment, tgi
from inference.client import server_for
from inference.errors import InferenceError
from inference.models import InferenceServer
from jobs import tasks
from models_registry.models import Deployment, FineTunedModel
from sqlengine.executor import Executor
from supervision.processes import free_port
from tests.support.cortex import admin_session

BASE = "tiny-llama"
State = Deployment.State


@pytest.fixture
def session(db, settings, tmp_path, tiny_llama):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-deploy-1234", demo=False)
    accountdata.create_database("REG")
    return admin_session(database="REG", schema="PUBLIC")


def make_model(name: str, tmp_path) -> FineTunedModel:
    adapter = tmp_path / "adapters" / name
    adapter.mkdir(parents=True)
    return FineTunedModel.objects.create(schema=accountdata.get_schema("REG", "PUBLIC"), name=name, base_model=BASE,
                                         owner_role="ACCOUNTADMIN", adapter_path=str(adapter))


def run(session, statement: str):
    return Executor(session).execute(statement)[-1]


# TGI ------------------------------------------------------------------------------------------------------

@pytest.fixture
def tgi_server(session) -> InferenceServer:
    return InferenceServer.objects.create(name="tgi-tiny", url="http://tgi.invalid:80", base_model=BASE,
                                          backend=InferenceServer.Backend.TGI)


@pytest.fixture
def redeploys(monkeypatch):
    """Stands in for inference.tgi.redeploy: records (server, model names, states while it ran) and answers
    from `refuse` (qualified name -> reason)."""
    calls, refuse = [], {}

    def redeploy(server, models):
        models = list(models)
        calls.append((server.name, [m.qualified_name for m in models],
                      sorted(Deployment.objects.filter(server=server).values_list("state", flat=True))))
        return {m.qualified_name: refuse.get(m.qualified_name) for m in models}

    monkeypatch.setattr(tgi, "redeploy", redeploy)
    return calls, refuse


def test_tgi_redeploys_every_adapter_of_its_base_model_and_records_each_outcome(session, tgi_server, redeploys,
                                                                               tmp_path):
    calls, refuse = redeploys
    first = make_model("FIRST", tmp_path)
    assert deployment.deploy(first)[0].state == State.READY
    second = make_model("SECOND", tmp_path)
    reason = refuse["REG.PUBLIC.SECOND"] = "Adapter REG.PUBLIC.SECOND has rank 256; TGI serves ranks up to 128."

    [row] = deployment.deploy(second)
    assert (row.state, row.reason) == (State.FAILED, reason)
    # Both adapters go to TGI's list each time, and both wait (loading) while it restarts.
    assert calls == [("tgi-tiny", ["REG.PUBLIC.FIRST"], [State.LOADING]),
                     ("tgi-tiny", ["REG.PUBLIC.FIRST", "REG.PUBLIC.SECOND"], [State.LOADING, State.LOADING])]
    assert Deployment.objects.get(model=first).state == State.READY

    assert server_for(BASE, first.pk) == tgi_server  # confirmed: routed
    with pytest.raises(InferenceError, match=r"^Model 'REG.PUBLIC.SECOND' could not be deployed on inference "
                                             r"server 'tgi-tiny': Adapter REG.PUBLIC.SECOND has rank 256; TGI "
                                             r"serves ranks up to 128. Once the cause is fixed, deploy it again "
                                             r"with: python manage.py deploy REG.PUBLIC.SECOND$"):
        server_for(BASE, second.pk)


def test_deploying_every_model_restarts_tgi_once(session, tgi_server, redeploys, tmp_path):
    """`manage.py deploy` without names: one TGI restart loads every adapter, so it is not repeated per model,
    also for a model that restart refused."""
    calls, refuse = redeploys
    make_model("ONE", tmp_path), make_model("TWO", tmp_path), make_model("REFUSED", tmp_path)
    refuse["REG.PUBLIC.REFUSED"] = "rank 256 is over 128"
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="^1 deployment not ready.$"):
        call_command("deploy", stdout=out, stderr=err)
    assert [names for _, names, _ in calls] == [["REG.PUBLIC.ONE", "REG.PUBLIC.REFUSED", "REG.PUBLIC.TWO"]]
    assert out.getvalue().splitlines() == ["REG.PUBLIC.ONE on tgi-tiny: ready",
                                           "REG.PUBLIC.REFUSED on tgi-tiny: failed (rank 256 is over 128)",
                                           "REG.PUBLIC.TWO on tgi-tiny: ready"]


def test_dropping_a_model_redeploys_tgi_without_it(session, tgi_server, redeploys, tmp_path):
    calls, _ = redeploys
    kept, dropped = make_model("KEPT", tmp_path), make_model("GONE", tmp_path)
    deployment.deploy(kept)
    deployment.deploy(dropped)
    calls.clear()

    assert run(session, "DROP MODEL gone").rows == [("GONE successfully dropped.",)]
    assert calls == [("tgi-tiny", ["REG.PUBLIC.KEPT"], [State.LOADING])]
    assert list(Deployment.objects.values_list("model__name", "state")) == [("KEPT", State.READY)]
    assert not dropped.adapter_dir.exists()


def test_a_tgi_restart_that_fails_fails_every_adapter_with_its_reason(session, tgi_server, monkeypatch, tmp_path):
    def redeploy(server, models):
        raise RuntimeError("docker socket not found")

    monkeypatch.setattr(tgi, "redeploy", redeploy)
    [row] = deployment.deploy(make_model("UNLUCKY", tmp_path))
    assert (row.state, row.reason) == (
        State.FAILED, "The TGI server could not be redeployed: RuntimeError: docker socket not found")


# A server that is down ------------------------------------------------------------------------------------

@pytest.fixture
def down_server(session) -> InferenceServer:
    return InferenceServer.objects.create(name="embedded-down", url=f"http://127.0.0.1:{free_port()}",
                                          base_model=BASE)


def test_a_server_that_is_down_leaves_the_deployment_pending_and_complete_says_it_is_unreachable(
        session, down_server, tmp_path):
    model = make_model("WAITING", tmp_path)
    [row] = deployment.deploy(model)
    assert row.state == State.PENDING
    # The server is named, never located: its URL is for the admin console and the logs.
    assert row.reason.startswith("Inference server 'embedded-down' is not reachable (")
    assert down_server.url not in row.reason and str(down_server.url).rsplit(":", 1)[-1] not in row.reason
    assert row.reason.endswith(").") and row.label == f"pending ({row.reason})"

    with pytest.raises(InferenceError) as refused:
        run(session, "SELECT SNOWFLAKE.CORTEX.COMPLETE('waiting', 'Hello?')")
    assert refused.value.message.startswith(f"Model 'REG.PUBLIC.WAITING' cannot be deployed yet: Inference server "
                                            "'embedded-down' is not reachable (")
    assert down_server.url not in refused.value.message
    assert refused.value.message.endswith("); the next COMPLETE deploys it once the server answers.")
    assert not refused.value.permanent
    assert Deployment.objects.get(model=model).state == State.PENDING  # tried again next time


def test_drop_model_goes_on_when_the_server_is_down_and_logs_it(session, down_server, tmp_path, caplog):
    model = make_model("ORPHAN", tmp_path)
    Deployment.objects.create(model=model, server=down_server, state=State.READY)

    with caplog.at_level(logging.WARNING, logger="inference.deployment"):
        assert run(session, "DROP MODEL orphan").rows == [("ORPHAN successfully dropped.",)]
    assert not FineTunedModel.objects.exists() and not Deployment.objects.exists()
    assert not model.adapter_dir.exists()
    assert "Could not undeploy model 'REG.PUBLIC.ORPHAN' from inference server 'embedded-down': " in caplog.text


def test_without_a_server_complete_names_the_command_that_starts_one(session, tmp_path):
    make_model("SERVERLESS", tmp_path)
    with pytest.raises(InferenceError, match="^No inference server serves base model 'tiny-llama'. Start one with: "
                                             "python manage.py serve --base-model tiny-llama$"):
        run(session, "SELECT SNOWFLAKE.CORTEX.COMPLETE('serverless', 'Hello?')")
    assert not Deployment.objects.exists()
    out = StringIO()
    call_command("deploy", "REG.PUBLIC.SERVERLESS", stdout=out)
    assert out.getvalue() == ("REG.PUBLIC.SERVERLESS: no inference server serves base model 'tiny-llama' "
                              "(python manage.py serve --base-model tiny-llama)\n")


# Where the state shows --------------------------------------------------------------------------------------

def test_show_models_and_the_console_show_each_servers_state(session, tgi_server, down_server, tmp_path, client):
    model = make_model("SHOWN", tmp_path)
    Deployment.objects.create(model=model, server=tgi_server, state=State.FAILED, reason="rank 256 is over 128")
    Deployment.objects.create(model=model, server=down_server, state=State.READY)
    make_model("UNDEPLOYED", tmp_path)

    shown = run(session, "SHOW MODELS IN SCHEMA reg.public")
    assert shown.columns[-1] == "deployment"
    assert {row[1]: row[-1] for row in shown.rows} == {
        "SHOWN": "embedded-down: ready, tgi-tiny: failed (rank 256 is over 128)", "UNDEPLOYED": "not deployed"}

    client.force_login(get_user_model().objects.get(username="admin"))
    listing = client.get("/admin/models_registry/finetunedmodel/").content.decode()
    assert "embedded-down: ready, tgi-tiny: failed (rank 256 is over 128)" in listing and "not deployed" in listing
    page = client.get(f"/admin/models_registry/finetunedmodel/{model.pk}/change/").content.decode()
    assert "rank 256 is over 128" in page and "tgi-tiny" in page
    assert 'name="deployments-0-state"' not in page  # shown, not edited


def test_a_base_model_is_disabled_and_enabled_from_the_console(session, client):
    from catalog.models import BaseModel

    client.force_login(get_user_model().objects.get(username="admin"))
    base = BaseModel.objects.get(name=BASE)
    client.post("/admin/catalog/basemodel/", {"action": "disable_selected", "_selected_action": [base.pk]})
    base.refresh_from_db()
    assert not base.enabled
    with pytest.raises(Exception, match="^Base model 'tiny-llama' is disabled. An administrator"):
        run(session, "SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', 'Hello?')")
    client.post("/admin/catalog/basemodel/", {"action": "enable_selected", "_selected_action": [base.pk]})
    base.refresh_from_db()
    assert base.enabled


# After training ---------------------------------------------------------------------------------------------

def test_a_deploy_that_breaks_is_logged_and_never_fails_the_job(session, tgi_server, monkeypatch, tmp_path, caplog):
    def broken(model):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(deployment, "deploy", broken)
    with caplog.at_level(logging.ERROR, logger="jobs.tasks"):
        tasks.deploy_quietly(make_model("TRAINED", tmp_path))
    assert "deploying REG.PUBLIC.TRAINED failed" in caplog.text
