"""web/streaming.py: a streamed response sends each piece as it comes under WSGI and under ASGI,
where Django would otherwise read a plain generator to its end before sending anything."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.test import AsyncRequestFactory, RequestFactory

from web.streaming import streaming_response


def run_coroutine(make):
    """asyncio.run on a thread of its own: after the browser tests, Playwright's sync API keeps an event loop
    running on the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def pieces(log: list[str]):
    try:
        for piece in ("one ", "two ", "three"):
            log.append(f"made {piece.strip()}")
            yield piece
    finally:
        log.append("closed")


def test_under_wsgi_the_generator_is_streamed_as_is():
    log: list[str] = []
    response = streaming_response(RequestFactory().get("/"), pieces(log), "text/event-stream")
    assert not response.is_async
    content = iter(response)
    assert next(content) == b"one " and log == ["made one"]
    assert response["Cache-Control"] == "no-cache" and response["Content-Type"] == "text/event-stream"


def test_under_asgi_each_piece_is_sent_before_the_next_is_made():
    log: list[str] = []
    response = streaming_response(AsyncRequestFactory().get("/"), pieces(log), "text/event-stream")
    assert response.is_async

    async def read():
        content = aiter(response)
        first = await anext(content)
        made_before_first_was_sent = list(log)
        rest = [part async for part in content]
        return first, made_before_first_was_sent, rest

    first, made, rest = run_coroutine(read)
    assert first == b"one " and made == ["made one"]
    assert rest == [b"two ", b"three"]
    assert log[-1] == "closed"


def test_under_asgi_a_client_that_goes_away_closes_the_generator():
    log: list[str] = []
    response = streaming_response(AsyncRequestFactory().get("/"), pieces(log), "text/event-stream")

    async def read_one_then_leave():
        content = response.streaming_content
        await anext(content)
        await content.aclose()

    run_coroutine(read_one_then_leave)
    assert log == ["made one", "closed"]
