"""What the two HTTP APIs over COMPLETE share: the token's user and session, the request body within
its size limit, and the HTTP status of a service error."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from access.privileges import INSUFFICIENT_PRIVILEGES
from access.session import Session
from errors import UserError
from inference import limits
from inference.errors import InferenceError
from sqlapi.sessions import open_session
from web import request_body

UNAUTHORIZED = ("Invalid or missing API token. Send 'Authorization: Bearer <token>' with a token created on "
                "the API tokens page (/account/tokens/) or with 'manage.py apitoken create'.")


@dataclass
class BadRequest(Exception):
    message: str
    field: str | None = None


def token_session(user) -> Session:
    """The session a token's user works in on the HTTP APIs (entry point "api"): their default role and
    warehouse, as the SQL API opens one without a role named. A browser's session is access.web's
    session_for."""
    return open_session(user)


def read_json(request) -> dict[str, Any]:
    """The request's JSON object, refusing a body over STUDIO_GATEWAY_MAX_REQUEST_BYTES before reading
    more of it than the limit."""
    try:
        return request_body.read_object(request, limit=settings.GATEWAY_MAX_REQUEST_BYTES,
                                        setting="STUDIO_GATEWAY_MAX_REQUEST_BYTES")
    except request_body.TooLarge as exc:
        raise limits.RequestTooLarge(exc.message) from None
    except request_body.BadBody as exc:
        raise BadRequest(exc.message, None if exc.field == "body" else exc.field) from None


def status_for(error: UserError) -> int:
    if isinstance(error, limits.LimitExceeded):
        return 429
    if isinstance(error, limits.RequestTooLarge):
        return 413
    if isinstance(error, InferenceError):
        if error.invalid_request:
            return 400
        return 502 if error.permanent else 503  # refused by the inference server / not reachable
    if error.code == INSUFFICIENT_PRIVILEGES:
        return 403
    if getattr(error, "field", None) == "model":
        return 404  # unknown, not installed or disabled: no model of that name answers
    return 400


def model_message(error: UserError, model: str | None) -> str:
    """The error's message, except for a model name that cannot name anything here (not a base model,
    and no database.schema.model): a gateway session has no current database for SQL's hints to apply."""
    unresolvable = error.code == 90105 or (error.code == 2003 and error.sqlstate == "42601")
    if model and getattr(error, "field", None) == "model" and unresolvable:
        return (f"Model '{model}' does not exist: name a base model or a fine-tuned model by its qualified name "
                "database.schema.model.")
    return error.message
