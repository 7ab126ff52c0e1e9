"""COMPLETE(model, prompt) and COMPLETE(model, messages, options)."""
from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from access import history, privileges
from access.models import AccessEvent
from access.session import Session
from catalog import base_models
from catalog.models import BaseModel
from errors import UserError, invalid_argument
from inference import limits, metering
from inference.client import ChatDelta, ServedModel, chat, chat_stream
from inference.models import CompletionUsage
from models_registry import registry
from models_registry.models import FineTunedModel
from sharing import imports

DEFAULT_MAX_TOKENS = 256
OPTION_NAMES = ("temperature", "top_p", "max_tokens", "guardrails")


def resolve_target(session: Session, model: str) -> ServedModel:
    if not isinstance(model, str) or not model.strip():
        raise invalid_argument("COMPLETE needs a model name as its first argument.")
    # No base model's name holds a NUL, and PostgreSQL refuses one even in a lookup: the registry's name
    # resolver answers such a name instead.
    base = None if "\x00" in model else BaseModel.objects.filter(name=model.strip().lower()).first()
    if base is not None:
        base_models.get_installed(base.name)
        return ServedModel(base_model=base.name, adapter_id=None, display_name=base.name)
    tuned = registry.resolve(model.strip(), session.database, session.schema)
    return ServedModel(base_model=tuned.base_model, adapter_id=tuned.qualified_name,
                       display_name=tuned.qualified_name, model_id=tuned.pk)


def authorize(session: Session, model: str) -> ServedModel:
    """The model COMPLETE would call, once the session may call it: SNOWFLAKE.CORTEX_USER always, and
    for a fine-tuned model USAGE on its database and schema and USAGE (or OWNERSHIP) on the model; and an
    enabled base model. Recorded in the access history, refusals included."""
    label = model.strip() if isinstance(model, str) else str(model)
    with history.recorded(session, "COMPLETE", "MODEL", label[:767]):
        return _authorized_target(session, model)


def _authorized_target(session: Session, model: str) -> ServedModel:
    privileges.require_cortex_user(session, "COMPLETE")
    target = resolve_target(session, model)
    if target.adapter_id is not None:
        tuned = registry.resolve(model.strip(), session.database, session.schema)
        database, schema = tuned.schema.database.name, tuned.schema.name
        roles = privileges.session_roles(session)
        privileges.require_schema_usage(session, database, schema, roles=roles)
        privileges.require(session, "USAGE", "MODEL", privileges.key(database, schema, tuned.name), roles=roles)
        # A model from another account's share: still shared, its adapter fetched and verified.
        _require_base_here(imports.refresh_model(tuned))
    _require_enabled_base(target)
    return target


def _require_base_here(tuned: FineTunedModel) -> None:
    """A model that came from another account (a share, a replica) runs on this account's inference
    server, so this account needs its base model: say which, and how to get it, before asking a server."""
    origin = tuned.metrics.get("shared_from") or tuned.metrics.get("replicated_from")
    if not origin:
        return
    base = BaseModel.objects.filter(name=tuned.base_model).first()
    if base is not None and base.is_installed:
        return
    how = (f"an administrator installs it with: {base_models.install_command(base.name)}" if base is not None else
           f"an administrator adds it with: python manage.py basemodels import {tuned.base_model} --from "
           "<its Hugging Face checkpoint directory>")
    raise UserError(f"Model '{tuned.qualified_name}' (from {origin}) is fine-tuned from base model "
                    f"'{tuned.base_model}', which this account does not have{' installed' if base else ''}. To use the "
                    f"model here, {how}", code=100357, sqlstate="22023")


def _require_enabled_base(target: ServedModel) -> None:
    """A disabled base model answers no COMPLETE, nor does any model fine-tuned from it (Cortex: "If a
    base model is removed from the Cortex LLM Functions, your fine-tuned model will no longer work")."""
    fine_tuned = target.display_name if target.adapter_id is not None else None
    base = BaseModel.objects.filter(name=target.base_model).first()
    if base is None:
        raise UserError(f"Base model '{target.base_model}' is no longer in this studio's catalog, so fine-tuned "
                          f"model '{fine_tuned}' no longer works.", code=100357, sqlstate="22023")
    base.require_enabled(fine_tuned=fine_tuned)


def authorize_statement(session: Session, models: list[str]) -> dict[str, ServedModel]:
    """Authorize (and record) each model a statement names once, before its rows call COMPLETE; the
    per-row calls then reuse the answer (see complete(), AUTHORIZED_ATTRIBUTE)."""
    authorized = {}
    for model in dict.fromkeys(models):
        if privileges.holds_cortex_user(session):
            try:
                resolve_target(session, model)
            except UserError:
                continue  # a missing model is the rows' error to raise, and only if a row asks for it
        authorized[model] = authorize(session, model)
    return authorized


