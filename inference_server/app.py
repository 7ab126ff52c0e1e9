"""HTTP routes speaking Hugging Face TGI's protocol (plus its OpenAI-compatible chat and completions APIs).

Routes: ``GET /health``, ``GET /info``, ``GET /v1/models``, ``POST /generate``, ``POST /generate_stream``,
``POST /`` (TGI's compat route: ``stream`` picks one of the two), ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /tokenize``, ``GET /metrics`` (Prometheus text, see ``metrics.py``), and the
studio's own ``POST /adapters/load`` / ``POST /adapters/unload`` (``{"adapter_id": ...}``) that deployment uses.
Errors are TGI's ``{"error": ..., "error_type": ...}`` JSON. Every route but ``/health`` wants the studio's token
as ``Authorization: Bearer`` (``auth.py``); ``/info`` names no path on this machine.

Adapter selection: ``parameters.adapter_id`` on the TGI routes; on chat and completions, a body ``adapter_id``
(TGI-style) or else ``model``, where the base model's name, ``"tgi"`` or no model mean the base model and any
other value is an adapter id, matched exactly. An unknown adapter id is an error naming it, never the base
model's answer: a 404 ``adapter_not_found`` on the OpenAI routes (an unknown model), a 422 ``validation`` on
TGI's own routes (an invalid parameter).

``/v1/completions`` takes the prompt as is (no chat template; special tokens added as on ``/generate``) and
shares chat's sampling rules (greedy only when ``temperature`` is 0). ``prompt`` may be a list of up to
``MAX_CLIENT_BATCH_SIZE`` strings: one choice per prompt, ``index`` = its position, usage summed over them.
A streamed request (``stream: true``) takes one prompt only: a list of several is a 422 validation error.
``suffix``, ``echo``, ``best_of`` != 1 and ``logprobs`` are refused; ``logprobs`` in answers is always null.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from inference_server.auth import BearerAuth
from inference_server.engine import Engine, GenResult, SamplingParams, Target
from inference_server.errors import (AdapterNotFound, Cancelled, Overloaded, ServerError, UnknownAdapterParameter,
                                    ValidationError)
from inference_server.metrics import Metrics, MetricsMiddleware

log = logging.getLogger("inference_server")

VERSION = "0.1.0"
SYSTEM_FINGERPRINT = f"{VERSION}-native"
MAX_TOP_N_TOKENS = 5
MAX_CLIENT_BATCH_SIZE = 4  # prompts in one /v1/completions request
# InferenceClient(base_url=...).chat_completion() without `model` sends this placeholder.
CLIENT_PLACEHOLDER_MODEL = "dummy"


# -- request parsing ----------------------------------------------------------------------------------------------

def _number(params: dict, key: str, *, integer: bool = False) -> float | int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise ValidationError(f"`{key}` must be {'an integer' if integer else 'a number'}. Given: {value!r}")
    return int(value) if integer else float(value)


def _flag(params: dict, key: str) -> bool:
    value = params.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError(f"`{key}` must be a boolean. Given: {value!r}")
    return value


def _stop_list(value: Any, max_stop: int) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ValidationError("`stop` must be a string or a list of strings")
    stops = [s for s in stops if s]
    if len(stops) > max_stop:
        raise ValidationError(f"`stop` supports up to {max_stop} stop sequences. Given: {len(stops)}")
    return stops


@dataclass
class Prepared:
    target: Target
    input_ids: list[int]
    params: SamplingParams
    model_name: str  # what the response calls the model: the adapter id or the base model name


class Server:
    def __init__(self, engine: Engine, *, max_concurrent_requests: int, max_new_tokens_limit: int,
                 max_stop_sequences: int) -> None:
        self.engine = engine
        self.max_concurrent_requests = max_concurrent_requests
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_stop_sequences = max_stop_sequences
        self.in_flight = 0  # touched only on the event loop thread
        self.metrics: Metrics | None = None
        self.executor = ThreadPoolExecutor(max_workers=max_concurrent_requests + 4, thread_name_prefix="generate")

    # -- slots and threads --

    def acquire(self) -> None:
        if self.in_flight >= self.max_concurrent_requests:
            raise Overloaded()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- targets --

    def is_base(self, model: str | None) -> bool:
        return model in (None, "", "tgi", self.engine.base_model_name)

    def target_for(self, adapter_id: str | None, *, chat_model: bool = False) -> Target:
        if self.is_base(adapter_id):
            return self.engine.base_target
        if not isinstance(adapter_id, str):
            raise ValidationError(f"`adapter_id` must be a string. Given: {adapter_id!r}")
        try:
            return self.engine.get_adapter(adapter_id)
        except AdapterNotFound as exc:
            if chat_model and adapter_id == CLIENT_PLACEHOLDER_MODEL:
                return self.engine.base_target
            if not chat_model:  # OpenAI routes answer 404 for an unknown model; TGI's own routes a 422
                raise UnknownAdapterParameter(exc.message) from None
            raise

    # -- validation shared by the TGI and chat routes --

    def _budget(self, input_ids: list[int], max_new_tokens: int | None) -> int:
        engine = self.engine
        n = len(input_ids)
        if n > engine.max_input_tokens:
            raise ValidationError(f"`inputs` must have less than {engine.max_input_tokens} tokens. Given: {n}")
        if max_new_tokens is None:
            max_new_tokens = min(self.max_new_tokens_limit, engine.max_total_tokens - n)
            if max_new_tokens <= 0:
                raise ValidationError(f"`inputs` tokens + `max_new_tokens` must be <= {engine.max_total_tokens}. "
                                      f"Given: {n} `inputs` tokens and 1 `max_new_tokens`")
            return max_new_tokens
        if max_new_tokens <= 0:
            raise ValidationError("`max_new_tokens` must be strictly positive")
        if max_new_tokens > self.max_new_tokens_limit:
            raise ValidationError(f"`max_new_tokens` must be <= {self.max_new_tokens_limit}. Given: {max_new_tokens}")
        if n + max_new_tokens > engine.max_total_tokens:
            raise ValidationError(f"`inputs` tokens + `max_new_tokens` must be <= {engine.max_total_tokens}. "
                                  f"Given: {n} `inputs` tokens and {max_new_tokens} `max_new_tokens`")
        return max_new_tokens

    @staticmethod
    def _check_sampling(temperature, top_p, top_k, typical_p, repetition_penalty, frequency_penalty, seed) -> None:
        if temperature is not None and temperature < 0:
            raise ValidationError("`temperature` must be strictly positive")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValidationError("`top_p` must be > 0.0 and <= 1.0")
        if top_k is not None and top_k <= 0:
            raise ValidationError("`top_k` must be strictly positive")
        if typical_p is not None and not 0 < typical_p <= 1:
            raise ValidationError("`typical_p` must be > 0.0 and <= 1.0")
        if repetition_penalty is not None and repetition_penalty <= 0:
            raise ValidationError("`repetition_penalty` must be strictly positive")
        if frequency_penalty is not None and not -2 <= frequency_penalty <= 2:
            raise ValidationError("`frequency_penalty` must be >= -2.0 and <= 2.0")
        if seed is not None and not 0 <= seed < 2 ** 64:
            raise ValidationError("`seed` must be a non-negative 64-bit integer")

    def prepare_generate(self, body: dict, *, stream: bool) -> tuple[Prepared, dict]:
        """Validate a TGI GenerateRequest; returns the work and the flags the response needs."""
        inputs = body.get("inputs")
        if not isinstance(inputs, str):
            raise ValidationError("`inputs` must be a string")
        if not inputs:
            raise ValidationError("`inputs` cannot be empty")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise ValidationError("`parameters` must be an object")
        best_of = _number(params, "best_of", integer=True)
        if best_of is not None and best_of != 1:
            raise ValidationError("`best_of` != 1 is not supported by this server")
        if params.get("grammar") is not None:
            raise ValidationError("grammar is not supported")
        if _flag(params, "watermark"):
            raise ValidationError("watermark is not supported")
        decoder_input_details = _flag(params, "decoder_input_details")
        if stream and decoder_input_details:
            raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")
        top_n = _number(params, "top_n_tokens", integer=True) or 0
        if not 0 <= top_n <= MAX_TOP_N_TOKENS:
            raise ValidationError(f"`top_n_tokens` must be >= 0 and <= {MAX_TOP_N_TOKENS}. Given: {top_n}")
        temperature = _number(params, "temperature")
        top_p = _number(params, "top_p")
        top_k = _number(params, "top_k", integer=True)
        typical_p = _number(params, "typical_p")
        repetition_penalty = _number(params, "repetition_penalty")
        frequency_penalty = _number(params, "frequency_penalty")
        seed = _number(params, "seed", integer=True)
        self._check_sampling(temperature, top_p, top_k, typical_p, repetition_penalty, frequency_penalty, seed)
        stop = _stop_list(params.get("stop"), self.max_stop_sequences)
        truncate = _number(params, "truncate", integer=True)
        max_new_tokens = _number(params, "max_new_tokens", integer=True)
        add_special_tokens = body.get("add_special_tokens", True)
        flags = {"details": _flag(params, "details") or decoder_input_details,
                 "return_full_text": _flag(params, "return_full_text"), "inputs": inputs}

        adapter_id = params.get("adapter_id")
        target = self.target_for(adapter_id)
        input_ids = self.engine.encode(target, inputs, add_special_tokens=bool(add_special_tokens))
        if truncate is not None:
            if not 0 < truncate <= self.engine.max_input_tokens:
                raise ValidationError(f"`truncate` must be strictly positive and less than "
                                      f"{self.engine.max_input_tokens}. Given: {truncate}")
            input_ids = input_ids[-truncate:]
        if not input_ids:
            raise ValidationError("`inputs` cannot be empty")
        sampling = SamplingParams(
            max_new_tokens=self._budget(input_ids, max_new_tokens), do_sample=_flag(params, "do_sample"),
            temperature=temperature, top_k=top_k, top_p=top_p, typical_p=typical_p,
            repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty, seed=seed, stop=stop,
            top_n_tokens=top_n, decoder_input_details=decoder_input_details)
        model_name = target.adapter_id or self.engine.base_model_name
        return Prepared(target, input_ids, sampling, model_name), flags

    def prepare_chat(self, body: dict) -> tuple[Prepared, dict]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValidationError("`messages` must be a non-empty list")
        clean = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ValidationError(f"`messages[{i}]` must be an object with a string `role`")
            content = message.get("content")
            if content is None:
                content = ""
            elif isinstance(content, list):  # OpenAI content parts: keep the text ones
                parts = []
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                        parts.append(part["text"])
                    else:
                        raise ValidationError(f"`messages[{i}].content` may only hold text parts")
                content = "".join(parts)
            elif not isinstance(content, str):
                raise ValidationError(f"`messages[{i}].content` must be a string or a list of text parts")
            clean.append({"role": message["role"], "content": content})
        for unsupported in ("tools", "response_format"):
            if body.get(unsupported) is not None:
                raise ValidationError(f"`{unsupported}` is not supported by this server")
        options = self._openai_options(body)
        logprobs = _flag(body, "logprobs")
        top_logprobs = _number(body, "top_logprobs", integer=True) or 0
        if not 0 <= top_logprobs <= MAX_TOP_N_TOKENS:
            raise ValidationError(f"`top_logprobs` must be >= 0 and <= {MAX_TOP_N_TOKENS}. Given: {top_logprobs}")

        target = self._openai_target(body)
        prompt = self.engine.apply_chat_template(target, clean)
        input_ids = self.engine.encode(target, prompt, add_special_tokens=False)  # the template has them
        sampling = self._openai_sampling(input_ids, options, top_n_tokens=top_logprobs if logprobs else 0)
        model_name = target.adapter_id or self.engine.base_model_name
        flags = {"logprobs": logprobs, "include_usage": options["include_usage"]}
        return Prepared(target, input_ids, sampling, model_name), flags

    def prepare_completion(self, body: dict, *, stream: bool) -> tuple[list[Prepared], dict]:
        """Validate an OpenAI completions request: one ``Prepared`` per prompt (a string or a list of them)."""
        prompts = body.get("prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValidationError("`prompt` must be a string or a non-empty list of strings")
        if len(prompts) > MAX_CLIENT_BATCH_SIZE:
            raise ValidationError(f"Number of prompts must be <= {MAX_CLIENT_BATCH_SIZE}. Given: {len(prompts)}")
        if stream and len(prompts) > 1:
            raise ValidationError("`stream` == true supports a single prompt only. Given: "
                                  f"{len(prompts)} prompts")
        if body.get("suffix") is not None:
            raise ValidationError("`suffix` is not supported by this server")
        if _flag(body, "echo"):
            raise ValidationError("`echo` == true is not supported by this server")
        best_of = _number(body, "best_of", integer=True)
        if best_of is not None and best_of != 1:
            raise ValidationError("`best_of` != 1 is not supported by this server")
        if body.get("logprobs") not in (None, False, 0):
            raise ValidationError("`logprobs` is not supported on /v1/completions")
        options = self._openai_options(body)
        repetition_penalty = _number(body, "repetition_penalty")
        self._check_sampling(None, None, None, None, repetition_penalty, None, None)

        target = self._openai_target(body)
        model_name = target.adapter_id or self.engine.base_model_name
        work = []
        for i, prompt in enumerate(prompts):
            if not prompt:
                raise ValidationError("`prompt` cannot be empty" if len(prompts) == 1 else
                                      f"`prompt[{i}]` cannot be empty")
            input_ids = self.engine.encode(target, prompt, add_special_tokens=True)  # no template: as /generate
            if not input_ids:
                raise ValidationError("`prompt` cannot be empty")
            sampling = self._openai_sampling(input_ids, options, repetition_penalty=repetition_penalty)
            work.append(Prepared(target, input_ids, sampling, model_name))
        return work, {"include_usage": options["include_usage"]}

    # -- what the OpenAI-style routes (chat and completions) share --

    def _openai_options(self, body: dict) -> dict:
        n = _number(body, "n", integer=True)
        if n is not None and n != 1:
            raise ValidationError("`n` must be 1")
        temperature = _number(body, "temperature")
        top_p = _number(body, "top_p")
        frequency_penalty = _number(body, "frequency_penalty")
        seed = _number(body, "seed", integer=True)
        self._check_sampling(temperature, top_p, None, None, None, frequency_penalty, seed)
        max_tokens = _number(body, "max_tokens", integer=True)
        if max_tokens is None:
            max_tokens = _number(body, "max_completion_tokens", integer=True)
        stop = _stop_list(body.get("stop"), self.max_stop_sequences)
        stream_options = body.get("stream_options") or {}
        include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
        return {"temperature": temperature, "top_p": top_p, "frequency_penalty": frequency_penalty, "seed": seed,
                "max_tokens": max_tokens, "stop": stop, "include_usage": include_usage}

    def _openai_target(self, body: dict) -> Target:
        """A body ``adapter_id`` (TGI-style), else ``model``: the base model's name, "tgi" or none is the base."""
        adapter_id = body.get("adapter_id")
        return self.target_for(adapter_id if adapter_id else body.get("model"), chat_model=True)

    def _openai_sampling(self, input_ids: list[int], options: dict, *, top_n_tokens: int = 0,
                         repetition_penalty: float | None = None) -> SamplingParams:
        # TGI: greedy only when temperature is 0; otherwise sample (temperature 1.0 when absent).
        temperature = options["temperature"]
        return SamplingParams(
            max_new_tokens=self._budget(input_ids, options["max_tokens"]), do_sample=temperature != 0,
            temperature=temperature if temperature else None, top_p=options["top_p"],
            repetition_penalty=repetition_penalty, frequency_penalty=options["frequency_penalty"],
            seed=options["seed"], stop=options["stop"], top_n_tokens=top_n_tokens)

    # -- generation --

    def generate(self, prepared: Prepared) -> GenResult:
        result = self.engine.generate(prepared.target, prepared.input_ids, prepared.params)
        self._observe(result)
        return result

    def _observe(self, result: GenResult) -> None:
        if self.metrics is not None:
            self.metrics.observe_generation(result.input_length, result.generated_tokens)

    async def openai_stream(self, prepared: Prepared, cancel: threading.Event) -> AsyncIterator[tuple]:
        """Yields ``(text, token, top_tokens, result)`` for the OpenAI-style streams: ``text`` is the new text
        safe to send (text that may start a stop sequence is held back); ``result`` is set on the last, whose
        ``text`` is the rest of the answer, cut at the stop sequence."""
        stops = prepared.params.stop
        text = ""  # all non-special text so far
        sent = 0  # how much of it has been sent
        async for token, tops, result in self.stream(prepared, cancel):
            if result is None:
                if not token["special"]:
                    text += token["text"]
                safe = len(text) - _holdback(text, stops) if stops else len(text)
                content, sent = text[sent:safe], max(sent, safe)
                yield content, token, tops, None
            else:
                yield _answer(result)[sent:], token, tops, result

    async def stream(self, prepared: Prepared, cancel: threading.Event) -> AsyncIterator[tuple]:
        """Yields ``(token, top_tokens, result)`` as the worker thread decodes; ``result`` is set on the last."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (shutdown)
                cancel.set()

        def work() -> None:
            try:
                self.engine.generate(prepared.target, prepared.input_ids, prepared.params,
                                     on_token=lambda tok, tops, res: put(("token", (tok, tops, res))), cancel=cancel)
            except Cancelled:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported to the client as a stream error
                put(("error", exc))
            finally:
                put(("end", None))

        loop.run_in_executor(self.executor, work)
        while True:
            kind, payload = await queue.get()
            if kind == "token":
                if payload[2] is not None:
                    self._observe(payload[2])
                yield payload
            elif kind == "error":
                raise payload
            else:
                return


# -- responses --------------------------------------------------------------------------------------------------

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


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except Exception as exc:  # noqa: BLE001
        raise ValidationError(f"Failed to deserialize the JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise ValidationError("The JSON body must be an object")
    return body


def _details(result: GenResult, with_prefill: bool) -> dict:
    details = {"finish_reason": result.finish_reason, "generated_tokens": result.generated_tokens,
               "seed": result.seed, "prefill": result.prefill if with_prefill else [], "tokens": result.tokens}
    if result.top_tokens is not None:
        details["top_tokens"] = result.top_tokens
    return details


def _chat_logprobs(tokens: list[dict], tops: list[list[dict]] | None) -> dict:
    content = []
    for i, token in enumerate(tokens):
        top = (tops[i] if tops is not None and i < len(tops) else None) or []
        content.append({"token": token["text"], "logprob": token["logprob"],
                        "top_logprobs": [{"token": t["text"], "logprob": t["logprob"]} for t in top]})
    return {"content": content}


def _answer(result: GenResult) -> str:
    """The OpenAI-style answer: the generated text without the stop sequence that ended it."""
    return result.text if result.stop_index is None else result.text[:result.stop_index]


def _finish_reason(result: GenResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _usage(results: list[GenResult]) -> dict:
    prompt = sum(r.input_length for r in results)
    completion = sum(r.generated_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _holdback(text: str, stops: list[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop sequence (not sent yet)."""
    keep = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), keep, -1):
            if text.endswith(stop[:k]):
                keep = k
                break
    return keep


