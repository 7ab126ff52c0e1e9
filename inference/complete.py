"""COMPLETE(model, prompt) and COMPLETE(model, messages, options)."""
from __future__ import annotations

import time
from typing import Any

from access import history, privileges
from access.models import AccessEvent
from access.session import Session
from catalog import base_models
from catalog.models import BaseModel
from inference.gateway import Target, chat
from models_registry import registry
from studio.errors import StudioError, invalid_argument

DEFAULT_MAX_TOKENS = 256
OPTION_NAMES = ("temperature", "top_p", "max_tokens", "guardrails")


def resolve_target(session: Session, model: str) -> Target:
    if not isinstance(model, str) or not model.strip():
        raise invalid_argument("COMPLETE needs a model name as its first argument.")
    base = BaseModel.objects.filter(name=model.strip().lower()).first()
    if base is not None:
        base_models.get_installed(base.name)
        return Target(base_model=base.name, adapter_id=None, display_name=base.name)
    tuned = registry.resolve(model.strip(), session.database, session.schema)
    return Target(base_model=tuned.base_model, adapter_id=tuned.qualified_name, display_name=tuned.qualified_name)


def authorize(session: Session, model: str) -> Target:
    """The model COMPLETE would call, once the session may call it: SNOWFLAKE.CORTEX_USER always, and
    for a fine-tuned model USAGE on its database and schema and USAGE (or OWNERSHIP) on the model.
    Recorded in the access history, refusals included."""
    label = model.strip() if isinstance(model, str) else str(model)
    with history.recorded(session, "COMPLETE", "MODEL", label[:767]):
        return _authorized_target(session, model)


def _authorized_target(session: Session, model: str) -> Target:
    privileges.require_cortex_user(session, "COMPLETE")
    target = resolve_target(session, model)
    if target.adapter_id is not None:
        tuned = registry.resolve(model.strip(), session.database, session.schema)
        database, schema = tuned.schema.database.name, tuned.schema.name
        roles = privileges.session_roles(session)
        privileges.require_schema_usage(session, database, schema, roles=roles)
        privileges.require(session, "USAGE", "MODEL", privileges.key(database, schema, tuned.name), roles=roles)
    return target


def authorize_statement(session: Session, models: list[str]) -> dict[str, Target]:
    """Authorize (and record) each model a statement names once, before its rows call COMPLETE; the
    per-row calls then reuse the answer (see complete(), AUTHORIZED_ATTRIBUTE)."""
    authorized = {}
    for model in dict.fromkeys(models):
        if privileges.holds_cortex_user(session):
            try:
                resolve_target(session, model)
            except StudioError:
                continue  # a missing model is the rows' error to raise, and only if a row asks for it
        authorized[model] = authorize(session, model)
    return authorized


# Set on a Session by the SELECT handler for the length of one statement: model name -> Target.
AUTHORIZED_ATTRIBUTE = "cortex_authorized_models"
# Checks made while a statement runs (a model named by a column, or one that did not resolve ahead):
# model -> the error or None. Rows may be answered on other threads, where writing the metadata
# database is unsafe, so the SELECT handler records these once the statement ends (record_checked).
CHECKED_ATTRIBUTE = "cortex_checked_models"


def record_checked(session: Session) -> None:
    for model, error in (getattr(session, CHECKED_ATTRIBUTE, None) or {}).items():
        outcome = AccessEvent.Outcome.SUCCESS
        if error is not None:
            outcome = (AccessEvent.Outcome.REFUSED if error.code == history.INSUFFICIENT_PRIVILEGES_CODE
                       else AccessEvent.Outcome.FAILED)
        history.record(session, "COMPLETE", "MODEL", model[:767], outcome=outcome,
                       message=error.message if error is not None else "")
    setattr(session, CHECKED_ATTRIBUTE, {})


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
            return _complete(session, authorized[model], prompt_or_messages, options)
        checked = getattr(session, CHECKED_ATTRIBUTE, None)
        if checked is None:
            checked = {}
            setattr(session, CHECKED_ATTRIBUTE, checked)
        try:
            target = _authorized_target(session, model)
        except StudioError as exc:
            checked.setdefault(str(model), exc)
            raise
        checked.setdefault(str(model), None)
        return _complete(session, target, prompt_or_messages, options)
    label = model.strip() if isinstance(model, str) else str(model)
    with history.recorded(session, "COMPLETE", "MODEL", label[:767]):
        return _complete(session, _authorized_target(session, model), prompt_or_messages, options)


def _complete(session: Session, target: Target, prompt_or_messages: Any, options: dict[str, Any] | None) -> Any:
    messages = _messages(prompt_or_messages)
    max_tokens, temperature, top_p = _options(options or {})
    text, prompt_tokens, completion_tokens = chat(target, messages, max_tokens=max_tokens,
                                                  temperature=temperature, top_p=top_p)
    if options is None:
        return text
    return {
        "choices": [{"messages": text}],
        "created": int(time.time()),
        "model": target.display_name,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
