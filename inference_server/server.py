"""What every route shares: the engine, the request validator, the ``max_concurrent_requests`` slots, the worker
threads that keep blocking work off the event loop, and generation, whole or as an async stream of tokens."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator

from inference_server.engine import Engine
from inference_server.errors import Cancelled, Overloaded
from inference_server.generation import GenResult
from inference_server.metrics import Metrics
from inference_server.responses import answer
from inference_server.validation import GenerationRequest, RequestValidator


class Server:
    def __init__(self, engine: Engine, *, max_concurrent_requests: int, max_new_tokens_limit: int,
                 max_stop_sequences: int) -> None:
        self.engine = engine
        self.validator = RequestValidator(engine, max_new_tokens_limit=max_new_tokens_limit,
                                          max_stop_sequences=max_stop_sequences)
        self.max_concurrent_requests = max_concurrent_requests
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

    # -- generation --

    def generate(self, request: GenerationRequest) -> GenResult:
        result = self.engine.generate(request.target, request.input_ids, request.params)
        self._observe(result)
        return result

    def _observe(self, result: GenResult) -> None:
        if self.metrics is not None:
            self.metrics.observe_generation(result.input_length, result.generated_tokens)

    async def openai_stream(self, request: GenerationRequest, cancel: threading.Event) -> AsyncIterator[tuple]:
        """Yields ``(text, token, top_tokens, result)`` for the OpenAI-style streams: ``text`` is the new text
        safe to send (text that may start a stop sequence is held back); ``result`` is set on the last, whose
        ``text`` is the rest of the answer, cut at the stop sequence."""
        stops = request.params.stop
        text = ""  # all non-special text so far
        sent = 0  # how much of it has been sent
        async for token, tops, result in self.stream(request, cancel):
            if result is None:
                if not token["special"]:
                    text += token["text"]
                safe = len(text) - _holdback(text, stops) if stops else len(text)
                content, sent = text[sent:safe], max(sent, safe)
                yield content, token, tops, None
            else:
                yield answer(result)[sent:], token, tops, result

    async def stream(self, request: GenerationRequest, cancel: threading.Event) -> AsyncIterator[tuple]:
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
                self.engine.generate(request.target, request.input_ids, request.params,
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


def _holdback(text: str, stops: list[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop sequence (not sent yet)."""
    keep = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), keep, -1):
            if text.endswith(stop[:k]):
                keep = k
                break
    return keep