def create_app(base_model_dir: str | Path, base_model_name: str, adapters_dir: str | Path | None = None,
               static_adapters: dict[str, str | Path] | None = None, *, token: str, max_concurrent_requests: int = 32,
               max_new_tokens_limit: int = 1024, max_input_tokens: int | None = None,
               max_total_tokens: int | None = None, max_stop_sequences: int = 4, device: str = "cpu",
               dtype: str = "float32", max_batch_size: int = 16, decode_threads: int | None = None,
               engine: Engine | None = None) -> Starlette:
    """Load the base model (and adapters) and return the TGI-compatible Starlette app.

    ``token`` is the secret every request but ``/health`` must send as ``Authorization: Bearer``.
    ``static_adapters`` maps adapter id -> adapter directory (TGI's LORA_ADAPTERS); adapters under
    ``adapters_dir`` whose studio_adapter.json names ``base_model_name`` are loaded too, and rescanned for
    on a request for an adapter id that is not loaded yet. ``app.state.server`` / ``app.state.engine`` /
    ``app.state.metrics`` expose the internals.
    """
    if not token:  # before loading anything: Starlette builds its middleware only at the first request
        raise ValueError("the inference server needs a token")
    if engine is None:
        engine = Engine(base_model_dir, base_model_name, adapters_dir, static_adapters, device=device, dtype=dtype,
                        max_input_tokens=max_input_tokens, max_total_tokens=max_total_tokens,
                        max_batch_size=max_batch_size, decode_threads=decode_threads)
    server = Server(engine, max_concurrent_requests=max_concurrent_requests,
                    max_new_tokens_limit=max_new_tokens_limit, max_stop_sequences=max_stop_sequences)

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    async def info(request: Request) -> JSONResponse:
        return JSONResponse({
            "model_id": engine.base_model_name,
            "model_sha": None,
            "model_dtype": engine.model_dtype,
            "model_device_type": engine.device.type,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": server.max_concurrent_requests,
            "max_batch_size": engine.scheduler.max_batch_size,
            "max_best_of": 1,
            "max_stop_sequences": server.max_stop_sequences,
            "max_input_tokens": engine.max_input_tokens,
            "max_total_tokens": engine.max_total_tokens,
            "max_new_tokens_limit": server.max_new_tokens_limit,
            "validation_workers": 1,
            "max_client_batch_size": MAX_CLIENT_BATCH_SIZE,
            "router": "text-generation-router",
            "version": VERSION,
            "sha": None,
            "docker_label": None,
            "adapters": [t.adapter_id for t in engine.loaded_adapters()],
        })

    async def models(request: Request) -> JSONResponse:
        ids = await server.run(engine.available_adapter_ids)
        loaded = {t.adapter_id for t in engine.loaded_adapters()}
        data = [{"id": engine.base_model_name, "object": "model", "created": 0, "owned_by": engine.base_model_name}]
        # status (a studio extension): "ready" once loaded, "available" in adapters-dir, loaded on first use
        data += [{"id": i, "object": "model", "created": 0, "owned_by": engine.base_model_name,
                  "parent": engine.base_model_name, "status": "ready" if i in loaded else "available"} for i in ids]
        return JSONResponse({"object": "list", "data": data})

    # -- the studio's deployment routes (not TGI's: TGI takes its adapters at launch) --

    async def _adapter_id(request: Request) -> str:
        adapter_id = (await _json_body(request)).get("adapter_id")
        if not isinstance(adapter_id, str) or not adapter_id or server.is_base(adapter_id):
            raise ValidationError(f"`adapter_id` must name an adapter. Given: {adapter_id!r}")
        return adapter_id

    async def load_adapter(request: Request) -> JSONResponse:
        try:
            adapter_id = await _adapter_id(request)
            target = await server.run(engine.get_adapter, adapter_id)  # AdapterNotFound 404, AdapterLoadError 500
        except ServerError as exc:
            return error_response(exc)
        return JSONResponse({"id": target.adapter_id, "status": "ready"})

    async def unload_adapter(request: Request) -> JSONResponse:
        try:
            adapter_id = await _adapter_id(request)
        except ServerError as exc:
            return error_response(exc)
        was_loaded = await server.run(engine.unload_adapter, adapter_id)
        return JSONResponse({"id": adapter_id, "status": "unloaded", "was_loaded": was_loaded})

    async def tokenize(request: Request) -> Response:
        try:
            body = await _json_body(request)
            inputs = body.get("inputs")
            if not isinstance(inputs, str):
                raise ValidationError("`inputs` must be a string")
            params = body.get("parameters") or {}
            target = await server.run(server.target_for, params.get("adapter_id") if isinstance(params, dict) else None)
            return JSONResponse(await server.run(engine.tokenize_with_offsets, target, inputs))
        except ServerError as exc:
            return error_response(exc)

    async def _generate(body: dict, stream: bool, wrap_list: bool = False) -> Response:
        try:
            server.acquire()
        except ServerError as exc:
            return error_response(exc)
        handed_off = False  # once the stream owns the slot, it frees it when it ends
        try:
            prepared, flags = await server.run(lambda: server.prepare_generate(body, stream=stream))
            prefix = flags["inputs"] if flags["return_full_text"] else ""
            if not stream:
                result = await server.run(server.generate, prepared)
                response = {"generated_text": prefix + result.text}
                if flags["details"]:
                    response["details"] = _details(result, prepared.params.decoder_input_details)
                return JSONResponse([response] if wrap_list else response)

            cancel = threading.Event()

            async def events():
                index = 0
                try:
                    async for token, tops, result in server.stream(prepared, cancel):
                        index += 1
                        event = {"index": index, "token": token, "generated_text": None, "details": None}
                        if tops is not None:
                            event["top_tokens"] = tops
                        if result is not None:
                            event["generated_text"] = prefix + result.text
                            event["details"] = {"finish_reason": result.finish_reason,
                                                "generated_tokens": result.generated_tokens,
                                                "seed": result.seed, "input_length": result.input_length}
                        yield sse(event)
                except Exception as exc:  # noqa: BLE001
                    yield sse_error(exc)

            def close() -> None:
                cancel.set()
                server.release()

            handed_off = True
            return GuardedStream(events(), close)
        except ServerError as exc:
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 - still TGI's error shape
            return unexpected_error_response(exc)
        finally:
            if not handed_off:
                server.release()

    async def _generate_request(request: Request, mode) -> Response:
        """Parse the body, then generate; `mode(body)` says (stream, wrap_list) for this route."""
        try:
            body = await _json_body(request)
        except ServerError as exc:
            return error_response(exc)
        stream, wrap_list = mode(body)
        return await _generate(body, stream=stream, wrap_list=wrap_list)

    async def generate(request: Request) -> Response:
        return await _generate_request(request, lambda body: (False, False))

    async def generate_stream(request: Request) -> Response:
        return await _generate_request(request, lambda body: (True, False))

    async def compat_generate(request: Request) -> Response:
        # TGI's `/`: a list of one generation, or the stream when the body asks for one.
        return await _generate_request(request, lambda body: (body.get("stream") is True, body.get("stream") is not True))

    async def _openai_request(request: Request, handler) -> Response:
        """Parse the body, take a slot, then `handler(body, stream)` -> (response, whether a stream owns the slot)."""
        try:
            body = await _json_body(request)
            server.acquire()
        except ServerError as exc:
            return error_response(exc)
        handed_off = False  # once the stream owns the slot, it frees it when it ends
        try:
            response, handed_off = await handler(body, stream=body.get("stream") is True)
            return response
        except ServerError as exc:
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 - still TGI's error shape
            return unexpected_error_response(exc)
        finally:
            if not handed_off:
                server.release()

    async def chat_completions(request: Request) -> Response:
        return await _openai_request(request, _chat)

    async def completions(request: Request) -> Response:
        return await _openai_request(request, _completion)

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    async def _completion(body: dict, stream: bool) -> tuple[Response, bool]:
        """OpenAI's (legacy) completions, as TGI serves them: the prompt as is, no chat template."""
        work, flags = await server.run(lambda: server.prepare_completion(body, stream=stream))
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        model_name = work[0].model_name

        def envelope(choices: list[dict], usage: dict | None) -> dict:
            return {"id": completion_id, "object": "text_completion", "created": created, "model": model_name,
                    "system_fingerprint": SYSTEM_FINGERPRINT, "choices": choices, "usage": usage}

        if not stream:
            results = [await server.run(server.generate, prepared) for prepared in work]
            return JSONResponse(envelope(
                [{"index": i, "text": _answer(r), "logprobs": None, "finish_reason": _finish_reason(r)}
                 for i, r in enumerate(results)], _usage(results))), False

        def chunk(content: str, token: dict | None, tops, finish_reason: str | None) -> dict:
            return envelope([{"index": 0, "text": content, "logprobs": None, "finish_reason": finish_reason}], None)

        # prepare_completion allows one prompt when streaming
        return _openai_sse(work[0], flags, chunk, lambda usage: envelope([], usage)), True

    def _openai_sse(prepared: Prepared, flags: dict, chunk, usage_chunk) -> GuardedStream:
        """An OpenAI-style stream: `chunk(content, token, top_tokens, finish_reason)` per piece of text, then
        `usage_chunk(usage)` when the request asked for usage, then [DONE]. It owns the request's slot."""
        cancel = threading.Event()

        async def events():
            try:
                async for content, token, tops, result in server.openai_stream(prepared, cancel):
                    yield sse(chunk(content, token, tops, None if result is None else _finish_reason(result)))
                    if result is not None and flags["include_usage"]:
                        yield sse(usage_chunk(_usage([result])))
            except Exception as exc:  # noqa: BLE001
                yield sse_error(exc)
            yield b"data: [DONE]\n\n"

        def close() -> None:
            cancel.set()
            server.release()

        return GuardedStream(events(), close)

    async def _chat(body: dict, stream: bool) -> tuple[Response, bool]:
        """The response, and whether it is a stream that now owns the request's slot."""
        prepared, flags = await server.run(server.prepare_chat, body)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        if not stream:
            result = await server.run(server.generate, prepared)
            return JSONResponse({
                "id": completion_id, "object": "chat.completion", "created": created,
                "model": prepared.model_name, "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": _answer(result)},
                    "logprobs": _chat_logprobs(result.tokens, result.top_tokens) if flags["logprobs"] else None,
                    "finish_reason": _finish_reason(result),
                }],
                "usage": _usage([result]),
            }), False

        def chunk(content: str, token: dict | None, tops, finish_reason: str | None) -> dict:
            logprobs = None
            if flags["logprobs"] and token is not None:
                logprobs = _chat_logprobs([token], [tops] if tops is not None else None)
            return {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": prepared.model_name, "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                 "logprobs": logprobs, "finish_reason": finish_reason}],
                    "usage": None}

        def usage_chunk(usage: dict) -> dict:
            return {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": prepared.model_name, "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [], "usage": usage}

        return _openai_sse(prepared, flags, chunk, usage_chunk), True

    routes = [
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
    metrics = Metrics({route.path for route in routes}, lambda: server.in_flight,
                      batch_size=lambda: engine.scheduler.batch_size, queue_size=lambda: engine.scheduler.queue_size)
    server.metrics = metrics
    engine.scheduler.add_listener(metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        server.executor.shutdown(wait=False, cancel_futures=True)

    # Authentication outermost: a request without the token reaches nothing, the metrics included.
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(BearerAuth, token=token),
                                                                  Middleware(MetricsMiddleware, metrics=metrics)])
    app.state.server = server
    app.state.engine = engine
    app.state.metrics = metrics
    return app
