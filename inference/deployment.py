"""Putting fine-tuned models on the inference servers that serve their base model, and taking them off.

Each (model, server) has a Deployment row whose state moves:

- pending: deploy() marks the model pending on every server serving its base model (after its job
  registered it, or from `manage.py deploy`). A server that cannot be reached leaves it pending with the
  reason, so the next COMPLETE (or deploy) tries again once the server is back.
- loading: whoever claims a pending row (a deploy, or a COMPLETE that finds it pending or finds no row at
  all) asks the server to load the adapter. The claim is one conditional UPDATE, so one caller loads and
  the others wait; a claim older than INFERENCE_TIMEOUT (its loader died) may be taken over.
- ready: the server confirmed it serves the adapter. Only then does COMPLETE route the model there: TGI
  answers an adapter it does not know with the base model and HTTP 200, so nothing else is trusted.
- failed: the server refused it (the adapter does not load, is missing, TGI would ignore it); `reason`
  holds the server's words and COMPLETE repeats them with the fix, `python manage.py deploy <model>`.

The embedded server loads and unloads adapters through its /adapters/load and /adapters/unload routes;
a TGI server takes its adapters at launch, so inference.tgi.redeploy() regenerates that list and restarts it;
a vLLM server loads and unloads them at run time (/v1/load_lora_adapter, /v1/unload_lora_adapter), after its
LoRA limits are checked here (inference/vllm.py).
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from inference import addresses, tgi, vllm
from inference.credentials import auth_headers
from inference.errors import InferenceError
from inference.models import InferenceServer
from models_registry.models import Deployment, FineTunedModel

log = logging.getLogger(__name__)
State = Deployment.State
POLL_S = 0.2  # how often a COMPLETE waiting on another caller's load looks at the row again


class ServerRefused(Exception):
    """The server answered with an error; `message` is its own explanation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def deploy_command(model: FineTunedModel) -> str:
    return f"python manage.py deploy {model.qualified_name}"


def servers_for(model: FineTunedModel) -> list[InferenceServer]:
    """The servers serving the model's base model, newest first (the order COMPLETE prefers them in)."""
    return list(InferenceServer.objects.filter(base_model=model.base_model).order_by("-registered_on", "pk"))


# Deploying ----------------------------------------------------------------------------------------------

def deploy(model: FineTunedModel) -> list[Deployment]:
    """(Re)deploy the model on every server serving its base model and return its deployments. A server's
    failure is recorded on the deployment, never raised: a job whose adapter does not deploy still succeeded."""
    deployments = []
    for server in servers_for(model):
        row, created = Deployment.objects.get_or_create(model=model, server=server)
        if not created:  # a retry: start over, unless another caller is loading it right now
            Deployment.objects.filter(pk=row.pk).exclude(_loading_now()).update(
                state=State.PENDING, reason="", updated_on=timezone.now())
        deployments.append(deploy_to(model, server))
    return deployments


def deploy_to(model: FineTunedModel, server: InferenceServer) -> Deployment:
    """Load the model on one server if its deployment there is pending (or has no row yet) and this caller
    claims it; otherwise leave it to whoever holds it. Returns the deployment as it then stands."""
    row, _ = Deployment.objects.get_or_create(model=model, server=server)
    if not _claim(row):
        row.refresh_from_db()
        return row
    if server.backend == InferenceServer.Backend.TGI:
        _redeploy_tgi(server)
    elif server.backend == InferenceServer.Backend.VLLM:
        _deploy_vllm(row, model, server)
    else:
        try:
            _post(server, "/adapters/load", {"adapter_id": model.qualified_name})
        except ServerRefused as exc:
            _set(row, State.FAILED, exc.message)
        except OSError as exc:
            _set(row, State.PENDING, unreachable(server, exc))
        else:
            _set(row, State.READY)
    row.refresh_from_db()
    log.info("deployment of %s on %s: %s", model, server.name, row.label)
    return row


def _deploy_vllm(row: Deployment, model: FineTunedModel, server: InferenceServer) -> None:
    try:
        vllm.check_deployable(model, server)  # its limits first: vLLM's own refusal of them is a bare 500
        vllm.load(server, model)
    except (vllm.NotDeployable, vllm.Refused) as exc:
        _set(row, State.FAILED, exc.message)
    except OSError as exc:
        _set(row, State.PENDING, unreachable(server, exc))
    else:
        _set(row, State.READY)  # vLLM loads the adapter into its engine before it answers 200


def forget(model_id: int, server: InferenceServer, reason: str) -> None:
    """The server no longer has an adapter it had confirmed (a restarted vLLM forgets every adapter loaded at
    run time): the next COMPLETE or deploy loads it again."""
    Deployment.objects.filter(model__pk=model_id, server=server, state=State.READY).update(
        state=State.PENDING, reason=addresses.hide(reason, server), updated_on=timezone.now())


