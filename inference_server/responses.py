"""Response bodies and stream events: TGI's own, OpenAI's chat and completions as TGI serves them, and TGI's
``{"error": ..., "error_type": ...}`` errors, on a stream too."""
from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse, StreamingResponse

from inference_server.errors import ServerError
from inference_server.generation import GenResult

log = logging.getLogger("inference_server")

VERSION = "0.1.0"
SYSTEM_FINGERPRINT = f"{VERSION}-native"


# -- errors and server-sent events ----------------------------------------------------------------------------

def error_response(exc: ServerError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status_code)


def unexpected_error_response(exc: Exception) -> JSONResponse:
    log.exception("request failed", exc_info=exc)
    return JSONResponse({"error": f"{type(exc).__name__}: {exc}", "error_type": "generation"}, status_code=500)


def sse(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode()) + b"\n\n"


def sse_error(exc: BaseException) -> bytes:
    if isinstance(exc, ServerError):
        return sse(exc.to_json())
    log.exception("generation failed", exc_info=exc)
    return sse({"error": f"{type(exc).__name__}: {exc}", "error_type": "generation"})


SSE_DONE = b"data: [DONE]\n\n"


class GuardedStream(StreamingResponse):
    """A streaming response that always runs ``on_close`` (stop the decoder, free the slot) when it ends."""

    def __init__(self, content, on_close, **kwargs) -> None:
        super().__init__(content, media_type="text/event-stream", **kwargs)
        self.headers["Cache-Control"] = "no-cache"
        self.headers["X-Accel-Buffering"] = "no"
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


# -- TGI's routes ---------------------------------------------------------------------------------------------

def generate_body(result: GenResult, *, text_prefix: str, details: bool, with_prefill: bool) -> dict:
    body = {"generated_text": text_prefix + result.text}
    if details:
        body["details"] = _details(result, with_prefill)
    return body


def stream_event(index: int, token: dict, tops: list[dict] | None, result: GenResult | None,
                 text_prefix: str) -> dict:
    """One /generate_stream event; the last (``result`` set) carries the whole text and the details."""
    event = {"index": index, "token": token, "generated_text": None, "details": None}
    if tops is not None:
        event["top_tokens"] = tops
    if result is not None:
        event["generated_text"] = text_prefix + result.text
        event["details"] = {"finish_reason": result.finish_reason, "generated_tokens": result.generated_tokens,
                            "seed": result.seed, "input_length": result.input_length}
    return event


def _details(result: GenResult, with_prefill: bool) -> dict:
    details = {"finish_reason": result.finish_reason, "generated_tokens": result.generated_tokens,
               "seed": result.seed, "prefill": result.prefill if with_prefill else [], "tokens": result.tokens}
    if result.top_tokens is not None:
        details["top_tokens"] = result.top_tokens
    return details


# -- the OpenAI-style routes ----------------------------------------------------------------------------------

def answer(result: GenResult) -> str:
    """The OpenAI-style answer: the generated text without the stop sequence that ended it."""
    return result.text if result.stop_index is None else result.text[:result.stop_index]


def finish_reason(result: GenResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def usage(results: list[GenResult]) -> dict:
    prompt = sum(r.input_length for r in results)
    completion = sum(r.generated_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chat_logprobs(tokens: list[dict], tops: list[list[dict]] | None) -> dict:
    content = []
    for i, token in enumerate(tokens):
        top = (tops[i] if tops is not None and i < len(tops) else None) or []
        content.append({"token": token["text"], "logprob": token["logprob"],
                        "top_logprobs": [{"token": t["text"], "logprob": t["logprob"]} for t in top]})
    return {"content": content}


class ChatShapes:
    """One chat completion's bodies: the answer, or its stream's chunks (one id and creation time for all)."""

    def __init__(self, model_name: str, *, logprobs: bool) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model_name = model_name
        self.logprobs = logprobs

    def _envelope(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model_name,
                "system_fingerprint": SYSTEM_FINGERPRINT}

    def completion(self, result: GenResult) -> dict:
        return {**self._envelope("chat.completion"),
                "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": answer(result)},
                    "logprobs": _chat_logprobs(result.tokens, result.top_tokens) if self.logprobs else None,
                    "finish_reason": finish_reason(result),
                }],
                "usage": usage([result])}

    def chunk(self, content: str, token: dict | None, tops: list[dict] | None, reason: str | None) -> dict:
        logprobs = None
        if self.logprobs and token is not None:
            logprobs = _chat_logprobs([token], [tops] if tops is not None else None)
        return {**self._envelope("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                             "logprobs": logprobs, "finish_reason": reason}],
                "usage": None}

    def usage_chunk(self, totals: dict) -> dict:
        return {**self._envelope("chat.completion.chunk"), "choices": [], "usage": totals}


class CompletionShapes:
    """One (legacy) completion's bodies: ``text_completion`` objects, streamed or not."""

    def __init__(self, model_name: str) -> None:
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model_name = model_name

    def _envelope(self, choices: list[dict], totals: dict | None) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model_name,
                "system_fingerprint": SYSTEM_FINGERPRINT, "choices": choices, "usage": totals}

    def completion(self, results: list[GenResult]) -> dict:
        """One choice per prompt, ``index`` its position; usage summed over them."""
        return self._envelope([{"index": i, "text": answer(r), "logprobs": None, "finish_reason": finish_reason(r)}
                               for i, r in enumerate(results)], usage(results))

    def chunk(self, content: str, token: dict | None, tops: list[dict] | None, reason: str | None) -> dict:
        return self._envelope([{"index": 0, "text": content, "logprobs": None, "finish_reason": reason}], None)

    def usage_chunk(self, totals: dict) -> dict:
        return self._envelope([], totals)
