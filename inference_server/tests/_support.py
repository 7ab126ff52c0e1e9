"""Small HTTP helpers for the server tests (standard library only)."""
from __future__ import annotations

import json
import secrets
import shutil
import urllib.error
import urllib.request
from pathlib import Path

# What conftest.server_process starts the servers with, and what every helper here sends by default.
TOKEN = "inference-tests-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post_json(url: str, body: dict, timeout: float = 60, headers: dict[str, str] = AUTH) -> tuple[int, object]:
    """POST JSON; returns (status, parsed body) for any status."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def get_json(url: str, timeout: float = 30, headers: dict[str, str] = AUTH) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def sse_events(url: str, body: dict, timeout: float = 60) -> list:
    """POST and read a server-sent event stream: the decoded `data:` payloads ("[DONE]" kept as a string)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **AUTH})
    events = []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data:"):
                data = line[len("data:"):].strip()
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def open_url(url: str, data: bytes | None = None, timeout: float = 60):
    """urlopen with the token: a GET, or a POST of JSON `data`."""
    headers = {**AUTH, **({"Content-Type": "application/json"} if data is not None else {})}
    return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout)


def move_in(src: Path, dest: Path) -> None:
    shutil.move(str(src), str(dest))
