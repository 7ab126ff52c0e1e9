"""Small HTTP helpers for the server tests (standard library only)."""
from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path


def post_json(url: str, body: dict, timeout: float = 60) -> tuple[int, object]:
    """POST JSON; returns (status, parsed body) for any status."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def get_json(url: str, timeout: float = 30) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def sse_events(url: str, body: dict, timeout: float = 60) -> list:
    """POST and read a server-sent event stream: the decoded `data:` payloads ("[DONE]" kept as a string)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    events = []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data:"):
                data = line[len("data:"):].strip()
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def move_in(src: Path, dest: Path) -> None:
    shutil.move(str(src), str(dest))
