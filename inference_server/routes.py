"""HTTP routes speaking Hugging Face TGI's protocol (plus its OpenAI-compatible chat and completions APIs).

Routes: ``GET /health``, ``GET /info``, ``GET /v1/models``, ``POST /generate``, ``POST /generate_stream``,
``POST /`` (TGI's compat route: ``stream`` picks one of the two), ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /tokenize``, ``GET /metrics`` (Prometheus text, see ``metrics.py``), and the
studio's own ``POST /adapters/load`` / ``POST /adapters/unload`` (``{"adapter_id": ...}``) that deployment uses.
Errors are TGI's ``{"error": ..., "error_type": ...}`` JSON. Every route but ``/health`` wants the studio's token
as ``Authorization: Bearer`` (``auth.py``); ``/info`` names no path on this machine. Which adapter a request
runs on, and what each body may hold: ``validation.py``.

``/v1/completions`` takes the prompt as is (no chat template; special tokens added as on ``/generate``) and
shares chat's sampling rules (greedy only when ``temperature`` is 0). ``prompt`` may be a list of up to
``MAX_CLIENT_BATCH_SIZE`` strings: one choice per prompt, ``index`` = its position, usage summed over them.
A streamed request (``stream: true``) takes one prompt only: a list of several is a 422 validation error.
``suffix``, ``echo``, ``best_of`` != 1 and ``logprobs`` are refused; ``logprobs`` in answers is always null.

Each handler finds the shared state as ``request.app.state.server`` (:class:`~inference_server.server.Server`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inference_server.errors import ServerError
from inference_server.responses import (SSE_DONE, VERSION, ChatShapes, CompletionShapes, GuardedStream,
                                        error_response, finish_reason, generate_body, sse, sse_error, stream_event,
                                        unexpected_error_response, usage)
from inference_server.server import Server
from inference_server.validation import MAX_CLIENT_BATCH_SIZE, GenerationRequest, json_body, tokenize_body


def _server(request: Request) -> Server:
    return request.app.state.server


# -- one slot per request -------------------------------------------------------------------------------------

@dataclass
class _EventStream:
    """A generation's server-sent events, which take over the request's slot: setting ``cancel`` stops it."""

    events: AsyncIterator[bytes]
    cancel: threading.Event


async def _in_slot(server: Server, respond: Callable[[], Awaitable[Response | _EventStream]]) -> Response:
    """``respond()`` holding one of the server's slots (a 429 ``overloaded`` when none is free). A response
    frees the slot once it is built; an event stream frees it (and stops its decoder) when it ends, however
    it ends: finished, failed or the client gone."""
    try:
        server.acquire()
    except ServerError as exc:
        return error_response(exc)
    handed_off = False
    try:
        response = await respond()
        if not isinstance(response, _EventStream):
            return response
        stream = response

        def close() -> None:
            stream.cancel.set()
            server.release()

        guarded = GuardedStream(stream.events, close)
        handed_off = True
        return guarded
    except ServerError as exc:
        return error_response(exc)
    except Exception as exc:  # noqa: BLE001 - still TGI's error shape
        return unexpected_error_response(exc)
    finally:
        if not handed_off:
            server.release()


# -- about the server -----------------------------------------------------------------------------------------

async def health(request: Request) -> Response:
    return Response(status_code=200)


async def info(request: Request) -> JSONResponse:
    server = _server(request)
    engine = server.engine
    return JSONResponse({
        "model_id": engine.base_model_name,
        "model_sha": None,
        "model_dtype": engine.model_dtype,
        "model_device_type": engine.device.type,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": server.max_concurrent_requests,
        "max_batch_size": engine.scheduler.max_batch_size,
        "max_best_of": 1,
        "max_stop_sequences": server.validator.max_stop_sequences,
        "max_input_tokens": engine.max_input_tokens,
        "max_total_tokens": engine.max_total_tokens,
        "max_new_tokens_limit": server.validator.max_new_tokens_limit,
        "validation_workers": 1,
        "max_client_batch_size": MAX_CLIENT_BATCH_SIZE,
        "router": "text-generation-router",
        "version": VERSION,
        "sha": None,
        "docker_label": None,
        "adapters": [t.adapter_id for t in engine.loaded_adapters()],
    })


async def models(request: Request) -> JSONResponse:
    server = _server(request)
    engine = server.engine
    ids = await server.run(engine.available_adapter_ids)
    loaded = {t.adapter_id for t in engine.loaded_adapters()}
    data = [{"id": engine.base_model_name, "object": "model", "created": 0, "owned_by": engine.base_model_name}]
    # status (a studio extension): "ready" once loaded, "available" in adapters-dir, loaded on first use
    data += [{"id": i, "object": "model", "created": 0, "owned_by": engine.base_model_name,
              "parent": engine.base_model_name, "status": "ready" if i in loaded else "available"} for i in ids]
    return JSONResponse({"object": "list", "data": data})


async def metrics_route(request: Request) -> Response:
    metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=metrics.content_type)


async def tokenize(request: Request) -> Response:
    server = _server(request)
    try:
        inputs, adapter_id = tokenize_body(await json_body(request))
        target = await server.run(server.validator.target_for, adapter_id)
        return JSONResponse(await server.run(server.engine.tokenize_with_offsets, target, inputs))
    except ServerError as exc:
        return error_response(exc)


# -- the studio's deployment routes (not TGI's: TGI takes its adapters at launch) ----------------------------

async def load_adapter(request: Request) -> JSONResponse:
    server = _server(request)
    try:
        adapter_id = server.validator.deployment_adapter_id(await json_body(request))
        target = await server.run(server.engine.get_adapter, adapter_id)  # AdapterNotFound 404, AdapterLoadError 500
    except ServerError as exc:
        return error_response(exc)
    return JSONResponse({"id": target.adapter_id, "status": "ready"})


async def unload_adapter(request: Request) -> JSONResponse:
    server = _server(request)
    try:
        adapter_id = server.validator.deployment_adapter_id(await json_body(request))
    except ServerError as exc:
        return error_response(exc)
    was_loaded = await server.run(server.engine.unload_adapter, adapter_id)
    return JSONResponse({"id": adapter_id, "status": "unloaded", "was_loaded": was_loaded})


# -- TGI's generation routes ----------------------------------------------------------------------------------

async def generate(request: Request) -> Response:
    return await _tgi(request, stream=False)


async def generate_stream(request: Request) -> Response:
    return await _tgi(request, stream=True)


async def compat_generate(request: Request) -> Response:
    # TGI's `/`: a list of one generation, or the stream when the body asks for one.
    return await _tgi(request, stream=None)


async def _tgi(request: Request, *, stream: bool | None) -> Response:
    """``stream`` None: as the body's ``stream`` says, a plain answer then being a list of one."""
    try:
        body = await json_body(request)
    except ServerError as exc:
        return error_response(exc)
    wrap_list = False
    if stream is None:
        stream = body.get("stream") is True
        wrap_list = not stream
    server = _server(request)
    return await _in_slot(server, lambda: _tgi_response(server, body, stream, wrap_list))