def _loading_now() -> Q:
    """A claim still in its time: the loader may yet answer."""
    return Q(state=State.LOADING, updated_on__gte=timezone.now() - timedelta(seconds=settings.INFERENCE_TIMEOUT))


def _claim(row: Deployment) -> bool:
    claimable = Q(state=State.PENDING) | (Q(state=State.LOADING) & ~_loading_now())
    return Deployment.objects.filter(claimable, pk=row.pk).update(
        state=State.LOADING, reason="", updated_on=timezone.now()) == 1


def _set(row: Deployment, state: str, reason: str = "") -> None:
    # The reason is the server's or the TGI launcher's own words, shown on the model's page and in COMPLETE's
    # errors: the server is named there, never located (inference/addresses.py).
    reason = addresses.hide(reason, row.server) if reason else reason
    Deployment.objects.filter(pk=row.pk).update(state=state, reason=reason, updated_on=timezone.now())


def unreachable(server: InferenceServer, exc: BaseException) -> str:
    log.warning("inference server %s at %s is not reachable: %r", server.name, server.url, exc)
    return f"Inference server '{server.name}' is not reachable ({addresses.hide(str(exc), server)})."


def _redeploy_tgi(server: InferenceServer, dropped: str | None = None) -> str | None:
    """Give TGI every model of its base model (its LORA_ADAPTERS) and record what each became; the
    restart's own failure, if it failed."""
    models = [m for m in FineTunedModel.objects.filter(base_model=server.base_model).select_related("schema__database")
              if m.qualified_name != dropped]
    rows = {}
    for model in models:
        rows[model.qualified_name], _ = Deployment.objects.get_or_create(model=model, server=server)
    # The restart takes every adapter of the server down with it: each waits (loading) until it is back.
    Deployment.objects.filter(pk__in=[r.pk for r in rows.values()]).update(
        state=State.LOADING, reason="", updated_on=timezone.now())
    error = None
    try:
        # The TGI launcher: regenerates LORA_ADAPTERS, restarts the server, waits for /health.
        outcome = tgi.redeploy(server, models)
    except Exception as exc:  # noqa: BLE001 - the restart's failure is every adapter's, recorded on each
        log.exception("redeploying TGI server %s failed", server.name)
        error = f"The TGI server could not be redeployed: {type(exc).__name__}: {exc}"
        outcome = {name: error for name in rows}
    for name, row in rows.items():
        if name not in outcome:
            _set(row, State.FAILED, "The TGI redeploy did not report on this adapter.")
        elif outcome[name] is None:
            _set(row, State.READY)
        else:
            _set(row, State.FAILED, outcome[name])
    return error


# Undeploying --------------------------------------------------------------------------------------------

def undeploy(model: FineTunedModel) -> list[str]:
    """Take the model off every server that may hold it (DROP MODEL, after deleting the row so no COMPLETE
    routes to it any more, before deleting its adapter directory). Returns the problems, which are logged
    and never raised: a server that is down must not stop a DROP."""
    name = model.qualified_name
    holding = Q(base_model=model.base_model)
    if model.pk is not None:  # not deleted yet: also servers it was deployed on that now serve another base
        holding |= Q(deployments__model__pk=model.pk)
    problems = []
    for server in InferenceServer.objects.filter(holding).distinct().order_by("name"):
        if server.backend == InferenceServer.Backend.TGI:
            error = _redeploy_tgi(server, dropped=name)
        elif server.backend == InferenceServer.Backend.VLLM:
            try:
                vllm.unload(server, name)
                error = None
            except (vllm.Refused, OSError) as exc:
                error = str(exc)
        else:
            try:
                _post(server, "/adapters/unload", {"adapter_id": name})
                error = None
            except (ServerRefused, OSError) as exc:
                error = str(exc)
        if error:
            problems.append(f"Could not undeploy model '{name}' from inference server '{server.name}': {error}")
            log.warning("%s", problems[-1])
    if model.pk is not None:
        Deployment.objects.filter(model__pk=model.pk).delete()
    return problems


# Reconciling --------------------------------------------------------------------------------------------

