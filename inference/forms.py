"""Validating the bodies of POST /v1/chat/completions and POST /api/v2/cortex/inference:complete.

Only the shape is checked here, naming the field at fault; what COMPLETE itself checks (roles, the
ranges of temperature and top_p, …) is left to the service layer, so both APIs refuse what COMPLETE
refuses, with its words."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inference.api import BadRequest

ROLES = ("system", "user", "assistant")


def _max_tokens(body: dict[str, Any], *names: str) -> tuple[int | None, str]:
    """The value and the name of the field that set it. Its limit is COMPLETE's to check (every entry
    point has the same one); a refusal then names the field this request used."""
    chosen, field_name = None, names[0]
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"'{name}' must be a positive integer.", name)
        chosen, field_name = value, name
    return chosen, field_name


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise BadRequest(f"'{name}' must be a number.", name)
    return value


def _options(body: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
    """COMPLETE's options object: only what the request sets, so COMPLETE's defaults apply to the rest."""
    options = {"temperature": _number(body, "temperature"), "top_p": _number(body, "top_p"), "max_tokens": max_tokens}
    return {k: v for k, v in options.items() if v is not None}


def _refuse_unknown(body: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = [k for k in body if k not in known]
    if unknown:
        raise BadRequest(f"'{unknown[0]}' is not supported by this gateway; supported fields: {', '.join(known)}.",
                         unknown[0])


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' is required: a base model name or a fine-tuned model's qualified name "
                         "(database.schema.model).", "model")
    return model.strip()


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise BadRequest(f"'{where}.content' must be a string or a list of text parts.", f"{where}.content")


def _messages(body: dict[str, Any], *, default_role: str | None) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required: a non-empty list of {\"role\", \"content\"} objects.", "messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"'{where}' must be an object with a role and a content.", where)
        role = message.get("role", default_role)
        if role not in ROLES:
            raise BadRequest(f"'{where}.role' must be one of {', '.join(ROLES)}.", f"{where}.role")
        out.append({"role": role, "content": _text(message.get("content"), where)})
    return out


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false.", name)
    return value


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    options: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: one last chunk with the usage
    max_tokens_field: str = "max_tokens"  # max_tokens, max_completion_tokens or max_output_tokens


OPENAI_FIELDS = ("model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stream",
                 "stream_options", "n", "user")


def openai_chat(body: dict[str, Any]) -> ChatRequest:
    """An OpenAI chat completion request (`user` is accepted and ignored; `n` must be 1)."""
    _refuse_unknown(body, OPENAI_FIELDS)
    model = _model(body)
    messages = _messages(body, default_role=None)
    if body.get("n") not in (None, 1):
        raise BadRequest("'n' must be 1: one choice per request.", "n")
    max_tokens, max_tokens_field = _max_tokens(body, "max_tokens", "max_completion_tokens")
    request = ChatRequest(model, messages, _options(body, max_tokens), stream=_flag(body, "stream", False),
                          max_tokens_field=max_tokens_field)
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict) or not request.stream:
            raise BadRequest("'stream_options' must be an object, and only with \"stream\": true.", "stream_options")
        request.include_usage = _flag(stream_options, "include_usage", False)
    return request


CORTEX_FIELDS = ("model", "messages", "temperature", "top_p", "max_tokens", "max_output_tokens", "stream")


def cortex_complete(body: dict[str, Any]) -> ChatRequest:
    """A Cortex REST complete request: a message's role defaults to user, and it streams unless
    "stream": false."""
    _refuse_unknown(body, CORTEX_FIELDS)
    model = _model(body)
    messages = _messages(body, default_role="user")
    max_tokens, max_tokens_field = _max_tokens(body, "max_tokens", "max_output_tokens")
    return ChatRequest(model, messages, _options(body, max_tokens), stream=_flag(body, "stream", True),
                       max_tokens_field=max_tokens_field)