async def _tgi_response(server: Server, body: dict, stream: bool, wrap_list: bool) -> Response | _EventStream:
    work = await server.run(lambda: server.validator.generate_request(body, stream=stream))
    if not stream:
        result = await server.run(server.generate, work)
        answer = generate_body(result, text_prefix=work.text_prefix, details=work.details,
                               with_prefill=work.params.decoder_input_details)
        return JSONResponse([answer] if wrap_list else answer)
    cancel = threading.Event()
    return _EventStream(_tgi_events(server, work, cancel), cancel)


async def _tgi_events(server: Server, work: GenerationRequest, cancel: threading.Event) -> AsyncIterator[bytes]:
    index = 0
    try:
        async for token, tops, result in server.stream(work, cancel):
            index += 1
            yield sse(stream_event(index, token, tops, result, work.text_prefix))
    except Exception as exc:  # noqa: BLE001
        yield sse_error(exc)


# -- the OpenAI-style routes ----------------------------------------------------------------------------------

async def chat_completions(request: Request) -> Response:
    return await _openai(request, _chat)


async def completions(request: Request) -> Response:
    return await _openai(request, _completion)


async def _openai(request: Request, respond) -> Response:
    """Parse the body, then ``respond(server, body, stream)`` in a slot."""
    try:
        body = await json_body(request)
    except ServerError as exc:
        return error_response(exc)
    server = _server(request)
    return await _in_slot(server, lambda: respond(server, body, body.get("stream") is True))


async def _chat(server: Server, body: dict, stream: bool) -> Response | _EventStream:
    work = await server.run(server.validator.chat_request, body)
    shapes = ChatShapes(work.model_name, logprobs=work.logprobs)
    if not stream:
        return JSONResponse(shapes.completion(await server.run(server.generate, work)))
    return _openai_stream(server, work, shapes)


async def _completion(server: Server, body: dict, stream: bool) -> Response | _EventStream:
    """OpenAI's (legacy) completions, as TGI serves them: the prompt as is, no chat template."""
    work = await server.run(lambda: server.validator.completion_requests(body, stream=stream))
    shapes = CompletionShapes(work[0].model_name)
    if not stream:
        return JSONResponse(shapes.completion([await server.run(server.generate, one) for one in work]))
    return _openai_stream(server, work[0], shapes)  # completion_requests allows one prompt when streaming


def _openai_stream(server: Server, work: GenerationRequest, shapes: ChatShapes | CompletionShapes) -> _EventStream:
    cancel = threading.Event()
    return _EventStream(_openai_events(server, work, shapes, cancel), cancel)


async def _openai_events(server: Server, work: GenerationRequest, shapes: ChatShapes | CompletionShapes,
                         cancel: threading.Event) -> AsyncIterator[bytes]:
    """A chunk per piece of text, then a usage chunk when the request asked for one, then [DONE]."""
    try:
        async for content, token, tops, result in server.openai_stream(work, cancel):
            yield sse(shapes.chunk(content, token, tops, None if result is None else finish_reason(result)))
            if result is not None and work.include_usage:
                yield sse(shapes.usage_chunk(usage([result])))
    except Exception as exc:  # noqa: BLE001
        yield sse_error(exc)
    yield SSE_DONE


ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/info", info, methods=["GET"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/generate", generate, methods=["POST"]),
    Route("/generate_stream", generate_stream, methods=["POST"]),
    Route("/", compat_generate, methods=["POST"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/tokenize", tokenize, methods=["POST"]),
    Route("/metrics", metrics_route, methods=["GET"]),
    Route("/adapters/load", load_adapter, methods=["POST"]),
    Route("/adapters/unload", unload_adapter, methods=["POST"]),
]