def refresh(server: InferenceServer) -> list[Deployment]:
    """Bring the server's deployments in line with what its /v1/models lists. The embedded server gives
    each adapter a status: "ready" (loaded) or "available" (in its adapters dir, loaded on first use). TGI
    lists no adapters there, so for TGI only a listed adapter is confirmed and nothing is taken back. vLLM lists
the adapters it holds: one ready here that it no longer lists (it restarted) is pending again.
    Raises OSError when the server cannot be reached."""
    try:
        listing = _get(server, "/v1/models")
    except ServerRefused as exc:
        raise OSError(exc.message) from None
    statuses = {entry.get("id"): entry.get("status", "ready") for entry in listing.get("data", [])
                if isinstance(entry, dict) and entry.get("id") != server.base_model}
    embedded = server.backend == InferenceServer.Backend.EMBEDDED
    on_vllm = server.backend == InferenceServer.Backend.VLLM
    rows = []
    models = FineTunedModel.objects.filter(base_model=server.base_model).select_related("schema__database")
    for model in models:
        status = statuses.get(model.qualified_name)
        row = Deployment.objects.filter(model=model, server=server).first()
        if status == "ready":
            row = row or Deployment.objects.create(model=model, server=server, state=State.READY)
            _set(row, State.READY)
        elif on_vllm and row is not None and row.state == State.READY:  # vLLM restarted: it forgets them all
            _set(row, State.PENDING, f"vLLM server '{server.name}' no longer lists adapter '{model.qualified_name}' "
                                     "(restarted?); the next COMPLETE loads it again.")
        elif row is None or not embedded or row.state == State.LOADING:
            pass  # nothing to confirm, or someone is loading it right now
        elif status == "available":
            if row.state == State.READY:  # the server restarted or unloaded it: loaded again on first use
                _set(row, State.PENDING)
        elif row.state != State.FAILED:
            _set(row, State.FAILED, f"The server does not have adapter '{model.qualified_name}': its directory "
                                    f"is not in the server's adapters dir.")
        if row is not None:
            row.refresh_from_db()
            rows.append(row)
    return rows


# Routing (COMPLETE) -------------------------------------------------------------------------------------

def ready_server(model: FineTunedModel, servers: list[InferenceServer]) -> InferenceServer:
    """The server COMPLETE sends the model to: one (the newest) where its deployment is ready.

    A deployment nobody is loading (pending, or no row: a model registered before deployments existed, or a
    server started later) is deployed here and now, as a user who just trained a model expects it to answer.
    One another caller is loading is waited for, up to DEPLOYMENT_WAIT_S seconds. A failed one is an error
    naming the server's reason and the command that retries."""
    wait_s = settings.DEPLOYMENT_WAIT_S
    deadline = time.monotonic() + wait_s
    while True:
        rows = {row.server_id: row for row in Deployment.objects.filter(model=model, server__in=servers)}
        for server in servers:
            if server.pk in rows and rows[server.pk].state == State.READY:
                return server
        for server in servers:
            row = rows.get(server.pk)
            if row is None or row.state == State.PENDING or (row.state == State.LOADING and _stale(row)):
                row = rows[server.pk] = deploy_to(model, server)
                if row.state == State.READY:
                    return server
                if row.state == State.PENDING:  # the server did not answer
                    raise InferenceError(f"Model '{model.qualified_name}' cannot be deployed yet: "
                                         f"{row.reason.rstrip('.')}; the next COMPLETE deploys it once the server "
                                         "answers.", permanent=False)
        loading = [server for server in servers if rows[server.pk].state == State.LOADING]
        if not loading:
            server = servers[0]
            reason = rows[server.pk].reason.rstrip(". ") or "no reason was given"
            raise InferenceError(
                f"Model '{model.qualified_name}' could not be deployed on inference server '{server.name}': "
                f"{reason}. Once the cause is fixed, deploy it again with: {deploy_command(model)}")
        if time.monotonic() >= deadline:
            raise InferenceError(
                f"Model '{model.qualified_name}' is still {rows[loading[0].pk].state} on inference server "
                f"'{loading[0].name}' after {wait_s:g} s; try again shortly.", permanent=False)
        _pause()


def _pause() -> None:
    time.sleep(POLL_S)


def _stale(row: Deployment) -> bool:
    return row.updated_on < timezone.now() - timedelta(seconds=settings.INFERENCE_TIMEOUT)


# HTTP ---------------------------------------------------------------------------------------------------

def _post(server: InferenceServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(server.url.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **auth_headers()})
    return _send(request)


def _get(server: InferenceServer, path: str) -> dict[str, Any]:
    return _send(urllib.request.Request(server.url.rstrip("/") + path, headers=auth_headers()))


def _send(request: urllib.request.Request) -> dict[str, Any]:
    """The JSON answer; ServerRefused(the server's error message) on an HTTP error; OSError when unreachable."""
    try:
        with urllib.request.urlopen(request, timeout=settings.INFERENCE_TIMEOUT) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            message = json.loads(raw).get("error") or ""
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace")[:500]
        raise ServerRefused(message or f"HTTP {exc.code} {exc.reason}") from None
