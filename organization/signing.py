"""The signature one deployment puts on a request to another, and its check.

Each request carries who sends it, to whom, when, and an HMAC-SHA256 over those and the method, the path
with its query and the body's digest, keyed with the key both accounts registered for each other. The
recipient in the signed text stops a request meant for one deployment being replayed to another; the
timestamp bounds a replay to the same one to a few minutes. Requests between deployments read (manifests
and files), so a replay inside that window learns nothing the sender could not ask for, except the one
that changes something, a promoted secondary telling its former primary, which is idempotent: replayed,
it makes the same database the same secondary again.
"""
from __future__ import annotations

import hashlib
import hmac
import time

ACCOUNT_HEADER = "X-Studio-Account"
TARGET_HEADER = "X-Studio-Target"
TIMESTAMP_HEADER = "X-Studio-Timestamp"
SIGNATURE_HEADER = "X-Studio-Signature"
MAX_SKEW_SECONDS = 300


def _text(method: str, path: str, timestamp: str, sender: str, target: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, sender.upper(), target.upper(),
                      hashlib.sha256(body).hexdigest()]).encode()


def sign(key: str, method: str, path: str, sender: str, target: str, body: bytes = b"", *,
         now: float | None = None) -> dict[str, str]:
    """The headers that let `target` check that `sender`, holding `key`, sent this request."""
    timestamp = str(int(time.time() if now is None else now))
    signature = hmac.new(key.encode(), _text(method, path, timestamp, sender, target, body), hashlib.sha256).hexdigest()
    return {ACCOUNT_HEADER: sender, TARGET_HEADER: target, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature}


def check(key: str, method: str, path: str, headers: dict[str, str], target: str, body: bytes = b"", *,
          now: float | None = None) -> str | None:
    """None when the headers are a valid signature of this request to `target`; else why not."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not timestamp.isdigit():
        return "the request carries no timestamp"
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_SECONDS:
        return f"the request's timestamp is more than {MAX_SKEW_SECONDS} seconds away from this deployment's clock"
    if headers.get(TARGET_HEADER, "").upper() != target.upper():
        return f"the request was signed for another account ({headers.get(TARGET_HEADER, '')!r})"
    expected = hmac.new(key.encode(), _text(method, path, timestamp, headers.get(ACCOUNT_HEADER, ""), target, body),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, "")):
        return "the signature does not match the key registered for the sending account"
    return None
