"""Which inference server answers for a model, and the TGI-protocol client that talks to it."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from inference.models import InferenceServer
from studio.errors import StudioError


class InferenceError(StudioError):
    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message, code=100351, sqlstate="P0001")
        self.permanent = permanent


@dataclass(frozen=True)
class Target:
    """What to ask for: the base model, and the adapter id (the model's qualified name) if fine-tuned."""

    base_model: str
    adapter_id: str | None
    display_name: str


def server_for(base_model: str) -> InferenceServer:
    server = InferenceServer.objects.filter(base_model=base_model).order_by("-registered_on").first()
    if server is None:
        raise InferenceError(
            f"No inference server serves base model '{base_model}'. Start one with: "
            f"python manage.py serve --base-model {base_model}"
        )
    return server


def client_for(server: InferenceServer) -> InferenceClient:
    return InferenceClient(base_url=server.url, timeout=settings.INFERENCE_TIMEOUT)


def chat(target: Target, messages: list[dict[str, str]], *, max_tokens: int, temperature: float,
         top_p: float | None) -> tuple[str, int, int]:
    """One chat completion; returns (text, prompt tokens, completion tokens)."""
    server = server_for(target.base_model)
    try:
        output = client_for(server).chat_completion(
            messages=messages,
            # TGI selects a LoRA adapter by the chat request's `model` field; the base model by its name.
            model=target.adapter_id or target.base_model,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
        )
    except HfHubHTTPError as exc:
        detail = exc.server_message or str(exc)
        raise InferenceError(f"Inference server {server.url} refused the request for {target.display_name}: {detail}") from exc
    except OSError as exc:  # connection refused, timeouts
        raise InferenceError(f"Inference server {server.url} for base model '{target.base_model}' is not reachable: {exc}",
                             permanent=False) from exc
    choice = output.choices[0]
    usage = output.usage
    return (choice.message.content or "", usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)
