"""The JSON object in an API request's body, for the SQL API and both inference APIs: each refusal is
a BadBody naming the problem and where it is, which each API answers as a 400 (413 for TooLarge) in its
own error shape. Everything a client can send lands here, never as a 500 further in: json's RecursionError
on deep nesting, bytes that are not UTF-8, lone surrogates (valid JSON, but no UTF-8 encoder, SQLite's or
httpx's, takes them later), NaN and Infinity, and bodies that are not objects.

The body is read up to its limit and no further: Django's request.body would raise RequestDataTooBig,
which Django answers with an HTML page."""
from __future__ import annotations

import json
import re
from typing import Any

SURROGATE = re.compile("[\ud800-\udfff]")
JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
              type(None): "null"}


class BadBody(Exception):
    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class TooLarge(BadBody):
    pass


def _too_large(length: int, limit: int, setting: str) -> TooLarge:
    return TooLarge(f"Request body too large: {length} bytes, over the limit of {limit} bytes ({setting}).")


def _not_a_number(constant: str) -> float:
    raise ValueError(f"{constant} is not a JSON number")


def read_object(request, *, limit: int, setting: str) -> dict[str, Any]:
    """The body's JSON object, reading at most `limit` bytes (0: no limit) of it; `setting` names the
    limit in the refusal."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if 0 < limit < declared:
        raise _too_large(declared, limit, setting)
    raw = request.read(limit + 1) if limit > 0 else request.read()
    if 0 < limit < len(raw):  # no Content-Length (chunked), or one that understated the body
        raise _too_large(len(raw), limit, setting)
    return parse_object(raw)


def parse_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise BadBody("The request body is empty: it must be a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"The request body is not UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start} "
                      "does not decode.") from None
    try:
        body = json.loads(text, parse_constant=_not_a_number)
    except RecursionError:
        raise BadBody("The request body's JSON nests arrays or objects too deeply to be read.") from None
    except ValueError as exc:  # JSONDecodeError, NaN, and integers longer than Python converts
        raise BadBody(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BadBody(f"The request body must be a JSON object, not {JSON_TYPES.get(type(body), 'that')}.")
    where = lone_surrogate(body)
    if where is not None:
        raise BadBody(f"The request body is not valid Unicode: '{where}' holds a lone surrogate (an unpaired "
                      "\\ud800-\\udfff escape), which encodes no character.", where)
    return body


def lone_surrogate(body: dict[str, Any]) -> str | None:
    """Where the first string or key holding a lone surrogate is (`messages[0].content`), or None. A
    loop, not recursion: json.loads accepts nesting deeper than a recursive walk would survive."""
    pending: list[tuple[Any, str]] = [(body, "")]
    while pending:
        value, where = pending.pop()
        if isinstance(value, str):
            if SURROGATE.search(value):
                return where
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                path = f"{where}.{key}" if where else key
                if SURROGATE.search(key):
                    return path.encode("utf-8", "backslashreplace").decode("utf-8")
                pending.append((item, path))
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(value))))
    return None
