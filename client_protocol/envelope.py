"""The envelope every answer of Snowflake's client protocol comes in, and the request bodies it reads.

Every answer is HTTP 200 with {"success", "code", "message", "data"}: the clients read the outcome from
the body, not the status. `code` is a string of six digits (the 5.x connector fails on a number) and an
error's data carries its sqlState, so the client raises ProgrammingError with Snowflake's errno and
sqlstate. Bodies may be gzip-encoded (the 4.x connector compresses every POST); they are decompressed up
to STUDIO_CLIENT_MAX_REQUEST_BYTES and no further, so a small compressed body cannot expand without bound;
a body sent before signing in, to 64 KiB.
"""
from __future__ import annotations

import zlib
from typing import Any

from django.conf import settings
from django.http import JsonResponse

from errors import UserError
from web import request_body

BAD_REQUEST = 390400
# A sign-in's body is a few kilobytes (credentials and the client's environment).
ANONYMOUS_BYTES = 64 * 1024


def ok(data: Any = None, *, message: str | None = None, code: str | None = None) -> JsonResponse:
    return JsonResponse({"success": True, "code": code, "message": message, "data": data})


def failure(error: UserError, **data: Any) -> JsonResponse:
    body = {"sqlState": error.sqlstate, "errorCode": f"{error.code:06d}", "internalError": False, **data}
    return JsonResponse({"success": False, "code": f"{error.code:06d}", "message": error.message, "data": body})


def bad_request(message: str) -> UserError:
    return UserError(message, code=BAD_REQUEST, sqlstate="08P01")


def read_body(request, *, optional: bool = False, anonymous: bool = False) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body when `optional`), gzip or not. `anonymous`: read
    before any token or password is checked (sign-in, renewal), so held to ANONYMOUS_BYTES: anyone may
    send those, and only executemany's bound arrays need the large limit."""
    limit, named = ((ANONYMOUS_BYTES, "before signing in") if anonymous
                    else (settings.CLIENT_MAX_REQUEST_BYTES, "STUDIO_CLIENT_MAX_REQUEST_BYTES"))
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise bad_request(f"Request body too large: over the limit of {limit} bytes ({named}).")
    if request.headers.get("Content-Encoding", "").lower() == "gzip" or raw[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise bad_request(f"The request body is not valid gzip: {exc}.") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise bad_request(f"Request body too large once decompressed: over the limit of {limit} bytes "
                              f"({named}).")
    if optional and not raw.strip():
        return {}
    try:
        return request_body.parse_object(raw)
    except request_body.BadBody as exc:
        raise bad_request(exc.message) from None
