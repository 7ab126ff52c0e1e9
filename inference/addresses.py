"""Inference servers are named, never located, in what clients read: an error from COMPLETE, the HTTP
APIs or a deployment's reason says 'embedded-smollm2-135m', not http://127.0.0.1:8081. A server's
address tells a caller where to send requests around the gateway's grants; the admin console's list of
servers is where operators find it (and the logs, which keep the whole error)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from inference.models import InferenceServer


def hide(text: str, server: InferenceServer) -> str:
    """`text` with the server's URL (and anything under it) and its host:port replaced by its name, for
    messages built from what a server or a connection library said, which may quote either."""
    name = f"'{server.name}'"
    base = server.url.rstrip("/")
    text = re.sub(re.escape(base) + r"(?:/[^\s'\"<>(),]*)?", name, text)
    netloc = urlsplit(server.url).netloc
    if netloc:
        text = re.sub(r"(?<![\w.-])" + re.escape(netloc) + r"(?![\w-])", name, text)
    return text
