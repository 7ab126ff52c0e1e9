"""Redeploying TGI: check the adapters, write LORA_ADAPTERS, drain, restart, wait for /health, and confirm
each adapter answers differently from the base model."""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from inference.credentials import auth_headers
from inference.tgi.launch import _entry, write_env_file
from inference.tgi.servable import NotServable, check_servable

if TYPE_CHECKING:
    from inference.models import InferenceServer
    from models_registry.models import FineTunedModel

log = logging.getLogger(__name__)

# Greedy probe that confirms an adapter is served: its tokens and log-probabilities must differ from the
# base model's by more than this.
PROBE_INPUTS = "Hello! Please introduce yourself."
PROBE_TOKENS = 4
PROBE_TOP_N = 5
SAME_AS_BASE_TOLERANCE = 1e-3



class DeployError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message



@contextlib.contextmanager
def _redeploy_lock() -> Iterator[None]:
    # Two deploys at once would interleave their restarts; the second waits and then deploys the full list.
    lock_path = Path(settings.DATA_DIR) / "tgi-redeploy.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)



# -- talking to the server -------------------------------------------------------------------------------------

def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth_headers()), timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def _post_json(url: str, body: dict, timeout: float = 60.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **auth_headers()})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


_GAUGE = re.compile(r"^(tgi_queue_size|tgi_batch_current_size)(?:\{[^}]*\})?\s+(\S+)", re.MULTILINE)


def in_flight(metrics_text: str) -> float:
    """Requests queued or in the running batch, from TGI's /metrics (absent gauges count as 0)."""
    return sum(float(value) for _, value in _GAUGE.findall(metrics_text))