# Set on a Session by the SELECT handler for the length of one statement: model name -> ServedModel.
AUTHORIZED_ATTRIBUTE = "cortex_authorized_models"
# Checks made while a statement runs (a model named by a column, or one that did not resolve ahead):
# model -> the error or None. Rows may be answered on other threads, where writing the metadata
# database is unsafe, so the SELECT handler records these once the statement ends (record_checked).
CHECKED_ATTRIBUTE = "cortex_checked_models"


def record_checked(session: Session) -> None:
    for model, error in (getattr(session, CHECKED_ATTRIBUTE, None) or {}).items():
        outcome = AccessEvent.Outcome.SUCCESS
        if error is not None:
            outcome = AccessEvent.Outcome.REFUSED if error.refused else AccessEvent.Outcome.FAILED
        history.record(session, "COMPLETE", "MODEL", model[:767], outcome=outcome,
                       message=error.message if error is not None else "")
    setattr(session, CHECKED_ATTRIBUTE, {})
    metering.save_deferred(session)


def _messages(prompt_or_messages: Any) -> list[dict[str, str]]:
    if isinstance(prompt_or_messages, str):
        return [{"role": "user", "content": prompt_or_messages}]
    if not isinstance(prompt_or_messages, list) or not prompt_or_messages:
        raise invalid_argument("COMPLETE expects a prompt string or a non-empty array of messages.")
    messages = []
    for i, message in enumerate(prompt_or_messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant") \
                or not isinstance(message.get("content"), str):
            raise invalid_argument(f"COMPLETE message {i} must be an object with a role of system, user or "
                                   "assistant and a string content.")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _options(options: dict[str, Any]) -> tuple[int, float, float | None]:
    unknown = [k for k in options if k not in OPTION_NAMES]
    if unknown:
        raise invalid_argument(f"COMPLETE option '{unknown[0]}' is not supported; use {', '.join(OPTION_NAMES)}.")
    max_tokens = options.get("max_tokens", DEFAULT_MAX_TOKENS)
    temperature = options.get("temperature", 0)
    top_p = options.get("top_p")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid_argument("COMPLETE option max_tokens must be a positive integer.")
    limits.check_max_tokens(max_tokens)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise invalid_argument("COMPLETE option temperature must be a number from 0 to 2.")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise invalid_argument("COMPLETE option top_p must be a number greater than 0 and at most 1.")
    return max_tokens, float(temperature), top_p


def complete(session: Session, model: str, prompt_or_messages: Any, options: dict[str, Any] | None = None) -> Any:
    """A string for COMPLETE(model, prompt); Snowflake's response OBJECT when options are given."""
    authorized = getattr(session, AUTHORIZED_ATTRIBUTE, None)
    if authorized is not None:  # inside a SELECT
        if isinstance(model, str) and model in authorized:
            return _complete(session, authorized[model], prompt_or_messages, options, deferred=True)
        checked = getattr(session, CHECKED_ATTRIBUTE, None)
        if checked is None:
            checked = {}
            setattr(session, CHECKED_ATTRIBUTE, checked)
        try:
            target = _authorized_target(session, model)
        except UserError as exc:
            checked.setdefault(str(model), exc)
            raise
        checked.setdefault(str(model), None)
        return _complete(session, target, prompt_or_messages, options, deferred=True)
    label = model.strip() if isinstance(model, str) else str(model)
    with history.recorded(session, "COMPLETE", "MODEL", label[:767]):
        return _complete(session, _authorized_target(session, model), prompt_or_messages, options)


def _complete(session: Session, target: ServedModel, prompt_or_messages: Any, options: dict[str, Any] | None, *,
              deferred: bool = False) -> Any:
    messages = _messages(prompt_or_messages)
    max_tokens, temperature, top_p = _options(options or {})
    with metering.measured(session, target, CompletionUsage.EntryPoint.SQL, defer=deferred) as call:
        text, prompt_tokens, completion_tokens = chat(target, messages, max_tokens=max_tokens,
                                                      temperature=temperature, top_p=top_p)
        call.tokens(prompt_tokens, completion_tokens)
    if options is None:
        return text
    return {
        "choices": [{"messages": text}],
        "created": int(time.time()),
        "model": target.display_name,
        "usage": usage_object(prompt_tokens, completion_tokens),
    }


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The `usage` of COMPLETE's response object, and of the HTTP APIs' answers."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


# The HTTP APIs (inference/openai_api.py, inference/cortex_rest.py) ---------------------------------

@dataclass
class Completion:
    target: ServedModel
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", or "length" when max_tokens ran out


@dataclass
class CompletionStream:
    """A completion as it is generated: iterate `pieces` for text; once they are exhausted, the token
    counts and finish_reason are set. Closing it early (a client that went away) records CANCELLED."""

    target: ServedModel
    pieces: Generator[str, None, None] = field(repr=False)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    call: metering.Call | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop generating. Closing a generator that never started runs none of its code, so a stream
        closed before its first piece is recorded CANCELLED here."""
        self.pieces.close()
        if self.call is not None and self.call.row.status == CompletionUsage.Status.RUNNING:
            self.call.finish(CompletionUsage.Status.CANCELLED, "the client closed the stream before it began")


def _prepare(session: Session, model: str, messages: Any, options: dict[str, Any]) -> tuple[ServedModel, list, tuple]:
    """The authorized target, the messages and the options, or an error whose `field` names the part of
    the request it is about: "model" (unknown, unusable or refused), "messages" or "options"."""
    try:
        target = authorize(session, model)
    except UserError as exc:
        exc.field = "model"
        raise
    try:
        messages = _messages(messages)
    except UserError as exc:
        exc.field = "messages"
        raise
    try:
        return target, messages, _options(options)
    except UserError as exc:
        exc.field = getattr(exc, "field", None) or "options"
        raise


def chat_completion(session: Session, model: str, messages: Any, options: dict[str, Any], *, entry_point: str,
                    request_id: str) -> Completion:
    """COMPLETE(model, messages, options) for an HTTP request: the same rules and the same answer."""
    target, messages, (max_tokens, temperature, top_p) = _prepare(session, model, messages, options)
    with metering.measured(session, target, entry_point, request_id=request_id, start=True) as call:
        text, prompt_tokens, completion_tokens = chat(target, messages, max_tokens=max_tokens,
                                                      temperature=temperature, top_p=top_p)
        call.tokens(prompt_tokens, completion_tokens)
    return Completion(target, text, prompt_tokens, completion_tokens,
                      "length" if completion_tokens >= max_tokens else "stop")


def stream_completion(session: Session, model: str, messages: Any, options: dict[str, Any], *, entry_point: str,
                      request_id: str) -> CompletionStream:
    """chat_completion, streamed. Refusals, bad input and an unreachable server raise here, before
    anything is streamed, so the caller can still answer with an error status."""
    target, messages, (max_tokens, temperature, top_p) = _prepare(session, model, messages, options)
    call = metering.Call(session, target, entry_point, request_id).start()
    try:
        deltas = chat_stream(target, messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p)
    except BaseException as exc:
        call.finish(CompletionUsage.Status.FAILED, getattr(exc, "message", str(exc)))
        raise
    stream = CompletionStream(target, (piece for piece in ()), call=call)
    stream.pieces = _metered(stream, call, deltas)
    return stream


def _metered(stream: CompletionStream, call: metering.Call, deltas: Iterator[ChatDelta]) -> Iterator[str]:
    status, message = CompletionUsage.Status.CANCELLED, "the client closed the stream"
    try:
        for delta in deltas:
            if delta.finish_reason:
                stream.finish_reason = delta.finish_reason
            if delta.usage is not None:
                stream.prompt_tokens, stream.completion_tokens = delta.usage
            elif delta.text:
                stream.completion_tokens += 1
                yield delta.text
        status, message = CompletionUsage.Status.SUCCESS, ""
    except UserError as exc:
        status, message = CompletionUsage.Status.FAILED, exc.message
        raise
    finally:
        deltas.close()  # stops the inference server's stream too when the client went away
        stream.finish_reason = stream.finish_reason or "stop"
        call.tokens(stream.prompt_tokens, stream.completion_tokens)
        call.finish(status, message)


def usable_models(session: Session) -> list[ServedModel]:
    """The models COMPLETE would answer for this session: installed, enabled base models, and the fine-tuned
    models it holds USAGE on (with USAGE on their database and schema) whose base model is enabled.
    `_authorized_target`'s rule, evaluated for every model from a handful of queries (privileges.Held), so a
    picker over 1,000 models stays fast; nothing is recorded in the access history."""
    roles = privileges.session_roles(session)
    if not privileges.holds_cortex_user(session, roles=roles):
        return []
    bases = {b.name: b for b in BaseModel.objects.order_by("name")}
    usable = [ServedModel(base_model=b.name, adapter_id=None, display_name=b.name)
              for b in bases.values() if b.is_installed and b.enabled]
    held = privileges.Held(session, roles)
    for model in FineTunedModel.objects.select_related("schema__database"):
        schema, database = model.schema, model.schema.database
        base = bases.get(model.base_model)
        if base is None or not base.enabled:
            continue
        if (held.has("USAGE", "DATABASE", privileges.key(database.name), database.owner_role)
                and held.has("USAGE", "SCHEMA", privileges.key(database.name, schema.name), schema.owner_role)
                and held.has("USAGE", "MODEL", privileges.key(database.name, schema.name, model.name),
                             model.owner_role)):
            usable.append(ServedModel(base_model=model.base_model, adapter_id=model.qualified_name,
                                      display_name=model.qualified_name, model_id=model.pk))
    return usable
