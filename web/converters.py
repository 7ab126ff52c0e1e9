"""Snowflake names in URL paths: `<ident:…>` carries one identifier, or one qualified name, as one path
segment, whatever characters a quoted identifier holds.

Percent-encoding alone cannot do it: the WSGI server decodes %2F into a slash before Django routes the
path, so "a/b" would be two segments; and browsers drop "." and ".." segments (and their %2E forms)
before sending the URL. So a slash and the escape character itself become ~2F and ~7E, and a segment made
only of dots has its dots written ~2E; Django's reverse() percent-encodes everything else (quotes, <, %,
?, #, spaces, unicode) and the server decodes it again. Names made of letters, digits, underscores and
dots, nearly every name, read in the URL as they are.
"""
from __future__ import annotations

import re

_ESCAPED = re.compile(r"~([0-9A-F]{2})")


class IdentifierConverter:
    # A ~ must start an escape: a hand-typed "~x" matches nothing (404) rather than naming another object.
    regex = r"(?:[^/~]|~[0-9A-F]{2})+"

    def to_python(self, value: str) -> str:
        return _ESCAPED.sub(lambda match: chr(int(match[1], 16)), value)

    def to_url(self, value: str) -> str:
        escaped = value.replace("~", "~7E").replace("/", "~2F")
        if not escaped.strip("."):
            escaped = escaped.replace(".", "~2E")
        return escaped