def wait_for_drain(url: str, timeout: float, interval: float = 0.5) -> bool:
    """Wait until the server has no request queued or running; False if some still are after ``timeout``.

    The caller has already stopped routing to the adapters being redeployed. A server that does not
    answer has nothing in flight."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, text = _get(url.rstrip("/") + "/metrics")
        except (OSError, http.client.HTTPException):
            return True
        if status != 200 or in_flight(text) == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def restart(command: str | None = None, timeout: float | None = None) -> None:
    command = command or settings.TGI_RESTART_COMMAND
    timeout = timeout if timeout is not None else settings.TGI_HEALTH_TIMEOUT
    try:
        proc = subprocess.run(shlex.split(command), cwd=settings.BASE_DIR, capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise DeployError(f"TGI was not restarted: the restart command `{command}` cannot run ({exc.strerror}: "
                          f"{exc.filename}). Set STUDIO_TGI_RESTART_COMMAND.") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"TGI was not restarted: the restart command `{command}` did not finish within "
                          f"{timeout:g} s.") from None
    if proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-500:]
        raise DeployError(f"TGI was not restarted: the restart command `{command}` exited with status "
                          f"{proc.returncode}{': ' + output if output else ''}")


def wait_healthy(url: str, timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            status, _ = _get(url.rstrip("/") + "/health", timeout=5)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = str(getattr(exc, "reason", exc)) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise DeployError(f"TGI at {url} did not answer /health with 200 within {timeout:g} s of its restart "
                              f"(last: {last}). An adapter it cannot load stops the whole server: see its log "
                              f"(docker compose -f docker/compose.yaml logs tgi).")
        time.sleep(interval)


def _probe(url: str, tgi_adapter_id: str | None) -> tuple[int, Any]:
    parameters: dict[str, Any] = {"max_new_tokens": PROBE_TOKENS, "do_sample": False, "details": True,
                                  "top_n_tokens": PROBE_TOP_N}
    if tgi_adapter_id is not None:
        parameters["adapter_id"] = tgi_adapter_id
    return _post_json(url.rstrip("/") + "/generate", {"inputs": PROBE_INPUTS, "parameters": parameters})


def _fingerprint(answer: Any) -> list[tuple[int, float]]:
    """Token ids with log-probabilities, of the generated tokens and of their top alternatives."""
    details = (answer.get("details") or {}) if isinstance(answer, dict) else {}
    out = [(t["id"], t["logprob"]) for t in details.get("tokens") or []]
    for tops in details.get("top_tokens") or []:
        out += [(t["id"], t["logprob"]) for t in tops]
    return out


def _same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(i == j and abs(x - y) <= SAME_AS_BASE_TOLERANCE for (i, x), (j, y) in zip(a, b))


def _error_text(answer: Any) -> str:
    if isinstance(answer, dict) and answer.get("error"):
        return str(answer["error"])
    return str(answer)[:300]


def confirm_adapters(url: str, adapter_ids: Iterable[str]) -> dict[str, str | None]:
    """For each TGI adapter id, None if the server answers with it, else why not."""
    adapter_ids = list(adapter_ids)
    if not adapter_ids:
        return {}
    status, base_answer = _probe(url, None)
    if status != 200:
        raise DeployError(f"TGI at {url} is up but /generate failed on the base model (HTTP {status}: "
                          f"{_error_text(base_answer)}).")
    base = _fingerprint(base_answer)
    if not base:
        raise DeployError(f"TGI at {url} answered /generate without token details; cannot confirm adapters.")
    results: dict[str, str | None] = {}
    for tgi_id in adapter_ids:
        status, answer = _probe(url, tgi_id)
        if status != 200:
            results[tgi_id] = (f"TGI at {url} does not serve adapter '{tgi_id}' after the restart (HTTP {status}: "
                               f"{_error_text(answer)}).")
        elif _same(_fingerprint(answer), base):
            results[tgi_id] = (f"TGI at {url} answers adapter '{tgi_id}' exactly like the base model, so it has not "
                               f"loaded it (TGI routes an adapter id it does not know to the base model). Check that "
                               f"the restart command starts TGI with the new LORA_ADAPTERS; an adapter that changes "
                               f"nothing (untrained) cannot be confirmed either.")
        else:
            results[tgi_id] = None
    return results


def restart_container(name: str, socket_path: str = "/var/run/docker.sock", stop_timeout: int = 90) -> int:
    """Restart a container through the Docker Engine API (no docker CLI needed): what the web and worker
    containers of docker/compose.yaml run as their restart command. The tgi service re-reads the env file
    at every start, so a plain restart picks up the new list. Returns a process exit status."""

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(socket_path)

    conn = UnixHTTPConnection("localhost", timeout=stop_timeout + 60)
    try:
        conn.request("POST", f"/containers/{urllib.parse.quote(name, safe='')}/restart?t={stop_timeout}")
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
    except OSError as exc:
        print(f"cannot reach the Docker Engine at {socket_path}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if response.status != 204:
        print(f"Docker Engine refused to restart {name}: HTTP {response.status} {body.strip()}", file=sys.stderr)
        return 1
    return 0



# -- redeploy --------------------------------------------------------------------------------------------------

def _check_model(model: FineTunedModel, server: InferenceServer) -> str:
    if model.base_model != server.base_model:
        raise NotServable(f"Model {model.qualified_name} is a fine-tune of '{model.base_model}', but TGI server "
                          f"{server.name} runs '{server.base_model}'. Deploy it to a server for "
                          f"'{model.base_model}'.")
    check_servable(model.adapter_path, name=model.qualified_name, server_base_model=server.base_model)
    return _entry(model)


def redeploy(server: InferenceServer, models: Iterable[FineTunedModel]) -> dict[str, str | None]:
    """Make TGI serve exactly ``models`` (every adapter the server should serve after this call).

    Returns qualified name -> None when the server confirmed the adapter, else the reason it is not
    deployed. Refused adapters are left out of LORA_ADAPTERS and the others still deploy. The restart
    interrupts every adapter on the server, so the caller stops routing to all of them (deployments
    pending/loading) before calling. The restart command must return once the old server has stopped,
    or /health could be answered by it. Never raises."""
    models = list(models)
    results: dict[str, str | None] = {}
    entries: dict[str, FineTunedModel] = {}
    for model in models:
        try:
            entries[_check_model(model, server)] = model
        except NotServable as exc:
            results[model.qualified_name] = exc.message
        except Exception as exc:  # noqa: BLE001 - one unreadable adapter must not stop the others
            log.exception("checking %s for TGI", model.qualified_name)
            results[model.qualified_name] = f"Could not check adapter {model.qualified_name}: {exc}"
    setting = ",".join(sorted(entries))
    url = server.url
    try:
        with _redeploy_lock():
            write_env_file(setting)
            if not wait_for_drain(url, settings.TGI_DRAIN_TIMEOUT):
                log.warning("TGI at %s still had requests in flight after %s s; restarting anyway (TGI finishes "
                            "them within its graceful termination timeout)", url, settings.TGI_DRAIN_TIMEOUT)
            restart()
            wait_healthy(url, settings.TGI_HEALTH_TIMEOUT)
            by_id = {entry.partition("=")[0]: model for entry, model in entries.items()}
            for tgi_id, reason in confirm_adapters(url, by_id).items():
                results[by_id[tgi_id].qualified_name] = reason
    except DeployError as exc:
        for model in entries.values():
            results[model.qualified_name] = exc.message
    except Exception as exc:  # noqa: BLE001 - the caller records reasons; an exception would leave rows loading
        log.exception("redeploying TGI at %s", url)
        for model in entries.values():
            results[model.qualified_name] = f"Deploying to TGI at {url} failed: {type(exc).__name__}: {exc}"
    return results
