"""The shared secret between the studio and its inference server: every route but ``/health`` wants
``Authorization: Bearer <token>``.

The server has no users of its own. Which role may call which fine-tuned model is decided by the web app
and workers (USAGE, the gateway's limits); without this, any local process could call any adapter, unload
adapters or read the server's configuration. ``/health`` stays open as a liveness probe: an empty 200.
"""
from __future__ import annotations

import hmac
import json
import os
from pathlib import Path

OPEN_PATHS = frozenset({"/health"})
# The variables `manage.py serve` and the studio's settings read (project/settings.py INFERENCE_TOKEN).
TOKEN_ENV = "STUDIO_INFERENCE_TOKEN"


def token_from_environment(environ: dict[str, str] = os.environ) -> str:
    """STUDIO_INFERENCE_TOKEN, or the contents of the file STUDIO_INFERENCE_TOKEN_FILE names: never a
    command-line option, which every local user can read in ps."""
    file_name = environ.get(f"{TOKEN_ENV}_FILE")
    token = Path(file_name).read_text().strip() if file_name else environ.get(TOKEN_ENV, "")
    if not token:
        raise ValueError(f"no token: set {TOKEN_ENV} or {TOKEN_ENV}_FILE (manage.py serve passes the studio's)")
    return token


class BearerAuth:
    """Pure ASGI middleware (a streamed answer passes through untouched) that answers 401 in TGI's error JSON
    to a request without the token."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and scope["path"] in OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no route takes a websocket: nothing to let in
            await send({"type": "websocket.close", "code": 1008})
            return
        given = dict(scope["headers"]).get(b"authorization")
        if given is not None and self._valid(given):
            await self.app(scope, receive, send)
            return
        message = ("Authorization: Bearer <token> is required" if given is None else "The bearer token is not valid")
        body = json.dumps({"error": message, "error_type": "unauthorized"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="inference"')]})
        await send({"type": "http.response.body", "body": body})

    def _valid(self, header: bytes) -> bool:
        scheme, _, credentials = header.partition(b" ")
        # compare_digest takes as long wherever the first difference is: the token cannot be guessed by timing.
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)
