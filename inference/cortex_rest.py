"""Snowflake's Cortex REST API for COMPLETE: POST /api/v2/cortex/inference:complete.

Body {"model", "messages": [{"role", "content"}], "temperature", "top_p", "max_tokens" (or
"max_output_tokens"), "stream"}. As Snowflake's, it streams server-sent events unless "stream" is
false: each event `data: {"id", "created", "model", "choices": [{"delta": {"content"}}], "usage"}`, the
usage empty until the last event, which carries the finish reason and the token counts. With "stream":
false it answers one object with choices[0].message.content and the usage. Errors are Snowflake's REST
error bodies: {"code", "message", "request_id"}. Same token, rules and usage records as the SQL API and
the OpenAI-compatible API: COMPLETE's service layer answers.

Two ways to sign a request: an API token (`Authorization: Bearer <token>`, the user's default role and
warehouse), or the session token of Snowflake's client protocol (`Authorization: Snowflake
Token="<token>"`), which snowflake.cortex.complete() sends for a string prompt: that session's current
role and warehouse then.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from access.session import Session
from access.tokens import user_from_request
from client_protocol import sessions
from errors import UserError
from inference import api, complete, forms, limits
from inference.models import CompletionUsage
from web.streaming import streaming_response

API_TOKEN_INVALID = 390303


def error(status: int, code: str, message: str, request_id: str, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "request_id": request_id, **extra}, status=status)


def _service_error(exc: UserError, request_id: str, body: forms.ChatRequest | None = None) -> JsonResponse:
    extra = {"field": body.max_tokens_field} if isinstance(exc, limits.MaxTokensTooLarge) and body else {}
    response = error(api.status_for(exc), f"{exc.code:06d}", api.model_message(exc, body.model if body else None),
                     request_id, **extra)
    if isinstance(exc, limits.LimitExceeded):
        response["Retry-After"] = str(exc.retry_after)
    return response


def _caller(request) -> tuple[Any, Session | None]:
    """The user who signed the request, and for a client session token that session as it stands (None for
    an API token: its session is opened as the SQL API opens one). Raises UserError, a 401.

    The client protocol's codes are kept: on 390112 (expired) Snowflake's clients renew the token, on
    390111 (closed or unknown) they sign in again."""
    header = request.headers.get("Authorization", "")
    if header.partition(" ")[0].lower() == "snowflake":
        record, session = sessions.session_for(sessions.token_from_header(header))
        return record.user, session
    user = user_from_request(request)
    if user is None:
        raise UserError(api.UNAUTHORIZED, code=API_TOKEN_INVALID)
    return user, None


@csrf_exempt  # token-authenticated: no cookies, so no cross-site request forgery
@require_POST
def complete_view(request):
    request_id = str(uuid.uuid4())
    try:
        user, client_session = _caller(request)
    except UserError as exc:
        response = error(401, f"{exc.code:06d}", exc.message, request_id)
        if exc.code == API_TOKEN_INVALID:
            response["WWW-Authenticate"] = 'Bearer realm="cortex"'
        return response
    body = None
    try:
        body = forms.cortex_complete(api.read_json(request))
        limits.check_rate(user)
        session = client_session or api.token_session(user)
        call = complete.stream_completion if body.stream else complete.chat_completion
        result = call(session, body.model, body.messages, body.options,
                      entry_point=CompletionUsage.EntryPoint.CORTEX_REST, request_id=request_id)
    except api.BadRequest as exc:
        return error(400, "390142", exc.message, request_id, field=exc.field)
    except UserError as exc:
        return _service_error(exc, request_id, body)
    created = int(time.time())
    if body.stream:
        return streaming_response(request, _events(result, request_id, created), "text/event-stream")
    return JsonResponse({
        "id": request_id,
        "created": created,
        "model": result.target.display_name,
        "choices": [{"message": {"content": result.text}, "finish_reason": result.finish_reason}],
        "usage": complete.usage_object(result.prompt_tokens, result.completion_tokens),
    })



def _events(stream: complete.CompletionStream, request_id: str, created: int) -> Iterator[str]:
    head = {"id": request_id, "created": created, "model": stream.target.display_name}
    try:
        try:
            for text in stream.pieces:
                yield "data: " + json.dumps({**head, "choices": [{"delta": {"content": text}}], "usage": {}}) + "\n\n"
        except UserError as exc:
            failure = {"code": f"{exc.code:06d}", "message": exc.message, "request_id": request_id}
            yield "data: " + json.dumps(failure) + "\n\n"
            return
        last = {**head, "choices": [{"delta": {"content": ""}, "finish_reason": stream.finish_reason}],
                "usage": complete.usage_object(stream.prompt_tokens, stream.completion_tokens)}
        yield "data: " + json.dumps(last) + "\n\n"
    finally:
        stream.close()
