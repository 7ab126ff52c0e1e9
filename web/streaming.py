"""A streamed response that streams under both of the web app's servers.

Django serves a StreamingHttpResponse built on a plain generator piece by piece under WSGI (the browser
tests' live server), but under ASGI (uvicorn, bin/start) it first reads such a generator to its end
(`sync_to_async(list)` in StreamingHttpResponse.__aiter__), so nothing arrives before the last piece.
Under ASGI the generator is therefore handed over as an async iterator that asks for one piece at a
time on the request's own thread, where the view ran and its database connection lives.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

_END = object()


def streaming_response(request, pieces: Iterator[str], content_type: str) -> StreamingHttpResponse:
    content = _one_at_a_time(pieces) if isinstance(request, ASGIRequest) else pieces
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each piece on as it comes
    return response


async def _one_at_a_time(pieces: Iterator[str]) -> AsyncIterator[str]:
    # thread_sensitive (the default): next() and close() run one after the other on the request's thread,
    # never at once on two ("generator already executing").
    try:
        while (piece := await sync_to_async(next)(pieces, _END)) is not _END:
            yield piece
    finally:
        # A client that went away cancels the response without closing it (ASGIHandler.handle): close the
        # generator here so its cleanup runs.
        close = getattr(pieces, "close", None)
        if close is not None:
            await sync_to_async(close)()
