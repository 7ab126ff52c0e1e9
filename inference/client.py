"""Which inference server answers for a model, and the TGI-protocol client that talks to it."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx2
from django.conf import settings
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, TextGenerationError

from inference import addresses, deployment, tgi, vllm
from inference.errors import InferenceError
from inference.models import InferenceServer
from models_registry.models import FineTunedModel

log = logging.getLogger(__name__)


# huggingface_hub talks httpx2, whose connection errors and timeouts are not OSErrors.
UNREACHABLE = (OSError, httpx2.TransportError)


@dataclass(frozen=True)
class ServedModel:
    """A model as the inference servers serve it: its base model, and the adapter id (the model's qualified
    name) if fine-tuned; display_name is the name answers and usage rows give it."""

    base_model: str
    adapter_id: str | None
    display_name: str
    model_id: int | None = None  # the FineTunedModel's pk when fine-tuned: its deployments decide the server


def server_for(base_model: str, model_id: int | None = None) -> InferenceServer:
    """The newest server for the base model; for a fine-tuned model (model_id), one where its deployment
    is ready, deploying it or waiting for it first (inference/deployment.py)."""
    servers = list(InferenceServer.objects.filter(base_model=base_model).order_by("-registered_on", "pk"))
    if not servers:
        raise InferenceError(
            f"No inference server serves base model '{base_model}'. Start one with: "
            f"python manage.py serve --base-model {base_model}"
        )
    if model_id is None:
        return servers[0]
    model = FineTunedModel.objects.select_related("schema__database").filter(pk=model_id).first()
    if model is None:
        raise InferenceError("The fine-tuned model was dropped while this request was on its way.")
    return deployment.ready_server(model, servers)


def client_for(server: InferenceServer) -> InferenceClient:
    return InferenceClient(base_url=server.url, api_key=settings.INFERENCE_TOKEN, timeout=settings.INFERENCE_TIMEOUT)


def requested_model(server: InferenceServer, target: ServedModel) -> str:
    """The chat request's `model`: TGI and vLLM select a LoRA adapter by it, and the base model by its name (vLLM's
    --served-model-name). A TGI server knows an adapter by its LORA_ADAPTERS id, which escapes characters its
    launcher cannot parse; vLLM by its lora_name, the qualified name as it is."""
    if target.adapter_id is None:
        return target.base_model
    if server.backend == InferenceServer.Backend.TGI:
        return tgi.adapter_id(target.adapter_id)
    return target.adapter_id


def chat(target: ServedModel, messages: list[dict[str, str]], *, max_tokens: int, temperature: float,
         top_p: float | None) -> tuple[str, int, int]:
    """One chat completion; returns (text, prompt tokens, completion tokens)."""
    server = server_for(target.base_model, target.model_id)
    try:
        output = client_for(server).chat_completion(
            messages=messages,
            model=requested_model(server, target),
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
        )
    except HfHubHTTPError as exc:
        raise _refused(server, target, exc) from exc
    except UNREACHABLE as exc:  # connection refused, timeouts
        raise _unreachable(server, target, exc) from exc
    choice = output.choices[0]
    usage = output.usage
    return (choice.message.content or "", usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)


def _refused(server: InferenceServer, target: ServedModel, exc: HfHubHTTPError) -> InferenceError:
    status = exc.response.status_code if exc.response is not None else None
    log.warning("inference server %s at %s refused the request for %s: %s", server.name, server.url,
                target.display_name, exc)
    # str(exc) names the URL it requested: only the server's own words (or the status) reach the caller.
    words = exc.server_message
    if server.backend == InferenceServer.Backend.VLLM and exc.response is not None:
        # huggingface_hub reads only a string "error"; vLLM nests its message: {"error": {"message": ...}}.
        words = vllm.error_message(exc.response.content) or words
        if status == 404 and target.model_id is not None:
            # A vLLM that restarted has forgotten the adapters loaded at run time: load it again next time.
            deployment.forget(target.model_id, server, f"vLLM answered 404: {words}")
            words = f"{words} (the next COMPLETE loads the adapter again)"
    detail = addresses.hide(words or f"HTTP {status}", server)
    return InferenceError(f"Inference server '{server.name}' refused the request for {target.display_name}: {detail}",
                          invalid_request=status == 422)


def _unreachable(server: InferenceServer, target: ServedModel, exc: BaseException) -> InferenceError:
    log.warning("inference server %s at %s is not reachable: %r", server.name, server.url, exc)
    return InferenceError(f"Inference server '{server.name}' for base model '{target.base_model}' is not reachable: "
                          f"{addresses.hide(str(exc), server) or type(exc).__name__}", permanent=False)


@dataclass(frozen=True)
class ChatDelta:
    """A piece of a streamed chat completion. The stream's last item has no text and carries the usage."""

    text: str
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None  # (prompt tokens, completion tokens)


def chat_stream(target: ServedModel, messages: list[dict[str, str]], *, max_tokens: int, temperature: float,
                top_p: float | None) -> Iterator[ChatDelta]:
    """One chat completion as the server generates it. A server that refuses the request or cannot be
    reached fails here, before the first piece; one that fails mid-stream fails the iteration."""
    server = server_for(target.base_model, target.model_id)
    client = client_for(server)  # holds the open response until closed: keep it for the stream's length
    try:
        chunks = client.chat_completion(
            messages=messages,
            model=requested_model(server, target),
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stream=True,
            stream_options={"include_usage": True},
        )
    except HfHubHTTPError as exc:
        client.close()
        raise _refused(server, target, exc) from exc
    except UNREACHABLE as exc:
        client.close()
        raise _unreachable(server, target, exc) from exc
    return _deltas(server, target, client, chunks)


def _deltas(server: InferenceServer, target: ServedModel, client: InferenceClient,
            chunks: Iterable) -> Iterator[ChatDelta]:
    usage, pieces = None, 0
    try:
        for chunk in chunks:
            if chunk.usage:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices or []:
                text = (choice.delta.content or "") if choice.delta else ""
                pieces += bool(text)
                if text or choice.finish_reason:
                    yield ChatDelta(text, choice.finish_reason)
    except (HfHubHTTPError, TextGenerationError) as exc:
        log.warning("inference server %s at %s failed while generating for %s: %s", server.name, server.url,
                    target.display_name, exc)
        detail = addresses.hide(str(getattr(exc, "server_message", None) or exc), server)
        raise InferenceError(f"Inference server '{server.name}' failed while generating for {target.display_name}: "
                             f"{detail}") from exc
    except UNREACHABLE as exc:
        log.warning("inference server %s at %s went away while generating: %r", server.name, server.url, exc)
        raise InferenceError(f"Inference server '{server.name}' for base model '{target.base_model}' went away while "
                             f"generating: {addresses.hide(str(exc), server)}", permanent=False) from exc
    finally:
        client.close()  # also when the caller stops early: the server sees the request go away
    # TGI streams one token per chunk: the count stands in for a server that reports no usage.
    yield ChatDelta("", usage=usage or (0, pieces))
