"""The OpenAI-compatible API: POST /v1/chat/completions and GET /v1/models, authenticated by the user's
API token, answered by COMPLETE through the service layer (inference/complete.py), so the access rules,
the answers and the usage records are COMPLETE's own. Errors come in OpenAI's shape,
{"error": {"message", "type", "param", "code"}}, which the openai SDK raises as its typed errors."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from access.tokens import user_from_request
from errors import UserError
from inference import api, complete, forms, limits
from inference.models import CompletionUsage
from web.streaming import streaming_response

# OpenAI's error type and code for each status the gateway answers with.
ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "insufficient_privileges"),
    404: ("not_found_error", "model_not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    502: ("server_error", "inference_server_error"),
    503: ("server_error", "inference_server_unavailable"),
}


def error(status: int, message: str, *, param: str | None = None, request_id: str | None = None) -> JsonResponse:
    kind, code = ERROR_KINDS[status]
    response = JsonResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)
    if request_id:
        response["x-request-id"] = request_id
    return response


def _service_error(exc: UserError, request_id: str, chat: forms.ChatRequest | None = None) -> JsonResponse:
    status = api.status_for(exc)
    field = getattr(exc, "field", None)
    param = field if field in ("model", "messages") else None
    if isinstance(exc, limits.MaxTokensTooLarge) and chat is not None:
        param = chat.max_tokens_field  # the request's own name for it: max_tokens or max_completion_tokens
    response = error(status, api.model_message(exc, chat.model if chat else None), request_id=request_id,
                     param=param)
    if isinstance(exc, limits.LimitExceeded):
        response["Retry-After"] = str(exc.retry_after)
    return response


def _unauthorized() -> JsonResponse:
    response = error(401, api.UNAUTHORIZED)
    response["WWW-Authenticate"] = 'Bearer realm="v1"'
    return response


@csrf_exempt  # token-authenticated: no cookies, so no cross-site request forgery
@require_POST
def chat_completions(request):
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    user = user_from_request(request)
    if user is None:
        return _unauthorized()
    chat = None
    try:
        chat = forms.openai_chat(api.read_json(request))
        limits.check_rate(user)
        session = api.token_session(user)
        call = complete.stream_completion if chat.stream else complete.chat_completion
        result = call(session, chat.model, chat.messages, chat.options, entry_point=CompletionUsage.EntryPoint.OPENAI,
                      request_id=request_id)
    except api.BadRequest as exc:
        return error(400, exc.message, param=exc.field, request_id=request_id)
    except UserError as exc:
        return _service_error(exc, request_id, chat)
    created = int(time.time())
    if chat.stream:
        response = streaming_response(request, _chunks(result, request_id, created, chat.include_usage),
                                      "text/event-stream")
    else:
        response = JsonResponse({
            "id": request_id,
            "object": "chat.completion",
            "created": created,
            "model": result.target.display_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": result.finish_reason, "logprobs": None}],
            "usage": complete.usage_object(result.prompt_tokens, result.completion_tokens),
        })
    response["x-request-id"] = request_id
    return response



def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _chunks(stream: complete.CompletionStream, request_id: str, created: int, include_usage: bool) -> Iterator[str]:
    """OpenAI's chunk stream: the role, the text pieces, the finish reason, the usage when asked for,
    then [DONE]. An inference error mid-stream is sent as an error event before [DONE]."""
    head = {"id": request_id, "object": "chat.completion.chunk", "created": created,
            "model": stream.target.display_name}
    if include_usage:
        head["usage"] = None  # as OpenAI: null on every chunk but the last

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        return _event({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                                            "logprobs": None}]})

    try:
        yield chunk({"role": "assistant", "content": ""})
        try:
            for text in stream.pieces:
                yield chunk({"content": text})
        except UserError as exc:
            kind, code = ERROR_KINDS[api.status_for(exc)]
            yield _event({"error": {"message": exc.message, "type": kind, "param": None, "code": code}})
            yield "data: [DONE]\n\n"
            return
        yield chunk({}, stream.finish_reason)
        if include_usage:
            usage = complete.usage_object(stream.prompt_tokens, stream.completion_tokens)
            yield _event({**head, "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"
    finally:
        stream.close()  # a client that went away: the usage row says CANCELLED, with the tokens so far


@require_GET
def models(request):
    """The models the token's user may call: installed base models and fine-tuned models with USAGE."""
    user = user_from_request(request)
    if user is None:
        return _unauthorized()
    try:
        session = api.token_session(user)
    except UserError as exc:
        return error(400, exc.message)
    data = [{"id": target.display_name, "object": "model", "created": 0,
             "owned_by": "fine-tuned" if target.adapter_id else "base"}
            for target in complete.usable_models(session)]
    return JsonResponse({"object": "list", "data": data})
