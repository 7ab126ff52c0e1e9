"""Large results in chunks: the first rows inline, the others fetched by GET from signed URLs.

A result past STUDIO_CLIENT_RESULT_CHUNK_ROWS rows (or STUDIO_CLIENT_RESULT_CHUNK_BYTES of cell text)
is answered as Snowflake answers one: its first chunk inline and `chunks: [{url, rowCount,
uncompressedSize, compressedSize}]`. The clients fetch those URLs as they fetch Snowflake's presigned
cloud-storage URLs, without the session's token, so each URL is its own capability: signed
(django.core.signing) over the statement, the chunk's number, its rows and its format, and valid for
STUDIO_CLIENT_RESULT_CHUNK_SECONDS. A chunk is cut from the statement's stored result when it is asked
for, so any web process answers it. A JSON chunk's body is its rows without the outer brackets (the 4.x
connector wraps it in "[" "]"); an Arrow chunk's is an IPC stream with the same schema as the first.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from sqlapi.models import Statement

SALT = "client_protocol.chunks"
# What a cell costs in a JSON chunk beyond its text: quotes and a comma.
CELL_OVERHEAD = 3


def boundaries(rowset: list[list[str | None]]) -> list[tuple[int, int]]:
    """(start, end) of each chunk: at most CLIENT_RESULT_CHUNK_ROWS rows, and a chunk ends at the row
    that takes its cells' text to CLIENT_RESULT_CHUNK_BYTES. One chunk for a result within both."""
    most_rows, most_bytes = settings.CLIENT_RESULT_CHUNK_ROWS, settings.CLIENT_RESULT_CHUNK_BYTES
    parts, start, size = [], 0, 0
    for index, row in enumerate(rowset):
        size += _row_size(row)
        if index + 1 - start >= most_rows or size >= most_bytes:
            parts.append((start, index + 1))
            start, size = index + 1, 0
    if start < len(rowset) or not parts:
        parts.append((start, len(rowset)))
    return parts


def _row_size(row: list[str | None]) -> int:
    return sum(len(cell) + CELL_OVERHEAD if cell is not None else 5 for cell in row) + 2


def remote(statement: Statement, rowset: list[list[str | None]], parts: list[tuple[int, int]], rowset_format: str,
           absolute: Callable[[str], str], widths: list[str | None] | None = None) -> list[dict[str, Any]]:
    """The `chunks` entries of the parts after the first. Their sizes are estimated from the cells' text
    (the clients use them only to plan their downloads): encoding every chunk to measure it would cost
    what fetching them does."""
    entries = []
    for number, (start, end) in enumerate(parts[1:], start=1):
        size = sum(_row_size(row) for row in rowset[start:end])
        entries.append({"url": absolute(signed_path(statement.pk, number, start, end, rowset_format, widths)),
                        "rowCount": end - start, "uncompressedSize": size, "compressedSize": size})
    return entries


def signed_path(statement_id: uuid.UUID, number: int, start: int, end: int, rowset_format: str,
                widths: list[str | None] | None = None) -> str:
    """`widths`: an Arrow result's FIXED physical types, worked out once over all its rows when it was
    answered, so that fetching a chunk does not decode the whole result again to find them."""
    claim = {"q": str(statement_id), "n": number, "r": [start, end], "f": rowset_format}
    if widths is not None:
        claim["w"] = widths
    token = signing.dumps(claim, salt=SALT, compress=True)
    path = reverse("client_protocol:chunk", kwargs={"query_id": str(statement_id), "number": number})
    return f"{path}?sig={token}"


def _refused(message: str, status: int = 403) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def json_body(rows: list[list[str | None]]) -> bytes:
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()


@require_GET
def chunk(request, query_id: uuid.UUID, number: int):
    """GET /queries/<id>/chunks/<n>?sig=…: one chunk of a statement's result, for whoever holds its URL."""
    try:
        claim = signing.loads(request.GET.get("sig", ""), salt=SALT, max_age=settings.CLIENT_RESULT_CHUNK_SECONDS)
    except signing.SignatureExpired:
        return _refused("This result chunk's URL has expired: run the query again "
                        f"(chunk URLs last {settings.CLIENT_RESULT_CHUNK_SECONDS} seconds).")
    except signing.BadSignature:
        return _refused("This result chunk's URL is not valid: its signature does not match.")
    if claim.get("q") != str(query_id) or claim.get("n") != number:
        return _refused("This result chunk's URL is not valid: it was signed for another chunk.")
    statement = (Statement.objects.filter(pk=query_id, status=Statement.SUCCESS, user__is_active=True)
                 .only("result").first())
    if statement is None or not statement.result:
        return _refused(f"Statement {query_id} has no result to fetch.", status=404)
    rowtype, rowset = statement.result["rowtype"], statement.result["rowset"]
    start, end = claim["r"]
    if claim.get("f") == "arrow":
        from client_protocol import arrow  # pyarrow is loaded by the first answer that needs it

        # A URL signed before widths were part of the claim (they last hours) works them out here.
        widths = claim.get("w") or arrow.fixed_widths(rowtype, rowset)
        body = arrow.ipc_stream(rowtype, rowset[start:end], widths)
        return HttpResponse(body, content_type="application/vnd.apache.arrow.stream")
    return HttpResponse(json_body(rowset[start:end]), content_type="application/json")
